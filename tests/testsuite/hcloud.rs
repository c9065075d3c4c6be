//! `meshboot hcloud`: the script it prints, run against a recording stand-in for the hcloud
//! CLI (`tests/testsuite/hcloud/hcloud`, modelled on hetznercloud/cli's reference manual:
//! the commands and flags the script uses, each flag's value, the rules read from stdin;
//! anything else fails the test). What this proves: the script passes exactly these
//! commands and arguments, byte for byte through the shell (hostile-but-valid SSH key names
//! included), creates nothing twice when run again, picks up after a failure half-way, and
//! checks the user-data files before creating anything. What it does not prove: that
//! Hetzner's API accepts the requests (names, rules, a placement group's capacity), or that
//! a cloud firewall behaves as documented; nothing here reaches Hetzner.

use crate::support::{fixtures_dir, meshboot, meshboot_in, require, root, stderr, stdout};
use serde_json::json;
use std::path::Path;
use std::process::Command;

const STAND_IN: &str = include_str!("hcloud/hcloud");

/// A scratch directory with `meshboot build`'s files of `fixture` under `out/`, the hcloud
/// stand-in on the PATH, and the script `meshboot hcloud --out out` printed.
struct World {
    dir: tempfile::TempDir,
    script: String,
}

impl World {
    fn new(fixture: &str) -> World {
        let dir = tempfile::tempdir().expect("scratch");
        let spec = fixtures_dir().join(fixture);
        let out = dir.path().join("out");
        let b = meshboot(&["build", spec.as_str(), "--out", out.to_str().unwrap()]);
        assert_eq!(b.status.code(), Some(0), "{}", stderr(&b));
        World::script(dir, &["hcloud", spec.as_str(), "--out", "out"])
    }

    /// The script `meshboot hcloud --firewalls-only` prints for the spec `text` (no build:
    /// that script reads no node's file).
    fn firewalls_only(text: &str) -> World {
        let dir = tempfile::tempdir().expect("scratch");
        std::fs::write(dir.path().join("spec.yaml"), text).unwrap();
        World::script(dir, &["hcloud", "spec.yaml", "--firewalls-only"])
    }

    fn script(dir: tempfile::TempDir, args: &[&str]) -> World {
        let o = meshboot_in(dir.path(), args, &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("fake")).unwrap();
        let hcloud = bin.join("hcloud");
        std::fs::write(&hcloud, STAND_IN).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hcloud, std::fs::Permissions::from_mode(0o755)).unwrap();
        World {
            dir,
            script: stdout(&o),
        }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    /// Runs the script with dash, in the scratch directory; returns its exit code.
    fn run(&self) -> (Option<i32>, String) {
        let o = Command::new(require("dash", "dash"))
            .arg("-c")
            .arg(&self.script)
            .current_dir(self.dir.path())
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.path("bin").display()),
            )
            .env("HCLOUD_FAKE", self.path("fake"))
            .output()
            .expect("dash runs");
        assert!(
            !self.path("fake/unexpected").exists(),
            "the stand-in got a call it does not model:\n{}",
            std::fs::read_to_string(self.path("fake/unexpected")).unwrap_or_default()
        );
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// The recorded calls, each its arguments (and what it read on stdin, parsed).
    fn calls(&self) -> Vec<(Vec<String>, Option<serde_json::Value>)> {
        std::fs::read_to_string(self.path("fake/calls"))
            .unwrap_or_default()
            .lines()
            .map(|l| match l.split_once("\tSTDIN\t") {
                Some((args, json)) => (
                    split(args),
                    Some(serde_json::from_str(json).expect("the rules are JSON")),
                ),
                None => (split(l), None),
            })
            .collect()
    }

    fn forget_calls(&self) {
        let _ = std::fs::remove_file(self.path("fake/calls"));
    }
}

fn split(line: &str) -> Vec<String> {
    line.split('\t').map(String::from).collect()
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').map(String::from).collect()
}

