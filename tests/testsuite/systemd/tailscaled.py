#!/usr/bin/python3
# Stand-in for the tailscaled daemon under the real systemd (tests/testsuite/systemd.rs).
# Like tailscaled it creates tailscale0 as a non-persistent tun device, which the kernel
# removes when the process ends however it ends, and it reports ready to systemd
# (Type=notify) as soon as it runs: tailscaled sends READY=1 when its local API starts
# (tailscale/tailscale ipn/ipnserver Server.Run), before the control plane hands it an
# address. The address (100.64.0.50/32) follows after the delay in $WORLD/address-delay.
# `--cleanup` (ExecStopPost) only records itself. Every event is a line in $WORLD/events.
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import time

WORLD = "/run/meshboot-test"
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def record(event):
    with open(WORLD + "/events", "a") as f:
        f.write("tailscaled " + event + "\n")


def notify(message):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())


if "--cleanup" in sys.argv:
    record("cleanup")
    sys.exit(0)

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
record("start")
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", b"tailscale0", IFF_TUN | IFF_NO_PI))
notify("READY=1")
with open(WORLD + "/address-delay") as f:
    time.sleep(float(f.read()))
subprocess.run(["ip", "addr", "add", "100.64.0.50/32", "dev", "tailscale0"], check=True)
subprocess.run(["ip", "link", "set", "tailscale0", "up"], check=True)
record("address")
while True:
    time.sleep(3600)
