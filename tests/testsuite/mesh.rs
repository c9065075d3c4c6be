//! Day 2 on the mesh: the tailnet policy, the upgrade Plans, the kubeconfig commands and
//! the OS reboot windows, judged without trusting the code that made them.
//!
//! - The policy of every fixture is snapshotted, then parsed as JSON and checked against
//!   expectations this file derives from the fixture's text (read with serde_yaml, not
//!   meshboot) and the K3s port table of FIELD.md / docs.k3s.io "Requirements", written out
//!   below: the grants are exactly those ports between exactly those tags. A small model
//!   of grant evaluation (a grant allows `src` to reach `dst` on its `ip` ports; access is
//!   the union of grants: tailscale.com/kb/1538/grants-syntax) then proves every `accept`
//!   of the policy's `tests` is granted and every `deny` is not, so Tailscale would accept
//!   the policy on its own. Not proven: Tailscale's real policy engine (it is closed
//!   source, and the open Go parsers, Headscale's among them, cannot be built here: no Go
//!   toolchain), so autogroups as test sources and the `ssh` rules are taken from the docs.
//! - The upgrade Plans are checked against the system-upgrade-controller CRD's fields
//!   (`pkg/crds/yaml/generated/upgrade.cattle.io_plans.yaml`, encoded below: the CRD is
//!   72 KB and not vendored). Not proven: a real controller applying them.
//! - The kubeconfig commands pass shellcheck, try every server in order and name the right
//!   host and URL; run against stand-ins, they take the first server that answers.
//! - The reboot windows parse (the Zincati snippet with a TOML parser) and no two servers
//!   of a fixture share one.

