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
        let or_default = |v: &serde_json::Value, default: &str| match v {
            serde_json::Value::Null => format!("{default} (default)"),
            v => v.to_string(),
        };
        out.push_str(&format!(
            "storage.files: {} mode {} user {} group {} overwrite {}\n",
            f["path"].as_str().unwrap_or("?"),
            match f["mode"].as_u64() {
                Some(m) => format!("{m:04o}"),
                None => or_default(&f["mode"], "0644"),
            },
            or_default(&f["user"]["name"], "root"),
            or_default(&f["group"]["name"], "root"),
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

/// `build`, `plan` and `autoscaler` render the nodes of one shape once
/// (`meshboot::render::Renderer`): every node of every fixture, in every form (Ignition
/// 3.3 and 3.4, compressed or not), is byte for byte what a full rendering of that node
/// alone gives. Besides the fixtures: the accepted adversarial specs, and [`MANY_NODES`].
#[test]
fn shared_rendering_is_byte_identical_to_rendering_each_node_alone() {
    let forms = [
        Options::default(),
        Options {
            compress: true,
            ..Options::default()
        },
        Options {
            ignition_version: meshboot::plan::IgnitionVersion::V3_4,
            ..Options::default()
        },
    ];
    let mut specs: Vec<camino::Utf8PathBuf> = good_fixtures();
    specs.extend(support::yaml_files(
        &support::fixtures_dir().join("adversarial"),
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let many = camino::Utf8PathBuf::from_path_buf(dir.path().join("many.yaml")).expect("utf8");
    std::fs::write(&many, MANY_NODES).expect("spec");
    specs.push(many);
    for spec in &specs {
        for opts in &forms {
            let (checked, shared) = compile(spec, opts);
            assert_eq!(shared.len(), checked.plan.nodes.len());
            for (node, a) in checked.plan.nodes.iter().zip(&shared) {
                let alone =
                    meshboot::render::render_node(&checked.plan, node, &checked.secrets).unwrap();
                assert_eq!(a.file_name, alone.file_name);
                assert!(
                    a.contents == alone.contents,
                    "{spec} {} ({opts:?}): the shared rendering differs from the node's own",
                    a.file_name
                );
            }
        }
    }
}

/// Forty nodes in `count` entries of every OS, behind both firewalls, a MagicDNS name in
/// each server's tls-san, and a name serde_yaml quotes when it stands alone (`1e3`, a
/// float), as a pool's name and as the prefix of a `count` entry's names.
const MANY_NODES: &str = r#"version: 1
cluster: { name: many }
tailscale: { auth_key: { env: TS_AUTHKEY }, tags: [tag:k3s], tailnet: example-org.ts.net }
k3s: { version: v1.33.5+k3s1, token: { env: K3S_TOKEN }, agent_token: { env: K3S_AGENT_TOKEN } }
firewall: { backend: ufw, ssh: tailscale }
nodes:
  - { name: cp, role: server, count: 3 }
  - { name: u, role: agent, count: 10, os: ubuntu-24.04, labels: { pool: u } }
  - { name: f, role: agent, count: 14, os: flatcar, firewall: { public_tcp: [80] } }
  - { name: d, role: agent, count: 5, os: debian-12, firewall: { backend: nftables } }
  - { name: c, role: agent, count: 4, os: fedora-coreos }
  - { name: 1e3, role: agent, count: 2 }
  - { name: 1e3, role: agent, autoscale: { min: 0, max: 3 } }
"#;

/// The sizes of typical nodes (every node of the SPEC.md example, the starter spec, the
/// Flatcar fixture and the smallest cluster) stay within their budgets, so that what
/// was taken out of them does not come back unnoticed. Sizes are not time: asserting
/// them is exact. Hetzner's limit is 32 KiB; the issue's budgets (cloud-init 8 KiB,
/// Ignition 10 KiB, both 5 KiB compressed) are not met, and these are the sizes reached
/// (README, "Performance").
#[test]
fn size_budgets_of_typical_nodes() {
    const KIB: usize = 1024;
    // (envelope, uncompressed budget, compressed budget)
    let budget = |e: Envelope| match e {
        // ufw nodes carry the forward table and its unit besides ufw's rules (1.3 KiB), the
        // ufw batch with its fallback to one ufw run per command (0.8 KiB), and the unit's
        // reloading of ufw's chains after a flush by nftables.service (0.4 KiB). Every node
        // with a firewall carries nftables.service's drop-in (0.4 KiB, 0.5 KiB URL-escaped).
        Envelope::CloudInit => (19 * KIB + 3 * KIB / 4, 10 * KIB + 3 * KIB / 4),
        Envelope::Ignition => (22 * KIB + KIB / 2, 11 * KIB + KIB / 2),
    };
    let compressed = Options {
        compress: true,
        ..Options::default()
    };
    let mut seen = BTreeSet::new();
    for fixture in [
        "cluster.yaml",
        "init.yaml",
        "flatcar.yaml",
        "single-server.yaml",
    ] {
        let path = support::fixtures_dir().join(fixture);
        let (_, plain) = compile(&path, &Options::default());
        let (_, packed) = compile(&path, &compressed);
        for (p, c) in plain.iter().zip(&packed) {
            let (max, max_compressed) = budget(p.envelope);
            assert!(
                p.contents.len() <= max,
                "{fixture} {}: {} bytes, over its budget of {max}",
                p.file_name,
                p.contents.len()
            );
            assert!(
                c.contents.len() <= max_compressed,
                "{fixture} {} --compress: {} bytes, over its budget of {max_compressed}",
                c.file_name,
                c.contents.len()
            );
            seen.insert(format!("{:?}", p.envelope));
        }
    }
    assert_eq!(seen.len(), 2, "both envelopes are measured: {seen:?}");
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
                // The bootstrap writes the config.yaml.d drop-in at boot; it is never delivered.
                assert!(
                    !path.starts_with("/etc/rancher/k3s/config.yaml.d"),
                    "{}: {path} is delivered",
                    a.file_name
                );
            }
            let fixture = f.file_name().expect("file name");
            let pool = NODES
                .iter()
                .find(|n| n.fixture == fixture && n.node == a.node)
                .is_some_and(|n| n.pool.is_some());
            assert_k3s_config_leaves_the_boot_keys_to_the_drop_in(a, pool);
        }
    }
}

/// config.yaml comes with the node, 0600, as a YAML mapping naming the node, and without the
/// keys the bootstrap's drop-in writes plainly: K3s reads the drop-in after config.yaml and
/// a plain key there replaces config.yaml's value (docs.k3s.io, "Multiple Config Files"),
/// so only `tls-san` may be in both (the drop-in appends to it with `tls-san+:`). A pool's
/// config.yaml names no node: each of its servers learns its name at boot.
fn assert_k3s_config_leaves_the_boot_keys_to_the_drop_in(a: &Artifact, pool: bool) {
    let (_, mode, contents) = delivered_files(a)
        .into_iter()
        .find(|(path, _, _)| path == meshboot::plan::K3S_CONFIG_PATH)
        .unwrap_or_else(|| panic!("{}: no config.yaml delivered", a.file_name));
    assert_eq!(mode, 0o600, "{}: config.yaml mode", a.file_name);
    let config: serde_yaml::Mapping = serde_yaml::from_str(&contents)
        .unwrap_or_else(|e| panic!("{}: config.yaml: {e}\n{contents}", a.file_name));
    assert_eq!(
        config.get("node-name").and_then(|v| v.as_str()),
        (!pool).then_some(a.node.as_str()),
        "{}",
        a.file_name
    );
    for key in ["node-ip", "advertise-address", "server", "cluster-init"] {
        assert!(
            config.get(key).is_none(),
            "{}: config.yaml holds {key}, which the drop-in would replace or repeat",
            a.file_name
        );
    }
    // tls-san is in both: the drop-in appends the addresses to config.yaml's names.
    if config.get("tls-san").is_some() {
        let script = bootstrap_script(a);
        assert!(
            script.contains("printf 'tls-san+:") && !script.contains("printf 'tls-san:"),
            "{}: the drop-in replaces config.yaml's tls-san instead of appending to it",
            a.file_name
        );
    }
}

// ---------------------------------------------------------------------------------------
// Each script holds only the code its node can run

/// What a node's first boot can do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Boot {
    /// The init server of a cluster with other servers: it probes them once (a re-created
    /// init server rejoins), else `cluster-init`.
    InitProbing,
    /// The only server: `cluster-init`, nothing to probe.
    InitAlone,
    JoinServer,
    Agent,
}

