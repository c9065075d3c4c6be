//! Golden snapshots: the plan of every fixture, and every node's artifact.
//!
//! One snapshot per node and artifact (cloud-init as delivered; Ignition as a review view
//! with each data URL decoded and the raw artifact's sha256, so a change to the raw bytes
//! still shows). The fixtures cover every role (init server, joining server, agent) x
//! envelope (cloud-init, Ignition) x firewall backend (ufw, nftables); the test
//! `fixtures_cover_every_role_envelope_and_backend` keeps it that way.

use crate::support::{self, compile, delivered_files, good_fixtures};
use meshboot::Options;
use meshboot::plan::{Envelope, NodeRole};
use meshboot::render::Artifact;
use std::collections::BTreeSet;

/// The Ignition artifact with its data URLs decoded, for human review.
fn ignition_review(a: &Artifact) -> String {
    let doc: serde_json::Value = serde_json::from_str(&a.contents).expect("ignition parses");
    let mut out = format!(
        "# review view of {} ({} bytes, sha256 {})\nignition.version: {}\n",
        a.file_name,
        a.contents.len(),
        meshboot::emit::sha256_hex(a.contents.as_bytes()),
        doc["ignition"]["version"].as_str().unwrap_or("?")
    );
    let units: BTreeSet<String> = doc["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            format!(
                "{} (enabled: {})",
                u["name"].as_str().unwrap_or("?"),
                u.get("enabled")
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "unset".into())
            )
        })
        .collect();
    out.push_str(&format!(
        "systemd.units: {}\n",
        units.into_iter().collect::<Vec<_>>().join(", ")
    ));
    for f in doc["storage"]["files"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "storage.files: {} mode {:04o} user {} group {} overwrite {}\n",
            f["path"].as_str().unwrap_or("?"),
            f["mode"].as_u64().unwrap_or(0),
            f["user"]["name"].as_str().unwrap_or("?"),
            f["group"]["name"].as_str().unwrap_or("?"),
            f["overwrite"]
        ));
    }
    for (path, mode, contents) in delivered_files(a) {
        out.push_str(&format!("\n===== {path} ({mode:04o}) =====\n{contents}"));
    }
    out
}

#[test]
fn golden_plans_and_artifacts() {
    insta::glob!("../../fixtures", "*.yaml", |path| {
        let path = camino::Utf8Path::from_path(path).expect("utf8 path");
        if path.file_name().is_some_and(|n| n.starts_with("err_")) {
            return;
        }
        let (checked, artifacts) = compile(path, &Options::default());
        insta::assert_yaml_snapshot!("plan", checked.plan);
        for a in &artifacts {
            let body = match a.envelope {
                Envelope::CloudInit => a.contents.clone(),
                Envelope::Ignition => ignition_review(a),
            };
            insta::assert_snapshot!(a.file_name.clone(), body);
        }
    });
}

#[test]
fn ignition_3_4_is_available_on_request() {
    let opts = Options {
        ignition_version: meshboot::plan::IgnitionVersion::V3_4,
        ..Options::default()
    };
    let (_, artifacts) = compile(&support::fixtures_dir().join("flatcar.yaml"), &opts);
    for a in artifacts {
        let doc: serde_json::Value = serde_json::from_str(&a.contents).unwrap();
        assert_eq!(doc["ignition"]["version"], "3.4.0", "{}", a.file_name);
    }
    let (_, default) = compile(
        &support::fixtures_dir().join("flatcar.yaml"),
        &Options::default(),
    );
    let doc: serde_json::Value = serde_json::from_str(&default[0].contents).unwrap();
    assert_eq!(doc["ignition"]["version"], "3.3.0");
}

#[test]
fn output_is_byte_identical_for_the_same_input() {
    for f in good_fixtures() {
        let (_, a) = compile(&f, &Options::default());
        let (_, b) = compile(&f, &Options::default());
        let a: Vec<&str> = a.iter().map(|x| x.contents.as_str()).collect();
        let b: Vec<&str> = b.iter().map(|x| x.contents.as_str()).collect();
        assert_eq!(a, b, "{f} renders differently twice");
    }
}

#[test]
fn fixtures_cover_every_role_envelope_and_backend() {
    let mut seen = BTreeSet::new();
    for f in good_fixtures() {
        let (checked, _) = compile(&f, &Options::default());
        for n in &checked.plan.nodes {
            seen.insert((
                format!("{:?}", n.role),
                format!("{:?}", n.envelope),
                format!("{:?}", n.firewall.backend),
            ));
        }
    }
    let want = [
        (NodeRole::InitServer, Envelope::CloudInit, "Ufw"),
        (NodeRole::JoinServer, Envelope::CloudInit, "Ufw"),
        (NodeRole::Agent, Envelope::CloudInit, "Ufw"),
        (NodeRole::InitServer, Envelope::CloudInit, "Nftables"),
        (NodeRole::JoinServer, Envelope::CloudInit, "Nftables"),
        (NodeRole::Agent, Envelope::CloudInit, "Nftables"),
        // ufw does not exist on Flatcar / Fedora CoreOS: Ignition nodes are nftables.
        (NodeRole::InitServer, Envelope::Ignition, "Nftables"),
        (NodeRole::JoinServer, Envelope::Ignition, "Nftables"),
        (NodeRole::Agent, Envelope::Ignition, "Nftables"),
    ];
    for (role, env, backend) in want {
        let key = (format!("{role:?}"), format!("{env:?}"), backend.to_string());
        assert!(seen.contains(&key), "no fixture node is {key:?}");
    }
}

#[test]
fn every_artifact_parses_back_and_its_scripts_pass_sh_n() {
    for f in good_fixtures() {
        let (_, artifacts) = compile(&f, &Options::default());
        for a in &artifacts {
            if a.file_name.ends_with(".yaml") {
                assert!(a.contents.starts_with("#cloud-config\n"), "{}", a.file_name);
            }
            for (path, _, contents) in delivered_files(a) {
                if path.ends_with(".sh") {
                    let out = std::process::Command::new("sh")
                        .arg("-n")
                        .arg("-c")
                        .arg(&contents)
                        .output()
                        .expect("sh runs");
                    assert!(
                        out.status.success(),
                        "{} {path}: sh -n fails: {}",
                        a.file_name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                if path == meshboot::plan::K3S_CONFIG_PATH {
                    panic!("config.yaml is written at boot, not delivered");
                }
            }
        }
    }
}