use crate::support::{
    self, compile, delivered_files, good_fixtures, meshboot_env, require, stderr, stdout,
};
use meshboot::Options;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn fixture_yaml(name: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(support::fixtures_dir().join(name)).expect("fixture");
    serde_yaml::from_str(&text).expect("fixture parses")
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// What `meshboot COMMAND FIXTURE` prints; fails on a non-zero exit.
fn print(command: &str, fixture: &str) -> String {
    let path = support::fixtures_dir().join(fixture);
    let o = meshboot_env(&[command, path.as_str()], &[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{command} {fixture}: {}",
        stderr(&o)
    );
    stdout(&o)
}

fn fixture_names() -> Vec<String> {
    good_fixtures()
        .iter()
        .map(|f| f.file_name().expect("name").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// The tailnet policy

/// HuJSON as meshboot prints it: `//` comment lines, then JSON.
fn parse_policy(text: &str) -> Value {
    let json: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("the policy is not JSON: {e}\n{text}"))
}

#[test]
fn every_fixture_policy_is_a_snapshot() {
    for name in fixture_names() {
        insta::assert_snapshot!(format!("policy@{name}"), print("policy", &name));
    }
}

/// The K3s ports of docs.k3s.io "Requirements" (FIELD.md "Ports"), as grants write them.
const KUBELET: &str = "tcp:10250";
const API: &str = "tcp:6443";
const ETCD: &str = "tcp:2379-2380";
const SSH: &str = "tcp:22";
fn flannel(backend: &str) -> Option<&'static str> {
    match backend {
        "vxlan" => Some("udp:8472"),
        "wireguard-native" => Some("udp:51820-51821"),
        "none" => None,
        other => panic!("flannel backend {other}"),
    }
}

/// The grants a fixture's policy must hold, as (src, dst, ip) triples, derived from the
/// fixture's text: servers are picked by `server_tags` (else `tags`), agents by
/// `agent_tags` (else `tags`).
fn expected_grants(name: &str) -> BTreeSet<(Vec<String>, Vec<String>, Vec<String>)> {
    let doc = fixture_yaml(name);
    let ts = &doc["tailscale"];
    let pick = |role: &str| {
        let own = strings(&ts[role]);
        if own.is_empty() {
            strings(&ts["tags"])
        } else {
            own
        }
    };
    let has_agents = doc["nodes"]
        .as_sequence()
        .expect("nodes")
        .iter()
        .any(|n| n["role"] == "agent");
    let servers = pick("server_tags");
    let mut nodes = servers.clone();
    if has_agents {
        for t in pick("agent_tags") {
            if !nodes.contains(&t) {
                nodes.push(t);
            }
        }
    }
    let fw = &doc["firewall"];
    let mut node_ports = vec![KUBELET.to_string()];
    let backend = doc["k3s"]["flannel_backend"].as_str().unwrap_or("vxlan");
    node_ports.extend(flannel(backend).map(String::from));
    for (key, proto) in [("mesh_tcp", "tcp"), ("mesh_udp", "udp")] {
        for p in fw[key].as_sequence().into_iter().flatten() {
            let port = match p {
                serde_yaml::Value::Number(n) => n.to_string(),
                other => other.as_str().expect("port").to_string(),
            };
            node_ports.push(format!("{proto}:{port}"));
        }
    }
    let admins = match ts["admins"].as_sequence() {
        Some(_) => strings(&ts["admins"]),
        None => vec!["autogroup:admin".to_string()],
    };
    let ssh_open =
        fw["ssh"].as_str().unwrap_or("tailscale") != "off" || ts["ssh"].as_bool() == Some(true);
    let v = |s: &str| vec![s.to_string()];
    let mut want = BTreeSet::from([
        (nodes.clone(), nodes.clone(), node_ports),
        (nodes.clone(), servers.clone(), v(API)),
        (servers.clone(), servers.clone(), v(ETCD)),
    ]);
    if !admins.is_empty() {
        want.insert((admins.clone(), servers.clone(), v(API)));
        if ssh_open {
            want.insert((admins, nodes, v(SSH)));
        }
    }
    want
}

fn list(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Whether `port`/`proto` is inside a grant's `ip` item (`tcp:2379-2380`).
fn ip_allows(item: &str, proto: &str, port: u32) -> bool {
    let (p, ports) = item.split_once(':').expect("proto:ports");
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    p == proto && (a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()).contains(&port)
}

/// Who the source of a test is, as the grants see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who<'a> {
    /// A device carrying this tag (and no user's).
    Tag(&'a str),
    /// A member of this group: a user of the tailnet.
    Group(&'a str),
    User(&'a str),
    /// A `hosts` entry: a source address.
    Host(std::net::Ipv4Addr),
}

/// The identity a test's `src` names, as Tailscale reads it (tailscale.com/kb/1337
/// policy-syntax, "tests": a user, a group, a tag or a host). Anything else (an autogroup,
/// `*`, a host the policy does not define) is not a test source: Tailscale refuses the
/// policy ("unknown user or host", tailscale/tailscale#12370), so the test fails here.
fn who<'a>(policy: &Value, src: &'a str) -> Who<'a> {
    assert!(
        !src.starts_with("autogroup:") && src != "*",
        "{src} as a test source: Tailscale refuses autogroups in tests (tailscale/tailscale#12370, #14102)"
    );
    if src.starts_with("tag:") {
        Who::Tag(src)
    } else if src.starts_with("group:") {
        Who::Group(src)
    } else if src.contains('@') {
        Who::User(src)
    } else {
        let address = policy["hosts"][src]
            .as_str()
            .unwrap_or_else(|| panic!("{src} is no user, group or tag, and not in hosts"));
        Who::Host(address.parse().expect("a host is an IPv4 address"))
    }
}

/// Whether a grant's `src` item selects `who`: `Some(true)` surely, `Some(false)` surely
/// not, `None` when the policy alone cannot tell (a group's members, an autogroup's, a
/// device's address), which fails a test either way. Tailscale's rules (kb/1337
/// "Autogroups", kb/1396 "Targets and selectors"): `*` is every source; a tagged device
/// belongs to no user, so to no group and not to `autogroup:member`, but to
/// `autogroup:tagged`; a user (and a group's members) is an `autogroup:member`; a host is
/// only its address, which no tag, user or group holds here (the policy's host is an
/// address Tailscale never gives a device).
fn selects(policy: &Value, item: &str, who: Who) -> Option<bool> {
    if item == "*" {
        return Some(true);
    }
    let address_item = || -> Option<ipnet::Ipv4Net> {
        let text = policy["hosts"][item].as_str().unwrap_or(item);
        text.parse::<ipnet::Ipv4Net>()
            .ok()
            .or_else(|| text.parse::<std::net::Ipv4Addr>().ok().map(Into::into))
    };
    match who {
        Who::Host(ip) => match address_item() {
            Some(net) => Some(net.contains(&ip)),
            // Tags, groups, users and autogroups are devices and people, not this address.
            None => Some(false),
        },
        _ if address_item().is_some() => None,
        Who::Tag(tag) => match item {
            _ if item == tag => Some(true),
            "autogroup:tagged" => Some(true),
            _ if item.starts_with("tag:") => Some(false),
            _ => Some(false),
        },
        Who::Group(group) => match item {
            _ if item == group => Some(true),
            "autogroup:member" => Some(true),
            _ if item.starts_with("tag:") || item == "autogroup:tagged" => Some(false),
            _ => None,
        },
        Who::User(user) => match item {
            _ if item == user => Some(true),
            "autogroup:member" => Some(true),
            _ if item.starts_with("tag:") || item == "autogroup:tagged" => Some(false),
            _ if item.contains('@') => Some(false),
            _ => None,
        },
    }
}

/// Whether the grants let test source `src` reach a device tagged `dst_tag` on
/// `proto`/`port`: access is the union of the grants (kb/1538 grants-syntax), so surely
/// when one grant surely does, surely not when every grant surely does not.
fn granted(policy: &Value, src: &str, dst_tag: &str, proto: &str, port: u32) -> Option<bool> {
    let who = who(policy, src);
    let mut answer = Some(false);
    for g in policy["grants"].as_array().expect("grants") {
        if !(list(&g["dst"]).iter().any(|d| d == dst_tag || d == "*")
            && list(&g["ip"]).iter().any(|i| ip_allows(i, proto, port)))
        {
            continue;
        }
        for item in list(&g["src"]) {
            match selects(policy, &item, who) {
                Some(true) => return Some(true),
                None => answer = None,
                Some(false) => {}
            }
        }
    }
    answer
}

/// The `host:port` destinations of a test, accept and deny together.
fn destinations(t: &Value) -> Vec<String> {
    ["accept", "deny"]
        .iter()
        .flat_map(|k| t.get(*k).map(list).unwrap_or_default())
        .collect()
}

/// What Tailscale refuses before it runs a test, and what would make a test say one thing
/// twice: an autogroup (or `*`) as a source, a group as an SSH test's source
/// (tailscale/tailscale#11790), a destination or user named twice, two tests of one
/// source and protocol.
fn assert_tests_are_well_formed(name: &str, policy: &Value) {
    let mut seen = BTreeSet::new();
    for t in policy["tests"].as_array().expect("tests") {
        let src = t["src"].as_str().expect("src");
        who(policy, src);
        assert!(
            seen.insert((src, t["proto"].as_str().expect("proto"))),
            "{name}: two tests of {src} {}",
            t["proto"]
        );
        let dsts = destinations(t);
        let unique: BTreeSet<&String> = dsts.iter().collect();
        assert_eq!(
            unique.len(),
            dsts.len(),
            "{name}: {src} repeats a destination: {dsts:?}"
        );
    }
    for t in policy["sshTests"].as_array().into_iter().flatten() {
        let src = t["src"].as_str().expect("src");
        assert!(
            matches!(who(policy, src), Who::Tag(_) | Who::User(_)),
            "{name}: {src} as an SSH test source (a group can be wrongly denied: tailscale/tailscale#11790)"
        );
        let dst = list(&t["dst"]);
        assert_eq!(
            dst.iter().collect::<BTreeSet<_>>().len(),
            dst.len(),
            "{name}: {dst:?}"
        );
        let users: Vec<String> = ["accept", "check", "deny"]
            .iter()
            .flat_map(|k| t.get(*k).map(list).unwrap_or_default())
            .collect();
        assert_eq!(
            users.iter().collect::<BTreeSet<_>>().len(),
            users.len(),
            "{name}: {users:?}"
        );
    }
}

#[test]
fn policy_grants_exactly_the_k3s_ports_and_its_tests_hold_against_them() {
    let mut checked = 0;
    for name in fixture_names() {
        let policy = parse_policy(&print("policy", &name));
        let got: BTreeSet<(Vec<String>, Vec<String>, Vec<String>)> = policy["grants"]
            .as_array()
            .expect("grants")
            .iter()
            .map(|g| (list(&g["src"]), list(&g["dst"]), list(&g["ip"])))
            .collect();
        assert_eq!(got, expected_grants(&name), "{name}: grants");

        // Every tag a node advertises has owners (Tailscale refuses unowned tags).
        let doc = fixture_yaml(&name);
        let owners = policy["tagOwners"].as_object().expect("tagOwners");
        for key in ["tags", "server_tags", "agent_tags"] {
            for t in strings(&doc["tailscale"][key]) {
                assert!(owners.contains_key(&t), "{name}: {t} has no owner");
            }
        }

        assert_tests_are_well_formed(&name, &policy);
        let tests = policy["tests"].as_array().expect("tests");
        assert!(tests.len() >= 2, "{name}: {tests:?}");
        for t in tests {
            let src = t["src"].as_str().expect("src");
            let proto = t["proto"].as_str().expect("proto");
            for (key, want) in [("accept", true), ("deny", false)] {
                for dst in t.get(key).map(list).unwrap_or_default() {
                    let (tag, port) = dst.rsplit_once(':').expect("host:port");
                    let port: u32 = port.parse().expect("a single port");
                    assert_eq!(
                        granted(&policy, src, tag, proto, port),
                        Some(want),
                        "{name}: test {src} {key} {dst} does not hold against the grants"
                    );
                    checked += 1;
                }
            }
        }
        // The flows the policy exists for are asserted, both ways.
        let all: Vec<(String, String)> = tests
            .iter()
            .flat_map(|t| {
                let src = t["src"].as_str().unwrap_or("").to_string();
                ["accept", "deny"].into_iter().flat_map(move |k| {
                    let src = src.clone();
                    t.get(k)
                        .map(list)
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |d| (format!("{src} {k}"), d))
                })
            })
            .collect();
        let has =
            |who: &str, suffix: &str| all.iter().any(|(w, d)| w == who && d.ends_with(suffix));
        // A device outside the cluster: a host of the policy's own, in Tailscale's range.
        let cluster = doc["cluster"]["name"].as_str().expect("cluster");
        let outsider = format!("meshboot-{cluster}-outsider");
        let address: std::net::Ipv4Addr = policy["hosts"][&outsider]
            .as_str()
            .expect("the outsider host")
            .parse()
            .expect("an address");
        assert!(
            "100.64.0.0/10"
                .parse::<ipnet::Ipv4Net>()
                .unwrap()
                .contains(&address),
            "{address}"
        );
        for port in [":6443", ":2379", ":2380", ":10250"] {
            assert!(has(&format!("{outsider} deny"), port), "{name}: {all:?}");
        }
        // The admins' test: the first admin Tailscale takes as a source (no autogroup).
        let admins = match doc["tailscale"]["admins"].as_sequence() {
            Some(_) => strings(&doc["tailscale"]["admins"]),
            None => vec!["autogroup:admin".to_string()],
        };
        match admins.iter().find(|a| !a.starts_with("autogroup:")) {
            Some(admin) => {
                assert!(has(&format!("{admin} accept"), ":6443"), "{name}: {all:?}");
                assert!(has(&format!("{admin} deny"), ":2379"), "{name}: {all:?}");
            }
            None => assert!(
                !all.iter()
                    .any(|(w, _)| admins.iter().any(|a| w.starts_with(a))),
                "{name}: {all:?}"
            ),
        }
        if !strings(&doc["tailscale"]["server_tags"]).is_empty()
            && !strings(&doc["tailscale"]["agent_tags"]).is_empty()
        {
            let agent = &strings(&doc["tailscale"]["agent_tags"])[0];
            assert!(has(&format!("{agent} deny"), ":2379"), "{name}: {all:?}");
        }
    }
    assert!(checked > 50, "{checked}");
}

/// The checks above can fail: tests with an autogroup source or a repeated destination
/// (what meshboot used to print) are refused, and so is an SSH test from a group.
#[test]
fn ill_formed_tests_are_caught() {
    let policy = parse_policy(&print("policy", "mesh.yaml"));
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut p = policy.clone();
        edit(&mut p);
        std::panic::catch_unwind(|| assert_tests_are_well_formed("edited", &p)).is_err()
    };
    assert!(!with(&|_| {}), "the policy as printed is well formed");
    assert!(with(&|p| p["tests"][0]["src"] = "autogroup:member".into()));
    assert!(with(&|p| p["tests"][0]["src"] = "meshboot-nowhere".into()));
    assert!(with(&|p| {
        let first = p["tests"][0]["accept"][0].clone();
        p["tests"][0]["accept"].as_array_mut().unwrap().push(first);
    }));
    assert!(with(&|p| {
        let first = p["tests"][1]["accept"][0].clone();
        p["tests"][1]["deny"].as_array_mut().unwrap().push(first);
    }));
    assert!(with(&|p| {
        let copy = p["tests"][0].clone();
        p["tests"].as_array_mut().unwrap().push(copy);
    }));
    assert!(with(&|p| p["sshTests"][0]["src"] = "autogroup:admin".into()));
    assert!(with(&|p| p["sshTests"][0]["src"] = "group:ops".into()));
}

/// The model above can fail: a grant that opens the cluster breaks the deny tests of the
/// sources it selects, and only those.
#[test]
fn a_broadened_grant_breaks_the_policy_tests() {
    let policy = parse_policy(&print("policy", "mesh.yaml"));
    let outsider = "meshboot-mesh-outsider";
    let widen = |src: &str| {
        let mut p = policy.clone();
        p["grants"]
            .as_array_mut()
            .expect("grants")
            .push(serde_json::json!({"src": [src], "dst": ["*"], "ip": ["tcp:1-65535"]}));
        p
    };
    for (who, port) in [
        ("tag:k3s-agent", 2379),
        ("group:ops", 10250),
        (outsider, 2379),
    ] {
        assert_eq!(
            granted(&policy, who, "tag:k3s-server", "tcp", port),
            Some(false),
            "{who}"
        );
    }
    // Tailscale's default policy: everything to everyone. Every deny fails.
    let open = widen("*");
    for who in ["tag:k3s-agent", "group:ops", outsider] {
        assert_eq!(
            granted(&open, who, "tag:k3s-server", "tcp", 2379),
            Some(true),
            "{who}"
        );
    }
    // A grant from every member: the group's test fails, a tag's and the outsider's do not
    // (the README says so: such a grant is caught only through an admin that is a user or
    // a group).
    let members = widen("autogroup:member");
    assert_eq!(
        granted(&members, "group:ops", "tag:k3s-server", "tcp", 2379),
        Some(true)
    );
    assert_eq!(
        granted(&members, "tag:k3s-agent", "tag:k3s-server", "tcp", 2379),
        Some(false)
    );
    assert_eq!(
        granted(&members, outsider, "tag:k3s-server", "tcp", 2379),
        Some(false)
    );
    // From the tailnet's address range: the outsider's test fails.
    let range = widen("100.64.0.0/10");
    assert_eq!(
        granted(&range, outsider, "tag:k3s-server", "tcp", 2379),
        Some(true)
    );
    // From another group: whether its members are in group:ops is not in the policy, so
    // neither an accept nor a deny test of group:ops can hold in the model.
    assert_eq!(
        granted(
            &widen("group:dev"),
            "group:ops",
            "tag:k3s-server",
            "tcp",
            2379
        ),
        None
    );
}

#[test]
fn ssh_rules_and_tests_come_with_tailscale_ssh_only() {
    for name in fixture_names() {
        let doc = fixture_yaml(&name);
        let policy = parse_policy(&print("policy", &name));
        let ssh_on = doc["tailscale"]["ssh"].as_bool() == Some(true);
        assert_eq!(policy.get("ssh").is_some(), ssh_on, "{name}");
        assert!(ssh_on || policy.get("sshTests").is_none(), "{name}");
        if ssh_on {
            let rule = &policy["ssh"][0];
            // An SSH rule also needs the network grant to port 22 (kb/1337 "Tailscale SSH").
            for dst in list(&rule["dst"]) {
                for src in list(&rule["src"]) {
                    assert!(
                        policy["grants"]
                            .as_array()
                            .expect("grants")
                            .iter()
                            .any(|g| {
                                list(&g["src"]).contains(&src)
                                    && list(&g["dst"]).contains(&dst)
                                    && list(&g["ip"]).iter().any(|i| ip_allows(i, "tcp", 22))
                            }),
                        "{name}: {src} -> {dst}:22"
                    );
                }
            }
        }
    }
}

#[test]
fn a_spec_whose_nodes_advertise_no_tag_gets_no_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("untagged.yaml");
    std::fs::write(
        &spec,
        "version: 1\ncluster: { name: bare }\ntailscale: { auth_key: { env: TS_AUTHKEY } }\nk3s: { version: v1.33.5+k3s1, token: { env: K3S_TOKEN } }\nnodes:\n  - { name: solo, role: server }\n",
    )
    .expect("write");
    let o = meshboot_env(&["policy", spec.to_str().expect("utf8")], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).is_empty());
    assert!(
        stderr(&o).contains("error: tailscale.tags: some nodes advertise no tag"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------
// Upgrades

/// The Plan CRD's `spec` fields, and those of its containers, selector requirements and
/// tolerations (rancher/system-upgrade-controller, upgrade.cattle.io_plans.yaml at
/// d357e230, `openAPIV3Schema.properties.spec`). `spec.upgrade` and a container's
/// `image` are required there.
const PLAN_SPEC_FIELDS: &[&str] = &[
    "channel",
    "concurrency",
    "cordon",
    "drain",
    "exclusive",
    "imagePullSecrets",
    "jobActiveDeadlineSecs",
    "nodeSelector",
    "postCompleteDelay",
    "postCompleteLabels",
    "prepare",
    "priorityClassName",
    "secrets",
    "serviceAccountName",
    "tolerations",
    "upgrade",
    "version",
    "window",
];
const CONTAINER_FIELDS: &[&str] = &[
    "args",
    "command",
    "envFrom",
    "envs",
    "image",
    "securityContext",
    "volumes",
];
const REQUIREMENT_FIELDS: &[&str] = &["key", "operator", "values"];
const TOLERATION_FIELDS: &[&str] = &["effect", "key", "operator", "tolerationSeconds", "value"];

fn keys_within(v: &serde_yaml::Value, allowed: &[&str], what: &str) {
    for k in v
        .as_mapping()
        .unwrap_or_else(|| panic!("{what}: not a mapping"))
        .keys()
    {
        let k = k.as_str().expect("key");
        assert!(
            allowed.contains(&k),
            "{what}: {k} is not a field of the CRD"
        );
    }
}

#[test]
fn upgrade_plans_follow_the_crd_and_upgrade_servers_before_agents() {
    for name in fixture_names() {
        let text = print("upgrade", &name);
        insta::assert_snapshot!(format!("upgrade@{name}"), text);
        let doc = fixture_yaml(&name);
        let plans: Vec<serde_yaml::Value> = text
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_yaml::from_str(d).expect("a plan parses"))
            .collect();
        let has_agents = doc["nodes"]
            .as_sequence()
            .expect("nodes")
            .iter()
            .any(|n| n["role"] == "agent");
        assert_eq!(plans.len(), if has_agents { 2 } else { 1 }, "{name}");
        for p in &plans {
            assert_eq!(p["apiVersion"], "upgrade.cattle.io/v1");
            assert_eq!(p["kind"], "Plan");
            assert_eq!(p["metadata"]["namespace"], "system-upgrade");
            let spec = &p["spec"];
            keys_within(spec, PLAN_SPEC_FIELDS, &name);
            for c in ["prepare", "upgrade"] {
                if !spec[c].is_null() {
                    keys_within(&spec[c], CONTAINER_FIELDS, &name);
                    assert!(spec[c]["image"].is_string(), "{name}: {c} has no image");
                }
            }
            assert!(
                spec["upgrade"]["image"].is_string(),
                "{name}: upgrade is required"
            );
            for r in spec["nodeSelector"]["matchExpressions"]
                .as_sequence()
                .expect("selector")
            {
                keys_within(r, REQUIREMENT_FIELDS, &name);
            }
            for t in spec["tolerations"].as_sequence().expect("tolerations") {
                keys_within(t, TOLERATION_FIELDS, &name);
            }
            assert_eq!(spec["concurrency"], 1, "{name}: one node at a time");
            assert_eq!(spec["cordon"], true, "{name}");
            match doc["k3s"]["version"].as_str() {
                Some(v) => assert_eq!(spec["version"], v, "{name}"),
                None => assert_eq!(
                    spec["channel"],
                    format!(
                        "https://update.k3s.io/v1-release/channels/{}",
                        doc["k3s"]["channel"].as_str().unwrap_or("stable")
                    )
                ),
            }
        }
        // Servers carry node-role.kubernetes.io/control-plane=true (K3s); agents do not.
        let req = &plans[0]["spec"]["nodeSelector"]["matchExpressions"][0];
        assert_eq!(req["key"], "node-role.kubernetes.io/control-plane");
        assert_eq!(req["operator"], "In");
        if has_agents {
            let agent = &plans[1]["spec"];
            assert_eq!(
                agent["nodeSelector"]["matchExpressions"][0]["operator"],
                "DoesNotExist"
            );
            // The agents' plan starts once the servers' is done.
            assert_eq!(
                strings(&agent["prepare"]["args"]),
                [
                    "prepare",
                    plans[0]["metadata"]["name"].as_str().expect("name")
                ]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// kubectl over the mesh

#[test]
fn kubeconfig_commands_pass_shellcheck_and_reach_the_init_server_over_the_mesh() {
    let shellcheck = require("shellcheck", "shellcheck");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut seen = BTreeSet::new();
    for name in fixture_names() {
        let doc = fixture_yaml(&name);
        let ts = &doc["tailscale"];
        let fw_ssh = doc["firewall"]["ssh"].as_str().unwrap_or("tailscale");
        let ssh = ts["ssh"].as_bool() == Some(true);
        let path = support::fixtures_dir().join(&name);
        let o = meshboot_env(&["kubeconfig", path.as_str()], &[]);
        if !ssh && fw_ssh == "off" {
            assert_eq!(
                o.status.code(),
                Some(1),
                "{name}: no SSH path, yet: {}",
                stdout(&o)
            );
            assert!(
                stderr(&o).contains("no SSH over the mesh"),
                "{}",
                stderr(&o)
            );
            continue;
        }
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let text = stdout(&o);
        insta::assert_snapshot!(format!("kubeconfig@{name}"), text);
        let script = dir.path().join("kubeconfig.sh");
        std::fs::write(&script, format!("#!/bin/sh\n{text}")).expect("write");
        let check = Command::new(&shellcheck)
            .args(["-s", "sh", "-S", "style"])
            .arg(&script)
            .output()
            .expect("shellcheck runs");
        assert!(
            check.status.success(),
            "{name}: shellcheck:\n{}",
            String::from_utf8_lossy(&check.stdout)
        );
        // Every server of the spec is tried, in the spec's order: the init server (the
        // first) first.
        let mut servers = Vec::new();
        for n in doc["nodes"].as_sequence().expect("nodes") {
            if n["role"] != "server" {
                continue;
            }
            let base = n["name"].as_str().expect("name");
            match n["count"].as_u64() {
                Some(c) => servers.extend((1..=c).map(|i| format!("{base}-{i}"))),
                None => servers.push(base.to_string()),
            }
        }
        let tries = text
            .lines()
            .find(|l| l.starts_with("from "))
            .unwrap_or_else(|| panic!("{name}: no tries:\n{text}"));
        let tried: Vec<&str> = tries
            .split(" || ")
            .filter_map(|t| t.strip_prefix("from "))
            .map(|t| t.split(' ').next().expect("a name"))
            .collect();
        assert_eq!(tried, servers, "{name}:\n{text}");
        let cluster = doc["cluster"]["name"].as_str().expect("cluster");
        assert!(
            text.contains(&format!(
                "mv -f {cluster}.kubeconfig.tmp {cluster}.kubeconfig\n"
            )),
            "{name}:\n{text}"
        );
        match ts["tailnet"].as_str() {
            Some(t) => {
                assert!(text.contains(&format!("  host=$1.{t}\n")), "{text}");
                assert!(text.contains("  url=\"https://$host:6443\"\n"), "{text}");
            }
            None => {
                assert!(
                    text.contains("  ip=$(tailscale ip -4 \"$1\") || return 1\n"),
                    "{text}"
                );
                assert!(text.contains("  url=\"https://$ip:6443\"\n"), "{text}");
            }
        }
        if ssh {
            assert!(
                text.contains("  tailscale ssh \"$2@$1\" cat /etc/rancher/k3s/k3s.yaml "),
                "{text}"
            );
            assert!(!tries.contains(" core sudo"), "{text}");
            seen.insert("tailscale ssh");
        } else {
            assert!(
                text.contains("  ssh -o ConnectTimeout=10 ") && !text.contains("tailscale ssh"),
                "{text}"
            );
            seen.insert("ssh");
        }
    }
    assert_eq!(seen.len(), 2, "both ways are covered: {seen:?}");
}

/// The kubeconfig commands run, against stand-ins on PATH:
/// - `tailscale ip -4 NAME` prints the peer's IPv4 address, or fails for a name it does not
///   know (tailscale/tailscale cmd/tailscale/cli/ip.go: one address per line; an unknown
///   peer is an error);
/// - `ssh` reads its stdin, to send it to the remote command (ssh(1), `-n`: without it
///   ssh reads stdin), and exits 255 when it cannot connect (EXIT STATUS), after this stand-in has
///   printed half a kubeconfig to prove a failed attempt leaves nothing behind, and prints
///   the kubeconfig (K3s writes it at /etc/rancher/k3s/k3s.yaml) for the one login@address
///   in `$ANSWER`;
/// - `kubectl` records its arguments.
///
/// This proves the control flow: the first server that answers is used, in the spec's
/// order, and the URL is its address; a server that is down, or an address a stale
/// machine holds, only costs that attempt; the file is 0600, complete or absent. It does
/// not prove that a real ssh times out within ConnectTimeout or that real K3s serves
/// that address in its certificate (the `tls-san` row of the K3s flags says it does).
#[test]
fn kubeconfig_commands_take_the_first_server_that_answers() {
    use std::os::unix::fs::PermissionsExt as _;
    let text = print("kubeconfig", "cluster.yaml");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let stand_ins = [
        (
            "tailscale",
            "#!/bin/sh\necho \"tailscale $*\" >>\"$CALLS\"\ncase $* in\n  'ip -4 cp-1') echo 100.64.0.1 ;;\n  'ip -4 cp-2') echo 100.64.0.2 ;;\n  'ip -4 cp-3') echo 100.64.0.3 ;;\n  *) echo \"no such peer\" >&2; exit 1 ;;\nesac\n",
        ),
        (
            "ssh",
            "#!/bin/sh\necho \"ssh $*\" >>\"$CALLS\"\ncat >/dev/null\n[ \"$1 $2\" = '-o ConnectTimeout=10' ] || exit 2\necho 'apiVersion: v1'\n[ \"$3\" = \"$ANSWER\" ] || { echo 'ssh: connect to host: Connection timed out' >&2; exit 255; }\n[ \"$4 $5\" = 'cat /etc/rancher/k3s/k3s.yaml' ] || exit 2\necho 'kind: Config'\n",
        ),
        ("kubectl", "#!/bin/sh\necho \"kubectl $*\" >>\"$CALLS\"\n"),
    ];
    for (name, body) in stand_ins {
        let p = bin.join(name);
        std::fs::write(&p, body).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let run = |answer: &str| {
        let work = tempfile::tempdir_in(d).expect("work");
        let calls = work.path().join("calls");
        // As `meshboot kubeconfig | sh` runs it where sh is bash (macOS): the script on
        // stdin, which bash reads from a pipe a byte at a time, so a command that reads
        // stdin would take the rest of the script.
        let mut child = Command::new("bash")
            .current_dir(work.path())
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("CALLS", &calls)
            .env("ANSWER", answer)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash runs");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(text.as_bytes()).expect("script");
        }
        let o = child.wait_with_output().expect("bash ends");
        let calls = std::fs::read_to_string(&calls).unwrap_or_default();
        let mut files: Vec<String> = std::fs::read_dir(work.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .filter(|f| f != "calls")
            .collect();
        files.sort();
        (o, calls, files, work)
    };

    // cp-1 is down (or a stale machine holds its name): cp-2 answers, cp-3 is not asked.
    let (o, calls, files, work) = run("root@100.64.0.2");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(files, ["edge-eu.kubeconfig"]);
    let path = work.path().join("edge-eu.kubeconfig");
    assert_eq!(
        std::fs::read_to_string(&path).expect("kubeconfig"),
        "apiVersion: v1\nkind: Config\n"
    );
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "tailscale ip -4 cp-1",
            "ssh -o ConnectTimeout=10 root@100.64.0.1 cat /etc/rancher/k3s/k3s.yaml",
            "tailscale ip -4 cp-2",
            "ssh -o ConnectTimeout=10 root@100.64.0.2 cat /etc/rancher/k3s/k3s.yaml",
            "kubectl --kubeconfig edge-eu.kubeconfig config set-cluster default --server https://100.64.0.2:6443",
            "kubectl --kubeconfig edge-eu.kubeconfig get nodes -o wide",
        ]
    );
    assert!(
        stderr(&o).contains("could not fetch the kubeconfig from cp-1 over the mesh"),
        "{}",
        stderr(&o)
    );

    // The init server answers: nothing else is asked.
    let (o, calls, _, _) = run("root@100.64.0.1");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(calls.matches("ssh ").count(), 1, "{calls}");
    assert!(
        calls.contains("--server https://100.64.0.1:6443\n"),
        "{calls}"
    );

    // No server answers: a failure that names them, no kubeconfig (not even a partial
    // one), and kubectl is never run.
    let (o, calls, files, _) = run("nobody");
    assert_eq!(o.status.code(), Some(1));
    assert!(files.is_empty(), "{files:?}");
    assert_eq!(calls.matches("ssh ").count(), 3, "{calls}");
    assert!(!calls.contains("kubectl"), "{calls}");
    assert!(
        stderr(&o).contains("no server of edge-eu answered over the mesh (cp-1, cp-2, cp-3)"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------
// OS reboot windows

#[test]
fn flatcar_and_fcos_servers_reboot_in_windows_of_their_own() {
    let mut zincati = 0;
    for fixture in good_fixtures() {
        let (_, artifacts) = compile(&fixture, &Options::default());
        let mut server_windows: BTreeMap<String, String> = BTreeMap::new();
        for a in &artifacts {
            let server =
                crate::firstboot::expect::Row::of(fixture.file_name().expect("name"), &a.node)
                    .role
                    .is_server();
            for (path, mode, contents) in delivered_files(a) {
                let window = match path.as_str() {
                    "/etc/flatcar/update.conf" => {
                        let get = |k: &str| {
                            contents
                                .lines()
                                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                                .unwrap_or_else(|| panic!("{}: no {k}", a.file_name))
                                .trim_matches('"')
                                .to_string()
                        };
                        assert_eq!(get("REBOOT_STRATEGY"), "reboot");
                        assert_eq!(get("LOCKSMITHD_REBOOT_WINDOW_LENGTH"), "60m");
                        get("LOCKSMITHD_REBOOT_WINDOW_START")
                    }
                    "/etc/zincati/config.d/55-meshboot-updates-strategy.toml" => {
                        zincati += 1;
                        let doc: toml::Value = toml::from_str(&contents)
                            .unwrap_or_else(|e| panic!("{}: TOML: {e}", a.file_name));
                        let updates = &doc["updates"];
                        assert_eq!(updates["strategy"].as_str(), Some("periodic"));
                        assert_eq!(updates["periodic"]["time_zone"].as_str(), Some("UTC"));
                        let w = &updates["periodic"]["window"][0];
                        assert_eq!(w["length_minutes"].as_integer(), Some(60));
                        format!(
                            "{} {}",
                            w["days"][0].as_str().expect("day"),
                            w["start_time"].as_str().expect("start")
                        )
                    }
                    _ => continue,
                };
                assert_eq!(mode, 0o644, "{}: {path}", a.file_name);
                if server && let Some(other) = server_windows.insert(window.clone(), a.node.clone())
                {
                    panic!("{fixture}: {} and {other} share {window}", a.node);
                }
            }
        }
        if fixture.file_name() == Some("flatcar.yaml") {
            assert_eq!(server_windows.len(), 3, "{server_windows:?}");
        }
    }
    assert!(zincati >= 1, "a Fedora CoreOS node is covered");
}

/// A pool's servers share one file, so the bootstrap picks each one's window by its name
/// (the first-boot sandbox proves the pick): the bootstrap of a Flatcar and of a Fedora
/// CoreOS pool holds one window per server the pool may have (`max: 5` here; at most the
/// agents' twelve), run out of the script by dash and parsed (Zincati's with a TOML
/// parser), each on its own start, and the file the envelope delivers first is one of them.
#[test]
fn a_pools_bootstrap_holds_windows_to_spread_its_reboots() {
    let dash = require("dash", "dash");
    let dir = tempfile::tempdir().expect("tempdir");
    let fcos = dir.path().join("fcos-pool.yaml");
    let text = std::fs::read_to_string(support::fixtures_dir().join("pools-flatcar.yaml"))
        .expect("fixture")
        .replace("  os: flatcar\n", "  os: fedora-coreos\n");
    std::fs::write(&fcos, text).expect("write");
    let fcos = camino::Utf8PathBuf::from_path_buf(fcos).expect("utf8");
    for (spec, path) in [
        (
            support::fixtures_dir().join("pools-flatcar.yaml"),
            "/etc/flatcar/update.conf",
        ),
        (
            fcos,
            "/etc/zincati/config.d/55-meshboot-updates-strategy.toml",
        ),
    ] {
        let (_, artifacts) = compile(&spec, &Options::default());
        let a = artifacts
            .iter()
            .find(|a| a.node == "flock")
            .expect("the pool");
        let files = delivered_files(a);
        let file = |p: &str| {
            files
                .iter()
                .find(|(f, _, _)| f == p)
                .map(|(_, _, c)| c.clone())
                .unwrap_or_else(|| panic!("{spec}: no {p}"))
        };
        let script = file(meshboot::plan::BOOTSTRAP_PATH);
        let from = script.find("case $window in").expect("the windows");
        let to = from + script[from..].find("\nesac\n").expect("esac") + 6;
        let case = &script[from..to];
        let mut starts = BTreeSet::new();
        let mut candidates = Vec::new();
        let max = fixture_yaml("pools-flatcar.yaml")["nodes"][1]["autoscale"]["max"]
            .as_u64()
            .expect("the pool's max");
        let windows = max.min(12);
        for slot in 0..windows {
            let o = Command::new(&dash)
                .arg("-c")
                .arg(format!("window={slot}\n{case}\nprintf '%s' \"$text\""))
                .output()
                .expect("dash runs");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let window = String::from_utf8(o.stdout).expect("utf8");
            let start = if path.ends_with(".toml") {
                let doc: toml::Value = toml::from_str(&window)
                    .unwrap_or_else(|e| panic!("{spec} window {slot}: {e}\n{window}"));
                assert_eq!(doc["updates"]["strategy"].as_str(), Some("periodic"));
                let w = &doc["updates"]["periodic"]["window"][0];
                assert_eq!(w["length_minutes"].as_integer(), Some(60));
                format!(
                    "{} {}",
                    w["days"][0].as_str().expect("day"),
                    w["start_time"].as_str().expect("start")
                )
            } else {
                window
                    .lines()
                    .find_map(|l| l.strip_prefix("LOCKSMITHD_REBOOT_WINDOW_START="))
                    .unwrap_or_else(|| panic!("{window}"))
                    .trim_matches('"')
                    .to_string()
            };
            assert!(start.starts_with("Sat "), "{start}");
            starts.insert(start);
            candidates.push(window);
        }
        assert_eq!(starts.len() as u64, windows, "{spec}: {starts:?}");
        // No other slot exists: the script computes slots modulo their number.
        assert!(
            script.contains(&format!("window=$((sum % {windows}))")),
            "{spec}"
        );
        assert!(
            candidates.contains(&file(path)),
            "{spec}: the delivered window"
        );
    }
}
