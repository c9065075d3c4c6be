//! The sandbox: a node's scratch root laid down from its real artifact, the stand-ins
//! installed, and its boot command run under bubblewrap.

use super::calls::{Call, parse_calls, show};
use super::world::*;
use crate::support::{compile, delivered_files, fixtures_dir, require};
use meshboot::Options;
use meshboot::plan::{self, Envelope};
use meshboot::render::Artifact;
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The node's writable directories, each a scratch directory under `root/`.
pub const NODE_DIRS: &[&str] = &[
    "/etc/meshboot",
    "/etc/rancher",
    "/etc/systemd/system",
    "/etc/systemd/network",
    "/etc/apt/sources.list.d",
    "/etc/flatcar",
    "/etc/zincati",
    "/usr/share/keyrings",
    "/opt",
    "/var",
    "/usr/local/bin",
];
/// A run that takes longer than this is hung (a normal one takes well under a second).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The sandbox tools, checked once per sandbox; also refuses a host whose Tailscale the
/// sandbox could not hide (the bootstrap would find it and skip the install).
pub fn sandbox_tools() -> PathBuf {
    require("tar", "tar");
    require("gzip", "gzip");
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join("tailscale");
        assert!(
            !p.exists(),
            "the host has {}: the sandbox shows the host's /usr read-only and cannot hide it; run these tests on a machine without Tailscale",
            p.display()
        );
    }
    PathBuf::from(require("bwrap", "bubblewrap"))
}

/// A node as its envelope delivers it. Only the artifact, what a real machine receives:
/// never the plan, so that no check can take its expectation from what is under test.
pub struct Node {
    pub name: String,
    pub artifact: Artifact,
    /// The server's name, which the sandbox's hostname and metadata service hand out: the
    /// node's name, or for a pool a random `<pool>-<hex>`, as the autoscaler names its
    /// servers (`fmt.Sprintf("%s-%x", n.id, rand.Int63())`, kubernetes/autoscaler
    /// cluster-autoscaler/cloudprovider/hetzner/hetzner_node_group.go).
    pub server: String,
    /// The server's ID, which the metadata stand-in hands out.
    pub server_id: String,
}

impl Node {
    /// The same node booted on a server called `server`.
    pub fn on_server(self, server: &str) -> Node {
        Node {
            server: server.to_string(),
            ..self
        }
    }

    /// The same node booted on a server whose metadata service says its ID is `id`.
    pub fn with_server_id(self, id: &str) -> Node {
        Node {
            server_id: id.to_string(),
            ..self
        }
    }
}

/// A random server name for pool `pool`: `<pool>-` and the hex of a random 63-bit number.
pub fn random_server_name(pool: &str) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{pool}-{:x}", h.finish() >> 1)
}

/// Compiles `fixture` (relative to `fixtures/`) with the fake secrets and picks node `name`.
/// A pool (a row of the expectation table with `pool`) boots on a randomly named server.
pub fn node(fixture: &str, name: &str) -> Node {
    let artifact = artifacts_of(fixture)
        .into_iter()
        .find(|a| a.node == name)
        .unwrap_or_else(|| panic!("{fixture} renders no node {name}"));
    let pool = super::expect::TABLE
        .iter()
        .any(|r| r.fixture == fixture && r.node == name && r.pool.is_some());
    Node {
        name: name.to_string(),
        artifact,
        server: if pool {
            random_server_name(name)
        } else {
            name.to_string()
        },
        server_id: SERVER_ID.to_string(),
    }
}

/// Every artifact `fixture` renders, in node order.
pub fn artifacts_of(fixture: &str) -> Vec<Artifact> {
    compile(&fixtures_dir().join(fixture), &Options::default()).1
}

/// [`node`], rendered with `--compress`.
pub fn compressed_node(fixture: &str, name: &str) -> Node {
    let opts = Options {
        compress: true,
        ..Options::default()
    };
    let artifact = compile(&fixtures_dir().join(fixture), &opts)
        .1
        .into_iter()
        .find(|a| a.node == name)
        .unwrap_or_else(|| panic!("{fixture} renders no node {name}"));
    Node {
        artifact,
        ..node(fixture, name)
    }
}