/// One fixture node, described from its fixture by hand (never read from the plan under
/// test): its boot, and whether it installs Tailscale with apt (else the static build), with
/// a pinned version, behind ufw (else nftables), in a dual-stack cluster, on Flatcar.
struct NodeFacts {
    fixture: &'static str,
    node: &'static str,
    boot: Boot,
    apt: bool,
    pinned: bool,
    ufw: bool,
    dual_stack: bool,
    flatcar: bool,
    /// A pool (`autoscale`), named at boot from where its OS has the server's name.
    pool: Option<Named>,
}

/// Where a pool node reads its server's name: cloud-init images have it as the hostname,
/// Flatcar and Fedora CoreOS ask the metadata service.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Named {
    Hostname,
    Metadata,
}

type Facts = (bool, bool, bool, bool, bool);

const fn facts(
    fixture: &'static str,
    node: &'static str,
    boot: Boot,
    (apt, pinned, ufw, dual_stack, flatcar): Facts,
) -> NodeFacts {
    NodeFacts {
        fixture,
        node,
        boot,
        apt,
        pinned,
        ufw,
        dual_stack,
        flatcar,
        pool: None,
    }
}

/// [`facts`] of a pool's node.
const fn pool_facts(
    fixture: &'static str,
    node: &'static str,
    named: Named,
    os: Facts,
) -> NodeFacts {
    NodeFacts {
        pool: Some(named),
        ..facts(fixture, node, Boot::Agent, os)
    }
}

