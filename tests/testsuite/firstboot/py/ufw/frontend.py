"""Stand-in for ufw.frontend (see __init__.py): records each command it is asked to run."""
import os
import subprocess

from ufw import WORLD, record
from ufw.common import UFWError


class Response:
    """What ufw's parser returns (parser.UFWParserResponse), carrying the command's argv."""

    def __init__(self, argv):
        self.argv = argv[1:]
        self.action = "\t".join(self.argv)
        self.dryrun = "--dry-run" in argv
        self.force = "--force" in argv
        self.data = {}


def parse_command(argv):
    return Response(argv)


def fault(name):
    """lib.sh `fault`: true (using one up) when ctl/NAME asks for a failure."""
    path = "%s/ctl/%s" % (WORLD, name)
    if not os.path.exists(path):
        return False
    with open(path) as f:
        n = f.read().strip()
    if n == "always":
        return True
    if not n.isdigit() or int(n) == 0:
        return False
    with open(path, "w") as f:
        f.write("%d\n" % (int(n) - 1))
    return True


class Backend:
    caps = None


class UFWFrontend:
    def __init__(self, dryrun):
        self.backend = Backend()

    def do_action(self, action, rule, ip_version, force=False):
        args = action.split("\t")
        if os.path.exists(WORLD + "/ctl/crash-on"):
            crash = ". %s/lib.sh; TOOL=ufw; crash_point \"$@\"" % WORLD
            if subprocess.run(["sh", "-c", crash, "sh"] + args).returncode != 0:
                os._exit(137)
        if fault("ufw-fail"):
            record("ufw", 1, args)
            raise UFWError("problem running iptables: iptables: Operation not permitted.")
        record("ufw", 0, args)
        return "Rules updated"


# Fault ctl/ufw-frontend-unknown: a ufw whose frontend lacks a call the batch makes (as a
# future ufw might), which the batch must answer by running the ufw command per command.
if fault("ufw-frontend-unknown"):
    del parse_command
