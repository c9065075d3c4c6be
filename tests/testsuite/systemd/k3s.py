#!/usr/bin/python3
# Stand-in for K3s under the real systemd (tests/testsuite/systemd.rs). It records its start
# and whether tailscale0 had an IPv4 address then ("start server mesh=yes"), and, like K3s's
# flannel with flannel-iface tailscale0 and the vxlan backend, creates the VXLAN device
# flannel.1 on tailscale0 when it is missing. The kernel deletes that device when
# tailscale0 goes (k3s-io/k3s#12436); K3s releases before the fix never make it again while
# they run, and neither does this stand-in. Reports ready (Type=notify), then runs until
# stopped. Every event is a line in $WORLD/events.
import os
import signal
import socket
import subprocess
import sys
import time

WORLD = "/run/meshboot-test"


def record(event):
    with open(WORLD + "/events", "a") as f:
        f.write("k3s " + event + "\n")


def notify(message):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
addrs = run("ip", "-4", "-o", "addr", "show", "dev", "tailscale0").stdout
record("start " + " ".join(sys.argv[1:]) + " mesh=" + ("yes" if " inet " in addrs else "no"))
if run("ip", "link", "show", "flannel.1").returncode != 0:
    made = run("ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dev", "tailscale0", "dstport", "8472")
    record("flannel " + ("created" if made.returncode == 0 else "failed"))
notify("READY=1")
while True:
    time.sleep(3600)