/// The command the envelope starts on first boot: the `ExecStart` of the bootstrap unit
/// both envelopes deliver, after checking that the envelope enables it (cloud-init from
/// `runcmd`, Ignition through `enabled: true`).
pub fn boot_command(a: &Artifact) -> Vec<String> {
    match a.envelope {
        Envelope::CloudInit => {
            let doc: serde_yaml::Value = serde_yaml::from_str(&a.contents).expect("cloud-config");
            let runcmd: Vec<Vec<String>> = doc["runcmd"]
                .as_sequence()
                .expect("runcmd")
                .iter()
                .map(|c| {
                    c.as_sequence()
                        .expect("runcmd entries are argv lists")
                        .iter()
                        .map(|v| v.as_str().expect("runcmd word").to_string())
                        .collect()
                })
                .collect();
            assert_eq!(
                runcmd.last().map(|c| c.join(" ")),
                Some(format!("systemctl enable --now {}", plan::BOOTSTRAP_UNIT)),
                "{}: runcmd does not start the bootstrap unit",
                a.file_name
            );
        }
        Envelope::Ignition => {
            let doc: serde_json::Value = serde_json::from_str(&a.contents).expect("ignition");
            let unit = doc["systemd"]["units"]
                .as_array()
                .expect("units")
                .iter()
                .find(|u| u["name"] == plan::BOOTSTRAP_UNIT)
                .unwrap_or_else(|| panic!("{}: no {}", a.file_name, plan::BOOTSTRAP_UNIT));
            assert_eq!(
                unit["enabled"], true,
                "{}: bootstrap unit enabled",
                a.file_name
            );
        }
    }
    let unit_path = format!("{}/{}", plan::UNIT_DIR, plan::BOOTSTRAP_UNIT);
    let (_, _, contents) = delivered_files(a)
        .into_iter()
        .find(|(p, _, _)| *p == unit_path)
        .unwrap_or_else(|| panic!("{}: {unit_path} is not delivered", a.file_name));
    let exec = contents
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    exec.split_whitespace().map(str::to_string).collect()
}

/// A node's scratch root, the stand-ins' world, and the runs of its bootstrap.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub node: Node,
    pub bwrap: PathBuf,
    /// Number of recorded calls when the last run started.
    pub run_start: usize,
    pub runs: usize,
    pub last_output: String,
    /// The bootstrap's working directory: `/`, as under systemd, unless a test needs a
    /// writable one.
    pub cwd: &'static str,
    /// Note the time (`date +%s%N`, in the world's `started`) right before the boot command
    /// runs, for [`Sandbox::overhead`].
    pub timed: bool,
}

/// Whether a machine of the tailnet is connected to the control plane (`PeerStatus.Online`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Online {
    Yes,
    No,
}

/// How a run of the bootstrap ended.
pub struct Run {
    pub code: Option<i32>,
}

