"""Stand-in for ufw's Python package (Debian package ufw: /usr/lib/python3/dist-packages/ufw),
which the bootstrap's firewall step imports to run ufw's own frontend over the node's
command list in one process (`ufw_batch` in templates/bootstrap.sh.j2). The sandbox mounts it
where Debian's /usr/bin/python3 looks before its own dist-packages
(/usr/local/lib/python3.X/dist-packages), so it shadows the host's ufw.

It models only the interface the batch uses, as ufw 0.36.x defines it (src/ufw,
src/frontend.py, src/util.py, src/common.py): `frontend.parse_command(argv)` and
`UFWFrontend(dryrun).do_action(action, rule, iptype, force)` with `backend.caps`;
`util.create_lock`, `msg` and `error` (which prints `ERROR: ...` and exits 1);
`common.UFWError`. Each process start that imports it is recorded as
`python3 import ufw` (rc 1, and no module, when the ufw package is not installed), each
command as `ufw ARGS...`, the argv the `ufw` command would have had, with its result.
Fault `ctl/ufw-fail` (N or always) makes a command fail as the real one does when iptables
refuses (a UFWError); `ctl/crash-on` works as for every stand-in (lib.sh `crash_point`).
It does not model ufw's parser, rules, files or iptables: the real ufw running this very
batch is tested in tests/testsuite/consumers.rs.
"""

WORLD = "/run/meshboot-fake"


def record(tool, rc, args):
    with open(WORLD + "/calls.log", "a") as log:
        log.write("\t".join([tool, str(rc)] + list(args)) + "\n")


with open(WORLD + "/dpkg-status") as status:
    installed = "ufw" in status.read().split()
if not installed:
    record("python3", 1, ["import", "ufw"])
    raise ModuleNotFoundError("No module named 'ufw'")
record("python3", 0, ["import", "ufw"])
