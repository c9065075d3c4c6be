//! The real consumers judge our output: every node of every fixture goes through
//! cloud-init's schema check, ignition-validate, the real Ignition `files` stage,
//! shellcheck, `dash -n` and `bash -n`, `nft -c` and a real apply in a throwaway network
//! namespace, the real ufw in a sandbox, and the real apt-get refreshing Tailscale's
//! repository with the bootstrap's options. All of them come from Debian packages that
//! `.ci/run` installs; a missing tool fails the test with the package to install, it never
//! skips.
//!
//! Each tool is one [`Consumer`]: which inputs it judges (gathered from every fixture's
//! artifacts), how it is invoked on one, what counts as a pass besides exit status 0, how
//! many inputs the fixtures must hold (so that a run cannot be hollow), and a broken input
//! it must reject (so that a pass means the tool really checked). [`judge`] runs every
//! input; [`assert_rejects_broken`] runs the broken one.
//!
//! Sandboxes: bubblewrap with the host file system read-only, private /run and /tmp, a
//! new network namespace, and only a scratch directory writable. Ignition runs as real
//! root without a user namespace so that ownership can be checked.

use crate::firstboot::expect::{Firewall, Row};
use crate::support::{
    self, compile, delivered_files, good_fixtures, require, stdout_and_stderr, ufw_batch,
};
use meshboot::Options;
use meshboot::plan::{BOOTSTRAP_UNIT, Envelope, FIREWALL_UNIT, IgnitionVersion};
use meshboot::render::{Artifact, render_node_as, shell_quote};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Output};

const IGNITION_BIN: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

// ---------------------------------------------------------------------------------------
// The driver

/// One thing a consumer judges, taken from an artifact.
struct Input {
    /// What it is, for messages: the artifact and, for a delivered file, its path.
    what: String,
    contents: String,
    /// Its node is a server (from the expectation table, not from the plan).
    server: bool,
}

/// A real consumer of our output.
struct Consumer {
    /// The tool as messages name it.
    tool: &'static str,
    /// The programs it needs, with the Debian package of each.
    needs: &'static [(&'static str, &'static str)],
    /// Every input it judges, over all fixtures.
    inputs: fn() -> Vec<Input>,
    /// Runs the tool on `file`, which holds one input.
    invoke: fn(&Path) -> Output,
    /// What counts as a pass besides exit status 0: `Err` says what is wrong.
    passes: fn(&Input, &str) -> Result<(), String>,
    /// The fixtures hold at least this many inputs.
    at_least: usize,
    /// An input the tool must reject.
    broken: &'static str,
}

fn write_input(dir: &tempfile::TempDir, contents: &str) -> std::path::PathBuf {
    let p = dir.path().join("input");
    std::fs::write(&p, contents).expect("write input");
    p
}

/// Every input passes `c`.
fn judge(c: &Consumer) {
    for (program, package) in c.needs {
        require(program, package);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let inputs = (c.inputs)();
    assert!(
        inputs.len() >= c.at_least,
        "{}: only {} inputs, the fixtures hold at least {}",
        c.tool,
        inputs.len(),
        c.at_least
    );
    for input in &inputs {
        let o = (c.invoke)(&write_input(&dir, &input.contents));
        let out = stdout_and_stderr(&o);
        assert!(
            o.status.success(),
            "{} rejects {}:\n{out}",
            c.tool,
            input.what
        );
        if let Err(why) = (c.passes)(input, &out) {
            panic!("{}: {}: {why}:\n{out}", c.tool, input.what);
        }
    }
}

/// The tool rejects `c.broken`: a pass from it means something.
fn assert_rejects_broken(c: &Consumer) {
    for (program, package) in c.needs {
        require(program, package);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let o = (c.invoke)(&write_input(&dir, c.broken));
    assert!(
        !o.status.success(),
        "{} accepted a broken input:\n{}\n{}",
        c.tool,
        c.broken,
        stdout_and_stderr(&o)
    );
}

/// Exit status 0 is the whole verdict.
fn exit_status_only(_: &Input, _: &str) -> Result<(), String> {
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The inputs

/// Every artifact of every valid fixture, with its fixture's file name.
fn artifacts() -> Vec<(String, Artifact)> {
    let mut out = Vec::new();
    for f in good_fixtures() {
        let name = f.file_name().expect("file name").to_string();
        let (_, artifacts) = compile(&f, &Options::default());
        out.extend(artifacts.into_iter().map(|a| (name.clone(), a)));
    }
    out
}

fn input(fixture: &str, a: &Artifact, what: String, contents: String) -> Input {
    Input {
        what,
        contents,
        server: Row::of(fixture, &a.node).role.is_server(),
    }
}

fn envelopes(kind: Envelope) -> Vec<Input> {
    artifacts()
        .into_iter()
        .filter(|(_, a)| a.envelope == kind)
        .map(|(f, a)| input(&f, &a, a.file_name.clone(), a.contents.clone()))
        .collect()
}

fn cloud_configs() -> Vec<Input> {
    envelopes(Envelope::CloudInit)
}

/// Every cloud-init artifact of every fixture rendered with `--compress`.
fn compressed_cloud_configs() -> Vec<Input> {
    let opts = Options {
        compress: true,
        ..Options::default()
    };
    let mut v = Vec::new();
    for f in good_fixtures() {
        let name = f.file_name().expect("file name").to_string();
        let (_, artifacts) = compile(&f, &opts);
        for a in artifacts
            .iter()
            .filter(|a| a.envelope == Envelope::CloudInit)
        {
            assert!(
                a.contents.contains("encoding: gz+b64"),
                "{}: nothing compressed",
                a.file_name
            );
            v.push(input(
                &name,
                a,
                format!("{} (--compress)", a.file_name),
                a.contents.clone(),
            ));
        }
    }
    v
}

fn ignition_configs() -> Vec<Input> {
    envelopes(Envelope::Ignition)
}

/// flatcar.yaml rendered as Ignition 3.4.0, named "3.4.0-experimental": Debian's ignition
/// 2.14 knows spec 3.4.0 only by that name, and the schema we emit is the same.
fn ignition_3_4_configs() -> Vec<Input> {
    let opts = Options {
        ignition_version: IgnitionVersion::V3_4,
        ..Options::default()
    };
    let (_, artifacts) = compile(&support::fixtures_dir().join("flatcar.yaml"), &opts);
    artifacts
        .into_iter()
        .map(|a| {
            assert!(
                a.contents.contains("\"version\":\"3.4.0\""),
                "{}",
                a.file_name
            );
            let contents = a.contents.replacen(
                "\"version\":\"3.4.0\"",
                "\"version\":\"3.4.0-experimental\"",
                1,
            );
            input(
                "flatcar.yaml",
                &a,
                format!("{} (3.4)", a.file_name),
                contents,
            )
        })
        .collect()
}

/// Every delivered file that `keep` picks, decoded from the artifacts (what the consumer
/// would read or execute).
fn delivered_where(keep: fn(&str, &str) -> bool) -> Vec<Input> {
    let mut v = Vec::new();
    for (f, a) in artifacts() {
        for (path, _, contents) in delivered_files(&a) {
            if keep(&path, &contents) {
                v.push(input(&f, &a, format!("{} {path}", a.file_name), contents));
            }
        }
    }
    v
}

fn scripts() -> Vec<Input> {
    delivered_where(|_, contents| contents.starts_with("#!/bin/sh"))
}

fn rulesets() -> Vec<Input> {
    delivered_where(|path, _| path == meshboot::plan::NFTABLES_PATH)
}

/// The delivered file at `path` of artifact `a`.
fn file_of(a: &Artifact, path: &str) -> String {
    delivered_files(a)
        .into_iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, _, c)| c)
        .unwrap_or_else(|| panic!("{}: {path} is not delivered", a.file_name))
}

/// The firewall step of every ufw node's bootstrap script (ufw nodes as the expectation
/// table has them), followed by listings of the chains it fills.
fn ufw_rule_sets() -> Vec<Input> {
    let mut v = Vec::new();
    for (f, a) in artifacts() {
        if !matches!(Row::of(&f, &a.node).firewall, Firewall::Ufw(_)) {
            continue;
        }
        let test = format!(
            "{}iptables -S ufw-user-input\niptables -S ufw-user-forward\n",
            ufw_batch(&file_of(&a, meshboot::plan::BOOTSTRAP_PATH))
        );
        v.push(input(&f, &a, a.file_name.clone(), test));
    }
    v
}

// ---------------------------------------------------------------------------------------
// The consumers

/// `cloud-init schema` (FIELD.md "Real consumers"), warning-free.
const CLOUD_INIT_SCHEMA: Consumer = Consumer {
    tool: "cloud-init schema",
    needs: &[("cloud-init", "cloud-init")],
    inputs: cloud_configs,
    invoke: |f| {
        run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(f))
    },
    passes: |_, out| match out.contains("DEPRECATED") {
        true => Err("uses deprecated keys".into()),
        false => Ok(()),
    },
    at_least: 10,
    broken: "#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 600\n",
};

