"""Stand-in for ufw.util (see __init__.py): ufw's lock and messages."""
import sys


def create_lock(lockfile="/run/ufw.lock", dryrun=False):
    return open(lockfile, "w")


def msg(out, output=None, newline=True):
    print(out, file=output or sys.stdout, end="\n" if newline else "")


def warn(out):
    print("WARN: %s" % out, file=sys.stderr)


def error(out, do_exit=True):
    print("ERROR: %s" % out, file=sys.stderr)
    if do_exit:
        sys.exit(1)
