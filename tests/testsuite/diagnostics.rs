//! The wording of every diagnostic, golden-tested: each `fixtures/err_*.yaml` snapshots the
//! report it produces (exit code, then exactly what stderr shows). Around the snapshots,
//! checks that hold for every report: each problem names the file (and line and column
//! when it has one), says what to do, and echoes no secret. Then the limits of reading:
//! huge, binary and hostile inputs end in a positioned error, never a hang or a panic.

use crate::support::{assert_no_secret, fake_env, meshboot, root};
use camino::{Utf8Path, Utf8PathBuf};
use meshboot::{Options, exit};

/// Literal secrets written into the err_ fixtures: none may ever be printed.
const LITERALS_IN_FIXTURES: &[&str] = &[
    "LiteralKeyInTheSpecDoNotUse99",
    "literaltokenLITERALtoken",
    "literalpassword",
    "aaaabbbbccccdddd",
    "hunter2",
    "NotAPathButAKey123456",
    "s3cr3t",
    "joinKey=x",
];

/// What `meshboot check` reports for a spec: the exit code and the text on stderr.
fn diagnose(path: &Utf8Path, strict: bool) -> (i32, String) {
    let bytes = std::fs::read(path).expect("fixture readable");
    let rel = path.strip_prefix(root()).unwrap_or(path);
    let opts = Options {
        strict,
        ..Options::default()
    };
    match meshboot::check_bytes(rel, &bytes, &fake_env, &opts) {
        Ok(checked) => (exit::OK, checked.warnings),
        Err(f) => (f.exit_code(), f.message().to_string()),
    }
}

/// The diagnostics of a report, one string each (the summary line dropped).
fn blocks(report: &str) -> Vec<&str> {
    report
        .split("\n\n")
        .filter(|b| b.starts_with("error:") || b.starts_with("warning:"))
        .collect()
}

#[test]
fn every_err_fixture_snapshots_its_report() {
    insta::glob!("../../fixtures", "err_*.yaml", |path| {
        let path = Utf8PathBuf::from_path_buf(path.to_path_buf()).expect("UTF-8 path");
        let name = path.file_name().unwrap_or_default().to_string();
        let (code, report) = diagnose(&path, false);

        let expected = if name.starts_with("err_warnings") {
            exit::OK
        } else {
            exit::INVALID_SPEC
        };
        assert_eq!(code, expected, "{name}:\n{report}");
        let found = blocks(&report);
        assert!(!found.is_empty(), "{name} reports nothing:\n{report}");
        for b in &found {
            assert!(
                b.contains(&format!("--> fixtures/{name}")),
                "{name}: a diagnostic without the file:\n{b}"
            );
            assert!(
                b.contains("= help: "),
                "{name}: a diagnostic that does not say what to do:\n{b}"
            );
            // A caret line follows every quoted source line.
            if b.contains(" | ") {
                assert!(
                    b.contains('^'),
                    "{name}: a source line without a caret:\n{b}"
                );
            }
        }
        assert!(
            report.trim_end().ends_with(&format!(
                "{} warning{}",
                found.iter().filter(|b| b.starts_with("warning:")).count(),
                if found.iter().filter(|b| b.starts_with("warning:")).count() == 1 {
                    ""
                } else {
                    "s"
                }
            )),
            "{name}: the summary line does not count the warnings:\n{report}"
        );
        assert_no_secret(&name, &report, LITERALS_IN_FIXTURES);

        insta::assert_snapshot!("report", format!("exit code {code}\n\n{report}"));
    });
}

#[test]
fn errors_are_collected_not_stopped_at_the_first() {
    let (_, report) = diagnose(&root().join("fixtures/err_unknown_keys.yaml"), false);
    assert!(blocks(&report).len() >= 5, "{report}");
    let (_, report) = diagnose(&root().join("fixtures/err_node_names.yaml"), false);
    assert!(blocks(&report).len() >= 6, "{report}");
}