/// A firewall rule as Hetzner's API takes it (`FirewallRule`: direction, protocol, port,
/// source_ips, description), open to every IPv4 and IPv6 source.
fn rule(description: &str, protocol: &str, port: Option<&str>) -> serde_json::Value {
    let mut r = json!({
        "description": description,
        "direction": "in",
        "protocol": protocol,
        "source_ips": ["0.0.0.0/0", "::/0"],
    });
    if let Some(p) = port {
        r["port"] = json!(p);
    }
    r
}

const HOSTILE_KEY: &str = "it's ops $(touch meshboot-canary)";

/// hetzner.yaml's servers, as `hcloud server create` must get them, written from the
/// fixture: defaults cx22/fsn1 and two SSH keys, hz-edge in nbg1 with its own public
/// ports, hz-core an Arm Flatcar node booting the newest snapshot of its selector (the
/// stand-in's `image list` answers 4242), hz-debian an image ID and no SSH key.
fn server_creates() -> Vec<Vec<String>> {
    let keys = |v: &mut Vec<String>| {
        v.extend(["--ssh-key", "ops", "--ssh-key", HOSTILE_KEY].map(String::from));
    };
    let create = |name: &str, head: &str, with_keys: bool, tail: &str| {
        let mut v = words(&format!("server create --name {name} {head}"));
        if with_keys {
            keys(&mut v);
        }
        v.extend(words(tail));
        v
    };
    vec![
        create(
            "hz-server",
            "--type cx22 --location fsn1 --image ubuntu-24.04 --user-data-from-file out/hz-server.yaml --label meshboot.cluster=hz --label meshboot.role=server",
            true,
            "--firewall hz --placement-group hz-fsn1-1",
        ),
        create(
            "hz-edge",
            "--type cx22 --location nbg1 --image ubuntu-22.04 --user-data-from-file out/hz-edge.yaml --label meshboot.cluster=hz --label meshboot.role=agent",
            true,
            "--firewall hz --firewall hz-hz-edge --placement-group hz-nbg1-1",
        ),
        create(
            "hz-core",
            "--type cax21 --location fsn1 --image 4242 --user-data-from-file out/hz-core.ign --label meshboot.cluster=hz --label meshboot.role=agent",
            true,
            "--firewall hz --placement-group hz-fsn1-1",
        ),
        create(
            "hz-debian",
            "--type cx22 --location fsn1 --image 123456789 --user-data-from-file out/hz-debian.yaml --label meshboot.cluster=hz --label meshboot.role=agent",
            false,
            "--firewall hz --placement-group hz-fsn1-1",
        ),
    ]
}

#[test]
fn the_script_creates_firewalls_groups_and_servers_with_exactly_these_calls() {
    let w = World::new("hetzner.yaml");
    let (code, err) = w.run();
    assert_eq!(code, Some(0), "{err}");
    let cluster_rules = json!([
        rule("ICMP", "icmp", None),
        rule("tailscaled direct connections", "udp", Some("41641")),
        rule("SSH (firewall.ssh: public)", "tcp", Some("22")),
        rule("firewall.public_* 443/tcp", "tcp", Some("443")),
    ]);
    let edge_rules = json!([
        rule("node public port 80/tcp", "tcp", Some("80")),
        rule("node public port 3478-3480/udp", "udp", Some("3478-3480")),
    ]);
    let mut want: Vec<(Vec<String>, Option<serde_json::Value>)> = vec![
        (
            words(
                "image list --type snapshot --selector meshboot.cluster=hz,meshboot.os=flatcar --architecture arm --sort created:desc -o noheader -o columns=id",
            ),
            None,
        ),
        (words("firewall describe hz"), None),
        (
            words("firewall create --name hz --label meshboot.cluster=hz --rules-file -"),
            Some(cluster_rules),
        ),
        (words("firewall describe hz-hz-edge"), None),
        (
            words("firewall create --name hz-hz-edge --label meshboot.cluster=hz --rules-file -"),
            Some(edge_rules),
        ),
        (words("placement-group describe hz-fsn1-1"), None),
        (
            words(
                "placement-group create --name hz-fsn1-1 --type spread --label meshboot.cluster=hz",
            ),
            None,
        ),
        (words("placement-group describe hz-nbg1-1"), None),
        (
            words(
                "placement-group create --name hz-nbg1-1 --type spread --label meshboot.cluster=hz",
            ),
            None,
        ),
    ];
    for create in server_creates() {
        want.push((
            vec!["server".into(), "describe".into(), create[3].clone()],
            None,
        ));
        want.push((create, None));
    }
    assert_eq!(w.calls(), want);
    // The hostile key name reached hcloud as one word, and ran nothing.
    assert!(!w.path("meshboot-canary").exists());
    assert!(!Path::new("/meshboot-canary").exists());
}

