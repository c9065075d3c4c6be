//! The command line as a user meets it: exit codes, stdout/stderr, files on disk.

mod common;

use common::{FAKE_AUTH_KEY, FAKE_TOKEN, all_fake_secret_values, fake_env_vars, fixtures_dir};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

fn meshboot(args: &[&str]) -> Output {
    meshboot_env(args, &fake_env_vars())
}

fn meshboot_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshboot"));
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("meshboot runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> String {
    fixtures_dir().join(name).to_string()
}

fn assert_no_secret(what: &str, text: &str) {
    for s in all_fake_secret_values() {
        assert!(!text.contains(&s), "{what} leaks a secret value");
    }
}

#[test]
fn build_writes_every_node_and_checksums() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("edge-eu");
    let o = meshboot(&[
        "build",
        &fixture("cluster.yaml"),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "cp-1.yaml",
            "cp-2.yaml",
            "cp-3.yaml",
            "worker-1.ign",
            "worker-2.ign",
            "worker-3.ign"
        ]
    );
    // Every file holds secrets: the directory is 0700 and the files 0600.
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for n in &names {
        let mode = std::fs::metadata(dir.join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{n}");
    }
    // SHA256SUMS is what `sha256sum -c` expects.
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("SHA256SUMS")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout)
            .matches(": OK")
            .count(),
        6
    );
    // The report names every file with its size and the share of the 32 KiB limit.
    let report = stdout(&o);
    assert!(
        report.contains("cp-1.yaml") && report.contains("% of the 32 KiB user-data limit"),
        "{report}"
    );
    assert!(
        stderr(&o).contains("servers span several locations"),
        "{}",
        stderr(&o)
    );
    assert_no_secret("build output", &format!("{report}{}", stderr(&o)));
}

