# shellcheck shell=sh
# Shared by the first-boot stand-ins (sourced, never run). tests/testsuite/firstboot.rs copies it to
# $WORLD/lib.sh inside the sandbox. Every stand-in sets TOOL, sources this file, and ends
# with `finish RC "$@"`, which appends one line to $WORLD/calls.log:
#   TOOL <tab> RC <tab> ARG1 <tab> ARG2 ...
# Faults are injected through control files in $WORLD/ctl (see `fault` and `crash_point`).
WORLD=/run/meshboot-fake
CTL=$WORLD/ctl
# shellcheck disable=SC2034 # used by the stand-ins that source this file
STATE=$WORLD/state

# record RC ARGS...: appends this call to the calls log.
record() {
  rec_rc=$1
  shift
  {
    printf '%s\t%s' "$TOOL" "$rec_rc"
    for rec_arg in "$@"; do
      printf '\t%s' "$rec_arg"
    done
    printf '\n'
  } >>"$WORLD/calls.log"
}

# finish RC ARGS...: records the call, then exits with RC.
finish() {
  fin_rc=$1
  shift
  record "$fin_rc" "$@"
  exit "$fin_rc"
}

# unexpected ARGS...: a call no stand-in knows how to answer. Recorded in $WORLD/unexpected
# too, so that the harness fails the test instead of the bootstrap limping on.
unexpected() {
  printf '%s %s\n' "$TOOL" "$*" >>"$WORLD/unexpected"
  echo "stand-in $TOOL: unexpected call: $*" >&2
  finish 2 "$@"
}

# fault NAME: true (using up one occurrence) when $CTL/NAME asks for a failure: the word
# `always`, or the number of failures still to come.
fault() {
  fault_file=$CTL/$1
  [ -f "$fault_file" ] || return 1
  read -r fault_n <"$fault_file" || fault_n=
  case $fault_n in
    always) return 0 ;;
    '' | *[!0-9]*)
      printf 'bad fault count in %s: %s\n' "$fault_file" "$fault_n" >>"$WORLD/unexpected"
      return 1
      ;;
  esac
  [ "$fault_n" -gt 0 ] || return 1
  echo $((fault_n - 1)) >"$fault_file"
}

# crash_point ARGS...: when $CTL/crash-on holds a string found in "TOOL ARGS...", the
# machine loses power here: the bootstrap script (the outermost ancestor running
# /opt/meshboot/bootstrap.sh; its subshells run the same command line) is killed with
# SIGKILL, so no trap runs. Only ever acts inside the sandbox's own PID namespace, whose
# PID 1 is bubblewrap.
crash_point() {
  [ -f "$CTL/crash-on" ] || return 0
  read -r crash_on <"$CTL/crash-on"
  case "$TOOL $*" in
    *"$crash_on"*) ;;
    *) return 0 ;;
  esac
  case "$(tr '\0' ' ' </proc/1/cmdline)" in
    bwrap* | */bwrap*) ;;
    *)
      echo "stand-in $TOOL: refusing to crash outside the sandbox" | tee -a "$WORLD/unexpected" >&2
      exit 99
      ;;
  esac
  crash_pid=$PPID
  crash_target=
  while [ "$crash_pid" -gt 1 ]; do
    case "$(tr '\0' ' ' <"/proc/$crash_pid/cmdline")" in
      */opt/meshboot/bootstrap.sh*) crash_target=$crash_pid ;;
    esac
    crash_pid=$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$crash_pid/status")
  done
  if [ -z "$crash_target" ]; then
    echo "stand-in $TOOL: no bootstrap script above me to crash" | tee -a "$WORLD/unexpected" >&2
    exit 99
  fi
  record killed "$@"
  kill -KILL "$crash_target"
  exit 137
}

# standin_install SRC DEST VERSION: installs stand-in SRC at DEST (mode 0755), reporting
# VERSION when asked (its STANDIN_VERSION line): what a package or tarball of that version
# would put there.
standin_install() {
  sed "s/^STANDIN_VERSION=.*/STANDIN_VERSION=$3/" "$1" >"$2"
  chmod 0755 "$2"
}

# needs_package PKG ARGS...: the Debian package PKG, which holds this tool, is installed
# ($WORLD/dpkg-status: the image's packages, one per line, plus what the apt-get stand-in
# installed). Otherwise the tool is not there: the call fails as the shell fails a command it
# cannot find (exit 127), and is recorded, so that a test sees a tool used before it was
# installed.
needs_package() {
  np_pkg=$1
  shift
  grep -qx "$np_pkg" "$WORLD/dpkg-status" && return 0
  echo "sh: 1: $TOOL: not found" >&2
  finish 127 "$@"
}

# fake_k3s_binary VERSION: the fake k3s of release VERSION that the curl stand-in serves
# from GitHub's releases: it answers --version as k3s does, `k3s version <release>
# (<commit>)` (k3s-io/k3s pkg/cli/cmds/root.go).
fake_k3s_binary() {
  printf '#!/bin/sh\ncase "$*" in --version) echo "k3s version %s (fakecommit)"; echo "go version go1.0" ;; *) echo "fake k3s $*" ;; esac\n' "$1"
}