#[test]
fn running_it_again_creates_nothing_and_updates_the_firewall_rules() {
    let w = World::new("hetzner.yaml");
    assert_eq!(w.run().0, Some(0));
    w.forget_calls();
    let (code, err) = w.run();
    assert_eq!(code, Some(0), "{err}");
    let verbs: Vec<String> = w.calls().iter().map(|(c, _)| c[..2].join(" ")).collect();
    assert!(!verbs.iter().any(|v| v.ends_with(" create")), "{verbs:?}");
    assert_eq!(
        verbs
            .iter()
            .filter(|v| *v == "firewall replace-rules")
            .count(),
        2,
        "{verbs:?}"
    );
    assert_eq!(err.matches("exists; left as it is").count(), 4, "{err}");
}

#[test]
fn a_run_that_failed_half_way_is_finished_by_the_next() {
    let w = World::new("hetzner.yaml");
    std::fs::write(w.path("fake/fail-server-hz-edge"), "").unwrap();
    let (code, _) = w.run();
    assert_ne!(code, Some(0), "the failed create must stop the script");
    let created = |w: &World| -> Vec<String> {
        w.calls()
            .into_iter()
            .filter(|(c, _)| c[..2] == ["server", "create"])
            .map(|(c, _)| c[3].clone())
            .collect()
    };
    assert_eq!(created(&w), ["hz-server", "hz-edge"]);
    w.forget_calls();
    assert_eq!(w.run().0, Some(0));
    assert_eq!(created(&w), ["hz-edge", "hz-core", "hz-debian"]);
}

#[test]
fn nothing_is_created_when_a_node_file_is_missing() {
    let w = World::new("hetzner.yaml");
    std::fs::remove_file(w.path("out/hz-core.ign")).unwrap();
    let (code, err) = w.run();
    assert_eq!(code, Some(1));
    assert!(
        err.contains("missing out/hz-core.ign: run meshboot build first"),
        "{err}"
    );
    assert!(w.calls().is_empty(), "{:?}", w.calls());
}

#[test]
fn the_script_passes_shellcheck_dash_and_bash() {
    for w in [
        World::new("hetzner.yaml"),
        World::firewalls_only(&pools_with_firewalls(true)),
    ] {
        shellcheck_dash_and_bash(&w);
    }
}