// (apt, pinned Tailscale, ufw, dual-stack, Flatcar)
const UBUNTU_UFW: Facts = (true, false, true, false, false);
const APT_NFT: Facts = (true, false, false, false, false);
const STATIC_LATEST: Facts = (false, false, false, false, true);
const STATIC_PINNED: Facts = (false, true, false, false, true);
const FCOS_PINNED: Facts = (false, true, false, false, false);
const APT_NFT_DUAL: Facts = (true, false, false, true, false);

const NODES: &[NodeFacts] = &[
    facts("cluster.yaml", "cp-1", Boot::InitProbing, UBUNTU_UFW),
    facts("cluster.yaml", "cp-2", Boot::JoinServer, UBUNTU_UFW),
    facts("cluster.yaml", "cp-3", Boot::JoinServer, UBUNTU_UFW),
    facts("cluster.yaml", "worker-1", Boot::Agent, STATIC_LATEST),
    facts("cluster.yaml", "worker-2", Boot::Agent, STATIC_LATEST),
    facts("cluster.yaml", "worker-3", Boot::Agent, STATIC_LATEST),
    facts(
        "dual-stack.yaml",
        "ds-server",
        Boot::InitAlone,
        APT_NFT_DUAL,
    ),
    facts("dual-stack.yaml", "ds-agent", Boot::Agent, APT_NFT_DUAL),
    facts("flatcar.yaml", "core-1", Boot::InitProbing, STATIC_PINNED),
    facts("flatcar.yaml", "core-2", Boot::JoinServer, STATIC_PINNED),
    facts("flatcar.yaml", "core-3", Boot::JoinServer, STATIC_PINNED),
    facts("flatcar.yaml", "pool-1", Boot::Agent, STATIC_PINNED),
    facts("flatcar.yaml", "pool-2", Boot::Agent, STATIC_PINNED),
    facts("flatcar.yaml", "fcos-1", Boot::Agent, FCOS_PINNED),
    facts("init.yaml", "cp-1", Boot::InitAlone, UBUNTU_UFW),
    facts("init.yaml", "worker-1", Boot::Agent, UBUNTU_UFW),
    facts("init.yaml", "worker-2", Boot::Agent, UBUNTU_UFW),
    facts("headscale.yaml", "hs-server", Boot::InitAlone, UBUNTU_UFW),
    facts("headscale.yaml", "hs-agent-1", Boot::Agent, UBUNTU_UFW),
    facts("headscale.yaml", "hs-agent-2", Boot::Agent, UBUNTU_UFW),
    facts("mesh.yaml", "mesh-cp", Boot::InitAlone, UBUNTU_UFW),
    facts("mesh.yaml", "mesh-worker", Boot::Agent, UBUNTU_UFW),
    facts("nftables.yaml", "nft-server-1", Boot::InitProbing, APT_NFT),
    facts("nftables.yaml", "nft-server-2", Boot::JoinServer, APT_NFT),
    facts("nftables.yaml", "nft-server-3", Boot::JoinServer, APT_NFT),
    facts("nftables.yaml", "nft-agent", Boot::Agent, APT_NFT),
    facts("single-server.yaml", "solo-1", Boot::InitAlone, UBUNTU_UFW),
    facts("hetzner.yaml", "hz-server", Boot::InitAlone, UBUNTU_UFW),
    facts("hetzner.yaml", "hz-edge", Boot::Agent, UBUNTU_UFW),
    facts("hetzner.yaml", "hz-core", Boot::Agent, STATIC_PINNED),
    facts("hetzner.yaml", "hz-debian", Boot::Agent, UBUNTU_UFW),
    facts("pools.yaml", "cp-1", Boot::InitAlone, UBUNTU_UFW),
    facts("pools.yaml", "steady", Boot::Agent, UBUNTU_UFW),
    pool_facts("pools.yaml", "burst", Named::Hostname, UBUNTU_UFW),
    pool_facts("pools.yaml", "arm", Named::Hostname, APT_NFT),
    facts(
        "pools-flatcar.yaml",
        "core-1",
        Boot::InitAlone,
        STATIC_PINNED,
    ),
    pool_facts(
        "pools-flatcar.yaml",
        "flock",
        Named::Metadata,
        STATIC_PINNED,
    ),
];