#[test]
fn build_is_byte_identical_across_runs() {
    let out = tempfile::tempdir().unwrap();
    for run in ["a", "b"] {
        let o = meshboot(&[
            "build",
            &fixture("flatcar.yaml"),
            "--out",
            out.path().join(run).to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let a = std::fs::read(out.path().join("a/SHA256SUMS")).unwrap();
    let b = std::fs::read(out.path().join("b/SHA256SUMS")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn render_prints_exactly_the_built_file() {
    let out = tempfile::tempdir().unwrap();
    let o = meshboot(&[
        "build",
        &fixture("cluster.yaml"),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    for node in ["cp-2.yaml", "worker-3.ign"] {
        let name = node.split('.').next().unwrap();
        let r = meshboot(&["render", &fixture("cluster.yaml"), "--node", name]);
        assert_eq!(r.status.code(), Some(0), "{}", stderr(&r));
        assert_eq!(
            r.stdout,
            std::fs::read(out.path().join(node)).unwrap(),
            "{node}"
        );
    }
}

#[test]
fn render_of_an_unknown_node_is_a_usage_error_listing_the_nodes() {
    let o = meshboot(&["render", &fixture("cluster.yaml"), "--node", "worker-9"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    let e = stderr(&o);
    assert!(e.contains("no node named \"worker-9\""), "{e}");
    assert!(
        e.contains("cp-1, cp-2, cp-3, worker-1, worker-2, worker-3"),
        "{e}"
    );
}

#[test]
fn check_and_plan_succeed_without_printing_secrets() {
    let c = meshboot(&["check", &fixture("headscale-oauth.yaml")]);
    assert_eq!(c.status.code(), Some(0), "{}", stderr(&c));
    assert!(
        stdout(&c).contains("ok, 3 nodes in cluster hs-lab"),
        "{}",
        stdout(&c)
    );
    let p = meshboot(&["plan", &fixture("cluster.yaml")]);
    assert_eq!(p.status.code(), Some(0), "{}", stderr(&p));
    let table = stdout(&p);
    for want in [
        "NODE",
        "cp-1",
        "init-server",
        "join-server",
        "worker-3",
        "flatcar",
        "ignition",
        "41641/udp",
        "KiB",
        "--cluster-init",
        "--server=https://<cp-1 ip>:6443",
    ] {
        assert!(table.contains(want), "plan lacks {want}:\n{table}");
    }
    // The flags meshboot sets itself: the one table, as the code holds it.
    assert!(
        table.ends_with(&meshboot::k3s_flags::text()),
        "plan does not end with the table of flags meshboot sets:\n{table}"
    );
    for o in [&c, &p] {
        assert_no_secret("check/plan", &format!("{}{}", stdout(o), stderr(o)));
    }
}

#[test]
fn a_missing_secret_names_the_field_and_the_variable() {
    let o = meshboot_env(
        &["check", &fixture("cluster.yaml")],
        &[("K3S_TOKEN", FAKE_TOKEN)],
    );
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("error: tailscale.auth_key: environment variable `TS_AUTHKEY` is not set"),
        "{e}"
    );
    assert!(e.contains("cluster.yaml:"), "no location: {e}");
    assert!(e.contains("export TS_AUTHKEY="), "no fix: {e}");
    assert_no_secret("missing-secret error", &e);
}

#[test]
fn a_missing_secret_file_names_the_field_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(fixtures_dir().join("nftables.yaml")).unwrap();
    let path = dir.path().join("spec.yaml");
    std::fs::write(&path, spec).unwrap();
    let o = meshboot(&["check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("error: tailscale.auth_key: cannot read secret file"),
        "{e}"
    );
    assert!(e.contains("secrets/tailscale-authkey: no such file"), "{e}");
    assert!(
        e.contains("error: k3s.token: cannot read secret file"),
        "both are reported: {e}"
    );
}

#[test]
fn redact_renders_placeholders_without_reading_secrets() {
    let o = meshboot_env(
        &[
            "render",
            &fixture("cluster.yaml"),
            "--node",
            "cp-1",
            "--redact",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("REDACTED(tailscale.auth_key)") && out.contains("REDACTED(k3s.token)"),
        "{out}"
    );
    let with_secrets = meshboot(&[
        "render",
        &fixture("cluster.yaml"),
        "--node",
        "cp-1",
        "--redact",
    ]);
    assert_no_secret("--redact output", &stdout(&with_secrets));
    assert!(!stdout(&with_secrets).contains(FAKE_AUTH_KEY));
}

#[test]
fn strict_turns_warnings_into_failure() {
    let o = meshboot(&["check", "--strict", &fixture("cluster.yaml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("warnings are errors under --strict"),
        "{}",
        stderr(&o)
    );
    let ok = meshboot(&["check", "--strict", &fixture("single-server.yaml")]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = meshboot(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("Usage"), "{}", stderr(&o));
    let o = meshboot(&["check", "/nonexistent/spec.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read spec /nonexistent/spec.yaml: no such file"),
        "{}",
        stderr(&o)
    );
    let o = meshboot(&[
        "build",
        &fixture("single-server.yaml"),
        "--out",
        "/proc/meshboot-cannot-write",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: writing to /proc/meshboot-cannot-write"),
        "{}",
        stderr(&o)
    );
    let o = meshboot(&[
        "build",
        &fixture("single-server.yaml"),
        "--out",
        "x",
        "--ignition-version",
        "3.9.0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = meshboot(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("Exit codes: 0 ok, 1 invalid spec, 2 usage or I/O error"));
}

#[test]
fn an_invalid_spec_exits_1_with_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "version: 1\ncluster: { name: Bad_Name }\ntailscale: { auth_key: { env: TS_AUTHKEY } }\nk3s: { token: { env: K3S_TOKEN }, versoin: v1 }\nnodes:\n  - { name: a, role: wrker }\n",
    )
    .unwrap();
    let o = meshboot(&["check", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("k3s.versoin: unknown key"), "{e}");
    assert!(e.contains("did you mean `version`?"), "{e}");
    assert!(e.contains("nodes[0].role: unknown role \"wrker\""), "{e}");
    assert!(e.contains("bad.yaml:6:"), "{e}");
}
