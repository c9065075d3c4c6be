//! A node's later boot under the real systemd: PID 1 of a new PID, mount and network
//! namespace, reading the units the node's artifact delivers plus what the node's packages
//! and installers would have written, with stand-ins for the two daemons.
//!
//! The namespace sees the host's file system, except: /etc is an overlay whose upper layer
//! holds the node's files (/etc/meshboot/firewall.nft, /etc/default/tailscaled, ufw's state),
//! /etc/systemd/system is the test's unit directory, the host's own units
//! (/usr/lib/systemd/system) are hidden, /usr/sbin and /usr/lib/ufw are overlays (the
//! stand-ins for tailscaled and modprobe sit in /usr/sbin's upper layer), the host's
//! generators and /etc/init.d are hidden (the SysV generator would otherwise start the host's
//! init scripts in here), systemd reads units from /etc/systemd/system only, /opt and
//! /usr/local/bin are scratch directories, /run, /var/lib and /var/cache are empty tmpfs,
//! and /dev/console is a file the test reads (systemd's log). The stand-ins write their
//! events to /run/meshboot-test/events, a scratch file. Each machine boots in a cgroup of its
//! own below the test's (machines booted side by side must not share systemd's cgroup
//! root), removed with it. The PID 1 is killed when the machine is dropped, panics included.

use crate::support::require;
use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The longest any awaited state may take. A boot takes seconds; the bound is generous
/// because the whole test suite shares two cores (it only matters when something hangs).
pub const WAIT: Duration = Duration::from_secs(180);

pub const TAILSCALED_STAND_IN: &str = include_str!("tailscaled.py");
pub const K3S_STAND_IN: &str = include_str!("k3s.py");
pub const MODPROBE_STAND_IN: &str = include_str!("modprobe");

/// The targets a unit with default dependencies needs, and the ones the node's units name.
/// The host's units are hidden, so these stand in for them, empty.
const TARGETS: &[&str] = &[
    "sysinit.target",
    "basic.target",
    "shutdown.target",
    "local-fs.target",
    "sockets.target",
    "timers.target",
    "paths.target",
    "network-pre.target",
    "network.target",
    "network-online.target",
    "multi-user.target",
];

/// Where a file goes: the node's path, mapped onto the scratch layout.
pub struct Layout {
    pub dir: tempfile::TempDir,
}