/// `cloud-init schema` on the `--compress` output (`encoding: gz+b64`).
const CLOUD_INIT_SCHEMA_COMPRESSED: Consumer = Consumer {
    tool: "cloud-init schema (--compress)",
    inputs: compressed_cloud_configs,
    broken: "#cloud-config\nwrite_files:\n  - path: /x\n    encoding: gz+b64\n    content: 1\n    permissions: 600\n",
    ..CLOUD_INIT_SCHEMA
};

/// `ignition-validate`, warning-free.
const IGNITION_VALIDATE: Consumer = Consumer {
    tool: "ignition-validate",
    needs: &[("ignition-validate", "ignition")],
    inputs: ignition_configs,
    invoke: |f| run(Command::new("ignition-validate").arg(f)),
    passes: |_, out| match out.contains("warning") {
        true => Err("warns".into()),
        false => Ok(()),
    },
    at_least: 9,
    broken: r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"rel","mode":420}]}}"#,
};

/// `ignition-validate` on the 3.4.0 output.
const IGNITION_VALIDATE_3_4: Consumer = Consumer {
    tool: "ignition-validate (3.4.0-experimental)",
    inputs: ignition_3_4_configs,
    at_least: 6,
    broken: r#"{"ignition":{"version":"3.4.0-experimental"},"storage":{"files":[{"path":"rel","mode":420}]}}"#,
    ..IGNITION_VALIDATE
};

/// shellcheck at warning level, as POSIX sh.
const SHELLCHECK: Consumer = Consumer {
    tool: "shellcheck",
    needs: &[("shellcheck", "shellcheck")],
    inputs: scripts,
    invoke: |f| {
        run(Command::new("shellcheck")
            .args(["-s", "sh", "-S", "warning"])
            .arg(f))
    },
    passes: exit_status_only,
    at_least: 19,
    // `==` in `[` is a bashism dash rejects at run time (SC3014).
    broken: "#!/bin/sh\nif [ \"$1\" == x ]; then echo y; fi\n",
};

/// dash, the /bin/sh of Debian and Ubuntu, parses every script.
const DASH_N: Consumer = Consumer {
    tool: "dash -n",
    needs: &[("dash", "dash")],
    inputs: scripts,
    invoke: |f| run(Command::new("dash").arg("-n").arg(f)),
    passes: |input, _| match input.contents.contains("set -x") {
        true => Err("traces commands (set -x)".into()),
        false => Ok(()),
    },
    at_least: 19,
    broken: "#!/bin/sh\nif true; then echo\n",
};

/// bash (the /bin/sh of Flatcar and Fedora CoreOS) parses every script.
const BASH_N: Consumer = Consumer {
    tool: "bash -n",
    needs: &[("bash", "bash")],
    invoke: |f| run(Command::new("bash").arg("-n").arg(f)),
    ..DASH_N
};

/// `nft -c` accepts every ruleset, checked in a throwaway network namespace.
const NFT_CHECK: Consumer = Consumer {
    tool: "nft -c",
    needs: &[("nft", "nftables"), ("unshare", "util-linux")],
    inputs: rulesets,
    invoke: |f| {
        run(Command::new("unshare")
            .args(["-n", "nft", "-c", "-f"])
            .arg(f))
    },
    passes: |input, _| match input.contents.contains("flush ruleset") {
        true => Err("flushes the whole ruleset".into()),
        false => Ok(()),
    },
    at_least: 11,
    broken: "table inet meshboot { chain input { acept } }\n",
};

/// Every ruleset applied for real in a throwaway namespace, twice (a re-run replaces the
/// table), next to another table that must survive; then the listing must show one
/// meshboot table with a default-deny chain.
const NFT_APPLY: Consumer = Consumer {
    tool: "nft -f (applied twice)",
    invoke: |f| {
        let f = f.display();
        let script =
            format!("set -e; nft add table inet other; nft -f {f}; nft -f {f}; nft list ruleset");
        run(Command::new("unshare").args(["-n", "sh", "-c", &script]))
    },
    passes: |_, listing| {
        if !listing.contains("table inet other") {
            return Err("another table was removed".into());
        }
        if listing.matches("table inet meshboot").count() != 1 {
            return Err("not exactly one table inet meshboot".into());
        }
        if !listing.contains("policy drop") {
            return Err("no default-deny chain".into());
        }
        Ok(())
    },
    ..NFT_CHECK
};

/// The real ufw (with iptables) runs every ufw node's firewall step in a sandbox; the chains it
/// fills must open 41641/udp, the kubelet on tailscale0, 6443 on tailscale0 on servers
/// only, route pod traffic, and drop pods' metadata requests before ufw's own forward
/// accepts. (K3s's chains accept before ufw's: what holds whatever they accept is the nft
/// table, `ufw_nodes_hold_their_forward_side_under_kube_routers_chains`.)
const UFW: Consumer = Consumer {
    tool: "ufw",
    needs: &[
        ("bwrap", "bubblewrap"),
        ("ufw", "ufw"),
        ("iptables", "iptables"),
    ],
    inputs: ufw_rule_sets,
    invoke: ufw_sandbox,
    passes: |input, out| {
        let has = |rule: &str| out.contains(rule);
        if !has("--dport 41641 -j ACCEPT") {
            return Err("41641/udp not open".into());
        }
        if !has("-i tailscale0 -p tcp -m tcp --dport 10250 -j ACCEPT") {
            return Err("the kubelet is not open on tailscale0".into());
        }
        if input.server && !has("-i tailscale0 -p tcp -m tcp --dport 6443 -j ACCEPT") {
            return Err("a server does not open 6443 on tailscale0".into());
        }
        if !input.server && has("--dport 6443") {
            return Err("an agent opens 6443".into());
        }
        if !has("-A ufw-user-forward -i cni0 -j ACCEPT") {
            return Err("pod traffic is not routed".into());
        }
        let first_forward = out.lines().find(|l| l.starts_with("-A ufw-user-forward"));
        if !first_forward
            .is_some_and(|l| l.contains("-d 169.254.169.254/32") && l.ends_with("-j DROP"))
        {
            return Err("the metadata block is not the first forward rule".into());
        }
        Ok(())
    },
    at_least: 7,
    broken: "ufw allow 99999/tcp\n",
};

/// Scratch copies of ufw's configuration in `p` (etc-ufw, default-ufw, lib-ufw), for a
/// sandbox to bind over the host's.
fn copy_ufw_config(p: &Path) {
    for (from, to) in [
        ("/etc/ufw", "etc-ufw"),
        ("/etc/default/ufw", "default-ufw"),
        ("/lib/ufw", "lib-ufw"),
    ] {
        let o = run(Command::new("cp").args(["-a", from]).arg(p.join(to)));
        assert!(
            o.status.success(),
            "copying {from}: {}",
            stdout_and_stderr(&o)
        );
    }
}

/// Runs the script in `file` with the real ufw in a sandbox: new network namespace,
/// scratch copies of ufw's configuration, host read-only.
fn ufw_sandbox(file: &Path) -> Output {
    let w = tempfile::tempdir().unwrap();
    let p = w.path();
    copy_ufw_config(p);
    run(Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/tmp",
        ])
        .arg("--bind")
        .arg(p.join("etc-ufw"))
        .arg("/etc/ufw")
        .arg("--bind")
        .arg(p.join("default-ufw"))
        .arg("/etc/default/ufw")
        .arg("--bind")
        .arg(p.join("lib-ufw"))
        .arg("/lib/ufw")
        .arg("--ro-bind")
        .arg(file)
        .arg("/run/script.sh")
        .args([
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
        ])
        .args([
            "--cap-add",
            "CAP_NET_ADMIN,CAP_NET_RAW,CAP_DAC_OVERRIDE,CAP_CHOWN,CAP_FOWNER",
        ])
        .args([
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/sbin:/usr/bin:/sbin:/bin",
            "--setenv",
            "LANG",
            "C.UTF-8",
        ])
        .args(["/bin/sh", "-e", "/run/script.sh"]))
}

// ---------------------------------------------------------------------------------------
// One test per consumer and direction

#[test]
fn cloud_init_schema_accepts_every_cloud_config() {
    judge(&CLOUD_INIT_SCHEMA);
}

#[test]
fn cloud_init_schema_rejects_a_broken_config() {
    assert_rejects_broken(&CLOUD_INIT_SCHEMA);
}

#[test]
fn cloud_init_schema_accepts_every_compressed_cloud_config() {
    judge(&CLOUD_INIT_SCHEMA_COMPRESSED);
    assert_rejects_broken(&CLOUD_INIT_SCHEMA_COMPRESSED);
}