#[test]
fn diagnostics_come_in_source_order_errors_before_warnings() {
    let (_, report) = diagnose(&root().join("fixtures/err_extra_args.yaml"), false);
    let lines: Vec<usize> = report
        .lines()
        .filter_map(|l| l.split("err_extra_args.yaml:").nth(1))
        .filter_map(|rest| rest.split(':').next()?.parse().ok())
        .collect();
    assert!(lines.len() >= 5, "{report}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn warnings_pass_unless_strict() {
    let path = root().join("fixtures/err_warnings.yaml");
    let (code, report) = diagnose(&path, false);
    assert_eq!(code, exit::OK);
    assert!(
        report.contains("warning:") && !report.contains("error:"),
        "{report}"
    );
    let (code, report) = diagnose(&path, true);
    assert_eq!(code, exit::INVALID_SPEC);
    assert!(
        report.contains("warnings are errors under --strict"),
        "{report}"
    );
}

#[test]
fn exit_codes_of_the_binary() {
    let fixture = |n: &str| root().join("fixtures").join(n).to_string();
    let code = |args: &[&str]| meshboot(args).status.code();
    assert_eq!(code(&["check", &fixture("single-server.yaml")]), Some(0));
    assert_eq!(code(&["check", &fixture("err_warnings.yaml")]), Some(0));
    assert_eq!(
        code(&["check", "--strict", &fixture("err_warnings.yaml")]),
        Some(1)
    );
    assert_eq!(code(&["check", &fixture("err_enums.yaml")]), Some(1));
    // Not UTF-8 is an invalid spec, not an I/O error.
    let o = meshboot(&["check", &fixture("err_non_utf8.yaml")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("err_non_utf8.yaml:4:10"));
    // Usage and I/O: exit 2.
    assert_eq!(code(&["check"]), Some(2));
    assert_eq!(
        code(&["check", "--no-such-flag", &fixture("cluster.yaml")]),
        Some(2)
    );
    assert_eq!(code(&["check", &fixture("no-such-spec.yaml")]), Some(2));
    assert_eq!(code(&["check", &fixture("secrets")]), Some(2));
}

/// Writes `text` as a spec in a fresh directory and checks it.
fn check_text(text: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("spec.yaml")).expect("UTF-8");
    std::fs::write(&path, text).expect("write");
    let opts = Options::default();
    match meshboot::check_bytes(&path, text, &fake_env, &opts) {
        Ok(c) => (0, c.warnings),
        Err(f) => (
            f.exit_code(),
            f.message().replace(path.as_str(), "spec.yaml"),
        ),
    }
}

#[test]
fn oversized_and_pathological_inputs_end_in_an_error() {
    // More than 1 MiB.
    let big = format!("version: 1\n# {}\n", "x".repeat(1024 * 1024));
    let (code, report) = check_text(big.as_bytes());
    assert_eq!(code, exit::INVALID_SPEC);
    assert!(report.contains("at most 1048576 bytes"), "{report}");

    // One enormous line: the excerpt stays short.
    let long = format!("version: 1\ncluster: {{ name: {} }}\n", "a".repeat(200_000));
    let (code, report) = check_text(long.as_bytes());
    assert_eq!(code, exit::INVALID_SPEC);
    assert!(report.lines().all(|l| l.chars().count() < 300), "{report}");

    // A wide alias fan-out that is not a bomb by depth, only by size.
    let mut fan = String::from("version: 1\nx: &x [");
    fan.push_str(&vec!["a"; 1000].join(","));
    fan.push_str("]\ny: [");
    fan.push_str(&vec!["*x"; 200].join(","));
    fan.push_str("]\n");
    let (code, report) = check_text(fan.as_bytes());
    assert_eq!(code, exit::INVALID_SPEC);
    assert!(report.contains("aliases are expanded"), "{report}");

    // Nesting: flow and block.
    let deep = format!(
        "version: 1\nx: {}{}\n",
        "{a: ".repeat(5000),
        "}".repeat(5000)
    );
    let (code, _) = check_text(deep.as_bytes());
    assert_eq!(code, exit::INVALID_SPEC);
    let mut block = String::from("version: 1\n");
    for i in 0..200 {
        block.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
    }
    let (code, report) = check_text(block.as_bytes());
    assert_eq!(code, exit::INVALID_SPEC);
    assert!(report.contains("more than 64 deep"), "{report}");

    // Many keys in one mapping: duplicate detection is not quadratic.
    let mut wide = String::from("version: 1\ncluster:\n");
    for i in 0..50_000 {
        wide.push_str(&format!("  k{i}: 1\n"));
    }
    let started = std::time::Instant::now();
    let (code, _) = check_text(wide.as_bytes());
    assert_eq!(code, exit::INVALID_SPEC);
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn odd_documents_get_a_sentence_not_a_crash() {
    for (text, want) in [
        (&b""[..], "the spec is empty"),
        (b"\n\n# only comments\n", "the spec is empty"),
        (b"~\n", "must be a mapping of sections"),
        (b"just words\n", "must be a mapping of sections"),
        (b"- a\n- b\n", "the spec is a list"),
        (
            b"\xef\xbb\xbfversion: 2\n",
            "unsupported spec version \"2\"",
        ),
        (
            b"version: 1\n\x00\ncluster: {}\n",
            "control character U+0000",
        ),
        (
            b"version: 1\r\ncluster:\r\n  nmae: x\r\n",
            "did you mean `name`?",
        ),
        (b"{version: 1, nodes: [}\n", "a value is missing here"),
        (b"{version: 1, nodes: [a\n", "not closed properly"),
        (b"version: 1\nx: 'open\n", "not valid YAML"),
        (b"version: 1\ncluster: *nope\n", "not defined above it"),
        (b"? [a, b]\n: c\nversion: 1\n", "a key must be a plain word"),
        (b"version: !!binary aGVsbG8=\n", "unsupported spec version"),
    ] {
        let (code, report) = check_text(text);
        assert_eq!(code, exit::INVALID_SPEC, "{text:?}:\n{report}");
        assert!(
            report.contains(want),
            "{text:?}: wanted {want:?} in\n{report}"
        );
    }
}

/// A warning about a setting left at its default points at the section it is missing from:
/// no `tags:` at all is reported at `tailscale:`.
#[test]
fn a_default_setting_is_reported_at_its_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("spec.yaml")).expect("UTF-8");
    let spec = std::fs::read_to_string(root().join("fixtures/err_warnings_day2.yaml"))
        .expect("fixture")
        .replace("  tags: []\n", "");
    std::fs::write(&path, &spec).expect("spec");
    let (code, report) = diagnose(&path, false);
    assert_eq!(code, exit::OK, "{report}");
    let untagged = blocks(&report)
        .into_iter()
        .find(|b| b.contains("no tags:"))
        .unwrap_or_else(|| panic!("no warning about tags:\n{report}"));
    assert!(untagged.contains(":5:1\n"), "{untagged}");
    assert!(untagged.contains("5 | tailscale:"), "{untagged}");
}

/// Role tags count: nodes are untagged only when neither `tags` nor their role's own tags
/// give them one. Servers tagged by `server_tags` alone leave the agents untagged.
#[test]
fn nodes_are_untagged_only_when_their_role_has_no_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("spec.yaml")).expect("UTF-8");
    let fixture =
        std::fs::read_to_string(root().join("fixtures/err_warnings_day2.yaml")).expect("fixture");
    let with_agent = |tags: &str| {
        fixture.replace("  tags: []\n", tags).replace(
            "    role: server\n",
            "    role: server\n  - name: w-1\n    role: agent\n",
        )
    };
    for (tags, warned) in [
        ("  tags: []\n", true),
        ("  server_tags: [tag:cp]\n", true),
        ("  agent_tags: [tag:w]\n", true),
        ("  server_tags: [tag:cp]\n  agent_tags: [tag:w]\n", false),
        ("  tags: [tag:k3s]\n", false),
    ] {
        std::fs::write(&path, with_agent(tags)).expect("spec");
        let (code, report) = diagnose(&path, false);
        assert_eq!(code, exit::OK, "{report}");
        assert_eq!(report.contains("no tags:"), warned, "{tags}{report}");
    }
}
