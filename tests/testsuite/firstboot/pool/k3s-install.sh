#!/bin/sh
# Stand-in for the K3s install script that https://get.k3s.io serves. What it keeps for the
# test (in $WORLD): its whole environment (k3s-install.env), the config.yaml it found and
# that file's mode (k3s-config.seen, k3s-config.mode), every entry of config.yaml.d
# (k3s-config.d.list: "NAME MODE" lines, in name order) with a copy of each drop-in K3s
# reads (k3s-config.d/NAME), and whether the Tailscale auth key was still on disk
# (k3s-install.authkey). Like the real script it picks server/agent from INSTALL_K3S_EXEC
# (or K3S_URL), installs k3s into INSTALL_K3S_BIN_DIR (default /usr/local/bin; like the real
# script it does not create that directory: install.sh `setup_binary` runs
# `mv -f ${TMP_BIN} ${BIN_DIR}/k3s`, which fails when it is missing), and writes
# the unit's .env file from the K3S_* variables; like it, it leaves config.yaml and
# config.yaml.d alone (docs.k3s.io: "The contents of the configuration file are not managed
# by the install script"). Then it does the checks K3s does when it starts, over the files
# K3s reads: config.yaml, then config.yaml.d/*.yaml and *.yml in name order, a later plain
# key replacing an earlier one (k3s-io/k3s pkg/configfilearg/parser.go, readConfigFile):
# the token file exists, and an agent knows its server. The test merges the recorded files
# the same way, `key+:` appends included, and checks the result.
# It downloads the release's hash and binary with curl from GitHub, as the real script's
# download_and_verify does (install.sh: download_hash, then installed_hash_matches, which
# skips the binary when the one installed already has the release's hash, then
# download_binary, verify_binary, setup_binary; `fatal 'Download failed'` when a download
# fails): the curl stand-in serves them, so their calls are recorded and can fail. Finding
# the release of a channel (get_release_version) is not modelled: a channel install takes
# the release `v0.0.0+<channel>`.
# With INSTALL_K3S_SKIP_DOWNLOAD=true it downloads nothing and needs the binary in place, as
# the real script does; INSTALL_K3S_SKIP_ENABLE is accepted (it enables nothing anyway).
# Faults: ctl/k3s-install-fail: N or always (before any download); ctl/k3s-install-late-fail:
# N or always (after the binary is installed, as a failing `systemctl enable` would).
TOOL=k3s-install
# shellcheck source=tests/testsuite/firstboot/lib.sh
. /run/meshboot-fake/lib.sh
crash_point "$@"
set -eu
# When the bootstrap reached the installer (firstboot::overhead reports it).
date +%s%N >"$WORLD/k3s-install.at"

config=/etc/rancher/k3s/config.yaml
env | sort >"$WORLD/k3s-install.env"
if [ -f "$config" ]; then
  cp "$config" "$WORLD/k3s-config.seen"
  stat -c %a "$config" >"$WORLD/k3s-config.mode"
else
  echo missing >"$WORLD/k3s-config.mode"
fi
# The files K3s reads, in its order: config.yaml, then the drop-ins by name.
read_by_k3s=
[ -f "$config" ] && read_by_k3s=$config
: >"$WORLD/k3s-config.d.list"
mkdir -p "$WORLD/k3s-config.d"
if [ -d "$config.d" ]; then
  for entry in "$config.d"/* "$config.d"/.[!.]*; do
    [ -e "$entry" ] || continue
    name=${entry##*/}
    printf '%s %s\n' "$name" "$(stat -c %a "$entry")" >>"$WORLD/k3s-config.d.list"
    case $name in
      *.yaml | *.yml)
        if [ -f "$entry" ]; then
          cp "$entry" "$WORLD/k3s-config.d/$name"
          read_by_k3s="$read_by_k3s $entry"
        fi
        ;;
    esac
  done
fi
if [ -e /etc/meshboot/tailscale-authkey ]; then
  echo present >"$WORLD/k3s-install.authkey"
else
  echo absent >"$WORLD/k3s-install.authkey"
fi

fatal() {
  echo "[ERROR]  $*" >&2
  finish 1
}

if fault k3s-install-fail; then
  fatal "Download failed"
fi

