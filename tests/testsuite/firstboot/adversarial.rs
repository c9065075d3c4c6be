//! Hostile values, run for real.

use super::checks::assert_bootstrapped;
use super::expect::{Expect, rows_of};
use super::sandbox::{Sandbox, artifacts_of, node};
use crate::support::{fixtures_dir, yaml_files};
use std::fs;
use std::path::{Path, PathBuf};

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
/// must not appear anywhere, and the node must boot exactly as its row in the table says,
/// so each hostile value reaches config.yaml and `tailscale up` unchanged (the extra args
/// as the fixture's text has them, the control server URL as the table writes it).
#[test]
fn hostile_values_are_inert_on_a_real_first_boot() {
    let specs = yaml_files(&fixtures_dir().join("adversarial"));
    assert!(specs.len() >= 2, "no accepted adversarial fixtures");
    let mut booted = 0;
    for spec in specs {
        let fixture = format!("adversarial/{}", spec.file_name().expect("file name"));
        let rendered: Vec<String> = artifacts_of(&fixture).into_iter().map(|a| a.node).collect();
        let rows: Vec<&str> = rows_of(&fixture).iter().map(|r| r.node).collect();
        assert_eq!(
            rows, rendered,
            "{fixture}: the table's rows and the nodes it renders"
        );
        for row in rows_of(&fixture) {
            let expect = Expect::of(&fixture, row.node);
            let mut sb = Sandbox::new(node(&fixture, row.node));
            sb.cwd = "/var/tmp";
            if let Some((server, ip)) = &expect.join {
                sb.peer(server, ip);
            }
            let run = sb.run();
            assert_bootstrapped(&sb, &run, &expect);
            let found = canaries(sb.dir.path());
            assert!(
                found.is_empty(),
                "{fixture} {}: canary {found:?}\n{}",
                row.node,
                sb.report()
            );
            booted += 1;
        }
    }
    assert!(booted >= 6, "only {booted} adversarial nodes booted");
}