/// Code that only some nodes can run: (what it is, a marker of it in the script, whether
/// this node can run it). A script holding a marker its node cannot run carries a dead
/// branch.
type Marker = (&'static str, &'static str, fn(&NodeFacts) -> bool);

const MARKERS: &[Marker] = &[
    ("cluster-init", "cluster-init", |n| {
        matches!(n.boot, Boot::InitProbing | Boot::InitAlone)
    }),
    ("a join URL", "server: \"https://", |n| {
        n.boot != Boot::InitAlone
    }),
    ("probing servers", "probe_server", |n| {
        n.boot != Boot::InitAlone
    }),
    ("the supervisor's /cacerts", "/cacerts", |n| {
        n.boot != Boot::InitAlone
    }),
    ("the rejoin check", "a cluster is already running", |n| {
        n.boot == Boot::InitProbing
    }),
    ("waiting for the init server", "INIT_SERVER=", |n| {
        matches!(n.boot, Boot::JoinServer | Boot::Agent)
    }),
    ("advertise-address", "advertise-address", |n| {
        n.boot != Boot::Agent
    }),
    ("tls-san", "tls-san", |n| n.boot != Boot::Agent),
    ("a server's etcd cleanup", "K3S_ETCD_DB", |n| {
        n.boot != Boot::Agent
    }),
    ("an empty for loop", " in; do", |_| false),
    (
        "a loop run once at most",
        "shellcheck disable=SC2043",
        |_| false,
    ),
    ("an empty value reaching the shell", "=''\n", |_| false),
    ("apt-get", "apt-get", |n| n.apt),
    ("the package check", "dpkg-query", |n| n.apt),
    // Where no package step installed it, the firewall step checks for nft itself.
    ("nft's own check", "command -v nft", |n| !n.apt),
    ("the apt keyring", "/usr/share/keyrings/", |n| n.apt),
    ("the static tarball", ".tgz", |n| !n.apt),
    ("the static tarball", "tar -xzf", |n| !n.apt),
    ("the latest-version lookup", "mode=json", |n| {
        !n.apt && !n.pinned
    }),
    ("the latest-version lookup", "TarballsVersion", |n| {
        !n.apt && !n.pinned
    }),
    ("the mesh IPv6 address", "tailscale ip -6", |n| n.dual_stack),
    ("the mesh IPv6 address", "TS_IP6", |n| n.dual_stack),
    ("ufw", "ufw", |n| n.ufw),
    // meshboot's table on every node: the whole firewall, or on ufw nodes the forward
    // chain that holds whatever K3s's iptables chains accept.
    ("meshboot's nftables table", "nft -f", |_| true),
    (
        "the nftables input chain",
        "inet meshboot is loaded: public side",
        |n| !n.ufw,
    ),
    (
        "the forward chain beside ufw",
        "inet meshboot is loaded: forwarded traffic",
        |n| n.ufw,
    ),
    (
        "the static build's own binaries",
        "tailscaled ] && [ -x ",
        |n| !n.apt,
    ),
    (
        "a tailscale anywhere on PATH",
        "command -v tailscale",
        |n| n.apt,
    ),
    ("the tailscale link in /opt/bin", "ln -sf", |n| n.flatcar),
    ("the K3s bin dir", "INSTALL_K3S_BIN_DIR", |n| n.flatcar),
    ("the tailnet read with jq", "jq -r", |n| !n.apt),
    ("the tailnet read with python3", "python3 -I", |n| n.apt),
    // Flatcar's jq has no regular expressions (built without oniguruma).
    ("a jq regex function", "test(", |_| false),
    ("a jq regex function", "match(", |_| false),
    ("a jq regex function", "sub(", |_| false),
    ("a jq regex function", "capture(", |_| false),
    // `tailscale ip -4 NAME` resolves a stale offline machine holding NAME as readily.
    ("a peer looked up by name", "tailscale ip -4 \"$", |_| false),
    ("the pool's name", "POOL=", |n| n.pool.is_some()),
    ("the server's name check", "pool_node_name", |n| {
        n.pool.is_some()
    }),
    ("node-name written at boot", "printf 'node-name:", |n| {
        n.pool.is_some()
    }),
    ("the hostname cloud-init set", "uname -n", |n| {
        n.pool == Some(Named::Hostname)
    }),
    ("the metadata service's name", "metadata/hostname", |n| {
        n.pool == Some(Named::Metadata)
    }),
    // Every pool node registers as hcloud://<server id>, the ID read from the metadata
    // service whatever its OS (the autoscaler finds its server by it).
    ("the server's ID", "metadata/instance-id", |n| {
        n.pool.is_some()
    }),
    ("the provider ID", "provider-id=", |n| n.pool.is_some()),
    // Flatcar and Fedora CoreOS (not apt) reboot for updates by themselves.
    ("the pool's reboot windows", "STEP=reboot-window", |n| {
        n.pool.is_some() && !n.apt
    }),
];

