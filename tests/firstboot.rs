//! First boot in a sandbox: a node's generated bootstrap runs exactly as the machine would
//! run it, in an isolated root, with stand-ins for the outside world.
//!
//! How: the fixture is compiled with the fake secrets (`tests/common`), and the files its
//! envelope delivers (cloud-init `write_files`, Ignition `storage.files` and units, decoded
//! from the real artifact by `common::delivered_files`) are laid down with their modes in a
//! scratch root. bubblewrap (`bwrap`, Debian package `bubblewrap`) then starts the command
//! the envelope starts (cloud-init's `runcmd`, or the Ignition unit's `ExecStart`) with the
//! host file system read-only, a private /tmp and /run, no network, its own PID, IPC and UTS
//! namespaces, no capabilities and an empty environment. Only the node's own directories are
//! writable (`NODE_DIRS`: /etc/meshboot, /etc/rancher, /etc/systemd/system, the apt source
//! and keyring directories, /opt, /var, /usr/local/bin), each a scratch directory; the rest
//! of /etc is a read-only view of the host's. The stand-ins sit in /usr/local/sbin, which
//! the bootstrap's own PATH puts right after /opt/bin: /opt/bin stays the node's, so the
//! Flatcar static install writes its `tailscale` link there as on a real node.
//!
//! The stand-ins are POSIX sh scripts under `tests/firstboot/`: `bin/` holds what the image
//! (or cloud-init's `packages:`) provides: `curl`, `apt-get`, `systemctl`, `ufw`, `nft`,
//! `sleep`, and a `chmod` that runs the real one after noting the mode a file had before
//! (so a config.yaml first written world-readable shows); `pool/` holds what the outside world hands out: `tailscale` and `tailscaled`
//! (installed by the apt-get stand-in, or packed into the tarball the curl stand-in serves
//! for pkgs.tailscale.com) and the K3s install script (served for https://get.k3s.io).
//! `tailscale` is on no PATH until the bootstrap installs it. Each stand-in appends its argv
//! and exit code to `calls.log` in the world directory (/run/meshboot-fake in the sandbox);
//! the K3s installer also keeps its environment, the config.yaml it found and its mode.
//! `sleep` returns at once and is recorded, so a backoff costs no time and is checked.
//! Faults are control files in the world's `ctl/` that the stand-ins read: a count of
//! failures to come or `always` (`tailscale-up-fail`, `peer-absent.NAME`, `cacerts-refuse`,
//! `k3s-download-fail`, `ufw-fail`, ...), and `crash-on`, a string that makes the matching
//! call kill the bootstrap with SIGKILL (power loss: no trap runs).
//!
//! What this proves: the script as delivered runs under the image's /bin/sh with the file
//! modes it gets, in the order its steps promise (firewall before anything else, Tailscale
//! up, own address, join target and /cacerts, config, K3s); it passes the right flags,
//! config.yaml values and installer environment for each role and OS; it retries within the
//! plan's bounds with the planned backoff, fails loudly naming the step when a bound runs
//! out, converges when re-run after a crash, does nothing on a second run, removes the auth
//! key, and never writes a secret to its log, argv, the installer's environment or the files
//! it leaves. What it does not prove: a real Tailscale login or netmap, a real K3s install,
//! start or join, real package installs, real systemd behaviour (units, ordering at boot,
//! Ignition-enabled units starting before the bootstrap, or anything re-running the script
//! after a crash: the tests re-run it as an operator would), or the real ufw and nft
//! accepting the rules (tests/consumers.rs runs those); the stand-ins only model what their
//! headers describe.
//!
//! Run with `cargo test --test firstboot`. Needs root (as CI is), `bwrap`, `tar` and `gzip`;
//! a missing tool fails the test naming the Debian package, it never skips.

mod common;

use common::{all_fake_secret_values, compile, delivered_files, fixtures_dir, require};
use meshboot::Options;
use meshboot::firewall::ufw_commands;
use meshboot::plan::{self, Envelope, Join, NodePlan, TailscaleInstall};
use meshboot::render::Artifact;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The stand-ins' world inside the sandbox: calls log, control files, state, served files.
const WORLD: &str = "/run/meshboot-fake";
/// Where the tool stand-ins are mounted: on the bootstrap's PATH right after /opt/bin.
const STUB_DIR: &str = "/usr/local/sbin";
/// The node's writable directories, each a scratch directory under `root/`.
const NODE_DIRS: &[&str] = &[
    "/etc/meshboot",
    "/etc/rancher",
    "/etc/systemd/system",
    "/etc/apt/sources.list.d",
    "/usr/share/keyrings",
    "/opt",
    "/var",
    "/usr/local/bin",
];
/// A run that takes longer than this is hung (a normal one takes well under a second).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The node's own Tailscale addresses, and the servers' in the netmap.
const OWN_IP: &str = "100.64.0.50";
const OWN_IP6: &str = "fd7a:115c:a1e0::50";
const INIT_IP: &str = "100.64.0.1";
const SECOND_SERVER_IP: &str = "100.64.0.2";
/// The version the curl stand-in's pkgs.tailscale.com index calls the latest.
const LATEST_TAILSCALE: &str = "1.90.8";

const LIB_SH: &str = include_str!("firstboot/lib.sh");
const TOOL_STAND_INS: &[(&str, &str)] = &[
    ("apt-get", include_str!("firstboot/bin/apt-get")),
    ("chmod", include_str!("firstboot/bin/chmod")),
    ("curl", include_str!("firstboot/bin/curl")),
    ("nft", include_str!("firstboot/bin/nft")),
    ("sleep", include_str!("firstboot/bin/sleep")),
    ("systemctl", include_str!("firstboot/bin/systemctl")),
    ("ufw", include_str!("firstboot/bin/ufw")),
];
const POOL: &[(&str, &str)] = &[
    ("tailscale", include_str!("firstboot/pool/tailscale")),
    ("tailscaled", include_str!("firstboot/pool/tailscaled")),
    ("k3s-install.sh", K3S_INSTALLER),
];
const K3S_INSTALLER: &str = include_str!("firstboot/pool/k3s-install.sh");

// ---------------------------------------------------------------------------------------
// Tools

/// The sandbox tools, checked once per sandbox; also refuses a host whose Tailscale the
/// sandbox could not hide (the bootstrap would find it and skip the install).
fn sandbox_tools() -> PathBuf {
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

// ---------------------------------------------------------------------------------------
// Nodes

struct Node {
    plan: NodePlan,
    artifact: Artifact,
}

/// Compiles `fixture` with the fake secrets and picks node `name`.
fn node(fixture: &str, name: &str) -> Node {
    let (checked, artifacts) = compile(&fixtures_dir().join(fixture), &Options::default());
    let plan = checked
        .plan
        .nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("{fixture} has no node {name}"))
        .clone();
    let artifact = artifacts
        .into_iter()
        .find(|a| a.node == name)
        .expect("every node has an artifact");
    Node { plan, artifact }
}

/// Every node of every valid fixture.
fn all_nodes() -> Vec<Node> {
    let mut out = Vec::new();
    for fixture in common::good_fixtures() {
        let (checked, artifacts) = compile(&fixture, &Options::default());
        for (plan, artifact) in checked.plan.nodes.into_iter().zip(artifacts) {
            out.push(Node { plan, artifact });
        }
    }
    out
}

/// The command the envelope starts on first boot: the `ExecStart` of the bootstrap unit
/// both envelopes deliver, after checking that the envelope enables it (cloud-init from
/// `runcmd`, Ignition through `enabled: true`).
fn boot_command(a: &Artifact) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------
// Recorded calls

/// One recorded call of a stand-in: `tool`, its exit code (or `killed`), its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    tool: String,
    rc: String,
    args: Vec<String>,
}

impl Call {
    fn ok(&self) -> bool {
        self.rc == "0"
    }
    fn is(&self, tool: &str, args: &[&str]) -> bool {
        self.tool == tool && self.args == args
    }
    fn url(&self) -> Option<&str> {
        (self.tool == "curl")
            .then(|| self.args.iter().find(|a| a.starts_with("https://")))
            .flatten()
            .map(String::as_str)
    }
    fn is_own_ip_lookup(&self) -> bool {
        self.is("tailscale", &["ip", "-4"])
    }
    fn is_tailscale_up(&self) -> bool {
        self.tool == "tailscale" && self.args.first().map(String::as_str) == Some("up")
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tool)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        write!(f, " -> {}", self.rc)
    }
}

fn parse_calls(text: &str) -> Vec<Call> {
    text.lines()
        .map(|line| {
            let mut fields = line.split('\t').map(str::to_string);
            Call {
                tool: fields.next().unwrap_or_default(),
                rc: fields.next().unwrap_or_default(),
                args: fields.collect(),
            }
        })
        .collect()
}