cmd=${INSTALL_K3S_EXEC-}
cmd=${cmd%% *}
if [ -z "$cmd" ]; then
  if [ -n "${K3S_URL-}" ]; then cmd=agent; else cmd=server; fi
fi
case $cmd in
  server) service=k3s ;;
  agent) service=k3s-agent ;;
  *) fatal "unknown k3s command $cmd" ;;
esac

bin_dir=${INSTALL_K3S_BIN_DIR:-/usr/local/bin}
if [ "${INSTALL_K3S_SKIP_DOWNLOAD-}" = true ]; then
  # As the real script: no download; the binary must already be there
  # (download_and_verify -> verify_k3s_is_executable).
  echo "[INFO]  Skipping k3s download and verify"
  [ -x "$bin_dir/k3s" ] || fatal "Executable k3s binary not found at $bin_dir/k3s"
else
  version=${INSTALL_K3S_VERSION:-v0.0.0+${INSTALL_K3S_CHANNEL:-stable}}
  echo "[INFO]  Using $version as release"
  case $(uname -m) in
    x86_64 | amd64) arch=amd64 suffix= ;;
    aarch64 | arm64) arch=arm64 suffix=-arm64 ;;
    *) fatal "Unsupported architecture $(uname -m)" ;;
  esac
  release=https://github.com/k3s-io/k3s/releases/download/$version
  tmp=$(mktemp -d)
  echo "[INFO]  Downloading hash $release/sha256sum-$arch.txt"
  curl -o "$tmp/k3s.hash" -sfL "$release/sha256sum-$arch.txt" || fatal "Download failed"
  expected=$(grep " k3s$suffix\$" "$tmp/k3s.hash")
  expected=${expected%% *}
  if [ -x "$bin_dir/k3s" ] && [ "$(sha256sum "$bin_dir/k3s" | cut -d ' ' -f 1)" = "$expected" ]; then
    echo "[INFO]  Skipping binary downloaded, installed k3s matches hash"
  else
    echo "[INFO]  Downloading binary $release/k3s$suffix"
    curl -o "$tmp/k3s.bin" -sfL "$release/k3s$suffix" || fatal "Download failed"
    got=$(sha256sum "$tmp/k3s.bin" | cut -d ' ' -f 1)
    [ "$got" = "$expected" ] || fatal "Download sha256 does not match $expected, got $got"
    chmod 755 "$tmp/k3s.bin"
    echo "[INFO]  Installing k3s to $bin_dir/k3s"
    # As the real script: it moves the binary into the bin dir without creating it.
    [ -d "$bin_dir" ] || fatal "mv: cannot move '$tmp/k3s.bin' to '$bin_dir/k3s': No such file or directory"
    mv -f "$tmp/k3s.bin" "$bin_dir/k3s"
  fi
  rm -rf "$tmp"
fi
if fault k3s-install-late-fail; then
  fatal "systemd: could not enable $service"
fi
echo "[INFO]  env: Creating environment file /etc/systemd/system/$service.service.env"
env | grep '^K3S_' >"/etc/systemd/system/$service.service.env" || true
chmod 0600 "/etc/systemd/system/$service.service.env"
printf '[Service]\nExecStart=%s/k3s %s\n' "$bin_dir" "$cmd" >"/etc/systemd/system/$service.service"

# What K3s itself checks when the service starts, over every file it reads (the last
# plain `token-file:` wins).
[ -n "$read_by_k3s" ] || fatal "k3s: $config not found"
# shellcheck disable=SC2086 # a list of paths without spaces
token_file=$(sed -n 's/^token-file: *//p' $read_by_k3s | tail -n 1)
# A double-quoted scalar (meshboot quotes every string; paths need no escapes).
token_file=${token_file#\"}
token_file=${token_file%\"}
[ -n "$token_file" ] || fatal "k3s: no token-file in $read_by_k3s"
[ -s "$token_file" ] || fatal "k3s: token file $token_file is missing or empty"
# shellcheck disable=SC2086
if [ "$cmd" = agent ] && [ -z "${K3S_URL-}" ] && ! grep -q '^server: ' $read_by_k3s; then
  fatal "k3s agent: --server is required"
fi
if [ "${INSTALL_K3S_SKIP_START-}" = true ]; then
  finish 0 "$@"
fi
echo "[INFO]  systemd: Starting $service"
finish 0 "$@"