impl Run {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

pub fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Sandbox {
    /// A fresh machine for `node`: its delivered files laid down, the stand-ins installed,
    /// an empty netmap and no faults.
    pub fn new(node: Node) -> Sandbox {
        let bwrap = sandbox_tools();
        let dir = tempfile::tempdir().expect("scratch dir");
        let sb = Sandbox {
            dir,
            node,
            bwrap,
            run_start: 0,
            runs: 0,
            last_output: String::new(),
            cwd: "/",
            timed: false,
        };
        for d in NODE_DIRS {
            fs::create_dir_all(sb.host(d)).expect("node dir");
        }
        // What every image has under /var.
        for d in ["/var/log", "/var/lib", "/var/tmp"] {
            fs::create_dir_all(sb.host(d)).expect("var dir");
        }
        for (name, text) in TOOL_STAND_INS {
            write_file(&sb.stubs().join(name), text, 0o755);
        }
        for (name, text) in PYTHON_UFW_STAND_IN {
            write_file(&sb.dir.path().join("python-ufw").join(name), text, 0o644);
        }
        for (name, text) in POOL {
            write_file(&sb.world("pool").join(name), text, 0o755);
        }
        write_file(&sb.world("lib.sh"), LIB_SH, 0o644);
        write_file(&sb.world("own-ip"), &format!("{OWN_IP}\n"), 0o644);
        write_file(&sb.world("own-ip6"), &format!("{OWN_IP6}\n"), 0o644);
        write_file(&sb.world("netmap"), "", 0o644);
        write_file(
            &sb.world("metadata-hostname"),
            &format!("{}\n", sb.node.server),
            0o644,
        );
        write_file(&sb.world("metadata-instance-id"), &sb.node.server_id, 0o644);
        write_file(&sb.world("calls.log"), "", 0o644);
        let packages: String = IMAGE_PACKAGES.iter().map(|p| format!("{p}\n")).collect();
        write_file(&sb.world("dpkg-status"), &packages, 0o644);
        fs::create_dir_all(sb.world("ctl")).expect("ctl");
        fs::create_dir_all(sb.world("state")).expect("state");
        for (path, mode, contents) in delivered_files(&sb.node.artifact) {
            write_file(&sb.host(&path), &contents, mode);
        }
        sb
    }

    /// The name the node runs under: its server's.
    pub fn server(&self) -> &str {
        &self.node.server
    }

    /// The scratch copy of a path on the node (which must be in one of `NODE_DIRS`).
    pub fn host(&self, node_path: &str) -> PathBuf {
        assert!(
            NODE_DIRS
                .iter()
                .any(|d| node_path == *d || node_path.starts_with(&format!("{d}/"))),
            "{node_path} is outside the node directories the sandbox makes writable (NODE_DIRS)"
        );
        self.dir
            .path()
            .join("root")
            .join(node_path.trim_start_matches('/'))
    }

    pub fn stubs(&self) -> PathBuf {
        self.dir.path().join("stubs")
    }

    pub fn world(&self, name: &str) -> PathBuf {
        self.dir.path().join("world").join(name)
    }

    pub fn read_world(&self, name: &str) -> String {
        fs::read_to_string(self.world(name))
            .unwrap_or_else(|e| panic!("reading {name} of the stand-ins: {e}\n{}", self.report()))
    }

    /// Puts `name` on the mesh at `ip`, online, under its own MagicDNS name.
    pub fn peer(&self, name: &str, ip: &str) {
        self.machine(name, ip, Online::Yes, name);
    }

    /// Puts a machine that registered with hostname `name` on the mesh at `ip`, with
    /// `dns_label` as the first label of its MagicDNS name (`NAME-1` for a machine that
    /// joined while a stale one held `NAME`).
    pub fn machine(&self, name: &str, ip: &str, online: Online, dns_label: &str) {
        let state = match online {
            Online::Yes => "online",
            Online::No => "offline",
        };
        let mut netmap = self.read_world("netmap");
        netmap.push_str(&format!("{name} {ip} {state} {dns_label}\n"));
        fs::write(self.world("netmap"), netmap).expect("netmap");
    }

    /// The tailnet calls this node `label` (e.g. `cp-1-1` when a stale machine holds its
    /// name), instead of by its hostname.
    pub fn own_dns_label(&self, label: &str) {
        fs::write(self.world("own-dns-label"), format!("{label}\n")).expect("own-dns-label");
    }

    /// The image lacks the Debian package `package`: dpkg-query does not list it, and its
    /// tool's stand-in runs only once apt-get installed it.
    pub fn without_package(&self, package: &str) {
        let status = self.read_world("dpkg-status");
        assert!(
            status.lines().any(|l| l == package),
            "{package} is not in the image"
        );
        let kept: String = status
            .lines()
            .filter(|l| *l != package)
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(self.world("dpkg-status"), kept).expect("dpkg-status");
    }

    /// Sets fault `name` to `value` (a count of failures to come, `always`, or for
    /// `crash-on` the string that triggers the crash).
    pub fn fault(&self, name: &str, value: impl fmt::Display) {
        fs::write(self.world("ctl").join(name), format!("{value}\n")).expect("fault");
    }

    pub fn clear_fault(&self, name: &str) {
        fs::remove_file(self.world("ctl").join(name)).expect("clear fault");
    }

    pub fn calls(&self) -> Vec<Call> {
        parse_calls(&self.read_world("calls.log"))
    }

    /// The calls recorded during the last run.
    pub fn calls_of_last_run(&self) -> Vec<Call> {
        self.calls().split_off(self.run_start)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.host(plan::LOG_PATH)).unwrap_or_default()
    }

    pub fn mode(&self, node_path: &str) -> u32 {
        let meta = fs::symlink_metadata(self.host(node_path))
            .unwrap_or_else(|e| panic!("{node_path} on {}: {e}\n{}", self.server(), self.report()));
        meta.permissions().mode() & 0o7777
    }

    pub fn exists(&self, node_path: &str) -> bool {
        fs::symlink_metadata(self.host(node_path)).is_ok()
    }

