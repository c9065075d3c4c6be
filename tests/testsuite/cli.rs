//! The command line as a user meets it: exit codes, stdout/stderr, files on disk.

use crate::support::{
    FAKE_AUTH_KEY, FAKE_TOKEN, assert_no_secret, fake_env_vars, fixtures_dir, meshboot,
    meshboot_env, stderr, stdout, stdout_and_stderr,
};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

fn fixture(name: &str) -> String {
    fixtures_dir().join(name).to_string()
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
    assert_no_secret("build output", &format!("{report}{}", stderr(&o)), &[]);
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
    let c = meshboot(&["check", &fixture("headscale.yaml")]);
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
        assert_no_secret("check/plan", &stdout_and_stderr(o), &[]);
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
    assert_no_secret("missing-secret error", &e, &[]);
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
    assert_no_secret("--redact output", &stdout(&with_secrets), &[]);
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

// ---------------------------------------------------------------------------------------
// meshboot init

/// The environment variables a spec's `{ env: NAME }` references name, in order.
fn env_names(spec: &str) -> Vec<String> {
    spec.split("{ env: ")
        .skip(1)
        .map(|rest| rest.split(" }").next().expect("closing brace").to_string())
        .collect()
}

#[test]
fn init_prints_a_starter_spec_that_checks_strictly_and_builds_every_node() {
    let o = meshboot_env(&["init"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let starter = stdout(&o);
    let fixture = std::fs::read_to_string(fixtures_dir().join("init.yaml")).unwrap();
    assert_eq!(
        starter, fixture,
        "init prints fixtures/init.yaml, which every fixture test covers"
    );

    // A comment on every line that sets a field.
    for line in starter.lines() {
        let t = line.trim_start().trim_start_matches("- ");
        let sets_a_field = t.split_once(": ").is_some_and(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
        if sets_a_field {
            assert!(line.contains(" # "), "a field without a comment: {line}");
        }
    }

    // It checks, even under --strict, with exactly the variables it names set...
    let names = env_names(&starter);
    assert_eq!(names, ["TS_AUTHKEY", "K3S_TOKEN", "K3S_AGENT_TOKEN"]);
    let all = fake_env_vars();
    let env: Vec<(&str, &str)> = all
        .iter()
        .filter(|(k, _)| names.iter().any(|n| n == k))
        .copied()
        .collect();
    assert_eq!(env.len(), names.len(), "a fake value for every name");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("cluster.yaml");
    let o = meshboot_env(&["init", "--out", spec.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("wrote {}\n", spec.display()));
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), starter);
    let spec = spec.to_str().unwrap();
    let o = meshboot_env(&["check", "--strict", spec], &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "warnings: {}", stderr(&o));
    assert!(
        stdout(&o).contains("ok, 3 nodes in cluster my-cluster"),
        "{}",
        stdout(&o)
    );
    // ... renders every node ...
    let out = dir.path().join("out");
    let o = meshboot_env(&["build", spec, "--out", out.to_str().unwrap()], &env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut built: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    built.sort();
    assert_eq!(
        built,
        ["SHA256SUMS", "cp-1.yaml", "worker-1.yaml", "worker-2.yaml"]
    );
    // ... and without them, says which one is missing.
    let o = meshboot_env(&["check", spec], &[]);
    assert_eq!(o.status.code(), Some(1));
    for n in &names {
        assert!(
            stderr(&o).contains(&format!("environment variable `{n}` is not set")),
            "{n}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn init_refuses_to_replace_a_file_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    std::fs::write(&path, "my own spec\n").unwrap();
    let p = path.to_str().unwrap();
    let o = meshboot_env(&["init", "--out", p], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    assert_eq!(
        stderr(&o),
        format!(
            "error: {p} already exists; meshboot init does not replace it\n  = help: pass --force to replace it, or choose another --out\n"
        )
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "my own spec\n");

    let o = meshboot_env(&["init", "--out", p, "--force"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let starter = std::fs::read_to_string(fixtures_dir().join("init.yaml")).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), starter);

    // --force means nothing without a file; an unwritable place is an I/O error.
    let o = meshboot_env(&["init", "--force"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let o = meshboot_env(&["init", "--out", "/proc/meshboot-init.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("error: writing /proc/meshboot-init.yaml: "),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------
// meshboot completions

/// Every subcommand, as the help lists them (checked against clap's own list below).
const SUBCOMMANDS: &[&str] = &[
    "build",
    "render",
    "check",
    "plan",
    "hcloud",
    "packer",
    "autoscaler",
    "init",
    "completions",
    "schema",
    "policy",
    "upgrade",
    "kubeconfig",
];

#[test]
fn completions_for_every_shell_know_every_subcommand() {
    // clap_complete's shells (clap_complete::Shell): bash, elvish, fish, powershell, zsh.
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        let o = meshboot_env(&["completions", shell], &[]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
    }
    // bash (the only one of these shells on the test machine) completes for real: the
    // generated function, sourced, offers the subcommands and the shells.
    let bash = crate::support::require("bash", "bash");
    let complete = |words: &str, cword: u32| {
        let script = format!(
            "source <({bin} completions bash)\nCOMP_WORDS=({words}); COMP_CWORD={cword}\n_meshboot meshboot \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            bin = env!("CARGO_BIN_EXE_meshboot")
        );
        let o = Command::new(&bash).arg("-c").arg(script).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(complete("meshboot c", 1), "check\ncompletions\n");
    let shells = complete("meshboot completions ''", 2);
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        assert!(shells.lines().any(|l| l == shell), "{shell}: {shells}");
    }
    let o = meshboot_env(&["completions", "tcsh"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------
// --help

#[test]
fn help_texts_are_snapshots() {
    let clap_lists: Vec<String> = <meshboot::cli::Cli as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert_eq!(
        clap_lists, SUBCOMMANDS,
        "a new subcommand needs its help snapshot (add it to SUBCOMMANDS)"
    );
    let o = meshboot_env(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    insta::assert_snapshot!("help", stdout(&o));
    for sub in SUBCOMMANDS {
        let o = meshboot_env(&[sub, "--help"], &[]);
        assert_eq!(o.status.code(), Some(0), "{sub}: {}", stderr(&o));
        insta::assert_snapshot!(format!("help-{sub}"), stdout(&o));
    }
}

/// K3s server args that take a node well over the 32 KiB limit, and compress well.
fn repetitive_server_args() -> Vec<String> {
    (0..10)
        .map(|i| {
            format!(
                "--kube-apiserver-arg=feature-gates={}",
                format!("gate{i}=true,").repeat(300)
            )
        })
        .collect()
}

/// A node over Hetzner's 32 KiB limit is refused with what `--compress` would make of it,
/// computed by rendering it compressed: it fits, or it stays over by a stated amount.
#[test]
fn an_oversized_node_is_told_what_compress_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(fixtures_dir().join("single-server.yaml")).unwrap();
    let with_args = |args: Vec<String>| {
        let list = args
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        base.replace("k3s:\n", &format!("k3s:\n  server_args: [{list}]\n"))
    };
    // Repetitive args compress well; pseudo-random lowercase words do not.
    let repetitive = repetitive_server_args();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut word = || {
        (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (b'a' + (x % 26) as u8) as char
            })
            .collect::<String>()
    };
    let random: Vec<String> = (0..20)
        .map(|i| format!("--kube-apiserver-arg=x{i}={}", word()))
        .collect();
    for (args, fits) in [(repetitive, true), (random, false)] {
        let spec = dir.path().join("big.yaml");
        std::fs::write(&spec, with_args(args)).unwrap();
        let spec = spec.to_str().unwrap();
        let out = dir.path().join(format!("out-{fits}"));
        let o = meshboot(&["build", spec, "--out", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(!out.exists(), "something was written");
        let e = stderr(&o);
        assert!(e.contains("error: solo-1.yaml: "), "{e}");
        let compressed = meshboot(&["render", spec, "--node", "solo-1", "--compress"]);
        if fits {
            assert_eq!(compressed.status.code(), Some(0), "{}", stderr(&compressed));
            let len = compressed.stdout.len();
            assert!(
                e.contains(&format!(
                    "`--compress` would fit it: {len} bytes compressed"
                )),
                "{e}"
            );
            let o = meshboot(&["build", spec, "--out", out.to_str().unwrap(), "--compress"]);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        } else {
            assert_eq!(compressed.status.code(), Some(1));
            let told = stderr(&compressed);
            let len: usize = told
                .split("solo-1.yaml: ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("the compressed size");
            assert!(
                e.contains(&format!(
                    "even with `--compress` it would be {len} bytes, {} over",
                    len - 32768
                )),
                "{e}"
            );
            assert!(told.contains("it is compressed already, and"), "{told}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// build into a directory an earlier build wrote

/// `fixtures/init.yaml` (cp-1 and `count: 2` agents worker-1, worker-2) with `workers`
/// agents and `server_args`, written to `dir/name`; its path.
fn starter_spec(dir: &std::path::Path, name: &str, workers: u32, server_args: &str) -> String {
    let starter = std::fs::read_to_string(fixtures_dir().join("init.yaml")).unwrap();
    assert!(
        starter.contains("count: 2 ") && starter.contains("server_args: []"),
        "init.yaml no longer has `count: 2` or `server_args: []`"
    );
    let spec = starter
        .replacen("count: 2 ", &format!("count: {workers} "), 1)
        .replacen("server_args: []", &format!("server_args: {server_args}"), 1);
    let path = dir.join(name);
    std::fs::write(&path, spec).unwrap();
    path.to_str().unwrap().to_string()
}

/// The names in `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// What the three-node build writes.
const THREE: [&str; 4] = ["SHA256SUMS", "cp-1.yaml", "worker-1.yaml", "worker-2.yaml"];

/// `meshboot build spec --out out`, which succeeds.
fn build_into(spec: &str, out: &std::path::Path) -> std::process::Output {
    let o = meshboot(&["build", spec, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    o
}

/// A scratch directory with a three-node build in `out` (cp-1, worker-1, worker-2) and the
/// same spec with two nodes (without worker-2) beside it: (scratch, out, the two-node spec).
fn three_then_two() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let three = starter_spec(tmp.path(), "three.yaml", 2, "[]");
    let two = starter_spec(tmp.path(), "two.yaml", 1, "[]");
    let out = tmp.path().join("out");
    build_into(&three, &out);
    assert_eq!(names_in(&out), THREE);
    (tmp, out, two)
}

/// `sha256sum -c SHA256SUMS` in `dir` passes, with one `OK` per file: `files`.
fn assert_sums_verify(dir: &std::path::Path, files: usize) {
    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{said}{}", stderr(&check));
    assert_eq!(said.matches(": OK").count(), files, "{said}");
}

/// The two-node build `o` into `out` removed nothing, said only `warning` on stderr, and
/// wrote a SHA256SUMS of its own two files.
fn assert_removed_nothing(o: &std::process::Output, out: &std::path::Path, warning: &str) {
    assert_eq!(stderr(o), warning);
    assert!(!stdout(o).contains("removed "), "{}", stdout(o));
    assert!(std::fs::symlink_metadata(out.join("worker-2.yaml")).is_ok());
    assert_sums_verify(out, 2);
}

/// A node removed from the spec loses its file (and the secrets in it) at the next build
/// into the same directory; what the previous SHA256SUMS does not list stays.
#[test]
fn build_removes_the_files_of_nodes_that_left_the_spec() {
    let (_tmp, out, two) = three_then_two();
    let worker_2 = std::fs::read_to_string(out.join("worker-2.yaml")).unwrap();
    assert!(
        worker_2.contains(FAKE_AUTH_KEY),
        "the file holds the secrets"
    );
    // The user's own files: one that is no output name, one that is but was never listed.
    std::fs::write(out.join("notes.txt"), "my notes\n").unwrap();
    std::fs::write(out.join("extra.yaml"), "my own config\n").unwrap();

    let o = build_into(&two, &out);
    assert_eq!(
        names_in(&out),
        [
            "SHA256SUMS",
            "cp-1.yaml",
            "extra.yaml",
            "notes.txt",
            "worker-1.yaml"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "my notes\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("extra.yaml")).unwrap(),
        "my own config\n"
    );
    assert_sums_verify(&out, 2);
    // One line for the removed file, after the `wrote` lines.
    let report = stdout(&o);
    let out_dir = out.to_str().unwrap();
    assert!(
        report.ends_with(&format!(
            "wrote {out_dir}/SHA256SUMS\nremoved {out_dir}/worker-2.yaml (node no longer in the spec)\n"
        )),
        "{report}"
    );
    assert_eq!(report.matches("removed ").count(), 1, "{report}");
    assert_eq!(stderr(&o), "", "no warning");

    // The same build again has nothing left to remove.
    let o = build_into(&two, &out);
    assert!(!stdout(&o).contains("removed "), "{}", stdout(&o));
    assert_eq!(names_in(&out).len(), 5);
}

/// A listed name that is now a symlink is not meshboot's file: it is kept, and the build
/// says so. Its target, outside the directory, is untouched.
#[test]
fn build_keeps_a_listed_name_that_is_a_symlink_and_says_so() {
    let (tmp, out, two) = three_then_two();
    let target = tmp.path().join("elsewhere.yaml");
    std::fs::write(&target, "not meshboot's\n").unwrap();
    std::fs::remove_file(out.join("worker-2.yaml")).unwrap();
    std::os::unix::fs::symlink(&target, out.join("worker-2.yaml")).unwrap();

    let o = build_into(&two, &out);
    let link = std::fs::symlink_metadata(out.join("worker-2.yaml")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "not meshboot's\n"
    );
    let out_dir = out.to_str().unwrap();
    assert_removed_nothing(
        &o,
        &out,
        &format!(
            "warning: kept {out_dir}/worker-2.yaml (node no longer in the spec): it is a symlink, not the file meshboot wrote\n  = help: meshboot removes only regular files; remove it yourself if nothing needs it\n"
        ),
    );
}

/// A previous SHA256SUMS that is not as meshboot writes it is not trusted with deciding
/// what to delete: the build succeeds, removes nothing, and says why and what to do.
#[test]
fn build_with_a_malformed_sha256sums_warns_and_removes_nothing() {
    let (_tmp, out, two) = three_then_two();
    let sums = out.join("SHA256SUMS");
    let mut text = std::fs::read_to_string(&sums).unwrap();
    text.push_str("not a checksum line\n");
    std::fs::write(&sums, text).unwrap();

    let o = build_into(&two, &out);
    assert_eq!(names_in(&out), THREE);
    let out_dir = out.to_str().unwrap();
    // The new SHA256SUMS lists this build's files, and not worker-2.yaml.
    assert_removed_nothing(
        &o,
        &out,
        &format!(
            "warning: the previous {out_dir}/SHA256SUMS was not used: line 4 is not `<sha256 in hex>  <file name>`; no file of the previous build was removed\n  = help: files of nodes no longer in the spec may still be in {out_dir}, with their secrets: remove the .yaml and .ign files the new SHA256SUMS does not list, if they are not yours\n"
        ),
    );
}

/// A refused build (a node over the size limit) removes nothing; the next accepted build
/// of the same nodes does.
#[test]
fn a_refused_build_removes_nothing() {
    let (tmp, out, two) = three_then_two();
    let sums_before = std::fs::read(out.join("SHA256SUMS")).unwrap();
    // A YAML flow list: the args hold nothing that Debug escapes.
    let big_args = format!("{:?}", repetitive_server_args());
    let too_big = starter_spec(tmp.path(), "too-big.yaml", 1, &big_args);

    let o = meshboot(&["build", &too_big, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: cp-1.yaml: ") && stderr(&o).contains("nothing was written"),
        "{}",
        stderr(&o)
    );
    assert!(!stdout(&o).contains("removed "), "{}", stdout(&o));
    assert_eq!(names_in(&out), THREE);
    assert_eq!(std::fs::read(out.join("SHA256SUMS")).unwrap(), sums_before);
    assert_sums_verify(&out, 3);

    build_into(&two, &out);
    assert_eq!(names_in(&out), ["SHA256SUMS", "cp-1.yaml", "worker-1.yaml"]);
}

/// A leftover the build may not remove stays, with a warning that it may hold secrets:
/// a shared directory with the sticky bit (as /tmp), owned by someone else (`nobody`), as is
/// worker-2.yaml; the build runs as root without CAP_FOWNER (setpriv drops it), so it may
/// replace its own files there but not unlink worker-2.yaml (unlink(2), EPERM: "the
/// directory containing pathname has the sticky bit set and the process's effective UID is
/// neither the UID of the file to be deleted nor that of the directory containing it, and
/// the process is not privileged (Linux: does not have the CAP_FOWNER capability)").
#[test]
fn a_leftover_that_cannot_be_removed_is_kept_with_a_warning() {
    use std::os::unix::fs::chown;
    const NOBODY: u32 = 65534;
    let setpriv = crate::support::require("setpriv", "util-linux");
    let (_tmp, out, two) = three_then_two();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o1777)).unwrap();
    for path in [out.clone(), out.join("worker-2.yaml")] {
        chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }

    let mut cmd = Command::new(setpriv);
    cmd.args(["--inh-caps=-fowner", "--bounding-set=-fowner"])
        .arg(env!("CARGO_BIN_EXE_meshboot"))
        .args(["build", &two, "--out", out.to_str().unwrap()])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for (k, v) in fake_env_vars() {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("worker-2.yaml").is_file());
    let out_dir = out.to_str().unwrap();
    assert_removed_nothing(
        &o,
        &out,
        &format!(
            "warning: kept {out_dir}/worker-2.yaml (node no longer in the spec): cannot remove it: permission denied\n  = help: it may hold the node's secrets: remove it yourself (the new SHA256SUMS does not list it, so the next build will not try again)\n"
        ),
    );
}