/// The markers whose presence in `script` differs from what `node` can run: code it holds
/// but can never run (dead branches), and code it runs but lacks (a marker never found
/// anywhere would make the first check hollow, so every node holds exactly its markers).
fn marker_mismatches(node: &NodeFacts, script: &str) -> (Vec<String>, Vec<String>) {
    let (mut dead, mut missing) = (Vec::new(), Vec::new());
    for (what, marker, can_run) in MARKERS {
        let found = format!("{what} ({marker:?})");
        match (script.contains(marker), can_run(node)) {
            (true, false) => dead.push(found),
            (false, true) => missing.push(found),
            _ => {}
        }
    }
    (dead, missing)
}

fn dead_branches(node: &NodeFacts, script: &str) -> Vec<String> {
    marker_mismatches(node, script).0
}

fn bootstrap_script(a: &Artifact) -> String {
    delivered_files(a)
        .into_iter()
        .find(|(path, _, _)| path == meshboot::plan::BOOTSTRAP_PATH)
        .map(|(_, _, contents)| contents)
        .unwrap_or_else(|| panic!("{}: no bootstrap script", a.file_name))
}

#[test]
fn no_script_holds_a_branch_its_node_can_never_take() {
    let mut seen = BTreeSet::new();
    for f in good_fixtures() {
        let fixture = f.file_name().expect("file name").to_string();
        let (_, artifacts) = compile(&f, &Options::default());
        for a in &artifacts {
            let node = NODES
                .iter()
                .find(|n| n.fixture == fixture && n.node == a.node)
                .unwrap_or_else(|| panic!("{fixture} {}: describe this node in NODES", a.node));
            let (dead, missing) = marker_mismatches(node, &bootstrap_script(a));
            assert!(
                dead.is_empty(),
                "{fixture} {}: the script holds code its node never runs: {dead:?}",
                a.node
            );
            assert!(
                missing.is_empty(),
                "{fixture} {}: the script lacks code its node runs: {missing:?}",
                a.node
            );
            seen.insert((fixture.clone(), a.node.clone()));
        }
    }
    let described: BTreeSet<(String, String)> = NODES
        .iter()
        .map(|n| (n.fixture.to_string(), n.node.to_string()))
        .collect();
    assert_eq!(seen, described, "NODES describes nodes no fixture has");
}