impl Layout {
    pub fn new() -> Layout {
        let dir = tempfile::tempdir().expect("scratch dir");
        let l = Layout { dir };
        for d in [
            "units/multi-user.target.wants",
            "etc/up",
            "etc/work",
            "sbin/up",
            "sbin/work",
            "ufw/up",
            "ufw/work",
            "opt",
            "usr-local-bin",
            "world",
        ] {
            fs::create_dir_all(l.path(d)).expect("layout dir");
        }
        fs::write(l.path("console"), "").expect("console");
        fs::write(l.path("world/events"), "").expect("events");
        for target in TARGETS {
            l.unit(
                target,
                &format!("[Unit]\nDescription={target} (test stand-in)\n"),
            );
        }
        l.file("/usr/sbin/modprobe", MODPROBE_STAND_IN, 0o755);
        l
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Where `node_path` lives in the scratch layout.
    fn host(&self, node_path: &str) -> PathBuf {
        let p = node_path.trim_start_matches('/');
        let (base, rest) = if let Some(rest) = p.strip_prefix("etc/systemd/system/") {
            ("units", rest)
        } else if let Some(rest) = p.strip_prefix("etc/") {
            ("etc/up", rest)
        } else if let Some(rest) = p.strip_prefix("usr/sbin/") {
            ("sbin/up", rest)
        } else if let Some(rest) = p.strip_prefix("usr/local/bin/") {
            ("usr-local-bin", rest)
        } else if let Some(rest) = p.strip_prefix("opt/") {
            ("opt", rest)
        } else {
            panic!("{node_path} is outside what the test machine lays out");
        };
        self.path(base).join(rest)
    }

    /// Writes a file at its path on the node.
    pub fn file(&self, node_path: &str, contents: &str, mode: u32) {
        let p = self.host(node_path);
        fs::create_dir_all(p.parent().expect("parent")).expect("parent dir");
        fs::write(&p, contents).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Appends to a file at its path on the node.
    pub fn append(&self, node_path: &str, text: &str) {
        let p = self.host(node_path);
        let mut contents = fs::read_to_string(&p).expect("file to append to");
        contents.push_str(text);
        fs::write(&p, contents).expect("append");
    }

    /// Writes a unit into /etc/systemd/system.
    pub fn unit(&self, name: &str, contents: &str) {
        self.file(&format!("/etc/systemd/system/{name}"), contents, 0o644);
    }

    /// Enables `unit` as `systemctl enable` does for `WantedBy=multi-user.target`.
    pub fn enable(&self, unit: &str) {
        symlink(
            format!("/etc/systemd/system/{unit}"),
            self.path("units/multi-user.target.wants").join(unit),
        )
        .expect("enable");
    }

    /// Seconds between tailscaled reporting ready and its address appearing.
    pub fn address_delay(&self, seconds: f64) {
        fs::write(self.path("world/address-delay"), seconds.to_string()).expect("delay");
    }

    /// Boots PID 1 over this layout, after `prelude` (shell, run in the new namespaces with
    /// the layout mounted: e.g. the node's ufw commands), and waits until the boot is over.
    pub fn boot(self, prelude: &str) -> Machine {
        require("unshare", "util-linux");
        require("nsenter", "util-linux");
        require("python3", "python3");
        require("ip", "iproute2");
        let systemd = require("/lib/systemd/systemd", "systemd");
        let d = self.dir.path().display().to_string();
        let cgroup = cgroup_name(&self);
        let script = format!(
            r#"set -e
# A cgroup of this machine's own, below the test's, in every hierarchy systemd uses
# (cgroup v1's name=systemd and v2's, hybrid or unified): systemd as PID 1 takes the cgroup
# it starts in as its root. Without it, machines booted side by side shared one root and
# each other's unit cgroups (system.slice/meshboot-firewall.service), and one's cleanup
# broke the other's next process start (exit 219/CGROUP) now and then.
while IFS=: read -r _ ctl path; do
  case $ctl in
    name=systemd) base=/sys/fs/cgroup/systemd ;;
    '') if [ -d /sys/fs/cgroup/unified ]; then base=/sys/fs/cgroup/unified; else base=/sys/fs/cgroup; fi ;;
    *) continue ;;
  esac
  [ -f "$base$path/cgroup.procs" ] || continue
  path=${{path%/}}
  mkdir -p "$base$path/{cgroup}" 2>/dev/null && echo $$ >"$base$path/{cgroup}/cgroup.procs" 2>/dev/null || true
done </proc/self/cgroup
mount -t tmpfs tmpfs /run
mkdir /run/meshboot-test
mount --bind {d}/world /run/meshboot-test
mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc/up,workdir={d}/etc/work /etc
mount --bind {d}/units /etc/systemd/system
mount -t tmpfs tmpfs /usr/lib/systemd/system
# No host unit may start here: the generators (the SysV one turns /etc/init.d scripts into
# units) and any other unit directory are hidden too.
for hide in /usr/lib/systemd/system-generators /usr/local/lib/systemd/system-generators \
  /etc/systemd/system-generators /usr/local/lib/systemd/system /etc/init.d; do
  if [ -d "$hide" ]; then mount -t tmpfs tmpfs "$hide"; fi
done
mount -t overlay overlay -o lowerdir=/usr/sbin,upperdir={d}/sbin/up,workdir={d}/sbin/work /usr/sbin
mount -t overlay overlay -o lowerdir=/usr/lib/ufw,upperdir={d}/ufw/up,workdir={d}/ufw/work /usr/lib/ufw
mount --bind {d}/opt /opt
mount --bind {d}/usr-local-bin /usr/local/bin
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /var/cache
mount --bind {d}/console /dev/console
ip link set lo up
{prelude}
SYSTEMD_UNIT_PATH=/etc/systemd/system exec {systemd} --system --unit=multi-user.target --log-target=console --log-level=info --show-status=no </dev/null >/dev/console 2>&1
"#
        );
        let mut unshare = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount",
                "--mount-proc",
                "--net",
                "--propagation",
                "private",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare runs");
        // PID 1 of the namespace is unshare's only child, once it has exec'd systemd.
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let started = Instant::now();
        let pid1 = loop {
            let child: Option<i32> = fs::read_to_string(&children)
                .ok()
                .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()));
            if let Some(pid) = child
                && fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "systemd")
            {
                break pid;
            }
            if let Ok(Some(status)) = unshare.try_wait() {
                let out = unshare.wait_with_output().expect("output");
                panic!(
                    "the namespace did not boot ({status}):\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(started.elapsed() < WAIT, "systemd never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        let m = Machine {
            layout: self,
            unshare,
            pid1,
        };
        // Until the boot's jobs are done: "running", or "degraded" when a unit failed
        // (nothing, or "offline", until PID 1 listens on its socket).
        let mut state = String::new();
        m.wait_for("systemd to finish booting", |m| {
            let o = m.nsenter(&["timeout", "180", "systemctl", "is-system-running", "--wait"]);
            state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            !state.is_empty() && state != "offline"
        });
        assert!(
            state == "running" || state == "degraded",
            "the boot did not finish: {state:?}\n{}",
            m.report()
        );
        m
    }
}