fn show(calls: &[Call]) -> String {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  {i:3}: {c}\n"))
        .collect()
}

/// Index of the first call at or after `from` that satisfies `pred`.
fn find_from(calls: &[Call], from: usize, pred: impl Fn(&Call) -> bool) -> Option<usize> {
    calls
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, c)| pred(c))
        .map(|(i, _)| i)
}

/// The exit codes of the calls that satisfy `pred`, in order.
fn exit_codes(calls: &[Call], pred: impl Fn(&Call) -> bool) -> Vec<String> {
    calls
        .iter()
        .filter(|c| pred(c))
        .map(|c| c.rc.clone())
        .collect()
}

/// The pauses recorded by the `sleep` stand-in, in order.
fn sleeps(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.tool == "sleep")
        .map(|c| c.args.join(" "))
        .collect()
}

/// The pauses the bootstrap's retry loop takes between `attempts` attempts: 1s, doubling,
/// capped at `max`.
fn backoff(attempts: u32, max: u32) -> Vec<String> {
    let mut delay = 1;
    (1..attempts)
        .map(|_| {
            let d = delay;
            delay = (delay * 2).min(max);
            d.to_string()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The sandbox

/// A node's scratch root, the stand-ins' world, and the runs of its bootstrap.
struct Sandbox {
    dir: tempfile::TempDir,
    node: Node,
    bwrap: PathBuf,
    /// Number of recorded calls when the last run started.
    run_start: usize,
    runs: usize,
    last_output: String,
    /// The bootstrap's working directory: `/`, as under systemd, unless a test needs a
    /// writable one.
    cwd: &'static str,
}

/// How a run of the bootstrap ended.
struct Run {
    code: Option<i32>,
}

impl Run {
    fn success(&self) -> bool {
        self.code == Some(0)
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::create_dir_all(path.parent().expect("parent")).expect("create parent");
    fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

impl Sandbox {
    /// A fresh machine for `node`: its delivered files laid down, the stand-ins installed,
    /// an empty netmap and no faults.
    fn new(node: Node) -> Sandbox {
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
        for (name, text) in POOL {
            write_file(&sb.world("pool").join(name), text, 0o755);
        }
        write_file(&sb.world("lib.sh"), LIB_SH, 0o644);
        write_file(&sb.world("own-ip"), &format!("{OWN_IP}\n"), 0o644);
        write_file(&sb.world("own-ip6"), &format!("{OWN_IP6}\n"), 0o644);
        write_file(&sb.world("netmap"), "", 0o644);
        write_file(&sb.world("calls.log"), "", 0o644);
        fs::create_dir_all(sb.world("ctl")).expect("ctl");
        fs::create_dir_all(sb.world("state")).expect("state");
        for (path, mode, contents) in delivered_files(&sb.node.artifact) {
            write_file(&sb.host(&path), &contents, mode);
        }
        sb
    }

    fn name(&self) -> &str {
        &self.node.plan.name
    }

    /// The scratch copy of a path on the node (which must be in one of `NODE_DIRS`).
    fn host(&self, node_path: &str) -> PathBuf {
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

    fn stubs(&self) -> PathBuf {
        self.dir.path().join("stubs")
    }

    fn world(&self, name: &str) -> PathBuf {
        self.dir.path().join("world").join(name)
    }

    fn read_world(&self, name: &str) -> String {
        fs::read_to_string(self.world(name))
            .unwrap_or_else(|e| panic!("reading {name} of the stand-ins: {e}\n{}", self.report()))
    }

    /// Puts `name` on the mesh at `ip`.
    fn peer(&self, name: &str, ip: &str) {
        let mut netmap = self.read_world("netmap");
        netmap.push_str(&format!("{name} {ip}\n"));
        fs::write(self.world("netmap"), netmap).expect("netmap");
    }

    /// Sets fault `name` to `value` (a count of failures to come, `always`, or for
    /// `crash-on` the string that triggers the crash).
    fn fault(&self, name: &str, value: impl fmt::Display) {
        fs::write(self.world("ctl").join(name), format!("{value}\n")).expect("fault");
    }

    fn clear_fault(&self, name: &str) {
        fs::remove_file(self.world("ctl").join(name)).expect("clear fault");
    }

    fn calls(&self) -> Vec<Call> {
        parse_calls(&self.read_world("calls.log"))
    }

    /// The calls recorded during the last run.
    fn calls_of_last_run(&self) -> Vec<Call> {
        self.calls().split_off(self.run_start)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.host(plan::LOG_PATH)).unwrap_or_default()
    }

    fn mode(&self, node_path: &str) -> u32 {
        let meta = fs::symlink_metadata(self.host(node_path))
            .unwrap_or_else(|e| panic!("{node_path} on {}: {e}\n{}", self.name(), self.report()));
        meta.permissions().mode() & 0o7777
    }

    fn exists(&self, node_path: &str) -> bool {
        fs::symlink_metadata(self.host(node_path)).is_ok()
    }

    /// Everything worth seeing when an assertion fails.
    fn report(&self) -> String {
        format!(
            "--- node {} ({}), run {}\n--- recorded calls:\n{}--- {}:\n{}--- output of the last run:\n{}",
            self.name(),
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
    fn shadowed_dirs() -> Vec<PathBuf> {
        let mut shadowed = BTreeSet::new();
        for target in NODE_DIRS.iter().chain([&STUB_DIR]) {
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

    fn bwrap_command(&self) -> Command {
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
            .chain([&STUB_DIR])
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
        cmd.args(["--hostname", self.name()]);
        cmd.args(["--cap-drop", "ALL", "--die-with-parent", "--new-session"]);
        cmd.args([
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/sbin:/usr/bin:/sbin:/bin",
        ]);
        cmd.args(["--setenv", "HOME", "/root", "--setenv", "LANG", "C.UTF-8"]);
        cmd.args(["--chdir", self.cwd, "--"]);
        cmd.args(boot_command(&self.node.artifact));
        cmd
    }

    /// Boots the node: runs its bootstrap once, as its envelope would.
    fn run(&mut self) -> Run {
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
// What a bootstrapped node must look like

#[derive(Debug, Clone, Copy, PartialEq)]
enum Firewall {
    Ufw,
    Nftables,
}

#[derive(Debug, Clone, PartialEq)]
enum TailscaleFrom {
    /// The apt repository, e.g. `ubuntu/noble`.
    Apt(String),
    /// The static tarball of `version`, linked as `link`.
    Static { version: String, link: String },
}

/// What one node's first boot must do, written from the fixture (not read from the plan),
/// so that a change in the plan shows up as a failure here.
#[derive(Debug, Clone)]
struct Expect {
    firewall: Firewall,
    tailscale: TailscaleFrom,
    /// The server joined through, with its mesh address; `None`: `cluster-init`.
    join: Option<(String, String)>,
    /// Every INSTALL_K3S_* variable the install script must see, and nothing else.
    install_env: BTreeMap<String, String>,
    /// `tls-san` names besides the node's address (servers only).
    tls_san_names: Vec<String>,
    /// A dual-stack cluster: `node-ip` and `tls-san` carry the IPv6 address too.
    dual_stack: bool,
    /// flannel runs (bound to tailscale0); false with `flannel_backend: none`.
    flannel: bool,
}

impl Expect {
    fn new(firewall: Firewall, tailscale: TailscaleFrom, install_env: &[(&str, &str)]) -> Self {
        Expect {
            firewall,
            tailscale,
            join: None,
            // Every node starts K3s itself, with a bounded wait.
            install_env: install_env
                .iter()
                .chain(&[("INSTALL_K3S_SKIP_START", "true")])
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls_san_names: Vec::new(),
            dual_stack: false,
            flannel: true,
        }
    }
    fn without_flannel(mut self) -> Self {
        self.flannel = false;
        self
    }
    fn dual_stack(mut self) -> Self {
        self.dual_stack = true;
        self
    }
    fn joining(mut self, server: &str, ip: &str) -> Self {
        self.join = Some((server.into(), ip.into()));
        self
    }
    fn tls_san(mut self, names: &[&str]) -> Self {
        self.tls_san_names = names.iter().map(|n| n.to_string()).collect();
        self
    }
    fn is_server(&self) -> bool {
        self.install_env.get("INSTALL_K3S_EXEC").map(String::as_str) == Some("server")
    }
}

fn apt(repo: &str) -> TailscaleFrom {
    TailscaleFrom::Apt(repo.into())
}

fn static_build(version: &str, link: &str) -> TailscaleFrom {
    TailscaleFrom::Static {
        version: version.into(),
        link: link.into(),
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no static Tailscale build for {other}"),
    }
}

/// The whole of a successful first boot: every check below.
fn assert_bootstrapped(sb: &Sandbox, run: &Run, expect: &Expect) {
    assert_converged(sb, run);
    let calls = sb.calls_of_last_run();
    assert_firewall_first(sb, &calls, expect.firewall);
    assert_tailscale_installed(sb, &calls, &expect.tailscale);
    assert_packages_provide_the_tools(sb, &calls);
    assert_steps_in_order(sb, &calls, expect);
    assert_k3s_config(sb, expect);
    assert_install_env(sb, expect);
    assert_files_and_modes(sb, expect);
    assert_no_secrets(sb);
}

fn assert_converged(sb: &Sandbox, run: &Run) {
    assert!(
        run.success(),
        "the bootstrap failed (exit {:?})\n{}",
        run.code,
        sb.report()
    );
    let log = sb.log();
    assert!(
        log.lines().last().is_some_and(|l| l.contains(&format!(
            "meshboot[finish]: node {} is bootstrapped",
            sb.name()
        ))),
        "the log does not end with the finish line\n{}",
        sb.report()
    );
    assert!(
        sb.exists(&format!("{}/done", plan::STATE_DIR)),
        "no done stamp\n{}",
        sb.report()
    );
}

/// The firewall calls a node makes, in order.
fn firewall_calls(sb: &Sandbox, firewall: Firewall) -> Vec<(String, Vec<String>)> {
    let call = |tool: &str, args: &[&str]| {
        (
            tool.to_string(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
    };
    match firewall {
        Firewall::Ufw => ufw_commands(&sb.node.plan.firewall)
            .into_iter()
            .map(|args| ("ufw".to_string(), args))
            .chain([call("ufw", &["--force", "enable"])])
            .collect(),
        Firewall::Nftables => vec![
            call("nft", &["-f", plan::NFTABLES_PATH]),
            call("systemctl", &["daemon-reload"]),
            call("systemctl", &["enable", plan::FIREWALL_UNIT]),
        ],
    }
}

/// The first calls of the run are exactly the firewall's, all successful: nothing touches
/// the network or starts a daemon before the public side is default-deny.
fn assert_firewall_first(sb: &Sandbox, calls: &[Call], firewall: Firewall) {
    let expected = firewall_calls(sb, firewall);
    let got: Vec<(String, Vec<String>)> = calls
        .iter()
        .take(expected.len())
        .map(|c| (c.tool.clone(), c.args.clone()))
        .collect();
    assert_eq!(
        got,
        expected,
        "the run does not start with the {firewall:?} firewall\n{}",
        sb.report()
    );
    assert!(
        calls.iter().take(expected.len()).all(Call::ok),
        "a firewall call failed\n{}",
        sb.report()
    );
    match firewall {
        Firewall::Ufw => {
            for rule in [
                &["default", "deny", "incoming"][..],
                &["allow", "41641/udp"],
            ] {
                assert!(
                    calls.iter().any(|c| c.is("ufw", rule)),
                    "no `ufw {}`\n{}",
                    rule.join(" "),
                    sb.report()
                );
            }
            assert!(!calls.iter().any(|c| c.tool == "nft"), "{}", sb.report());
        }
        Firewall::Nftables => {
            assert_replaces_only_its_own_table(&sb.read_world("nft-loaded.1"));
            assert!(!calls.iter().any(|c| c.tool == "ufw"), "{}", sb.report());
        }
    }
}

/// Loading the ruleset twice leaves one copy: it creates, deletes and re-creates its own
/// table and never flushes the whole ruleset.
fn assert_replaces_only_its_own_table(ruleset: &str) {
    let statements: Vec<&str> = ruleset
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        statements.get(..3),
        Some(
            &[
                "table inet meshboot {}",
                "delete table inet meshboot",
                "table inet meshboot {"
            ][..]
        ),
        "the ruleset does not replace table inet meshboot:\n{ruleset}"
    );
    assert!(!ruleset.contains("flush ruleset"), "{ruleset}");
    assert!(ruleset.contains("policy drop"), "{ruleset}");
}

/// Tailscale came from where the node's OS gets it, and tailscaled was started after.
fn assert_tailscale_installed(sb: &Sandbox, calls: &[Call], from: &TailscaleFrom) {
    let started = find_from(calls, 0, |c| {
        c.is("systemctl", &["enable", "--now", "tailscaled"]) && c.ok()
    })
    .unwrap_or_else(|| panic!("tailscaled was never started\n{}", sb.report()));
    match from {
        TailscaleFrom::Apt(repo) => {
            let base = format!("https://pkgs.tailscale.com/stable/{repo}");
            for (url, file) in [
                (
                    format!("{base}.noarmor.gpg"),
                    "/usr/share/keyrings/tailscale-archive-keyring.gpg",
                ),
                (
                    format!("{base}.tailscale-keyring.list"),
                    "/etc/apt/sources.list.d/tailscale.list",
                ),
            ] {
                assert!(
                    calls
                        .iter()
                        .any(|c| c.url() == Some(url.as_str()) && c.ok()),
                    "{url} not fetched\n{}",
                    sb.report()
                );
                assert_eq!(sb.mode(file), 0o644, "{file}");
            }
            let install = find_from(calls, 0, |c| {
                c.tool == "apt-get" && c.args.iter().any(|a| a == "install")
            })
            .unwrap_or_else(|| panic!("no apt-get install\n{}", sb.report()));
            assert!(calls[install].ok() && install < started, "{}", sb.report());
            assert_eq!(sb.read_world("apt-get.frontend").trim(), "noninteractive");
        }
        TailscaleFrom::Static { version, link } => {
            let tarball = format!(
                "https://pkgs.tailscale.com/stable/tailscale_{version}_{}.tgz",
                host_arch()
            );
            let fetched = find_from(calls, 0, |c| c.url() == Some(tarball.as_str()) && c.ok())
                .unwrap_or_else(|| panic!("{tarball} not fetched\n{}", sb.report()));
            let reload = find_from(calls, fetched, |c| c.is("systemctl", &["daemon-reload"]))
                .unwrap_or_else(|| panic!("no daemon-reload after the install\n{}", sb.report()));
            assert!(reload < started, "{}", sb.report());
            assert!(
                !calls.iter().any(|c| c.tool == "apt-get"),
                "{}",
                sb.report()
            );
            for bin in ["tailscale", "tailscaled"] {
                assert_eq!(sb.mode(&format!("/opt/tailscale/{bin}")), 0o755, "{bin}");
            }
            let target = fs::read_link(sb.host(link))
                .unwrap_or_else(|e| panic!("{link} is not a symlink: {e}\n{}", sb.report()));
            assert_eq!(target, Path::new("/opt/tailscale/tailscale"));
        }
    }
}

/// On cloud-init images, the tools the bootstrap uses that an image may lack come from the
/// cloud-config's `packages:` (installed before `runcmd`): Debian 12 has no ufw, for one.
fn assert_packages_provide_the_tools(sb: &Sandbox, calls: &[Call]) {
    if sb.node.artifact.envelope != Envelope::CloudInit {
        return;
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&sb.node.artifact.contents).expect("cloud-config");
    let packages: Vec<&str> = doc["packages"]
        .as_sequence()
        .map(|p| p.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for (tool, package) in [("ufw", "ufw"), ("nft", "nftables"), ("curl", "curl")] {
        if calls.iter().any(|c| c.tool == tool) {
            assert!(
                packages.contains(&package),
                "the bootstrap uses {tool} but packages: {packages:?} lacks {package}"
            );
        }
    }
}

/// Tailscale up, then the node's own address, then (joiners) the server's address and its
/// /cacerts, then the K3s download and install, then starting K3s's unit and waiting until
/// it is active, each after the one before.
fn assert_steps_in_order(sb: &Sandbox, calls: &[Call], expect: &Expect) {
    let report = || sb.report();
    let up = find_from(calls, 0, |c| c.is_tailscale_up() && c.ok())
        .unwrap_or_else(|| panic!("tailscale up never succeeded\n{}", report()));
    assert_up_args(sb, calls);
    let own = find_from(calls, up, |c| c.is_own_ip_lookup() && c.ok())
        .unwrap_or_else(|| panic!("no `tailscale ip -4` after up\n{}", report()));
    let before_k3s = match &expect.join {
        Some((server, ip)) => {
            let peer = find_from(calls, own, |c| {
                c.is("tailscale", &["ip", "-4", server.as_str()]) && c.ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "{server} never resolved after the own address\n{}",
                    report()
                )
            });
            let cacerts = format!("https://{ip}:6443/cacerts");
            find_from(calls, peer, |c| c.url() == Some(cacerts.as_str()) && c.ok()).unwrap_or_else(
                || {
                    panic!(
                        "{cacerts} never answered after {server} resolved\n{}",
                        report()
                    )
                },
            )
        }
        None => {
            assert!(
                !calls
                    .iter()
                    .any(|c| c.url().is_some_and(|u| u.ends_with("/cacerts")) && c.ok()),
                "an init server found a running server\n{}",
                report()
            );
            own
        }
    };
    let download = find_from(calls, before_k3s, |c| {
        c.url() == Some(plan::K3S_INSTALL_URL)
            && c.args
                .windows(2)
                .any(|w| w == ["-o", plan::K3S_INSTALLER_PATH])
            && c.ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "the K3s install script was not downloaded after the join target\n{}",
            report()
        )
    });
    let install =
        find_from(calls, download, |c| c.tool == "k3s-install" && c.ok()).unwrap_or_else(|| {
            panic!(
                "the K3s install script did not run after its download\n{}",
                report()
            )
        });
    assert_eq!(
        calls.iter().filter(|c| c.tool == "k3s-install").count(),
        1,
        "the K3s install script ran more than once\n{}",
        report()
    );
    // Then the bootstrap starts K3s's unit itself and waits until it is active: nothing
    // else happens after the install.
    let after: Vec<String> = calls[install + 1..]
        .iter()
        .map(|c| format!("{} {}", c.tool, c.args.join(" ")))
        .collect();
    let unit = if expect.is_server() {
        "k3s"
    } else {
        "k3s-agent"
    };
    assert_eq!(
        after.first().map(String::as_str),
        Some(format!("systemctl start --no-block {unit}").as_str()),
        "K3s's unit was not started right after the install\n{}",
        report()
    );
    let check = format!("systemctl is-active --quiet {unit}");
    assert!(
        after.len() >= 2
            && after[1..]
                .iter()
                .all(|c| *c == check || c.starts_with("sleep "))
            && calls.last().is_some_and(|c| c.ok()),
        "after the install: {after:?}\n{}",
        report()
    );
}

/// Every `tailscale up` passes the plan's arguments, the key as `file:` and a timeout.
fn assert_up_args(sb: &Sandbox, calls: &[Call]) {
    let key = format!("--auth-key=file:{}", plan::AUTH_KEY_PATH);
    let hostname = format!("--hostname={}", sb.name());
    for c in calls.iter().filter(|c| c.is_tailscale_up()) {
        assert_eq!(c.args, sb.node.plan.tailscale.up_args, "{}", sb.report());
        assert!(c.args.contains(&key), "{c}");
        assert!(c.args.contains(&hostname), "{c}");
        assert!(
            c.args
                .iter()
                .any(|a| a.starts_with("--timeout=") && a != "--timeout=0s"),
            "`tailscale up` without a timeout blocks forever: {c}"
        );
    }
}

fn yaml_str(v: &serde_yaml::Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The drop-in's file name in config.yaml.d.
fn boot_config_name() -> &'static str {
    plan::K3S_BOOT_CONFIG_PATH
        .rsplit('/')
        .next()
        .expect("file name")
}

/// The value list `v` stands for when a `key+:` appends to or from it.
fn to_slice(v: &serde_yaml::Value) -> Vec<serde_yaml::Value> {
    match v {
        serde_yaml::Value::Sequence(items) => items.clone(),
        serde_yaml::Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// K3s's merge of its config files, modelled on k3s-io/k3s pkg/configfilearg/parser.go
/// (`readConfigFile`; docs.k3s.io "Multiple Config Files"): the files in order, a plain key
/// replacing the value so far (lists too), `key+:` appending to it. What it proves: the
/// values K3s ends up with under that documented rule; not that a given K3s version applies
/// it (v1.21.0 and later do).
fn merge_k3s_config(files: &[(String, String)]) -> serde_yaml::Mapping {
    let mut merged = serde_yaml::Mapping::new();
    for (name, text) in files {
        let doc: serde_yaml::Mapping = serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("{name} does not parse as a mapping: {e}\n{text}"));
        for (k, v) in doc {
            let key = k.as_str().expect("string keys").to_string();
            match key.strip_suffix('+') {
                Some(base) => {
                    let base = serde_yaml::Value::String(base.to_string());
                    let mut list = merged.get(&base).map(to_slice).unwrap_or_default();
                    list.extend(to_slice(&v));
                    merged.insert(base, serde_yaml::Value::Sequence(list));
                }
                None => {
                    merged.insert(serde_yaml::Value::String(key), v);
                }
            }
        }
    }
    merged
}

/// config.yaml and the config.yaml.d drop-ins as the install script found them, in the
/// order K3s reads them.
fn k3s_config_files(sb: &Sandbox) -> Vec<(String, String)> {
    let mut files = vec![(
        plan::K3S_CONFIG_PATH.to_string(),
        sb.read_world("k3s-config.seen"),
    )];
    for line in sb.read_world("k3s-config.d.list").lines() {
        let (name, _) = line.split_once(' ').expect("NAME MODE");
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push((
                format!("config.yaml.d/{name}"),
                sb.read_world(&format!("k3s-config.d/{name}")),
            ));
        }
    }
    files
}

/// The config K3s would run with, merged from what the install script found.
fn merged_k3s_config(sb: &Sandbox) -> serde_yaml::Value {
    serde_yaml::Value::Mapping(merge_k3s_config(&k3s_config_files(sb)))
}

/// The K3s config as the install script found it: config.yaml delivered 0600 and left as
/// delivered, one drop-in of meshboot's in config.yaml.d (0600, nothing else there, no
/// temporary file), which adds keys config.yaml lacks and appends to tls-san; and the
/// merged result holding the node's address, the role's keys and the join target, and
/// everything the plan holds.
fn assert_k3s_config(sb: &Sandbox, expect: &Expect) {
    let seen = sb.read_world("k3s-config.seen");
    assert_eq!(
        sb.read_world("k3s-config.mode").trim(),
        "600",
        "config.yaml mode when K3s was installed"
    );
    let delivered = delivered_files(&sb.node.artifact)
        .into_iter()
        .find(|(path, _, _)| path == plan::K3S_CONFIG_PATH)
        .map(|(_, _, contents)| contents)
        .expect("config.yaml is delivered");
    assert_eq!(seen, delivered, "config.yaml is not the delivered one");
    let on_disk = fs::read_to_string(sb.host(plan::K3S_CONFIG_PATH)).expect("config.yaml");
    assert_eq!(seen, on_disk, "config.yaml changed after the K3s install");
    assert_eq!(
        sb.read_world("k3s-config.d.list"),
        format!("{} 600\n", boot_config_name()),
        "config.yaml.d when K3s was installed\n{}",
        sb.report()
    );
    let drop_in = sb.read_world(&format!("k3s-config.d/{}", boot_config_name()));
    let on_disk = fs::read_to_string(sb.host(plan::K3S_BOOT_CONFIG_PATH)).expect("the drop-in");
    assert_eq!(
        drop_in, on_disk,
        "the drop-in changed after the K3s install"
    );

    // The drop-in never replaces a key of config.yaml: its plain keys are new ones.
    let base: serde_yaml::Mapping = serde_yaml::from_str(&seen).expect("config.yaml");
    let added: serde_yaml::Mapping = serde_yaml::from_str(&drop_in)
        .unwrap_or_else(|e| panic!("the drop-in does not parse: {e}\n{drop_in}"));
    for key in added.keys().map(|k| k.as_str().expect("key")) {
        assert!(
            key.ends_with('+') || !base.contains_key(key),
            "the drop-in replaces config.yaml's {key}:\n{seen}\n{drop_in}"
        );
    }

    let cfg = merged_k3s_config(sb);
    let get = |k: &str| cfg.get(k).and_then(yaml_str);
    let ctx = || format!("K3s config of {}:\n{seen}---\n{drop_in}", sb.name());

    let node_ip = if expect.dual_stack {
        format!("{OWN_IP},{OWN_IP6}")
    } else {
        OWN_IP.to_string()
    };
    assert_eq!(get("node-ip"), Some(node_ip), "{}", ctx());
    assert_eq!(get("node-name").as_deref(), Some(sb.name()), "{}", ctx());
    assert_eq!(
        get("token-file").as_deref(),
        Some(plan::TOKEN_PATH),
        "{}",
        ctx()
    );
    let flannel_iface = expect.flannel.then_some("tailscale0");
    assert_eq!(get("flannel-iface").as_deref(), flannel_iface, "{}", ctx());
    assert!(cfg.get("token").is_none(), "the token is inline\n{}", ctx());

    let mut boot_keys = vec!["node-ip"];
    if expect.is_server() {
        assert_eq!(
            get("advertise-address").as_deref(),
            Some(OWN_IP),
            "{}",
            ctx()
        );
        let tls_san: Vec<String> = cfg
            .get("tls-san")
            .and_then(|v| serde_yaml::from_value(v.clone()).ok())
            .unwrap_or_else(|| panic!("no tls-san list\n{}", ctx()));
        // config.yaml's names, then the addresses the drop-in appends.
        let mut want = vec![sb.name().to_string()];
        want.extend(expect.tls_san_names.iter().cloned());
        want.push(OWN_IP.to_string());
        if expect.dual_stack {
            want.push(OWN_IP6.to_string());
        }
        assert_eq!(tls_san, want, "{}", ctx());
        boot_keys.extend(["advertise-address", "tls-san"]);
    } else {
        for k in [
            "advertise-address",
            "tls-san",
            "cluster-cidr",
            "cluster-init",
        ] {
            assert!(cfg.get(k).is_none(), "an agent with {k}\n{}", ctx());
        }
    }
    match &expect.join {
        Some((_, ip)) => {
            assert_eq!(
                get("server"),
                Some(format!("https://{ip}:6443")),
                "{}",
                ctx()
            );
            assert!(cfg.get("cluster-init").is_none(), "{}", ctx());
            boot_keys.push("server");
        }
        None => {
            assert_eq!(
                cfg.get("cluster-init"),
                Some(&serde_yaml::Value::Bool(true)),
                "{}",
                ctx()
            );
            assert!(cfg.get("server").is_none(), "{}", ctx());
            boot_keys.push("cluster-init");
        }
    }

    // Everything the plan decided is there as decided (tls-san, with the addresses
    // appended, is checked above), and nothing else is.
    let planned = serde_yaml::to_value(&sb.node.plan.k3s.config).expect("plan config");
    let planned = planned.as_mapping().expect("mapping");
    for (k, v) in planned.iter().filter(|(k, _)| *k != "tls-san") {
        assert_eq!(
            cfg.get(k),
            Some(v),
            "{k:?} differs from the plan\n{}",
            ctx()
        );
    }
    let mut want_keys: BTreeSet<String> = planned
        .keys()
        .map(|k| k.as_str().expect("key").to_string())
        .collect();
    want_keys.extend(boot_keys.iter().map(|k| k.to_string()));
    let got_keys: BTreeSet<String> = cfg
        .as_mapping()
        .expect("mapping")
        .keys()
        .map(|k| k.as_str().expect("key").to_string())
        .collect();
    assert_eq!(got_keys, want_keys, "{}", ctx());
}

#[test]
fn the_k3s_config_merge_follows_k3s() {
    // The documented example of docs.k3s.io "Multiple Config Files".
    let files = [
        (
            "config.yaml".to_string(),
            "token: boop\nnode-label:\n  - foo=bar\n  - bar=baz\n".to_string(),
        ),
        (
            "config.yaml.d/test1.yaml".to_string(),
            "write-kubeconfig-mode: 600\nnode-taint:\n  - alice=bob:NoExecute\n".to_string(),
        ),
        (
            "config.yaml.d/test2.yaml".to_string(),
            "write-kubeconfig-mode: 777\nnode-label:\n  - other=what\n  - foo=three\nnode-taint+:\n  - charlie=delta:NoSchedule\n".to_string(),
        ),
    ];
    let want: serde_yaml::Mapping = serde_yaml::from_str(
        "write-kubeconfig-mode: 777\ntoken: boop\nnode-label:\n  - other=what\n  - foo=three\nnode-taint:\n  - alice=bob:NoExecute\n  - charlie=delta:NoSchedule\n",
    )
    .expect("yaml");
    assert_eq!(merge_k3s_config(&files), want);
}

/// The install script's environment: exactly the expected INSTALL_K3S_* variables, and no
/// K3S_* variable at all (those end up in the unit's .env file).
fn assert_install_env(sb: &Sandbox, expect: &Expect) {
    let env = sb.read_world("k3s-install.env");
    let vars: BTreeMap<String, String> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let install: BTreeMap<String, String> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("INSTALL_K3S_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        install,
        expect.install_env,
        "INSTALL_K3S_* of {}\n{env}",
        sb.name()
    );
    let k3s: Vec<&String> = vars.keys().filter(|k| k.starts_with("K3S_")).collect();
    assert!(
        k3s.is_empty(),
        "K3S_* variables reach the installer: {k3s:?}"
    );
    if let Some(bin_dir) = expect.install_env.get("INSTALL_K3S_BIN_DIR") {
        assert!(
            sb.exists(&format!("{bin_dir}/k3s")),
            "k3s not installed in {bin_dir}"
        );
    }
}

/// Modes of what the node holds after its first boot, and the auth key gone.
fn assert_files_and_modes(sb: &Sandbox, expect: &Expect) {
    let mut want = vec![
        (plan::BOOTSTRAP_PATH, 0o700),
        (plan::TOKEN_PATH, 0o600),
        (plan::K3S_CONFIG_PATH, 0o600),
        (plan::K3S_BOOT_CONFIG_PATH, 0o600),
        (plan::K3S_INSTALLER_PATH, 0o700),
        (plan::STATE_DIR, 0o700),
        (plan::LOG_PATH, 0o600),
    ];
    if expect.firewall == Firewall::Nftables {
        want.push((plan::NFTABLES_PATH, 0o600));
    }
    for (path, mode) in want {
        assert_eq!(
            sb.mode(path),
            mode,
            "{path} on {} is {:04o}, not {mode:04o}",
            sb.name(),
            sb.mode(path)
        );
    }
    assert!(
        !sb.exists(plan::AUTH_KEY_PATH),
        "the auth key is still on disk after the node joined\n{}",
        sb.report()
    );
    assert_eq!(
        sb.read_world("k3s-install.authkey").trim(),
        "absent",
        "the auth key was still on disk when K3s was installed"
    );
    assert!(!sb.exists(&format!("{}.tmp", plan::K3S_BOOT_CONFIG_PATH)));
    // The K3s config was never readable beyond root, not even before its chmod.
    let chmods = fs::read_to_string(sb.world("chmod.log")).unwrap_or_default();
    for line in chmods.lines().filter(|l| l.starts_with("/etc/rancher/")) {
        let before = line.split(' ').nth(1).expect("old mode");
        let before = u32::from_str_radix(before, 8).expect("octal mode");
        assert_eq!(before & 0o077, 0, "written group/other-readable: {line}");
    }
    assert_eq!(
        fs::read_to_string(sb.host(plan::K3S_INSTALLER_PATH)).expect("installer"),
        K3S_INSTALLER,
        "the K3s install script on disk is not the one served"
    );
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let ty = entry.file_type().expect("file type");
        if ty.is_dir() {
            out.extend(files_under(&path));
        } else if ty.is_file() {
            out.push(path);
        }
    }
    out
}

/// No secret value in the log, the recorded argv, the installer's environment, the run's
/// output, or any file the node holds besides the token and key files themselves.
/// (Which token a node holds is checked in tests/hygiene.rs.)
fn assert_no_secrets(sb: &Sandbox) {
    let allowed = [
        sb.host(plan::TOKEN_PATH),
        sb.host(plan::AGENT_TOKEN_PATH),
        sb.host(plan::AUTH_KEY_PATH),
    ];
    let pool = sb.world("pool");
    let files = files_under(sb.dir.path())
        .into_iter()
        .filter(|p| !allowed.contains(p) && !p.starts_with(&pool));
    for file in files {
        let text = String::from_utf8_lossy(&fs::read(&file).expect("read")).into_owned();
        for secret in all_fake_secret_values() {
            assert!(
                !text.contains(&secret),
                "a secret ({}...) is in {}",
                &secret[..12],
                file.display()
            );
        }
    }
}

/// A second boot of a bootstrapped node changes nothing and calls nothing.
fn assert_rerun_is_a_noop(sb: &mut Sandbox) {
    let calls = sb.calls();
    let config = |sb: &Sandbox| {
        [plan::K3S_CONFIG_PATH, plan::K3S_BOOT_CONFIG_PATH]
            .map(|p| fs::read_to_string(sb.host(p)).expect("K3s config"))
    };
    let before = config(sb);
    let run = sb.run();
    assert!(run.success(), "the second run failed\n{}", sb.report());
    assert_eq!(
        sb.calls(),
        calls,
        "the second run called something\n{}",
        sb.report()
    );
    assert!(
        sb.log()
            .lines()
            .last()
            .is_some_and(|l| l.contains("is already bootstrapped; nothing to do")),
        "{}",
        sb.report()
    );
    assert_eq!(config(sb), before);
}

fn assert_failed_at(sb: &Sandbox, run: &Run, step: &str) {
    assert!(!run.success(), "the bootstrap succeeded\n{}", sb.report());
    assert!(
        sb.log()
            .contains(&format!("meshboot[{step}]: FAILED at step {step} (exit")),
        "the log does not name step {step}\n{}",
        sb.report()
    );
    assert!(!sb.exists(&format!("{}/done", plan::STATE_DIR)));
}

/// The happy path of any node of the fixtures, for the sweep over all of them: the
/// firewall, versions and installer environment are written from the fixtures; the role,
/// OS, Tailscale source and join target are taken from the plan (the per-node tests below
/// write those out too).
fn expect_from_fixture(node: &NodePlan) -> Expect {
    let firewall = match node.envelope {
        Envelope::Ignition => Firewall::Nftables,
        Envelope::CloudInit if node.name.starts_with("nft-") || node.name.starts_with("ds-") => {
            Firewall::Nftables
        }
        Envelope::CloudInit => Firewall::Ufw,
    };
    let tailscale = match &node.tailscale.install {
        TailscaleInstall::Apt {
            distro, codename, ..
        } => apt(&format!("{distro}/{codename}")),
        TailscaleInstall::Static { link_dir, .. } => {
            let version = if node.name.starts_with("worker-") {
                LATEST_TAILSCALE
            } else {
                "1.90.6"
            };
            static_build(version, &format!("{link_dir}/tailscale"))
        }
    };
    let exec = if node.role.is_server() {
        "server"
    } else {
        "agent"
    };
    let mut env = vec![("INSTALL_K3S_EXEC", exec)];
    match node.name.as_str() {
        n if n.starts_with("nft-") => env.push(("INSTALL_K3S_VERSION", "v1.32.9+k3s1")),
        n if n.starts_with("core-") || n.starts_with("pool-") || n == "fcos-1" => {
            env.push(("INSTALL_K3S_CHANNEL", "stable"))
        }
        _ => env.push(("INSTALL_K3S_VERSION", "v1.33.5+k3s1")),
    }
    match node.os {
        meshboot::spec::Os::Flatcar => env.push(("INSTALL_K3S_BIN_DIR", "/opt/bin")),
        meshboot::spec::Os::FedoraCoreos => env.extend([
            ("INSTALL_K3S_SKIP_SELINUX_RPM", "true"),
            ("INSTALL_K3S_SELINUX_WARN", "true"),
        ]),
        _ => {}
    }
    let mut expect = Expect::new(firewall, tailscale, &env);
    if node.role.is_server() && node.name.starts_with("core-") {
        expect = expect.tls_san(&["api.ignite.example"]);
    }
    if let Join::Via { init_server, .. } = &node.join {
        expect = expect.joining(init_server, INIT_IP);
    }
    if node.name.starts_with("ds-") {
        // dual-stack.yaml: dual-stack CIDRs and no flannel.
        expect = expect.dual_stack().without_flannel();
    }
    expect
}

/// cluster.yaml's servers: Ubuntu 24.04 behind ufw, K3s pinned.
fn cluster_server() -> Expect {
    Expect::new(
        Firewall::Ufw,
        apt("ubuntu/noble"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_VERSION", "v1.33.5+k3s1"),
        ],
    )
}

/// cluster.yaml's workers: Flatcar agents behind nftables, the latest static Tailscale.
fn cluster_worker() -> Expect {
    Expect::new(
        Firewall::Nftables,
        static_build(LATEST_TAILSCALE, "/opt/bin/tailscale"),
        &[
            ("INSTALL_K3S_EXEC", "agent"),
            ("INSTALL_K3S_VERSION", "v1.33.5+k3s1"),
            ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
        ],
    )
}

/// nftables.yaml's servers: Debian 12 behind nftables.
fn netfilter_server() -> Expect {
    Expect::new(
        Firewall::Nftables,
        apt("debian/bookworm"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_VERSION", "v1.32.9+k3s1"),
        ],
    )
}

// ---------------------------------------------------------------------------------------
// Happy paths, one per role and OS

#[test]
fn init_server_initialises_the_cluster_behind_its_firewall() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    let run = sb.run();
    let expect = cluster_server();
    assert_bootstrapped(&sb, &run, &expect);
    // It looked for a running server of the cluster before initialising a new one.
    for peer in ["cp-2", "cp-3"] {
        assert!(
            sb.calls()
                .iter()
                .any(|c| c.is("tailscale", &["ip", "-4", peer])),
            "{}",
            sb.report()
        );
    }
    assert!(sb.log().contains("initialising the cluster (cluster-init)"));
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn joining_server_joins_the_init_server_over_the_mesh() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    let run = sb.run();
    let expect = cluster_server().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log()
            .contains(&format!("joining through cp-1 at {INIT_IP}"))
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn flatcar_agent_installs_static_tailscale_and_joins_behind_nftables() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    let run = sb.run();
    let expect = cluster_worker().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    // No pinned version: it asked pkgs.tailscale.com for the latest.
    assert!(
        sb.calls()
            .iter()
            .any(|c| c.url() == Some("https://pkgs.tailscale.com/stable/?mode=json")),
        "{}",
        sb.report()
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn flatcar_init_server_installs_its_pinned_tailscale() {
    let mut sb = Sandbox::new(node("flatcar.yaml", "core-1"));
    let run = sb.run();
    let expect = Expect::new(
        Firewall::Nftables,
        static_build("1.90.6", "/opt/bin/tailscale"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_CHANNEL", "stable"),
            ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
        ],
    )
    .tls_san(&["api.ignite.example"]);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        !sb.calls()
            .iter()
            .any(|c| c.url().is_some_and(|u| u.contains("mode=json"))),
        "a pinned version needs no index lookup\n{}",
        sb.report()
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn fedora_coreos_agent_links_tailscale_into_usr_local_bin() {
    let mut sb = Sandbox::new(node("flatcar.yaml", "fcos-1"));
    sb.peer("core-1", INIT_IP);
    let run = sb.run();
    let expect = Expect::new(
        Firewall::Nftables,
        static_build("1.90.6", "/usr/local/bin/tailscale"),
        &[
            ("INSTALL_K3S_EXEC", "agent"),
            ("INSTALL_K3S_CHANNEL", "stable"),
            ("INSTALL_K3S_SKIP_SELINUX_RPM", "true"),
            ("INSTALL_K3S_SELINUX_WARN", "true"),
        ],
    )
    .joining("core-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(!sb.exists("/opt/bin/tailscale"), "{}", sb.report());
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn nftables_init_server_on_debian_loads_its_own_table() {
    let mut sb = Sandbox::new(node("nftables.yaml", "nft-server-1"));
    let run = sb.run();
    let expect = netfilter_server();
    assert_bootstrapped(&sb, &run, &expect);
    assert_eq!(
        sb.read_world("nft-loaded.1"),
        fs::read_to_string(sb.host(plan::NFTABLES_PATH)).expect("ruleset"),
        "nft loaded something else than the delivered ruleset"
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn nftables_agent_on_ubuntu_2204_joins() {
    let mut sb = Sandbox::new(node("nftables.yaml", "nft-agent"));
    sb.peer("nft-server-1", INIT_IP);
    let run = sb.run();
    let expect = Expect::new(
        Firewall::Nftables,
        apt("ubuntu/jammy"),
        &[
            ("INSTALL_K3S_EXEC", "agent"),
            ("INSTALL_K3S_VERSION", "v1.32.9+k3s1"),
        ],
    )
    .joining("nft-server-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn single_server_initialises_with_no_other_server_to_look_for() {
    let mut sb = Sandbox::new(node("single-server.yaml", "solo-1"));
    let run = sb.run();
    let expect = Expect::new(
        Firewall::Ufw,
        apt("ubuntu/noble"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_VERSION", "v1.33.5+k3s1"),
        ],
    );
    assert_bootstrapped(&sb, &run, &expect);
    for port in ["80/tcp", "443/tcp"] {
        assert!(
            sb.calls().iter().any(|c| c.is("ufw", &["allow", port])),
            "{port} not opened\n{}",
            sb.report()
        );
    }
    assert!(
        !sb.calls()
            .iter()
            .any(|c| c.is("tailscale", &["ip", "-4", "solo-1"])),
        "{}",
        sb.report()
    );
}

#[test]
fn oauth_headscale_server_passes_its_login_server_and_keeps_the_secret_out_of_argv() {
    let mut sb = Sandbox::new(node("headscale-oauth.yaml", "hs-server"));
    let key = fs::read_to_string(sb.host(plan::AUTH_KEY_PATH)).expect("key");
    assert!(
        key.ends_with("?ephemeral=false&preauthorized=true\n"),
        "{key}"
    );
    let run = sb.run();
    let expect = Expect::new(
        Firewall::Ufw,
        apt("ubuntu/jammy"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_VERSION", "v1.33.5+k3s1"),
        ],
    );
    assert_bootstrapped(&sb, &run, &expect);
    let up = sb
        .calls()
        .into_iter()
        .find(Call::is_tailscale_up)
        .expect("tailscale up");
    for arg in [
        "--login-server=https://headscale.example.com",
        "--advertise-tags=tag:k3s-server,tag:lab",
    ] {
        assert!(up.args.iter().any(|a| a == arg), "{arg} missing: {up}");
    }
}

#[test]
fn every_node_of_every_fixture_bootstraps() {
    for node in all_nodes() {
        let expect = expect_from_fixture(&node.plan);
        let mut sb = Sandbox::new(node);
        if let Some((server, ip)) = &expect.join {
            sb.peer(server, ip);
        }
        let run = sb.run();
        assert_bootstrapped(&sb, &run, &expect);
    }
}

// ---------------------------------------------------------------------------------------
// The init server that is re-created into a running cluster

#[test]
fn recreated_init_server_rejoins_a_running_server_instead_of_forking() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.peer("cp-2", SECOND_SERVER_IP);
    let run = sb.run();
    let expect = cluster_server().joining("cp-2", SECOND_SERVER_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log().contains("a cluster is already running at cp-2"),
        "{}",
        sb.report()
    );
}

#[test]
fn init_server_initialises_when_the_other_server_on_the_mesh_has_no_supervisor_yet() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.peer("cp-2", SECOND_SERVER_IP);
    sb.fault("cacerts-refuse", "always");
    let run = sb.run();
    let expect = cluster_server();
    assert_bootstrapped(&sb, &run, &expect);
    let cacerts = format!("https://{SECOND_SERVER_IP}:6443/cacerts");
    assert!(
        sb.calls()
            .iter()
            .any(|c| c.url() == Some(cacerts.as_str()) && !c.ok()),
        "cp-2's supervisor was never asked\n{}",
        sb.report()
    );
}

// ---------------------------------------------------------------------------------------
// Faults: the node converges, or fails loudly at the named step

#[test]
fn tailscale_up_failing_twice_is_retried_with_backoff() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("tailscale-up-fail", 2);
    let run = sb.run();
    let expect = cluster_server().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let ups = exit_codes(&calls, |c| c.is_tailscale_up());
    assert_eq!(ups, ["1", "1", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2"], "{}", sb.report());
    assert!(
        sb.log()
            .contains("tailscale up: attempt 2 of 6 failed; next try in 2s")
    );
}

#[test]
fn own_address_appearing_late_is_waited_for() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("own-ip-missing", 2);
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &cluster_server());
    let calls = sb.calls();
    // The first lookup is the "already on the mesh?" check before up.
    let lookups = exit_codes(&calls, Call::is_own_ip_lookup);
    assert_eq!(lookups, ["1", "1", "1", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2"], "{}", sb.report());
}

#[test]
fn tailscale_up_never_succeeding_fails_at_tailscale_up_after_the_planned_attempts() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("tailscale-up-fail", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "tailscale-up");
    let retries = &sb.node.plan.retries;
    let calls = sb.calls();
    let ups = calls.iter().filter(|c| c.is_tailscale_up()).count();
    assert_eq!(
        ups,
        retries.tailscale_up_attempts as usize,
        "{}",
        sb.report()
    );
    assert!(ups > 1, "no retry at all");
    assert_eq!(
        sleeps(&calls),
        backoff(retries.tailscale_up_attempts, retries.max_backoff_s),
        "{}",
        sb.report()
    );
    assert_eq!(
        calls.last().map(Call::is_tailscale_up),
        Some(true),
        "{}",
        sb.report()
    );
    // The key stays for the next attempt; once the cause is fixed, a rerun converges.
    assert_eq!(sb.mode(plan::AUTH_KEY_PATH), 0o600);
    assert_no_secrets(&sb);
    sb.clear_fault("tailscale-up-fail");
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(!sb.exists(plan::AUTH_KEY_PATH));
}

#[test]
fn joiner_waits_for_the_init_server_to_appear_on_the_mesh() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("peer-absent.cp-1", 3);
    let run = sb.run();
    let expect = cluster_server().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let lookups = exit_codes(&calls, |c| c.is("tailscale", &["ip", "-4", "cp-1"]));
    assert_eq!(lookups, ["1", "1", "1", "0"], "{}", sb.report());
    // Each round also tried the other server, cp-3, which is not on the mesh.
    let cp3 = calls
        .iter()
        .filter(|c| c.is("tailscale", &["ip", "-4", "cp-3"]))
        .count();
    assert_eq!(cp3, 3, "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2", "4"], "{}", sb.report());
    assert!(
        sb.log()
            .contains("waiting for a server: attempt 3 of 240 failed")
    );
}

#[test]
fn agent_waits_for_the_supervisor_to_answer_on_cacerts() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("cacerts-refuse", 3);
    let run = sb.run();
    let expect = cluster_worker().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    let cacerts = format!("https://{INIT_IP}:6443/cacerts");
    let calls = sb.calls();
    let answers = exit_codes(&calls, |c| c.url() == Some(cacerts.as_str()));
    assert_eq!(answers, ["7", "7", "7", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2", "4"], "{}", sb.report());
    assert!(
        sb.log()
            .contains(&format!("but {cacerts} does not answer yet")),
        "{}",
        sb.report()
    );
}

#[test]
fn k3s_install_script_download_failing_once_is_retried() {
    let mut sb = Sandbox::new(node("nftables.yaml", "nft-server-2"));
    sb.peer("nft-server-1", INIT_IP);
    sb.fault("k3s-download-fail", 1);
    let run = sb.run();
    let expect = netfilter_server().joining("nft-server-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let downloads = exit_codes(&calls, |c| c.url() == Some(plan::K3S_INSTALL_URL));
    assert_eq!(downloads, ["56", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1"], "{}", sb.report());
}

#[test]
fn crash_after_the_ufw_firewall_converges_on_the_next_boot() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("crash-on", "apt-get");
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    let first = sb.calls_of_last_run();
    assert_firewall_first(&sb, &first, Firewall::Ufw);
    let last = first.last().expect("calls");
    assert!(
        last.tool == "apt-get" && last.rc == "killed",
        "the crash did not stop the run at apt-get\n{}",
        sb.report()
    );
    assert!(!first.iter().any(Call::is_tailscale_up), "{}", sb.report());
    assert!(
        sb.log().contains("meshboot[firewall]: ufw is enabled"),
        "{}",
        sb.report()
    );

    sb.clear_fault("crash-on");
    let run = sb.run();
    let expect = cluster_server().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    // The second boot applied the same rules again: ufw skips rules it already has and
    // `ufw --force enable` on an enabled firewall changes nothing.
    let fw = |calls: &[Call]| -> Vec<Call> {
        calls.iter().filter(|c| c.tool == "ufw").cloned().collect()
    };
    assert_eq!(fw(&first), fw(&sb.calls_of_last_run()));
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn crash_after_the_nftables_firewall_converges_on_the_next_boot() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("crash-on", "pkgs.tailscale.com");
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    let first = sb.calls_of_last_run();
    assert_firewall_first(&sb, &first, Firewall::Nftables);
    assert!(
        first.last().is_some_and(|c| c.rc == "killed"),
        "the crash did not stop the run\n{}",
        sb.report()
    );
    assert!(
        !first.iter().any(|c| c.tool == "tailscale"),
        "{}",
        sb.report()
    );

    sb.clear_fault("crash-on");
    let run = sb.run();
    let expect = cluster_worker().joining("cp-1", INIT_IP);
    assert_bootstrapped(&sb, &run, &expect);
    // Both boots loaded the same ruleset, which replaces its own table each time.
    assert_eq!(sb.read_world("nft-loaded.1"), sb.read_world("nft-loaded.2"));
    assert_replaces_only_its_own_table(&sb.read_world("nft-loaded.2"));
}

#[test]
fn crash_after_joining_the_mesh_resumes_without_the_auth_key() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("crash-on", plan::K3S_INSTALL_URL);
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    assert!(sb.calls().iter().any(|c| c.is_tailscale_up() && c.ok()));
    assert!(
        !sb.exists(plan::AUTH_KEY_PATH),
        "the key outlived the join\n{}",
        sb.report()
    );

    sb.clear_fault("crash-on");
    let run = sb.run();
    assert_converged(&sb, &run);
    let second = sb.calls_of_last_run();
    assert_firewall_first(&sb, &second, Firewall::Ufw);
    assert!(
        !second.iter().any(Call::is_tailscale_up),
        "tailscale up ran again on a node already on the mesh\n{}",
        sb.report()
    );
    assert!(
        sb.log()
            .contains("meshboot[tailscale-up]: already on the mesh")
    );
    let expect = cluster_server();
    assert_k3s_config(&sb, &expect);
    assert_install_env(&sb, &expect);
    assert_files_and_modes(&sb, &expect);
    assert_no_secrets(&sb);
}

#[test]
fn reboot_after_the_key_was_removed_waits_for_tailscaled_to_reconnect() {
    // The key goes once the node is on the mesh; a reboot before the bootstrap finished
    // finds no key, and tailscaled needs a moment to come back from its state.
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("crash-on", plan::K3S_INSTALL_URL);
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    assert!(!sb.exists(plan::AUTH_KEY_PATH));
    sb.clear_fault("crash-on");
    sb.fault("own-ip-missing", 2);
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        sb.log()
            .contains("waiting for tailscaled to reconnect: attempt 1 of"),
        "{}",
        sb.report()
    );
    assert!(!sb.calls_of_last_run().iter().any(Call::is_tailscale_up));
}

#[test]
fn a_node_with_no_key_and_no_mesh_fails_at_tailscale_up() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    fs::remove_file(sb.host(plan::AUTH_KEY_PATH)).expect("key delivered");
    let run = sb.run();
    assert_failed_at(&sb, &run, "tailscale-up");
    assert!(
        sb.log()
            .contains("is missing or empty and this node is not on the mesh")
    );
    assert!(!sb.calls().iter().any(Call::is_tailscale_up));
}

#[test]
fn firewall_failure_stops_the_bootstrap_before_anything_else() {
    for (fixture, name, fault) in [
        ("cluster.yaml", "cp-1", "ufw-fail"),
        ("cluster.yaml", "worker-1", "nft-fail"),
    ] {
        let mut sb = Sandbox::new(node(fixture, name));
        sb.fault(fault, "always");
        let run = sb.run();
        assert_failed_at(&sb, &run, "firewall");
        let calls = sb.calls();
        assert_eq!(
            calls.len(),
            1,
            "calls after the firewall failed\n{}",
            sb.report()
        );
        assert!(!calls[0].ok());
        assert_eq!(sb.mode(plan::AUTH_KEY_PATH), 0o600);
    }
}

#[test]
fn no_server_ever_answering_fails_at_join_target_after_the_planned_rounds() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    let run = sb.run();
    assert_failed_at(&sb, &run, "join-target");
    let retries = &sb.node.plan.retries;
    let calls = sb.calls();
    let rounds = calls
        .iter()
        .filter(|c| c.is("tailscale", &["ip", "-4", "cp-1"]))
        .count();
    assert_eq!(rounds, retries.join_attempts as usize, "{}", sb.report());
    assert_eq!(
        sleeps(&calls),
        backoff(retries.join_attempts, retries.max_backoff_s)
    );
    assert!(!calls.iter().any(|c| c.tool == "k3s-install"));
    assert!(!sb.exists(plan::K3S_BOOT_CONFIG_PATH));
}

#[test]
fn k3s_install_failure_fails_at_k3s_install_and_a_rerun_finishes() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("k3s-install-fail", 1);
    let run = sb.run();
    assert_failed_at(&sb, &run, "k3s-install");
    sb.clear_fault("k3s-install-fail");
    let run = sb.run();
    assert_converged(&sb, &run);
    let installs = exit_codes(&sb.calls(), |c| c.tool == "k3s-install");
    assert_eq!(installs, ["1", "0"], "{}", sb.report());
}

#[test]
fn k3s_slow_to_become_active_is_waited_for() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("k3s-start-slow", 3);
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &cluster_server().joining("cp-1", INIT_IP));
    let checks = exit_codes(&sb.calls(), |c| {
        c.is("systemctl", &["is-active", "--quiet", "k3s"])
    });
    assert_eq!(checks, ["3", "3", "3", "0"], "{}", sb.report());
}

#[test]
fn k3s_never_active_fails_at_k3s_start_after_the_planned_checks() {
    // A join that cannot complete (a tailnet policy blocking etcd, a wrong token) must end
    // the bootstrap, named, instead of holding it (and cloud-init) forever.
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("k3s-start-slow", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "k3s-start");
    let retries = &sb.node.plan.retries;
    let calls = sb.calls();
    let checks = exit_codes(&calls, |c| {
        c.is("systemctl", &["is-active", "--quiet", "k3s"])
    });
    assert_eq!(
        checks.len(),
        retries.join_attempts as usize,
        "{}",
        sb.report()
    );
    assert!(!sb.exists(&format!("{}/done", plan::STATE_DIR)));
    // The next boot picks up where it stopped: no second install, K3s started again.
    sb.clear_fault("k3s-start-slow");
    let run = sb.run();
    assert_converged(&sb, &run);
    assert_eq!(calls.iter().filter(|c| c.tool == "k3s-install").count(), 1);
    assert_eq!(
        sb.calls()
            .iter()
            .filter(|c| c.tool == "k3s-install")
            .count(),
        1
    );
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

// ---------------------------------------------------------------------------------------
// Bugs this harness found, each pinned by the test that showed it.

#[test]
fn joiner_logs_which_server_is_not_on_the_mesh_yet() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("peer-absent.cp-1", 1);
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        sb.log().contains("server cp-1 is not on the mesh yet"),
        "the wait does not say why\n{}",
        sb.report()
    );
}

/// The IP families (false: IPv4, true: IPv6) of a comma-separated address or CIDR list.
fn ip_families(list: &str) -> BTreeSet<bool> {
    list.split(',').map(|a| a.contains(':')).collect()
}

#[test]
fn dual_stack_cluster_gets_a_dual_stack_node_ip() {
    let mut sb = Sandbox::new(node("dual-stack.yaml", "ds-server"));
    let run = sb.run();
    assert_converged(&sb, &run);
    let cfg = merged_k3s_config(&sb);
    let cluster_cidr = cfg["cluster-cidr"].as_str().expect("cluster-cidr");
    let node_ip = cfg["node-ip"].as_str().expect("node-ip");
    assert_eq!(
        ip_families(node_ip),
        ip_families(cluster_cidr),
        "node-ip {node_ip} for cluster-cidr {cluster_cidr}"
    );
    assert_eq!(node_ip, format!("{OWN_IP},{OWN_IP6}"));
}

// ---------------------------------------------------------------------------------------
// Hostile values, run for real

/// Every file below `dir` named like the adversarial fixtures' canary.
fn canaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry
                .file_name()
                .to_string_lossy()
                .contains("meshboot-canary")
            {
                found.push(path.clone());
            }
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            }
        }
    }
    found
}

/// The accepted adversarial specs (`fixtures/adversarial/*.yaml`) put `$(...)`, backticks,
/// quotes, `;`, Unicode and very long strings into extra args and the control server URL,
/// each trying to create `meshboot-canary` in the working directory or /tmp. Every node
/// boots in the sandbox with a writable working directory and a visible /tmp: the canary
/// must not appear anywhere, the node must converge, and each hostile value must reach
/// config.yaml and `tailscale up` unchanged.
#[test]
fn hostile_values_are_inert_on_a_real_first_boot() {
    let specs = common::yaml_files(&fixtures_dir().join("adversarial"));
    assert!(specs.len() >= 2, "no accepted adversarial fixtures");
    let mut booted = 0;
    for spec in specs {
        let fixture = format!("adversarial/{}", spec.file_name().expect("file name"));
        let (checked, _) = compile(&fixtures_dir().join(&fixture), &Options::default());
        for plan in &checked.plan.nodes {
            let mut sb = Sandbox::new(node(&fixture, &plan.name));
            sb.cwd = "/var/tmp";
            if let Join::Via { init_server, .. } = &plan.join {
                sb.peer(init_server, INIT_IP);
            }
            let run = sb.run();
            assert_converged(&sb, &run);
            let found = canaries(sb.dir.path());
            assert!(
                found.is_empty(),
                "{fixture} {}: canary {found:?}\n{}",
                plan.name,
                sb.report()
            );

            // The values arrived intact: config.yaml holds every planned key and value.
            let cfg: serde_yaml::Value = serde_yaml::from_str(&sb.read_world("k3s-config.seen"))
                .expect("config.yaml parses");
            for (key, value) in &plan.k3s.config {
                let want = serde_yaml::to_value(value).expect("value");
                assert_eq!(
                    cfg.get(key.as_str()),
                    Some(&want),
                    "{fixture} {}: {key}",
                    plan.name
                );
            }
            let up = sb
                .calls()
                .into_iter()
                .find(|c| c.tool == "tailscale" && c.args.first().map(String::as_str) == Some("up"))
                .expect("tailscale up ran");
            assert_eq!(up.args, plan.tailscale.up_args, "{fixture} {}", plan.name);
            booted += 1;
        }
    }
    assert!(booted >= 6, "only {booted} adversarial nodes booted");
}