/// The check above can fail: a dead branch put back into a real script is found.
#[test]
fn a_dead_branch_put_back_is_found() {
    let (_, artifacts) = compile(
        &support::fixtures_dir().join("single-server.yaml"),
        &Options::default(),
    );
    let solo = NODES.iter().find(|n| n.node == "solo-1").expect("solo-1");
    let script = bootstrap_script(&artifacts[0]);
    assert!(dead_branches(solo, &script).is_empty());
    for (injected, found) in [
        (
            "for peer in; do\n  probe_server \"$peer\"\ndone\n",
            "an empty for loop",
        ),
        (
            "printf 'server: \"https://%s:6443\"\\n' \"$JOIN_IP\"\n",
            "a join URL",
        ),
        ("ip6=$(tailscale ip -6)\n", "the mesh IPv6 address"),
        (
            "log \"nftables table inet meshboot is loaded: public side default-deny\"\n",
            "the nftables input chain",
        ),
        ("NODE_NAME=$(uname -n)\n", "the hostname cloud-init set"),
        (
            "printf 'kubelet-arg+:\\n  - \"provider-id=%s%s\"\\n' hcloud:// \"$SERVER_ID\"\n",
            "the provider ID",
        ),
    ] {
        let dead = dead_branches(solo, &format!("{script}{injected}"));
        assert!(
            dead.iter().any(|d| d.starts_with(found)),
            "{injected:?} not found: {dead:?}"
        );
    }
    let (_, artifacts) = compile(
        &support::fixtures_dir().join("flatcar.yaml"),
        &Options::default(),
    );
    let pool = NODES.iter().find(|n| n.node == "pool-1").expect("pool-1");
    let script = bootstrap_script(artifacts.iter().find(|a| a.node == "pool-1").unwrap());
    let dead = dead_branches(pool, &format!("{script}printf 'cluster-init: true\\n'\n"));
    assert_eq!(dead, ["cluster-init (\"cluster-init\")"]);
}

// ---------------------------------------------------------------------------------------
// --compress

/// What `--compress` does to each file of a node: its encoding and its size before and
/// after, as a reviewable snapshot (the bytes themselves are gzip); and the output stays
/// byte-identical from run to run (gzip without a time stamp or a name).
#[test]
fn compressed_artifacts_say_what_they_packed() {
    let opts = Options {
        compress: true,
        ..Options::default()
    };
    for fixture in ["pools.yaml", "pools-flatcar.yaml"] {
        let path = support::fixtures_dir().join(fixture);
        let (_, plain) = compile(&path, &Options::default());
        let (_, packed) = compile(&path, &opts);
        let (_, again) = compile(&path, &opts);
        let mut review = String::new();
        for ((p, c), c2) in plain.iter().zip(&packed).zip(&again) {
            assert_eq!(
                c.contents, c2.contents,
                "{}: not deterministic",
                c.file_name
            );
            assert_eq!(delivered_files(p), delivered_files(c), "{}", c.file_name);
            review.push_str(&format!(
                "{}: {} bytes, {} with --compress\n",
                c.file_name,
                p.contents.len(),
                c.contents.len()
            ));
            let entries: Vec<(String, String, usize)> = match c.envelope {
                Envelope::CloudInit => {
                    let doc: serde_yaml::Value = serde_yaml::from_str(&c.contents).unwrap();
                    doc["write_files"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|f| {
                            (
                                f["path"].as_str().unwrap().to_string(),
                                f["encoding"].as_str().unwrap_or("plain").to_string(),
                                f["content"].as_str().unwrap().len(),
                            )
                        })
                        .collect()
                }
                Envelope::Ignition => {
                    let doc: serde_json::Value = serde_json::from_str(&c.contents).unwrap();
                    doc["storage"]["files"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| {
                            (
                                f["path"].as_str().unwrap().to_string(),
                                f["contents"]["compression"]
                                    .as_str()
                                    .unwrap_or("plain")
                                    .to_string(),
                                f["contents"]["source"].as_str().unwrap().len(),
                            )
                        })
                        .collect()
                }
            };
            for (path, how, len) in entries {
                review.push_str(&format!("  {path}: {how}, {len} bytes in the envelope\n"));
            }
        }
        insta::assert_snapshot!(format!("compressed@{fixture}"), review);
    }
}