/// A booted machine.
pub struct Machine {
    layout: Layout,
    unshare: Child,
    /// The host's PID of the namespace's PID 1.
    pid1: i32,
}

impl Machine {
    /// Runs a command inside the machine's namespaces.
    pub fn nsenter(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-m", "-p", "-n", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter runs")
    }

    pub fn systemctl(&self, args: &[&str]) -> Output {
        let mut argv = vec!["systemctl"];
        argv.extend_from_slice(args);
        self.nsenter(&argv)
    }

    /// `ActiveState/SubState` of `unit`, e.g. `active/running`, `failed/failed`.
    pub fn state(&self, unit: &str) -> String {
        let o = self.systemctl(&["show", "-p", "ActiveState,SubState", "--value", unit]);
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The stand-ins' events, in the order they happened.
    pub fn events(&self) -> Vec<String> {
        fs::read_to_string(self.layout.path("world/events"))
            .expect("events")
            .lines()
            .map(String::from)
            .collect()
    }

    /// How many times an event starting with `prefix` happened.
    pub fn count(&self, prefix: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }

    /// The machine's network interfaces.
    pub fn links(&self) -> Vec<String> {
        let o = self.nsenter(&["ip", "-o", "link"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits until `cond` holds (at most [`WAIT`]); `what` names it when it never does.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut(&Machine) -> bool) {
        let started = Instant::now();
        while !cond(self) {
            assert!(
                started.elapsed() < WAIT,
                "never happened: {what}\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything worth seeing when an assertion fails.
    pub fn report(&self) -> String {
        let status = self.systemctl(&["--no-pager", "--all", "list-units"]);
        let processes = self.nsenter(&["ps", "-eo", "pid,ppid,stat,etimes,args"]);
        let console = fs::read_to_string(self.layout.path("console")).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(80).collect();
        format!(
            "--- events:\n{}\n--- units:\n{}--- processes:\n{}--- systemd's log (last lines):\n{}\n",
            self.events().join("\n"),
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&processes.stdout),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// The main PID of `unit`, inside the namespace.
    pub fn main_pid(&self, unit: &str) -> String {
        let o = self.systemctl(&["show", "-p", "MainPID", "--value", unit]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        // Killing PID 1 ends every process of the namespace.
        let _ = Command::new("kill")
            .args(["-KILL", &self.pid1.to_string()])
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
        // The machine's cgroups, emptied by the kill (best effort: a leftover is an empty
        // directory).
        let name = cgroup_name(&self.layout);
        if let Ok(own) = fs::read_to_string("/proc/self/cgroup") {
            for line in own.lines() {
                let mut parts = line.splitn(3, ':');
                let (_, ctl, path) = (parts.next(), parts.next(), parts.next());
                let base = match ctl {
                    Some("name=systemd") => "/sys/fs/cgroup/systemd",
                    Some("") if std::path::Path::new("/sys/fs/cgroup/unified").is_dir() => {
                        "/sys/fs/cgroup/unified"
                    }
                    Some("") => "/sys/fs/cgroup",
                    _ => continue,
                };
                let dir = format!("{base}{}/{name}", path.unwrap_or("").trim_end_matches('/'));
                // The namespace's processes die a moment after its PID 1: try for a second.
                for _ in 0..20 {
                    let _ = Command::new("find")
                        .args([&dir, "-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
                        .stderr(Stdio::null())
                        .status();
                    if !std::path::Path::new(&dir).exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

/// The name of the machine's own cgroup (its scratch directory's, which is unique).
fn cgroup_name(layout: &Layout) -> String {
    let dir = layout
        .dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    format!("meshboot-machine-{}", dir.unwrap_or_default())
}
