//! The real consumers judge our output: every node of every fixture goes through
//! cloud-init's schema check, ignition-validate, the real Ignition `files` stage,
//! shellcheck and `sh -n`, `nft -c` in a throwaway network namespace, and the real ufw
//! in a sandbox. All of them come from Debian packages that `.ci/run` installs; a
//! missing tool fails the test with the package to install, it never skips.
//!
//! Sandboxes: bubblewrap with the host file system read-only, private /run and /tmp, a
//! new network namespace, and only a scratch directory writable. Ignition runs as real
//! root without a user namespace so that ownership can be checked.

use crate::support::{self, compile, delivered_files, good_fixtures, require};
use camino::Utf8PathBuf;
use meshboot::Options;
use meshboot::plan::{Envelope, IgnitionVersion, NodePlan};
use meshboot::render::{Artifact, render_node_as};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::process::{Command, Output};

const IGNITION_BIN: &str = "/usr/lib/dracut/modules.d/30ignition/ignition";

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every artifact of every fixture, with its node plan.
fn all_nodes() -> Vec<(Utf8PathBuf, NodePlan, Artifact, meshboot::Checked)> {
    let mut out = Vec::new();
    for f in good_fixtures() {
        let (checked, artifacts) = compile(&f, &Options::default());
        for (n, a) in checked.plan.nodes.clone().into_iter().zip(artifacts) {
            let (c, _) = compile(&f, &Options::default());
            out.push((f.clone(), n, a, c));
        }
    }
    out
}

fn write_temp(dir: &tempfile::TempDir, name: &str, contents: &str) -> Utf8PathBuf {
    let p = Utf8PathBuf::from_path_buf(dir.path().join(name)).expect("utf8");
    std::fs::write(&p, contents).expect("write temp file");
    p
}

#[test]
fn cloud_init_schema_accepts_every_cloud_config() {
    let cloud_init = require("cloud-init", "cloud-init");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (_, _, a, _) in all_nodes()
        .into_iter()
        .filter(|(_, n, _, _)| n.envelope == Envelope::CloudInit)
    {
        let f = write_temp(&dir, &a.file_name, &a.contents);
        let o = run(Command::new(&cloud_init).args(["schema", "--config-file", f.as_str()]));
        assert!(
            o.status.success(),
            "cloud-init schema rejects {}:\n{}",
            a.file_name,
            text(&o)
        );
        assert!(
            !text(&o).contains("DEPRECATED"),
            "{} uses deprecated keys:\n{}",
            a.file_name,
            text(&o)
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} cloud-configs checked");
}

#[test]
fn cloud_init_schema_rejects_a_broken_config() {
    // The check above is only worth something if the tool really rejects bad input.
    let cloud_init = require("cloud-init", "cloud-init");
    let dir = tempfile::tempdir().unwrap();
    let f = write_temp(
        &dir,
        "bad.yaml",
        "#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 600\n",
    );
    let o = run(Command::new(&cloud_init).args(["schema", "--config-file", f.as_str()]));
    assert!(
        !o.status.success(),
        "cloud-init accepted an integer permission"
    );
}

fn ignition_validate(dir: &tempfile::TempDir, name: &str, contents: &str) -> Output {
    let validate = require("ignition-validate", "ignition");
    let f = write_temp(dir, name, contents);
    run(Command::new(validate).arg(f.as_str()))
}

#[test]
fn ignition_validate_accepts_every_ignition_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (_, _, a, _) in all_nodes()
        .into_iter()
        .filter(|(_, n, _, _)| n.envelope == Envelope::Ignition)
    {
        let o = ignition_validate(&dir, &a.file_name, &a.contents);
        assert!(
            o.status.success(),
            "ignition-validate rejects {}:\n{}",
            a.file_name,
            text(&o)
        );
        assert!(
            !text(&o).contains("warning"),
            "ignition-validate warns on {}:\n{}",
            a.file_name,
            text(&o)
        );
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} Ignition configs checked");
    let o = ignition_validate(
        &dir,
        "bad.ign",
        r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"rel","mode":420}]}}"#,
    );
    assert!(
        !o.status.success(),
        "ignition-validate accepted a relative path"
    );
}

