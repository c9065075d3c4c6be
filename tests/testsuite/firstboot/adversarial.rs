//! Hostile values, run for real.

use super::checks::assert_converged;
use super::sandbox::{Sandbox, node};
use super::world::INIT_IP;
use crate::support::{compile, fixtures_dir, yaml_files};
use meshboot::Options;
use meshboot::plan::NodeRole;
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
/// must not appear anywhere, the node must converge, and each hostile value must reach
/// config.yaml and `tailscale up` unchanged.
#[test]
fn hostile_values_are_inert_on_a_real_first_boot() {
    let specs = yaml_files(&fixtures_dir().join("adversarial"));
    assert!(specs.len() >= 2, "no accepted adversarial fixtures");
    let mut booted = 0;
    for spec in specs {
        let fixture = format!("adversarial/{}", spec.file_name().expect("file name"));
        let (checked, _) = compile(&fixtures_dir().join(&fixture), &Options::default());
        for plan in &checked.plan.nodes {
            let mut sb = Sandbox::new(node(&fixture, &plan.name));
            sb.cwd = "/var/tmp";
            if plan.role != NodeRole::InitServer {
                sb.peer(&plan.join.init_server, INIT_IP);
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