/// cloud-init's own `write_files` (cc_write_files.py from the Debian package, run by the
/// system Python that cloud-init runs under, with the owner its `handle` passes: the Debian
/// distro's `default_owner`) lays every cloud-config, plain and `--compress`, down into a
/// scratch root: each file with the bytes, mode and owner (root) the uncompressed build
/// delivers, where entries leave cloud-init's defaults out (no `owner`, no `permissions` for
/// 0644).
#[test]
fn cloud_init_write_files_lays_down_every_file_as_delivered() {
    const PYTHON: &str = "/usr/bin/python3";
    require(PYTHON, "python3");
    require("cloud-init", "cloud-init");
    // write_files(name, files, owner) writes each path with its encoding and permissions
    // (cloud-init 22.4, cloudinit/config/cc_write_files.py); the paths are moved under root.
    const WRITE: &str = "import sys, yaml\nfrom cloudinit.config import cc_write_files\nfrom cloudinit.distros.debian import Distro\nroot = sys.argv[2]\nfiles = yaml.safe_load(open(sys.argv[1]))['write_files']\nfor f in files:\n    f['path'] = root + f['path']\ncc_write_files.write_files('write_files', files, Distro.default_owner)\n";
    let compressed = Options {
        compress: true,
        ..Options::default()
    };
    let mut checked_files = 0;
    for f in good_fixtures() {
        let (_, plain) = compile(&f, &Options::default());
        let (_, packed) = compile(&f, &compressed);
        for (p, c) in plain
            .iter()
            .zip(&packed)
            .filter(|(p, _)| p.envelope == Envelope::CloudInit)
        {
            for form in [p, c] {
                let dir = tempfile::tempdir().unwrap();
                let config = dir.path().join("user-data");
                std::fs::write(&config, &form.contents).unwrap();
                let root = dir.path().join("root");
                let o = run(Command::new(PYTHON)
                    .args(["-c", WRITE])
                    .arg(&config)
                    .arg(&root));
                assert!(
                    o.status.success(),
                    "{}: {}",
                    form.file_name,
                    stdout_and_stderr(&o)
                );
                for (path, mode, contents) in delivered_files(p) {
                    let written = root.join(path.trim_start_matches('/'));
                    let bytes = std::fs::read(&written)
                        .unwrap_or_else(|e| panic!("{} {path}: {e}", form.file_name));
                    assert_eq!(bytes, contents.as_bytes(), "{} {path}", form.file_name);
                    let meta = std::fs::metadata(&written).unwrap();
                    assert_eq!(
                        (meta.permissions().mode() & 0o7777, meta.uid(), meta.gid()),
                        (mode, 0, 0),
                        "{} {path}: mode and owner",
                        form.file_name
                    );
                    checked_files += 1;
                }
            }
        }
    }
    assert!(checked_files >= 200, "{checked_files}");
}

#[test]
fn ignition_validate_accepts_every_ignition_config() {
    judge(&IGNITION_VALIDATE);
}

#[test]
fn ignition_validate_rejects_a_relative_path() {
    assert_rejects_broken(&IGNITION_VALIDATE);
}

#[test]
fn ignition_validate_accepts_the_3_4_output() {
    judge(&IGNITION_VALIDATE_3_4);
}

#[test]
fn ignition_validate_rejects_a_broken_3_4_config() {
    assert_rejects_broken(&IGNITION_VALIDATE_3_4);
}

#[test]
fn shellcheck_and_sh_n_pass_every_script() {
    for c in [&SHELLCHECK, &DASH_N, &BASH_N] {
        judge(c);
    }
}

#[test]
fn shellcheck_and_sh_n_reject_broken_scripts() {
    for c in [&SHELLCHECK, &DASH_N, &BASH_N] {
        assert_rejects_broken(c);
    }
}

#[test]
fn nft_accepts_every_ruleset_and_replaces_only_its_own_table() {
    judge(&NFT_CHECK);
    judge(&NFT_APPLY);
}

#[test]
fn nft_rejects_a_broken_ruleset() {
    assert_rejects_broken(&NFT_CHECK);
    assert_rejects_broken(&NFT_APPLY);
}

#[test]
fn ufw_accepts_every_rule_set() {
    judge(&UFW);
}

#[test]
fn ufw_rejects_a_bad_port() {
    assert_rejects_broken(&UFW);
}

/// What ufw leaves behind, printed: its status and the rules it says were added, the
/// netfilter rules it loaded (iptables-save and ip6tables-save, without their dated
/// comments, packet counters zeroed), and its own files: the user rules, ufw.conf
/// (ENABLED) and the default policies.
const UFW_STATE: &str = r#"echo '--- ufw status verbose'; ufw status verbose
echo '--- ufw status numbered'; ufw status numbered
echo '--- ufw show added'; ufw show added
echo '--- iptables-save'; iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'
echo '--- ip6tables-save'; ip6tables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]/[0:0]/'
for f in /etc/ufw/user.rules /etc/ufw/user6.rules /etc/ufw/ufw.conf /etc/default/ufw; do echo "--- $f"; cat "$f"; done
"#;