#[test]
fn ignition_validate_accepts_the_3_4_output() {
    // Debian's ignition 2.14 knows spec 3.4.0 only as "3.4.0-experimental"; the schema we
    // emit is the same, so validate it under that name.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        ignition_version: IgnitionVersion::V3_4,
        ..Options::default()
    };
    let (_, artifacts) = compile(&support::fixtures_dir().join("flatcar.yaml"), &opts);
    for a in artifacts {
        assert!(
            a.contents.contains("\"version\": \"3.4.0\""),
            "{}",
            a.file_name
        );
        let as_experimental = a.contents.replacen(
            "\"version\": \"3.4.0\"",
            "\"version\": \"3.4.0-experimental\"",
            1,
        );
        let o = ignition_validate(&dir, &a.file_name, &as_experimental);
        assert!(
            o.status.success(),
            "ignition-validate rejects {} (3.4):\n{}",
            a.file_name,
            text(&o)
        );
    }
}

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
            text(&o)
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

#[test]
fn ignition_files_stage_lays_down_what_cloud_init_would() {
    for (fixture, node, _, checked) in all_nodes() {
        // Render the same node in both envelopes: what Ignition really lays down must be
        // what cloud-init's write_files would, plus the units Ignition enables itself.
        let ign = render_node_as(
            &checked.plan,
            &node,
            &checked.secrets,
            Envelope::Ignition,
            IgnitionVersion::V3_3,
        )
        .unwrap();
        let ci = render_node_as(
            &checked.plan,
            &node,
            &checked.secrets,
            Envelope::CloudInit,
            IgnitionVersion::V3_3,
        )
        .unwrap();
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
        let ci_paths: Vec<String> = cloud_init_files.iter().map(|(p, _, _)| p.clone()).collect();
        assert_eq!(ign_paths, ci_paths, "{fixture} {}", node.name);
        let unit = root
            .path()
            .join("etc/systemd/system/meshboot-bootstrap.service");
        assert_eq!(
            std::fs::metadata(&unit).unwrap().permissions().mode() & 0o777,
            0o644
        );

        // Enabled units: Ignition records them in its preset file.
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
        let mut want: Vec<&str> = node
            .files
            .iter()
            .filter(|f| f.enable)
            .map(|f| f.unit_name())
            .collect();
        want.sort();
        assert!(
            want.contains(&meshboot::plan::BOOTSTRAP_UNIT),
            "{fixture} {}",
            node.name
        );
        assert_eq!(enabled, want, "{fixture} {}: enabled units", node.name);
    }
}

/// The generated scripts, decoded from the artifacts (what the consumer would execute).
fn scripts() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (_, _, a, _) in all_nodes() {
        for (path, _, contents) in delivered_files(&a) {
            if contents.starts_with("#!/bin/sh") {
                v.push((format!("{} {path}", a.file_name), contents));
            }
        }
    }
    v
}

#[test]
fn shellcheck_and_sh_n_pass_every_script() {
    let shellcheck = require("shellcheck", "shellcheck");
    let dash = require("dash", "dash");
    let bash = require("bash", "bash");
    let dir = tempfile::tempdir().unwrap();
    let all = scripts();
    assert!(all.len() >= 19, "only {} scripts found", all.len());
    for (name, contents) in all {
        let f = write_temp(&dir, "script.sh", &contents);
        let o = run(Command::new(&shellcheck).args(["-s", "sh", "-S", "warning", f.as_str()]));
        assert!(o.status.success(), "shellcheck fails {name}:\n{}", text(&o));
        for sh in [&dash, &bash] {
            let o = run(Command::new(sh).args(["-n", f.as_str()]));
            assert!(o.status.success(), "{sh} -n fails {name}:\n{}", text(&o));
        }
        assert!(
            !contents.contains("set -x"),
            "{name} traces commands (set -x)"
        );
    }
}

fn rulesets() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (_, _, a, _) in all_nodes() {
        for (path, _, contents) in delivered_files(&a) {
            if path == meshboot::plan::NFTABLES_PATH {
                v.push((a.file_name.clone(), contents));
            }
        }
    }
    v
}