fn shellcheck_dash_and_bash(w: &World) {
    let sc = require("shellcheck", "shellcheck");
    let o = Command::new(sc)
        .args(["-S", "warning", "-s", "sh", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(w.script.as_bytes())?;
            c.wait_with_output()
        })
        .expect("shellcheck runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    for shell in [require("dash", "dash"), require("bash", "bash")] {
        let o = Command::new(&shell)
            .args(["-n", "-c", &w.script])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn every_node_needs_a_type_a_location_and_an_image_hetzner_can_boot() {
    // cluster.yaml: the Flatcar workers have no image and no location.
    let o = meshboot_in(
        root().as_std_path(),
        &["hcloud", "fixtures/cluster.yaml", "--out", "out"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("hcloud-refusals", stderr(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn the_script_is_a_snapshot() {
    let o = meshboot_in(
        root().as_std_path(),
        &["hcloud", "fixtures/hetzner.yaml", "--out", "out/hz"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("hcloud-script", stdout(&o));
}

/// Pools are the cluster-autoscaler's: the script creates only the fixed nodes (with their
/// firewall and placement group), names the pools in its header, and does not ask a pool
/// for what only a server it creates would need (here an image for a Flatcar pool).
#[test]
fn pools_are_left_to_the_autoscaler() {
    let w = World::new("pools.yaml");
    assert!(
        w.script
            .contains("#   pool burst: 0 to 10 servers\n#   pool arm: 1 to 3 servers\n"),
        "{}",
        w.script
    );
    let (code, err) = w.run();
    assert_eq!(code, Some(0), "{err}");
    let calls = w.calls();
    let created: Vec<&str> = calls
        .iter()
        .filter(|(c, _)| c[..2] == ["server", "create"])
        .map(|(c, _)| c[3].as_str())
        .collect();
    assert_eq!(created, ["cp-1", "steady"]);
    for (c, _) in &calls {
        assert!(
            !c.iter()
                .any(|a| a.contains("burst") && !a.contains("burst-lab") || a.starts_with("arm")),
            "a call about a pool: {c:?}"
        );
    }
    let groups: Vec<&str> = calls
        .iter()
        .filter(|(c, _)| c[..2] == ["placement-group", "create"])
        .map(|(c, _)| c[3].as_str())
        .collect();
    assert_eq!(
        groups,
        ["burst-lab-nbg1-1"],
        "no group for the pools' locations"
    );

    let o = meshboot_in(
        root().as_std_path(),
        &["hcloud", "fixtures/pools.yaml", "--out", "out/burst-lab"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("hcloud-script-pools", stdout(&o));

    // A Flatcar pool with no image: the autoscaler refuses it, meshboot hcloud does not care.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixtures_dir().join("pools.yaml"))
        .unwrap()
        .replace("    os: debian-12\n", "    os: flatcar\n");
    std::fs::write(dir.path().join("spec.yaml"), text).unwrap();
    let o = meshboot_in(dir.path(), &["hcloud", "spec.yaml", "--out", "out"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let a = meshboot_in(dir.path(), &["autoscaler", "spec.yaml", "--redact"], &[]);
    assert_eq!(a.status.code(), Some(1), "{}", stdout(&a));
}

/// More servers in one location than a spread group holds (10, Hetzner's limit): several
/// groups, the servers (etcd members) together in the first.
#[test]
fn a_spread_group_holds_at_most_ten_servers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("big.yaml"),
        "version: 1\ncluster: { name: big }\ntailscale: { auth_key: { env: TS_AUTHKEY }, tags: [tag:k3s] }\nk3s: { version: v1.33.5+k3s1, token: { env: K3S_TOKEN }, agent_token: { env: K3S_AGENT_TOKEN } }\ndefaults: { hcloud: { type: cx22, location: fsn1 } }\nnodes:\n  - { name: w, role: agent, count: 18 }\n  - { name: cp, role: server, count: 3 }\n",
    )
    .unwrap();
    let o = meshboot_in(dir.path(), &["hcloud", "big.yaml", "--out", "out"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = stdout(&o);
    let groups: Vec<&str> = script
        .lines()
        .filter_map(|l| l.strip_prefix("placement_group "))
        .collect();
    assert_eq!(groups, ["big-fsn1-1", "big-fsn1-2", "big-fsn1-3"]);
    let group_of = |server: &str| -> String {
        let line = script
            .lines()
            .find(|l| l.starts_with(&format!("server {server} ")))
            .unwrap_or_else(|| panic!("no server {server}"));
        line.rsplit(' ').next().unwrap().to_string()
    };
    for cp in ["cp-1", "cp-2", "cp-3"] {
        assert_eq!(group_of(cp), "big-fsn1-1");
    }
    let servers: Vec<String> = (1..=18)
        .map(|i| format!("w-{i}"))
        .chain((1..=3).map(|i| format!("cp-{i}")))
        .collect();
    let sizes: Vec<usize> = groups
        .iter()
        .map(|g| servers.iter().filter(|s| group_of(s) == *g).count())
        .collect();
    assert_eq!(sizes, [10, 10, 1]);
}

/// pools.yaml with SSH keys on both pools (a hostile-but-valid name among them), public
/// ports of its own on the pool `burst`, and, with `fixed_elsewhere`, fixed nodes that are
/// not on Hetzner (no server type, location or image: only the pools are).
pub(crate) fn pools_with_firewalls(fixed_elsewhere: bool) -> String {
    let mut text = std::fs::read_to_string(fixtures_dir().join("pools.yaml"))
        .unwrap()
        .replace(
            "    taints: [\"burst=true:NoSchedule\"]\n",
            "    taints: [\"burst=true:NoSchedule\"]\n    firewall: { public_tcp: [8443] }\n",
        )
        .replace(
            "    hcloud: { type: cpx41 }\n",
            "    hcloud: { type: cpx41, ssh_keys: [ops, \"it's ops\"] }\n",
        )
        .replace(
            "    hcloud: { type: cax21, location: fsn1 }\n",
            "    hcloud: { type: cax21, location: fsn1, ssh_keys: [\"it's ops\", arm-key] }\n",
        );
    if fixed_elsewhere {
        text = text
            .replace("  hcloud: { type: cx22, location: nbg1 }\n", "")
            .replace(
                "    hcloud: { type: cpx41,",
                "    hcloud: { location: nbg1, type: cpx41,",
            );
    }
    assert!(text.contains("8443") && text.contains("arm-key"), "{text}");
    text
}

/// The firewalls the autoscaler's servers need exist before it starts, whoever creates the
/// fixed nodes: with `--firewalls-only` the script creates the cluster's firewall and the
/// pool's own (and nothing else) for a spec whose fixed nodes are not on Hetzner, which
/// `meshboot hcloud` without it refuses (they have no type or location). The firewalls'
/// names are the ones `meshboot autoscaler` hands the autoscaler: `HCLOUD_FIREWALL` in its
/// environment block and `nodeConfigs.burst.firewalls`; both names come from one function,
/// and this proves the two commands agree. It does not prove the autoscaler attaches them
/// (kubernetes/autoscaler hetzner_cloud_provider.go `BuildHetzner` resolves
/// `nodeConfigs.<pool>.firewalls` by name; hetzner_node_group.go
/// `buildServerCreateFirewalls` adds `HCLOUD_FIREWALL`): nothing here runs it.
#[test]
fn firewalls_only_creates_what_the_autoscaler_names_when_only_pools_are_on_hetzner() {
    let text = pools_with_firewalls(true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.yaml"), &text).unwrap();
    let refused = meshboot_in(dir.path(), &["hcloud", "spec.yaml", "--out", "out"], &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("meshboot hcloud needs this node's `hcloud.type`"),
        "{}",
        stderr(&refused)
    );

    let w = World::firewalls_only(&text);
    insta::assert_snapshot!("hcloud-firewalls-only", &w.script);
    let (code, err) = w.run();
    assert_eq!(code, Some(0), "{err}");
    let calls = w.calls();
    let verbs: Vec<String> = calls.iter().map(|(c, _)| c[..2].join(" ")).collect();
    assert_eq!(
        verbs,
        [
            "firewall describe",
            "firewall create",
            "firewall describe",
            "firewall create"
        ]
    );
    let created: Vec<&str> = calls
        .iter()
        .filter(|(c, _)| c[..2] == ["firewall", "create"])
        .map(|(c, _)| c[3].as_str())
        .collect();
    assert_eq!(created, ["burst-lab", "burst-lab-burst"]);
    assert_eq!(
        calls[3].1,
        Some(json!([rule(
            "node public port 8443/tcp",
            "tcp",
            Some("8443")
        )]))
    );
    // Run again: the rules are brought up to date, nothing is created twice.
    w.forget_calls();
    assert_eq!(w.run().0, Some(0));
    assert!(w.calls().iter().all(|(c, _)| c[1] != "create"));

    // What meshboot autoscaler names.
    let a = meshboot_in(dir.path(), &["autoscaler", "spec.yaml", "--redact"], &[]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    let (env, config) = crate::autoscaler::env_and_config(&stdout(&a));
    assert_eq!(env["HCLOUD_FIREWALL"], created[0]);
    assert_eq!(
        config["nodeConfigs"]["burst"]["firewalls"],
        json!([created[1]])
    );
    assert!(
        config["nodeConfigs"]["arm"].get("firewalls").is_none(),
        "arm has no public ports of its own: {}",
        config["nodeConfigs"]["arm"]
    );
}
