//! First boot in a sandbox: a node's generated bootstrap runs exactly as the machine would
//! run it, in an isolated root, with stand-ins for the outside world.
//!
//! How: the fixture is compiled with the fake secrets (`support`), and the files its
//! envelope delivers (cloud-init `write_files`, Ignition `storage.files` and units, decoded
//! from the real artifact by `support::delivered_files`) are laid down with their modes in a
//! scratch root. bubblewrap (`bwrap`, Debian package `bubblewrap`) then starts the command
//! the envelope starts (cloud-init's `runcmd`, or the Ignition unit's `ExecStart`) with the
//! host file system read-only, a private /tmp and /run, no network, its own PID, IPC and UTS
//! namespaces, no capabilities and an empty environment. Only the node's own directories are
//! writable (`NODE_DIRS`: /etc/meshboot, /etc/rancher, /etc/systemd/system, /etc/flatcar, /etc/zincati, the apt source
//! and keyring directories, /opt, /var, /usr/local/bin), each a scratch directory; the rest
//! of /etc is a read-only view of the host's. The stand-ins sit in /usr/local/sbin, which
//! the bootstrap's own PATH puts right after /opt/bin: /opt/bin stays the node's, so the
//! Flatcar static install writes its `tailscale` link there as on a real node.
//!
//! The stand-ins are POSIX sh scripts under `tests/testsuite/firstboot/`: `bin/` holds what the image
//! (or cloud-init's `packages:`) provides: `curl`, `apt-get`, `systemctl`, `ufw`, `nft`,
//! `sleep`, and a `chmod` that runs the real one after noting the mode a file had before
//! (so a config.yaml first written world-readable shows); `pool/` holds what the outside world hands out: `tailscale` and `tailscaled`
//! (installed by the apt-get stand-in, or packed into the tarball the curl stand-in serves
//! for pkgs.tailscale.com) and the K3s install script (served for https://get.k3s.io).
//! `tailscale` is on no PATH until the bootstrap installs it. Each stand-in appends its argv
//! and exit code to `calls.log` in the world directory (/run/meshboot-fake in the sandbox);
//! the K3s installer also keeps its environment, the config.yaml it found, and every
//! config.yaml.d entry, with their modes.
//! `sleep` returns at once and is recorded, so a backoff costs no time and is checked.
//! Faults are control files in the world's `ctl/` that the stand-ins read: a count of
//! failures to come or `always` (`tailscale-up-fail`, `peer-absent.HOSTNAME`, `cacerts-refuse`,
//! `k3s-download-fail`, `ufw-fail`, ...), and `crash-on`, a string that makes the matching
//! call kill the bootstrap with SIGKILL (power loss: no trap runs).
//!
//! What this proves: the script as delivered runs under the image's /bin/sh with the file
//! modes it gets, in the order its steps promise (firewall before anything else, Tailscale
//! up, own address, join target and /cacerts, config, K3s); it runs exactly the firewall
//! commands (ufw) or loads a ruleset opening exactly the ports (nftables), passes exactly the
//! `tailscale up` arguments, K3s config (config.yaml as delivered, plus the drop-in the boot
//! adds, merged as K3s merges them) and installer environment that its node's row
//! in `expect::TABLE` writes out, for every node of every fixture; it retries within the
//! documented bounds with the documented backoff, fails loudly naming the step when a bound
//! runs out, converges when re-run after a crash, does nothing on a second run, removes the
//! auth key, and never writes a secret to its log, argv, the installer's environment or the
//! files it leaves. No expectation is read from meshboot's plan: the checks see only the
//! delivered artifact and what the stand-ins recorded. What it does not prove: a real Tailscale login or netmap, a real K3s install,
//! start or join, real package installs, real systemd behaviour (units, ordering at boot,
//! Ignition-enabled units starting before the bootstrap, or anything re-running the script
//! after a crash: the tests re-run it as an operator would), or the real ufw and nft
//! accepting the rules (the `consumers` tests run those); the stand-ins only model what
//! their headers describe.
//!
//! The harness: `world` (addresses, versions and the stand-in scripts), `sandbox` (laying a
//! node down and booting it), `calls` (the call log), `expect` (the table of what each
//! node's first boot must do, one row per fixture and node) and `checks` (comparing the
//! two). The tests: `happy` (one per role and OS, and
//! every node of every fixture), `faults` (injected failures, crashes and re-runs) and
//! `adversarial` (the accepted hostile specs booted with a canary).
//!
//! Run with `cargo test --test testsuite firstboot::`. Needs root (as CI is), `bwrap`, `tar`
//! and `gzip`; a missing tool fails the test naming the Debian package, it never skips.

mod adversarial;
mod baked;
mod calls;
mod checks;
pub(crate) mod expect;
mod faults;
mod happy;
mod overhead;
mod sandbox;
mod world;