#[test]
fn nft_accepts_every_ruleset_and_replaces_only_its_own_table() {
    let nft = require("nft", "nftables");
    let unshare = require("unshare", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let all = rulesets();
    assert!(all.len() >= 11, "only {} rulesets found", all.len());
    for (name, contents) in all {
        assert!(
            !contents.contains("flush ruleset"),
            "{name} flushes the whole ruleset"
        );
        let f = write_temp(&dir, "rules.nft", &contents);
        let o = run(Command::new(&unshare).args(["-n", &nft, "-c", "-f", f.as_str()]));
        assert!(o.status.success(), "nft -c rejects {name}:\n{}", text(&o));
        // Applied for real in a throwaway namespace, twice (a re-run replaces the table),
        // next to another table that must survive.
        let script = format!(
            "set -e; {nft} add table inet other; {nft} -f {f}; {nft} -f {f}; {nft} list ruleset"
        );
        let o = run(Command::new(&unshare).args(["-n", "sh", "-c", &script]));
        assert!(o.status.success(), "nft -f fails for {name}:\n{}", text(&o));
        let listing = String::from_utf8_lossy(&o.stdout);
        assert!(
            listing.contains("table inet other"),
            "{name}: another table was removed"
        );
        assert_eq!(
            listing.matches("table inet meshboot").count(),
            1,
            "{name}:\n{listing}"
        );
        assert!(
            listing.contains("policy drop"),
            "{name}: no default-deny chain:\n{listing}"
        );
    }
    let bad = write_temp(
        &dir,
        "bad.nft",
        "table inet meshboot { chain input { acept } }\n",
    );
    let o = run(Command::new(&unshare).args(["-n", &nft, "-c", "-f", bad.as_str()]));
    assert!(!o.status.success(), "nft accepted a broken ruleset");
}

/// The `ufw ...` commands a bootstrap script runs, as shell lines.
fn ufw_lines(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("quiet ufw "))
        .map(|rest| format!("ufw {rest}"))
        .collect()
}

/// Runs `script` with the real ufw in a sandbox: new network namespace, scratch copies
/// of ufw's configuration, host read-only.
fn ufw_sandbox(script: &str) -> Output {
    let bwrap = require("bwrap", "bubblewrap");
    require("ufw", "ufw");
    require("iptables", "iptables");
    let w = tempfile::tempdir().unwrap();
    let p = w.path();
    for (from, to) in [
        ("/etc/ufw", "etc-ufw"),
        ("/etc/default/ufw", "default-ufw"),
        ("/lib/ufw", "lib-ufw"),
    ] {
        let o = run(Command::new("cp").args(["-a", from]).arg(p.join(to)));
        assert!(o.status.success(), "copying {from}: {}", text(&o));
    }
    std::fs::write(p.join("script.sh"), script).unwrap();
    run(Command::new(bwrap)
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
        .arg(p.join("script.sh"))
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

#[test]
fn ufw_accepts_every_rule_set() {
    let mut checked = 0;
    for (_, node, a, _) in all_nodes() {
        if node.firewall.backend != meshboot::firewall::Backend::Ufw {
            continue;
        }
        let script = delivered_files(&a)
            .into_iter()
            .find(|(p, _, _)| p == meshboot::plan::BOOTSTRAP_PATH)
            .map(|(_, _, c)| c)
            .expect("bootstrap");
        let lines = ufw_lines(&script);
        assert!(
            lines.iter().any(|l| l == "ufw --force enable"),
            "{}: ufw is never enabled",
            a.file_name
        );
        let test = format!(
            "{}\niptables -S ufw-user-input\niptables -S ufw-user-forward\n",
            lines.join("\n")
        );
        let o = ufw_sandbox(&test);
        let out = text(&o);
        assert!(
            o.status.success(),
            "ufw rejects the rules of {}:\n{out}",
            a.file_name
        );
        assert!(
            out.contains("--dport 41641 -j ACCEPT"),
            "{}: 41641/udp not open:\n{out}",
            a.file_name
        );
        assert!(
            out.contains("-i tailscale0 -p tcp -m tcp --dport 10250 -j ACCEPT"),
            "{}:\n{out}",
            a.file_name
        );
        if node.role.is_server() {
            assert!(
                out.contains("-i tailscale0 -p tcp -m tcp --dport 6443 -j ACCEPT"),
                "{}:\n{out}",
                a.file_name
            );
        } else {
            assert!(
                !out.contains("--dport 6443"),
                "{}: an agent opens 6443:\n{out}",
                a.file_name
            );
        }
        assert!(
            out.contains("-A ufw-user-forward -i cni0 -j ACCEPT"),
            "{}: pod traffic is not routed:\n{out}",
            a.file_name
        );
        // Pods cannot read the node's user data: the drop comes before any forward accept.
        let forward: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("-A ufw-user-forward"))
            .collect();
        assert!(
            forward
                .first()
                .is_some_and(|l| l.contains("-d 169.254.169.254/32") && l.ends_with("-j DROP")),
            "{}: the metadata block is not the first forward rule:\n{out}",
            a.file_name
        );
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} ufw nodes checked");
    let o = ufw_sandbox("ufw allow 99999/tcp\n");
    assert!(!o.status.success(), "ufw accepted a bad port");
}