    /// The bootstrap's own time from its start to the K3s installer's call, with every
    /// stand-in answering at once: from the time noted before the boot command (a `timed`
    /// run) to the one the installer stand-in notes when it starts.
    pub fn overhead(&self) -> std::time::Duration {
        let ns = |name: &str| -> u64 {
            self.read_world(name)
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        std::time::Duration::from_nanos(ns("k3s-install.at") - ns("started"))
    }

    /// Everything worth seeing when an assertion fails.
    pub fn report(&self) -> String {
        format!(
            "--- node {} on server {} ({}), run {}\n--- recorded calls:\n{}--- {}:\n{}--- output of the last run:\n{}",
            self.node.name,
            self.server(),
            self.node.artifact.file_name,
            self.runs,
            show(&parse_calls(
                &fs::read_to_string(self.world("calls.log")).unwrap_or_default()
            )),
            plan::LOG_PATH,
            self.log(),
            self.last_output
        )
    }

    /// Host directories that must become a tmpfs holding read-only views of their entries,
    /// because the host lacks a mount point the sandbox needs under them (e.g. /etc/meshboot).
    pub fn shadowed_dirs() -> Vec<PathBuf> {
        let mut shadowed = BTreeSet::new();
        for target in NODE_DIRS.iter().chain([&STUB_DIR, &python_ufw_dir()]) {
            let mut p = Path::new(target);
            while !p.is_dir() {
                let parent = p.parent().expect("below /");
                shadowed.insert(parent.to_path_buf());
                p = parent;
            }
        }
        let mut v: Vec<PathBuf> = shadowed.into_iter().collect();
        v.sort_by_key(|p| p.components().count());
        v
    }

    pub fn bwrap_command(&self) -> Command {
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
        // /tmp is a scratch directory (not a tmpfs) so a test can see what was left there.
        fs::create_dir_all(self.dir.path().join("tmp")).expect("tmp");
        cmd.arg("--bind")
            .arg(self.dir.path().join("tmp"))
            .arg("/tmp");
        cmd.args(["--tmpfs", "/run"]);
        let shadowed = Self::shadowed_dirs();
        let targets: BTreeSet<PathBuf> = NODE_DIRS
            .iter()
            .chain([&STUB_DIR, &python_ufw_dir()])
            .map(PathBuf::from)
            .chain(shadowed.iter().cloned())
            .collect();
        for dir in &shadowed {
            cmd.arg("--tmpfs").arg(dir);
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if targets.contains(&path) {
                    continue;
                }
                match fs::read_link(&path) {
                    Ok(target) => cmd.arg("--symlink").arg(target).arg(&path),
                    Err(_) => cmd.arg("--ro-bind").arg(&path).arg(&path),
                };
            }
        }
        for d in NODE_DIRS {
            cmd.arg("--bind").arg(self.host(d)).arg(d);
        }
        cmd.arg("--ro-bind").arg(self.stubs()).arg(STUB_DIR);
        cmd.arg("--ro-bind")
            .arg(self.dir.path().join("python-ufw"))
            .arg(python_ufw_dir());
        cmd.arg("--bind")
            .arg(self.dir.path().join("world"))
            .arg(WORLD);
        for dir in shadowed.iter().rev() {
            cmd.arg("--remount-ro").arg(dir);
        }
        cmd.args([
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
        ]);
        cmd.args(["--hostname", self.server()]);
        cmd.args(["--cap-drop", "ALL", "--die-with-parent", "--new-session"]);
        cmd.args([
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/sbin:/usr/bin:/sbin:/bin",
        ]);
        cmd.args(["--setenv", "HOME", "/root", "--setenv", "LANG", "C.UTF-8"]);
        cmd.args(["--chdir", self.cwd, "--"]);
        if self.timed {
            // The boot command itself, exec'd right after the time is noted.
            cmd.args([
                "/bin/sh",
                "-c",
                "date +%s%N >/run/meshboot-fake/started && exec \"$@\"",
                "sh",
            ]);
        }
        cmd.args(boot_command(&self.node.artifact));
        cmd
    }

    /// Boots the node: runs its bootstrap once, as its envelope would.
    pub fn run(&mut self) -> Run {
        self.run_start = self.calls().len();
        self.runs += 1;
        let out_path = self.dir.path().join(format!("run-{}.out", self.runs));
        let out = fs::File::create(&out_path).expect("output file");
        let mut cmd = self.bwrap_command();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bwrap.display()));
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                self.last_output = fs::read_to_string(&out_path).unwrap_or_default();
                panic!("the bootstrap hung for {RUN_TIMEOUT:?}\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let run = Run {
            code: status.code(),
        };
        self.last_output = fs::read_to_string(&out_path).unwrap_or_default();
        assert!(
            !self.last_output.starts_with("bwrap:"),
            "the sandbox could not be built:\n{}",
            self.last_output
        );
        if let Ok(unexpected) = fs::read_to_string(self.world("unexpected")) {
            panic!(
                "a stand-in got a call it does not model:\n{unexpected}\n{}",
                self.report()
            );
        }
        run
    }
}

// ---------------------------------------------------------------------------------------
// The harness itself

#[test]
fn a_missing_tool_fails_naming_its_debian_package() {
    let err = std::panic::catch_unwind(|| require("meshboot-no-such-tool", "no-such-package"))
        .expect_err("a missing tool must fail the test");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("install the Debian package `no-such-package`"),
        "{msg}"
    );
}

#[test]
fn the_sandbox_keeps_the_host_read_only() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    // A bootstrap that writes outside the node's directories fails instead of writing.
    let script = sb.host(plan::BOOTSTRAP_PATH);
    fs::write(
        &script,
        "#!/bin/sh\nset -e\ntouch /etc/meshboot-escape /usr/meshboot-escape 2>&1 && exit 0\nexit 3\n",
    )
    .expect("script");
    let run = sb.run();
    assert_eq!(run.code, Some(3), "{}", sb.last_output);
    assert!(
        sb.last_output.contains("Read-only file system"),
        "{}",
        sb.last_output
    );
    assert!(!Path::new("/etc/meshboot-escape").exists());
}