/// Runs `script` with the real ufw in a fresh sandbox ([`ufw_sandbox`]) and returns its
/// standard output.
fn ufw_run(script: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = ufw_sandbox(&write_input(&dir, script));
    assert!(o.status.success(), "{script}\n{}", stdout_and_stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every ufw node (as the expectation table has them): its artifact, its firewall step
/// ([`ufw_batch`]), and the commands the bootstrap ran before the batch, one `ufw` each
/// (the plan's `ufw_commands`, then `ufw --force enable`): the oracle.
fn ufw_nodes() -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for f in good_fixtures() {
        let fixture = f.file_name().expect("file name").to_string();
        let (checked, artifacts) = compile(&f, &Options::default());
        for a in artifacts {
            if !matches!(Row::of(&fixture, &a.node).firewall, Firewall::Ufw(_)) {
                continue;
            }
            let plan = checked
                .plan
                .nodes
                .iter()
                .find(|n| n.name == a.node)
                .expect("the node's plan");
            let mut oracle = String::new();
            for words in meshboot::firewall::ufw_commands(&plan.firewall)
                .iter()
                .chain(&[vec!["--force".to_string(), "enable".to_string()]])
            {
                let quoted: Vec<String> = words.iter().map(|w| shell_quote(w)).collect();
                oracle.push_str(&format!("ufw {} >&2\n", quoted.join(" ")));
            }
            let batch = ufw_batch(&file_of(&a, meshboot::plan::BOOTSTRAP_PATH));
            v.push((a.file_name, batch, oracle));
        }
    }
    v
}

/// The firewall step runs ufw's own frontend over the whole command list in one process
/// (`ufw_batch` in the bootstrap) where it ran `ufw` once per command. For every ufw node of
/// every fixture, the real ufw (with iptables, in a network namespace of its own, on
/// scratch copies of its files) leaves exactly what the per-command `ufw` runs leave:
/// `ufw status verbose` and `numbered`, `ufw show added`, the iptables-save and
/// ip6tables-save dumps, and ufw's own files ([`UFW_STATE`]). Running the batch again on
/// the now enabled ufw (a bootstrap re-run after a crash) changes none of it. The control:
/// the batch without one of its commands leaves something else, so the comparison can fail.
/// What it does not prove: ufw releases other than this machine's (0.36.2, Debian 12; the
/// frontend calls are the same in 0.36.1 of Ubuntu 22.04, read from its source), a host
/// whose ufw was enabled before the bootstrap ran (then ufw applies each rule as it comes,
/// the same as `ufw` per command does), or iptables-legacy.
#[test]
fn ufw_batch_leaves_what_one_ufw_per_command_leaves() {
    for (program, package) in UFW.needs {
        require(program, package);
    }
    let nodes = ufw_nodes();
    assert!(nodes.len() >= UFW.at_least, "{} ufw nodes", nodes.len());
    // Nodes with the same command list (the servers of one cluster) are run once.
    let mut lists: BTreeMap<String, (Vec<String>, String)> = BTreeMap::new();
    for (what, batch, oracle) in nodes {
        lists
            .entry(batch)
            .or_insert((Vec::new(), oracle))
            .0
            .push(what);
    }
    assert!(lists.len() >= 4, "{} distinct rule sets", lists.len());
    let mut control_done = false;
    for (batch, (nodes, oracle)) in &lists {
        let again = format!("{batch}{UFW_STATE}echo '=== again'\n{batch}{UFW_STATE}");
        let (want, got) = std::thread::scope(|s| {
            let want = s.spawn(|| ufw_run(&format!("{oracle}{UFW_STATE}")));
            let got = ufw_run(&again);
            (want.join().expect("oracle"), got)
        });
        let (first, second) = got.split_once("=== again\n").expect("two states");
        assert!(want.contains("Status: active"), "{nodes:?}:\n{want}");
        assert_eq!(
            first, want,
            "{nodes:?}: the batch leaves other rules than ufw per command"
        );
        assert_eq!(
            first, second,
            "{nodes:?}: running the batch again changed the rules"
        );
        if !control_done {
            let dropped = batch.replacen(" 'allow 41641/udp'", "", 1);
            assert_ne!(&dropped, batch, "{nodes:?}: no 41641/udp rule to drop");
            let state = ufw_run(&format!("{dropped}{UFW_STATE}"));
            assert_ne!(
                state, want,
                "without a rule the batch left the same state: the comparison proves nothing"
            );
            control_done = true;
        }
    }
}

/// A bad command in the middle of the batch stops it with ufw's error and a non-zero exit
/// status, before ufw is enabled (the firewall step fails closed; `set -e` stops the
/// bootstrap there), and the commands after it are not applied.
#[test]
fn ufw_batch_stops_at_a_bad_command() {
    for (program, package) in UFW.needs {
        require(program, package);
    }
    let script = delivered_file("cluster.yaml", "cp-1", meshboot::plan::BOOTSTRAP_PATH);
    let batch = ufw_batch(&script).replacen(
        " 'allow 41641/udp'",
        " 'allow 41641/udp' 'allow 99999/tcp'",
        1,
    );
    assert!(batch.contains("99999"), "{batch}");
    let dir = tempfile::tempdir().expect("tempdir");
    let o = ufw_sandbox(&write_input(&dir, &format!("{batch}echo reached\n")));
    let out = stdout_and_stderr(&o);
    assert!(!o.status.success() && !out.contains("reached"), "{out}");
    assert!(out.contains("ERROR: Bad port"), "{out}");
    assert!(!out.contains("Firewall is active"), "{out}");
    let state = ufw_run(&format!("{batch}\n{UFW_STATE}").replacen(" >&2\n", " >&2 || true\n", 1));
    assert!(state.contains("Status: inactive"), "{state}");
    assert!(
        state.contains("41641") && !state.contains("10250"),
        "{state}"
    );
}

// ---------------------------------------------------------------------------------------
// The real Ignition files stage (not a pass/fail tool: it lays files down to compare)

/// Runs the real Ignition fetch-offline + files stages for `config` into a fresh root.
fn ignition_files_stage(config: &str) -> tempfile::TempDir {
    let bwrap = require("bwrap", "bubblewrap");
    require(IGNITION_BIN, "ignition");
    let root = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/selinux")).unwrap();
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(r.join("etc/group"), "root:x:0:\n").unwrap();
    // Debian's build always relabels; a disabled policy and a no-op setfiles satisfy it.
    std::fs::write(
        r.join("etc/selinux/config"),
        "SELINUX=disabled\nSELINUXTYPE=targeted\n",
    )
    .unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("bin")).unwrap();
    std::fs::write(w.join("bin/setfiles"), "#!/bin/sh\ncat >/dev/null\n").unwrap();
    std::fs::set_permissions(
        w.join("bin/setfiles"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(w.join("config.ign"), config).unwrap();
    for stage in ["fetch-offline", "files"] {
        let o = run(Command::new(&bwrap)
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args(["--tmpfs", "/run", "--tmpfs", "/tmp", "--tmpfs", "/mnt"])
            .arg("--bind")
            .arg(r)
            .arg("/mnt/sysroot")
            .arg("--bind")
            .arg(w)
            .arg("/mnt/work")
            .args([
                "--unshare-net",
                "--unshare-pid",
                "--unshare-ipc",
                "--unshare-uts",
                "--die-with-parent",
            ])
            .args([
                "--cap-add",
                "CAP_CHOWN,CAP_FOWNER,CAP_DAC_OVERRIDE,CAP_SYS_CHROOT",
            ])
            .args([
                "--clearenv",
                "--setenv",
                "PATH",
                "/mnt/work/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ])
            .args([
                "--setenv",
                "IGNITION_CONFIG_FILE",
                "/mnt/work/config.ign",
                "--setenv",
                "TMPDIR",
                "/mnt/work",
            ])
            .args([
                IGNITION_BIN,
                "-platform",
                "file",
                "-stage",
                stage,
                "-root",
                "/mnt/sysroot",
                "-log-to-stdout",
            ])
            .args([
                "-config-cache",
                "/mnt/work/ignition.json",
                "-state-file",
                "/mnt/work/state",
                "-neednet",
                "/mnt/work/neednet",
            ]));
        assert!(
            o.status.success(),
            "ignition stage {stage} failed:\n{}",
            stdout_and_stderr(&o)
        );
    }
    root
}

/// (mode, uid, gid, contents) of every regular file Ignition laid down for us.
fn laid_down(
    root: &std::path::Path,
    expected: &[(String, u32, String)],
) -> BTreeMap<String, (u32, u32, u32, String)> {
    expected
        .iter()
        .map(|(path, _, _)| {
            let p = root.join(path.trim_start_matches('/'));
            let meta = std::fs::metadata(&p)
                .unwrap_or_else(|_| panic!("Ignition did not lay down {path}"));
            let contents = std::fs::read_to_string(&p).unwrap();
            (
                path.clone(),
                (
                    meta.permissions().mode() & 0o7777,
                    meta.uid(),
                    meta.gid(),
                    contents,
                ),
            )
        })
        .collect()
}

/// The units an Ignition config enables (`systemd.units[].enabled: true`), sorted.
fn enabled_units(config: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(config).expect("ignition parses");
    let mut v: Vec<String> = doc["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["enabled"] == true)
        .map(|u| u["name"].as_str().expect("unit name").to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn ignition_files_stage_lays_down_what_cloud_init_would() {
    for fixture in good_fixtures() {
        let (checked, _) = compile(&fixture, &Options::default());
        for node in &checked.plan.nodes {
            // Render the same node in both envelopes: what Ignition really lays down must
            // be what cloud-init's write_files would, plus the units Ignition enables.
            // Compressed (`--compress`: gzip data URLs), the real Ignition lays down the
            // same tree as uncompressed cloud-init would.
            let render = |envelope, compress| {
                render_node_as(
                    &checked.plan,
                    node,
                    &checked.secrets,
                    envelope,
                    IgnitionVersion::V3_3,
                    compress,
                )
                .unwrap()
            };
            let ci = render(Envelope::CloudInit, false);
            for compress in [false, true] {
                let ign = render(Envelope::Ignition, compress);
                if compress {
                    assert!(
                        ign.contents.contains("\"compression\":\"gzip\""),
                        "{fixture} {}: nothing compressed",
                        node.name
                    );
                }
                let root = ignition_files_stage(&ign.contents);

                let cloud_init_files = delivered_files(&ci);
                let got = laid_down(root.path(), &cloud_init_files);
                for (path, mode, contents) in &cloud_init_files {
                    let (m, uid, gid, c) = &got[path];
                    assert_eq!(
                        (m, uid, gid),
                        (mode, &0, &0),
                        "{fixture} {}: {path} mode/owner",
                        node.name
                    );
                    assert_eq!(c, contents, "{fixture} {}: {path} contents", node.name);
                }
                // Both envelopes deliver exactly the same files.
                let ign_paths: Vec<String> = delivered_files(&ign)
                    .into_iter()
                    .map(|(p, _, _)| p)
                    .collect();
                let ci_paths: Vec<String> =
                    cloud_init_files.iter().map(|(p, _, _)| p.clone()).collect();
                assert_eq!(ign_paths, ci_paths, "{fixture} {}", node.name);
                let unit = root
                    .path()
                    .join("etc/systemd/system/meshboot-bootstrap.service");
                assert_eq!(
                    std::fs::metadata(&unit).unwrap().permissions().mode() & 0o777,
                    0o644
                );

                // Enabled units: the bootstrap's, and the firewall's, which loads meshboot's
                // nftables table at every boot on every node, ufw nodes included (its forward
                // chain; every fixture node has a host firewall: the table's `Firewall` has
                // no `none`); the config enables exactly those, and Ignition records them in
                // its preset file.
                let mut want = vec![BOOTSTRAP_UNIT.to_string(), FIREWALL_UNIT.to_string()];
                want.sort();
                assert_eq!(
                    enabled_units(&ign.contents),
                    want,
                    "{fixture} {}: units the config enables",
                    node.name
                );
                let preset = std::fs::read_to_string(
                    root.path()
                        .join("etc/systemd/system-preset/20-ignition.preset"),
                )
                .expect("Ignition wrote no preset file");
                let mut enabled: Vec<&str> = preset
                    .lines()
                    .filter_map(|l| l.strip_prefix("enable "))
                    .collect();
                enabled.sort();
                assert_eq!(enabled, want, "{fixture} {}: enabled units", node.name);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The real systemd-networkd and the .network file Flatcar nodes get

/// Flatcar's catch-all network, as flatcar/init ships it (systemd/network/zz-default.network):
/// every link that is not loopback, dummy, bridge, tunnel, vxlan, wireguard or veth gets
/// DHCP. A tun device such as tailscale0 is none of those.
const FLATCAR_DEFAULT_NETWORK: &str = "[Network]\nDHCP=yes\nKeepConfiguration=dhcp-on-stop\nIPv6AcceptRA=true\n\n[Match]\nName=*\nType=!loopback dummy bridge tunnel vxlan wireguard\nDriver=!veth\n\n[DHCP]\nUseMTU=true\nUseDomains=true\n\n[DHCPv4]\nRoutesToDNS=false\n";

/// Runs the real systemd-networkd in a throwaway network and mount namespace over the
/// `.network` files in `dir` (as /etc/systemd/network; the host's own network files hidden),
/// with a tun device named tailscale0, as tailscaled creates it. Returns tailscale0's
/// ADMIN_STATE from networkd's state file (`unmanaged`, `configuring`, ...). /sys is
/// mounted read-only, which tells networkd that no udev will announce the link.
fn networkd_state_of_tailscale0(dir: &Path) -> String {
    require("/lib/systemd/systemd-networkd", "systemd");
    require("ip", "iproute2");
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp
chown -R systemd-network:systemd-network /run/systemd/netif
mount -t sysfs -o ro sysfs /sys
mount --bind {dir} /etc/systemd/network
mount -t tmpfs tmpfs /lib/systemd/network
ip tuntap add dev tailscale0 mode tun
/lib/systemd/systemd-networkd >/dev/null 2>&1 &
networkd=$!
index=$(cat /sys/class/net/tailscale0/ifindex)
state=
n=0
while [ "$n" -lt 200 ]; do
  state=$(sed -n 's/^ADMIN_STATE=//p' /run/systemd/netif/links/"$index" 2>/dev/null || true)
  case $state in '' | pending) ;; *) break ;; esac
  sleep 0.05
  n=$((n + 1))
done
kill "$networkd"
echo "tailscale0=$state"
"#,
        dir = dir.display()
    );
    let o = run(Command::new("timeout").args([
        "60", "unshare", "--net", "--mount", "--fork", "sh", "-c", &script,
    ]));
    let out = stdout_and_stderr(&o);
    assert!(o.status.success(), "networkd run failed:\n{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("tailscale0="))
        .unwrap_or_else(|| panic!("no state for tailscale0:\n{out}"))
        .to_string()
}

/// Every Flatcar node's `.network` file makes the real systemd-networkd leave tailscale0
/// unmanaged next to Flatcar's catch-all network; without it, the catch-all takes the link
/// (so the check can fail). What it does not prove: networkd on a real Flatcar release.
#[test]
fn systemd_networkd_leaves_tailscale0_to_tailscaled_on_flatcar() {
    let mut checked = 0;
    for (fixture, a) in artifacts() {
        let network: Vec<(String, String)> = delivered_files(&a)
            .into_iter()
            .filter(|(p, _, _)| p.starts_with("/etc/systemd/network/"))
            .map(|(p, _, c)| (p, c))
            .collect();
        let flatcar = Row::of(&fixture, &a.node).os == "flatcar";
        assert_eq!(
            !network.is_empty(),
            flatcar,
            "{}: .network files on a {} node: {network:?}",
            a.file_name,
            Row::of(&fixture, &a.node).os
        );
        if !flatcar {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("zz-default.network"),
            FLATCAR_DEFAULT_NETWORK,
        )
        .expect("catch-all");
        for (path, contents) in &network {
            let name = path.rsplit('/').next().expect("file name");
            std::fs::write(dir.path().join(name), contents).expect("network file");
        }
        assert_eq!(
            networkd_state_of_tailscale0(dir.path()),
            "unmanaged",
            "{}",
            a.file_name
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} Flatcar nodes");
    let bare = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        bare.path().join("zz-default.network"),
        FLATCAR_DEFAULT_NETWORK,
    )
    .expect("catch-all");
    assert_ne!(
        networkd_state_of_tailscale0(bare.path()),
        "unmanaged",
        "without meshboot's file the catch-all must take tailscale0, or this test proves nothing"
    );
}

// ---------------------------------------------------------------------------------------
// A real packet through a node's nftables ruleset

/// One public port a node opens, sent to a pod on another port (as a servicelb or hostPort
/// DNAT does), and one port it does not open.
struct Forwarded {
    fixture: &'static str,
    node: &'static str,
    /// An address in the fixture's pod network.
    pod: &'static str,
    public: u16,
    target: u16,
    closed: u16,
}

/// Written from the fixtures: cluster.yaml's workers open 80 and 443 (pods 10.42.0.0/16),
/// nftables.yaml's agent opens 8000-8100 (pods 10.52.0.0/16); 9999 is open on neither.
const FORWARDED: &[Forwarded] = &[
    Forwarded {
        fixture: "cluster.yaml",
        node: "worker-1",
        pod: "10.42.3.5",
        public: 80,
        target: 8080,
        closed: 9999,
    },
    Forwarded {
        fixture: "nftables.yaml",
        node: "nft-agent",
        pod: "10.52.1.7",
        public: 8050,
        target: 3000,
        closed: 9999,
    },
];

/// Sends a TCP connection from a client namespace to `public` and `closed` on a node
/// namespace that loads `ruleset` and DNATs both ports to `pod:target` in a third namespace
/// (as kube-proxy or the portmap plugin would, in a table of their own). Prints
/// `PORT=pod` when the pod answered and `PORT=dropped` when it did not.
fn forward_through(ruleset: &str, f: &Forwarded) -> String {
    require("ip", "iproute2");
    require("python3", "python3");
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("firewall.nft");
    std::fs::write(&rules, ruleset).expect("ruleset");
    let gateway = f
        .pod
        .rsplit_once('.')
        .map(|(net, _)| format!("{net}.1"))
        .expect("IPv4");
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run
ip netns add client
ip netns add pod
ip link set lo up
ip link add c0 type veth peer name c1 netns client
ip link add p0 type veth peer name p1 netns pod
ip addr add 203.0.113.1/24 dev c0
ip link set c0 up
ip addr add {gateway}/24 dev p0
ip link set p0 up
ip netns exec client sh -c 'ip link set lo up; ip addr add 203.0.113.2/24 dev c1; ip link set c1 up; ip route add default via 203.0.113.1'
ip netns exec pod sh -c 'ip link set lo up; ip addr add {pod}/24 dev p1; ip link set p1 up; ip route add default via {gateway}'
echo 1 > /proc/sys/net/ipv4/ip_forward
nft -f {rules}
nft add table ip portmap
nft add chain ip portmap prerouting '{{ type nat hook prerouting priority dstnat; }}'
nft add rule ip portmap prerouting tcp dport {public} dnat to {pod}:{target}
nft add rule ip portmap prerouting tcp dport {closed} dnat to {pod}:{target}
ip netns exec pod python3 -c '
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {target}))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(b"pod")
    c.close()
' &
server=$!
n=0
until ip netns exec pod python3 -c 'import socket; socket.create_connection(("127.0.0.1", {target}), timeout=1).close()' 2>/dev/null; do
  n=$((n + 1)); [ "$n" -lt 100 ] || {{ echo "the pod never listened"; exit 1; }}
  sleep 0.05
done
for port in {public} {closed}; do
  ip netns exec client python3 -c '
import socket, sys
try:
    s = socket.create_connection(("203.0.113.1", int(sys.argv[1])), timeout=1)
    print(sys.argv[1] + "=" + s.recv(8).decode())
except OSError:
    print(sys.argv[1] + "=dropped")
' "$port"
done
kill "$server"
"#,
        gateway = gateway,
        pod = f.pod,
        rules = rules.display(),
        public = f.public,
        target = f.target,
        closed = f.closed,
    );
    let o = run(Command::new("timeout").args([
        "60", "unshare", "--net", "--mount", "--fork", "sh", "-c", &script,
    ]));
    let out = stdout_and_stderr(&o);
    assert!(o.status.success(), "the packet test did not run:\n{out}");
    out
}

/// A real TCP connection to a node's public port, DNATed to a pod on another port, passes
/// the node's real nftables ruleset, and one to a port the node does not open is dropped.
/// The forward chain matches the port the client sent to (`ct original proto-dst`): with the
/// pod's port after DNAT (`tcp dport`, the old rule, put back here), the connection is
/// dropped, so the test can fail. What it does not prove: kube-proxy's or servicelb's own
/// rules, which a stand-in DNAT rule replaces.
#[test]
fn nft_forwards_a_public_port_dnatted_to_another_pod_port() {
    let all = artifacts();
    for f in FORWARDED {
        let a = all
            .iter()
            .find(|(fixture, a)| fixture == f.fixture && a.node == f.node)
            .map(|(_, a)| a)
            .unwrap_or_else(|| panic!("{} renders no {}", f.fixture, f.node));
        let ruleset = delivered_files(a)
            .into_iter()
            .find(|(p, _, _)| p == meshboot::plan::NFTABLES_PATH)
            .map(|(_, _, c)| c)
            .unwrap_or_else(|| panic!("{}: no nftables ruleset", a.file_name));
        let out = forward_through(&ruleset, f);
        assert!(
            out.contains(&format!("{}=pod", f.public)),
            "{}: public port {} did not reach the pod:\n{out}\n{ruleset}",
            a.file_name,
            f.public
        );
        assert!(
            out.contains(&format!("{}=dropped", f.closed)),
            "{}: port {} is not public but reached the pod:\n{out}",
            a.file_name,
            f.closed
        );
        let post_dnat = ruleset.replace("meta l4proto tcp ct original proto-dst", "tcp dport");
        assert_ne!(post_dnat, ruleset);
        let out = forward_through(&post_dnat, f);
        assert!(
            out.contains(&format!("{}=dropped", f.public)),
            "matching the pod's port after DNAT let the connection through, so this test proves nothing:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// A ufw node under K3s's own iptables chains

/// K3s's network policy controller (kube-router's, embedded: k3s-io/k3s
/// pkg/agent/netpol/netpol.go runs `netpol.NewNetworkPolicyController` with iptables
/// handlers, on by default) for one local pod, `$POD`, that no NetworkPolicy selects: the
/// rules cloudnativelabs/kube-router (@7c2c277) pkg/controllers/netpol writes, in the order
/// it leaves them. npc_iptables.go `ensureTopLevelChains`: a jump to KUBE-ROUTER-INPUT,
/// -FORWARD and -OUTPUT at position 1 of INPUT, FORWARD and OUTPUT, then RETURNs in
/// KUBE-ROUTER-INPUT for the service range and the NodePort range;
/// `ensureDefaultNetworkPolicyChain` (mark 0x10000) and `ensureCommonPolicyChain` (invalid
/// dropped, established accepted); pod.go `setupPodNetpolRules` (its rules are inserted at
/// position 1 in reverse: common rules, from the local node, default egress, default
/// ingress), `syncPodFirewallChains` (reject unmarked, clear 0x10000, set 0x20000),
/// `interceptPodInboundTraffic` (`-d $POD` from FORWARD and OUTPUT) and
/// `interceptPodOutboundTraffic` (`-s $POD` from INPUT, FORWARD and OUTPUT);
/// `ensureTailChainPosition` and `ensureExplicitAccept`: each top-level chain ends with
/// `-m mark --mark 0x20000/0x20000 -j ACCEPT`. Left out, as they change no verdict here:
/// the UUID suffixes of the comments, the NFLOG rule before the REJECT, the ICMP accepts of
/// the common chain, and the `--physdev-is-bridged` jumps (the test's pod is routed, not
/// bridged).
const KUBE_ROUTER_CHAINS: &str = r#"iptables -N KUBE-ROUTER-INPUT
iptables -N KUBE-ROUTER-FORWARD
iptables -N KUBE-ROUTER-OUTPUT
iptables -I INPUT 1 -m comment --comment "kube-router netpol" -j KUBE-ROUTER-INPUT
iptables -I FORWARD 1 -m comment --comment "kube-router netpol" -j KUBE-ROUTER-FORWARD
iptables -I OUTPUT 1 -m comment --comment "kube-router netpol" -j KUBE-ROUTER-OUTPUT
iptables -A KUBE-ROUTER-INPUT -m comment --comment "allow traffic to primary/secondary cluster IP range" -d "$SERVICES" -j RETURN
iptables -A KUBE-ROUTER-INPUT -p tcp -m comment --comment "allow LOCAL TCP traffic to node ports" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
iptables -A KUBE-ROUTER-INPUT -p udp -m comment --comment "allow LOCAL UDP traffic to node ports" -m addrtype --dst-type LOCAL -m multiport --dports 30000:32767 -j RETURN
iptables -N KUBE-NWPLCY-DEFAULT
iptables -A KUBE-NWPLCY-DEFAULT -j MARK -m comment --comment "rule to mark traffic matching a network policy" --set-xmark 0x10000/0x10000
iptables -N KUBE-NWPLCY-COMMON
iptables -A KUBE-NWPLCY-COMMON -m comment --comment "rule to drop invalid state for pod" -m conntrack --ctstate INVALID -j DROP
iptables -A KUBE-NWPLCY-COMMON -m comment --comment "rule for stateful firewall for pod" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -N KUBE-POD-FW-TEST
iptables -A KUBE-POD-FW-TEST -m comment --comment "common netpol rules" -j KUBE-NWPLCY-COMMON
iptables -A KUBE-POD-FW-TEST -m comment --comment "from local node" -m addrtype --src-type LOCAL -d "$POD" -j ACCEPT
iptables -A KUBE-POD-FW-TEST -s "$POD" -m comment --comment "default egress" -j KUBE-NWPLCY-DEFAULT
iptables -A KUBE-POD-FW-TEST -d "$POD" -m comment --comment "default ingress" -j KUBE-NWPLCY-DEFAULT
iptables -A KUBE-POD-FW-TEST -m comment --comment "rule to REJECT traffic destined for POD name: test namespace: default" -m mark ! --mark 0x10000/0x10000 -j REJECT
iptables -A KUBE-POD-FW-TEST -j MARK --set-mark 0/0x10000
iptables -A KUBE-POD-FW-TEST -m comment --comment "set netpol-ok mark" -j MARK --set-mark 0x20000/0x20000
iptables -A KUBE-ROUTER-FORWARD -m comment --comment "rule to jump traffic destined to POD name: test namespace: default to chain KUBE-POD-FW-TEST" -d "$POD" -j KUBE-POD-FW-TEST
iptables -A KUBE-ROUTER-OUTPUT -m comment --comment "rule to jump traffic destined to POD name: test namespace: default to chain KUBE-POD-FW-TEST" -d "$POD" -j KUBE-POD-FW-TEST
for chain in INPUT FORWARD OUTPUT; do
  iptables -A "KUBE-ROUTER-$chain" -m comment --comment "rule to jump traffic from POD name: test namespace: default to chain KUBE-POD-FW-TEST" -s "$POD" -j KUBE-POD-FW-TEST
done
iptables -N KUBE-NWPLCY-TAIL
iptables -A KUBE-NWPLCY-TAIL -m comment --comment "accept netpol-ok" -m mark --mark 0x20000/0x20000 -j ACCEPT
for chain in INPUT FORWARD OUTPUT; do
  iptables -A "KUBE-ROUTER-$chain" -m comment --comment "rule to explicitly handle traffic for network policies ACCEPT/REJECT decision" -j KUBE-NWPLCY-TAIL
  iptables -A "KUBE-ROUTER-$chain" -m comment --comment "rule to explicitly ACCEPT traffic that comply to network policies" -m mark --mark 0x20000/0x20000 -j ACCEPT
done
"#;

/// What got through on a ufw node with K3s's chains, per probe: the answering service's
/// name, or `dropped`.
#[derive(Debug, PartialEq, Eq)]
struct UnderK3s {
    /// A pod asks the metadata service (169.254.169.254:80) for the node's user data.
    pod_to_metadata: String,
    /// A pod talks to the internet.
    pod_to_internet: String,
    /// The internet on a public port of the node, DNATed to a pod's other port (servicelb,
    /// or a hostPort whose containerPort differs).
    internet_to_public_port: String,
    /// The internet on a port the node does not open, DNATed to a pod (a hostPort).
    internet_to_host_port: String,
    /// The internet on the kubelet's port of the node itself (mesh only).
    internet_to_kubelet: String,
}

/// Boots ufw node `solo-1` of single-server.yaml (public 80 and 443, pods 10.42.0.0/16,
/// services 10.43.0.0/16) in a throwaway network, mount and PID namespace: its ufw commands
/// run with the real ufw and iptables (nft backend, as on Ubuntu 22.04/24.04 and Debian 12),
/// then, with `table`, its delivered nftables table is loaded, as the bootstrap's firewall
/// step does; then K3s's stand-ins add what they add after the firewall: a DNAT of the
/// public port 80 and of the non-public 8080 to the pod's 8080 (CNI portmap, servicelb) and
/// [`KUBE_ROUTER_CHAINS`]. Namespaces `pod` (10.42.0.5 behind `cni0`) and `inet` (the
/// internet, 203.0.113.2, also holding the metadata stand-in at 169.254.169.254, reached as
/// on Hetzner through the public interface's gateway) talk through the node.
fn boot_ufw_node_under_k3s(table: bool) -> UnderK3s {
    require("ufw", "ufw");
    require("iptables", "iptables");
    require("nft", "nftables");
    require("ip", "iproute2");
    require("python3", "python3");
    let (_, artifacts) = compile(
        &support::fixtures_dir().join("single-server.yaml"),
        &Options::default(),
    );
    let a = artifacts
        .iter()
        .find(|a| a.node == "solo-1")
        .expect("solo-1");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    copy_ufw_config(d);
    let ufw = ufw_batch(&file_of(a, meshboot::plan::BOOTSTRAP_PATH));
    std::fs::write(d.join("ufw.sh"), ufw).expect("ufw.sh");
    let ruleset = file_of(a, meshboot::plan::NFTABLES_PATH);
    std::fs::write(d.join("firewall.nft"), &ruleset).expect("table");
    std::fs::write(d.join("k3s.sh"), KUBE_ROUTER_CHAINS).expect("k3s.sh");
    let script = format!(
        r#"set -e
mount -t tmpfs tmpfs /run
mount --bind {d}/etc-ufw /etc/ufw
mount --bind {d}/default-ufw /etc/default/ufw
mount --bind {d}/lib-ufw /lib/ufw
ip netns add pod
ip netns add inet
ip link set lo up
ip link add cni0 type veth peer name eth0 netns pod
ip link add eth0 type veth peer name eth0 netns inet
ip addr add 10.42.0.1/24 dev cni0
ip link set cni0 up
ip addr add 203.0.113.1/24 dev eth0
ip link set eth0 up
ip route add 169.254.169.254/32 via 203.0.113.2
ip netns exec pod sh -c 'ip link set lo up; ip addr add 10.42.0.5/24 dev eth0; ip link set eth0 up; ip route add default via 10.42.0.1'
ip netns exec inet sh -c 'ip link set lo up; ip addr add 203.0.113.2/24 dev eth0; ip addr add 169.254.169.254/32 dev eth0; ip link set eth0 up; ip route add 10.42.0.0/16 via 203.0.113.1'
echo 1 > /proc/sys/net/ipv4/ip_forward

# The node's firewall, as its bootstrap's firewall step leaves it.
sh -e {d}/ufw.sh 2>/dev/null
{table}

# What K3s adds once it runs: a DNAT of public port 80 and of the non-public 8080 to the
# pod's 8080 (CNI portmap for hostPorts, servicelb's svclb pods), and kube-router's chains.
iptables -t nat -A PREROUTING -d 203.0.113.1 -p tcp --dport 80 -j DNAT --to-destination 10.42.0.5:8080
iptables -t nat -A PREROUTING -d 203.0.113.1 -p tcp --dport 8080 -j DNAT --to-destination 10.42.0.5:8080
POD=10.42.0.5 SERVICES=10.43.0.0/16 sh -e {d}/k3s.sh

# serve [NETNS] ADDRESS PORT NAME: a TCP service answering NAME, up before this returns.
serve() {{
  run=
  if [ $# -eq 4 ]; then run="ip netns exec $1"; shift; fi
  $run python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[3].encode())
    c.close()
' "$1" "$2" "$3" &
  n=0
  until $run python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()' "$1" "$2" 2>/dev/null; do
    n=$((n + 1)); [ "$n" -lt 100 ] || {{ echo "$3 never listened"; exit 1; }}
    sleep 0.05
  done
}}
serve inet 169.254.169.254 80 metadata
serve inet 203.0.113.2 9000 internet
serve pod 10.42.0.5 8080 pod
serve 0.0.0.0 10250 kubelet

# probe WHAT NETNS ADDRESS PORT: prints WHAT=<the name that answered> or WHAT=dropped.
probe() {{
  ip netns exec "$2" python3 -c '
import socket, sys
try:
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2)
    print(sys.argv[1] + "=" + s.recv(16).decode())
except OSError:
    print(sys.argv[1] + "=dropped")
' "$1" "$3" "$4"
}}
probe pod_to_metadata pod 169.254.169.254 80
probe pod_to_internet pod 203.0.113.2 9000
probe internet_to_public_port inet 203.0.113.1 80
probe internet_to_host_port inet 203.0.113.1 8080
probe internet_to_kubelet inet 203.0.113.1 10250
echo "--- FORWARD:"
iptables -S FORWARD
"#,
        d = d.display(),
        table = if table {
            format!("nft -f {}/firewall.nft", d.display())
        } else {
            "# (no table: the rules meshboot delivered before its forward table)".to_string()
        },
    );
    // A PID namespace: every service ends with the script.
    let o = run(Command::new("timeout").args([
        "120",
        "unshare",
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "sh",
        "-c",
        &script,
    ]));
    let out = stdout_and_stderr(&o);
    assert!(o.status.success(), "the ufw node did not boot:\n{out}");
    // K3s's chain is first in FORWARD, before every ufw chain: what the test is about.
    let forward: Vec<&str> = out
        .lines()
        .skip_while(|l| *l != "--- FORWARD:")
        .filter(|l| l.starts_with("-A FORWARD"))
        .collect();
    assert!(
        forward
            .first()
            .is_some_and(|l| l.ends_with("-j KUBE-ROUTER-FORWARD"))
            && forward.iter().any(|l| l.contains("-j ufw-")),
        "{out}"
    );
    let got = |what: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{what}=")))
            .unwrap_or_else(|| panic!("no verdict for {what}:\n{out}"))
            .to_string()
    };
    UnderK3s {
        pod_to_metadata: got("pod_to_metadata"),
        pod_to_internet: got("pod_to_internet"),
        internet_to_public_port: got("internet_to_public_port"),
        internet_to_host_port: got("internet_to_host_port"),
        internet_to_kubelet: got("internet_to_kubelet"),
    }
}

/// On a ufw node, K3s's kube-router chains sit first in FORWARD and accept every packet to
/// or from a local pod that no NetworkPolicy selects, before ufw's routed rules see it. With
/// the node's nftables table loaded (its forward chain), real packets through the real
/// kernel show what holds anyway: a pod cannot reach the metadata service (the node's user
/// data, with its K3s token and Tailscale key), the internet cannot reach a hostPort on a
/// port the node does not open, nor the kubelet (kube-router's INPUT chain accepts only a
/// local pod's packets); a pod still reaches the internet and the internet still reaches a
/// public port, DNATed to the pod's other port. The control is the rules meshboot delivered
/// before (ufw alone): under the same chains the metadata service and the hostPort answer,
/// so the test can fail. What it does not prove: a real K3s or kube-router (their rules are
/// stood in for, as written in their source), other kube-router releases, or iptables-legacy
/// (the nft backend is the default on every OS meshboot runs ufw on).
#[test]
fn ufw_nodes_hold_their_forward_side_under_kube_routers_chains() {
    let name = |s: &str| s.to_string();
    assert_eq!(
        boot_ufw_node_under_k3s(true),
        UnderK3s {
            pod_to_metadata: name("dropped"),
            pod_to_internet: name("internet"),
            internet_to_public_port: name("pod"),
            internet_to_host_port: name("dropped"),
            internet_to_kubelet: name("dropped"),
        }
    );
    let old = boot_ufw_node_under_k3s(false);
    assert_eq!(
        (
            old.pod_to_metadata.as_str(),
            old.internet_to_host_port.as_str()
        ),
        ("metadata", "pod"),
        "without the table, K3s's chains must let these through, or this test proves nothing: {old:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Netfilter modes against the real kernel: who filters tailscale0

/// tailscaled's `--netfilter-mode=on`, stood in by the two rules that matter here, as
/// tailscale/tailscale `util/linuxfw/iptables_runner.go` writes them: `AddHooks` puts
/// `-j ts-input` first in INPUT, `addBase4` appends `-i tailscale0 -j ACCEPT` to ts-input.
/// `nodivert` makes the chains but adds no hook, `off` makes nothing
/// (`wgengine/router/osrouter/router_linux.go`, `setNetfilterModeLocked`): for the host
/// firewall both are "no tailscaled rule in the way".
const TAILSCALED_ON: &str = "iptables -N ts-input && iptables -I INPUT 1 -j ts-input && iptables -A ts-input -i tailscale0 -j ACCEPT";

/// Loads a firewall (`setup`, a shell script run in the node's network namespace, with
/// `firewall` bound read-only at /run/firewall), optionally tailscaled's `on` hook, then
/// connects to each port from a peer on the far end of a veth named `tailscale0`. A port
/// is let through when the kernel answers (connection refused: nothing listens), dropped
/// when the connection times out. Returns (port, let through) per port.
fn mesh_probe(setup: &str, firewall: &str, tailscaled_on: bool, ports: &[u16]) -> Vec<(u16, bool)> {
    require("ip", "iproute2");
    require("bwrap", "bubblewrap");
    let w = tempfile::tempdir().unwrap();
    let p = w.path();
    copy_ufw_config(p);
    std::fs::write(p.join("firewall"), firewall).unwrap();
    std::fs::write(p.join("setup.sh"), setup).unwrap();
    let id = format!(
        "{}{}",
        std::process::id(),
        p.file_name().unwrap().to_string_lossy()
    );
    let id: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    let probes: Vec<String> = ports
        .iter()
        .map(|port| {
            format!(
                "if ip netns exec \"$B\" timeout 3 bash -c 'exec 3<>/dev/tcp/100.64.0.1/{port}' 2>/dev/null; then echo {port} open; \
                 elif [ $? -eq 124 ]; then echo {port} dropped; else echo {port} open; fi"
            )
        })
        .collect();
    let bwrap = format!(
        "bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /run --tmpfs /tmp \
         --bind {d}/etc-ufw /etc/ufw --bind {d}/default-ufw /etc/default/ufw --bind {d}/lib-ufw /lib/ufw \
         --ro-bind {d}/firewall /run/firewall --ro-bind {d}/setup.sh /run/setup.sh \
         --die-with-parent /bin/sh -e /run/setup.sh",
        d = p.display()
    );
    let script = format!(
        "set -e\nA=mbnfa{id}; B=mbnfb{id}; T=mbt{id}\n\
         ip netns add \"$A\"; ip netns add \"$B\"\n\
         trap 'ip netns del \"$A\"; ip netns del \"$B\"' EXIT\n\
         ip link add \"$T\" type veth peer name mbp{id}\n\
         ip link set \"$T\" netns \"$A\"; ip link set mbp{id} netns \"$B\"\n\
         ip -n \"$A\" link set \"$T\" name tailscale0\n\
         ip -n \"$A\" addr add 100.64.0.1/24 dev tailscale0; ip -n \"$A\" link set tailscale0 up; ip -n \"$A\" link set lo up\n\
         ip -n \"$B\" addr add 100.64.0.2/24 dev mbp{id}; ip -n \"$B\" link set mbp{id} up\n\
         ip netns exec \"$A\" {bwrap} >/dev/null\n\
         {on}\n\
         set +e\n{probes}\n",
        on = if tailscaled_on {
            format!("ip netns exec \"$A\" sh -c '{TAILSCALED_ON}'")
        } else {
            String::new()
        },
        probes = probes.join("\n")
    );
    let o = run(Command::new("bash").arg("-c").arg(&script));
    let out = stdout_and_stderr(&o);
    assert!(o.status.success(), "the probe failed:\n{out}");
    ports
        .iter()
        .map(|port| {
            let open = out.lines().any(|l| l == format!("{port} open"));
            let dropped = out.lines().any(|l| l == format!("{port} dropped"));
            assert!(open != dropped, "{port}: no verdict:\n{out}");
            (*port, open)
        })
        .collect()
}

/// The delivered file at `path` of `node` in `fixture`.
fn delivered_file(fixture: &str, node: &str, path: &str) -> String {
    let (_, artifacts) = compile(&support::fixtures_dir().join(fixture), &Options::default());
    let a = artifacts.iter().find(|a| a.node == node).expect("node");
    delivered_files(a)
        .into_iter()
        .find(|(p, _, _)| p == path)
        .map(|(_, _, c)| c)
        .expect("file")
}

#[test]
fn nftables_limits_tailscale0_to_the_k3s_ports_in_every_netfilter_mode() {
    require("nft", "nftables");
    let ruleset = delivered_file(
        "nftables.yaml",
        "nft-server-1",
        meshboot::plan::NFTABLES_PATH,
    );
    // nft-server-1 opens 2379-2380, 6443, 9100 and 10250/tcp on tailscale0 (expect.rs).
    for on in [false, true] {
        let got = mesh_probe(
            "nft -f /run/firewall\n",
            &ruleset,
            on,
            &[6443, 10250, 2380, 8080, 31000],
        );
        assert_eq!(
            got,
            [
                (6443, true),
                (10250, true),
                (2380, true),
                (8080, false),
                (31000, false)
            ],
            "tailscaled on: {on}"
        );
    }
}

#[test]
fn ufw_limits_tailscale0_unless_tailscaled_hooks_in_first() {
    require("ufw", "ufw");
    let script = delivered_file("mesh.yaml", "mesh-cp", meshboot::plan::BOOTSTRAP_PATH);
    let setup = ufw_batch(&script);
    // nodivert / off: ufw sees tailscale0 and lets in only the ports it lists.
    let got = mesh_probe(&setup, "", false, &[6443, 9100, 8080]);
    assert_eq!(got, [(6443, true), (9100, true), (8080, false)]);
    // on: tailscaled's ts-input accepts everything on tailscale0 before ufw's rules, which
    // is why the tailnet policy is the mesh firewall then.
    let got = mesh_probe(&setup, "", true, &[6443, 8080]);
    assert_eq!(got, [(6443, true), (8080, true)]);
}

// ---------------------------------------------------------------------------------------
// The real apt-get and the index refresh of Tailscale's repository

/// The words of the first line of `script` that starts with `prefix` (trimmed), after it,
/// up to a `&&` or `||`.
fn words_after(script: &str, prefix: &str) -> Vec<String> {
    let line = script
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"));
    line.split_whitespace()
        .take_while(|w| *w != "&&" && *w != "||")
        .map(str::to_string)
        .collect()
}

/// A repository of no packages in `dir` (a `Release` listing one empty `Packages` index),
/// dated `date`, as apt reads one from a `file:` URI.
fn empty_repository(dir: &Path, date: &str) {
    let index = dir.join("dists/x/main/binary-amd64");
    std::fs::create_dir_all(&index).unwrap();
    std::fs::write(index.join("Packages"), "").unwrap();
    // sha256 of the empty Packages file.
    std::fs::write(
        dir.join("dists/x/Release"),
        format!("Suite: x\nCodename: x\nComponents: main\nArchitectures: amd64\nDate: {date}\nSHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n"),
    )
    .unwrap();
}

/// The real apt-get (Debian's apt 2.6), given exactly the options an apt node's bootstrap
/// passes, refreshes the index of Tailscale's repository alone and keeps every other
/// repository's index: run in a sandbox whose /etc/apt holds the distribution's source list
/// and Tailscale's (both `file:` repositories), after a full refresh like the package step's,
/// both repositories change, and only Tailscale's index follows. Without `--no-list-cleanup`
/// the same refresh deletes the distribution's index (apt-pkg/update.cc `AcquireUpdate`
/// cleans Dir::State::lists), so the check can fail. What it does not prove: a real
/// repository over HTTPS, signatures (the sources are `trusted=yes`), or installing.
#[test]
fn apt_refreshes_only_tailscales_index_and_keeps_the_others() {
    let bwrap = require("bwrap", "bubblewrap");
    let apt_get = require("apt-get", "apt");
    let script = delivered_file("cluster.yaml", "cp-1", meshboot::plan::BOOTSTRAP_PATH);
    // apt_get() { DEBIAN_FRONTEND=noninteractive quiet apt-get OPTIONS "$@"; }
    let apt_options: Vec<String> =
        words_after(&script, "DEBIAN_FRONTEND=noninteractive quiet apt-get ")
            .into_iter()
            .filter(|w| w != "\"$@\"")
            .collect();
    let refresh = words_after(&script, "apt_tailscale ");
    assert!(
        refresh
            .iter()
            .any(|w| w.starts_with("Dir::Etc::sourcelist=")),
        "{refresh:?}"
    );
    let without_cleanup_kept: Vec<String> = refresh
        .iter()
        .filter(|w| *w != "--no-list-cleanup")
        .cloned()
        .collect();

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (etc, lists, cache, repos) = (
        t.join("etc-apt"),
        t.join("lists"),
        t.join("cache"),
        t.join("repos"),
    );
    for d in [
        etc.join("sources.list.d"),
        etc.join("apt.conf.d"),
        lists.join("partial"),
        cache.join("archives/partial"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(etc.join("sources.list"), "").unwrap();
    std::fs::write(
        etc.join("sources.list.d/distribution.list"),
        "deb [trusted=yes] file:/tmp/repos/distribution x main\n",
    )
    .unwrap();
    // Where the bootstrap puts Tailscale's list (plan::TAILSCALE_APT_LIST).
    std::fs::write(
        etc.join("sources.list.d/tailscale.list"),
        "deb [trusted=yes] file:/tmp/repos/tailscale x main\n",
    )
    .unwrap();
    let apt = |args: &[String]| -> Output {
        run(Command::new(&bwrap)
            .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
            .args(["--tmpfs", "/tmp", "--tmpfs", "/run"])
            .arg("--bind")
            .arg(&etc)
            .arg("/etc/apt")
            .arg("--bind")
            .arg(&lists)
            .arg("/var/lib/apt/lists")
            .arg("--bind")
            .arg(&cache)
            .arg("/var/cache/apt")
            .arg("--ro-bind")
            .arg(&repos)
            .arg("/tmp/repos")
            .args(["--unshare-net", "--unshare-pid", "--die-with-parent"])
            .arg(&apt_get)
            .args(&apt_options)
            // Reading file: sources from a scratch directory as root, not as _apt.
            .args(["-o", "APT::Sandbox::User=root"])
            .args(args))
    };
    let index = |repo: &str| lists.join(format!("_tmp_repos_{repo}_dists_x_Release"));
    let dated = |repo: &str| std::fs::read_to_string(index(repo)).ok();

    for (refresh, keeps_the_distribution) in [(&refresh, true), (&without_cleanup_kept, false)] {
        for repo in ["distribution", "tailscale"] {
            empty_repository(&repos.join(repo), "Thu, 01 Jan 2026 00:00:00 UTC");
        }
        // The package step's refresh, when a package was missing: every repository.
        let o = apt(&["update".to_string()]);
        assert!(o.status.success(), "{}", stdout_and_stderr(&o));
        assert!(dated("distribution").is_some() && dated("tailscale").is_some());
        // Both repositories publish a new index; the bootstrap's refresh reads Tailscale's.
        for repo in ["distribution", "tailscale"] {
            empty_repository(&repos.join(repo), "Fri, 02 Jan 2026 00:00:00 UTC");
        }
        let mut args = vec!["update".to_string()];
        args.extend(refresh.iter().cloned());
        let o = apt(&args);
        assert!(o.status.success(), "{args:?}: {}", stdout_and_stderr(&o));
        let out = stdout_and_stderr(&o);
        assert!(
            out.contains("file:/tmp/repos/tailscale")
                && !out.contains("file:/tmp/repos/distribution"),
            "{args:?} read another repository:\n{out}"
        );
        assert!(
            dated("tailscale").is_some_and(|r| r.contains("02 Jan 2026")),
            "{args:?}: Tailscale's index was not refreshed"
        );
        match keeps_the_distribution {
            true => assert!(
                dated("distribution").is_some_and(|r| r.contains("01 Jan 2026")),
                "{args:?}: the distribution's index was not kept as it was"
            ),
            false => assert!(
                dated("distribution").is_none(),
                "without --no-list-cleanup apt kept the other index: the check proves nothing"
            ),
        }
        std::fs::remove_dir_all(&lists).unwrap();
        std::fs::create_dir_all(lists.join("partial")).unwrap();
    }
}
