//! Beside stage 3, the mesh firewall: the tailnet policy of a cluster, for `meshboot policy`.
//!
//! With tailscaled's default `--netfilter-mode=on`, its `ts-input` chain accepts all
//! tailscale0 traffic before the host firewall sees it, so the tailnet policy is what keeps
//! other devices of the tailnet away from etcd, the kubelet and the API. [`policy`] makes
//! that policy from the spec: `tagOwners` for the cluster's tags, `grants` for exactly the
//! K3s ports between the cluster's nodes (the ports come from [`crate::firewall`], the one
//! place that knows them), admin access to the API (and SSH), an `ssh` section with
//! Tailscale SSH, and `tests` that Tailscale runs when the policy is saved.
//!
//! The syntax, as Tailscale documents it (tailscale.com/kb/1337/policy-syntax, "Syntax
//! reference for the tailnet policy file", and kb/1538/grants-syntax):
//! - a grant is `{src: [...], dst: [...], ip: [...]}`; `ip` items are `tcp:6443`,
//!   `udp:8472`, or ranges `tcp:2379-2380`; `autogroup:<role>` (admin, member, ...) is a
//!   valid grant `src` ("Source selectors");
//! - `tagOwners` maps a tag to its owners (users, groups, autogroups, tags);
//! - `tests` are "assertions about access policies (ACLs and network-level grants)": each
//!   `{src, proto, accept: ["host:port"], deny: [...]}` with a single identity as `src` (a
//!   user, group, tag or host; no `*`) and single numeric ports; Tailscale rejects a policy
//!   whose tests fail;
//! - `ssh` rules `{action, src, dst, users}` need a network grant to port 22 as well;
//!   `sshTests` are `{src, dst: [...], accept|check|deny: [users]}`.
//!
//! The output is JSON (HuJSON is a superset) with a `//` header, serialized with serde_json
//! from the types below, so the same spec always gives the same bytes.

use crate::firewall::{API_SERVER, ETCD, FLANNEL_VXLAN, FLANNEL_WIREGUARD, KUBELET, SSH};
use crate::plan::node_tags;
use crate::spec::{FlannelBackend, PortRange, Role, Spec, SshPolicy};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub tag_owners: BTreeMap<String, Vec<String>>,
    pub grants: Vec<Grant>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<SshRule>,
    pub tests: Vec<Test>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ssh_tests: Vec<SshTest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grant {
    pub src: Vec<String>,
    pub dst: Vec<String>,
    pub ip: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SshRule {
    pub action: &'static str,
    pub src: Vec<String>,
    pub dst: Vec<String>,
    pub users: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Test {
    pub src: String,
    pub proto: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accept: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SshTest {
    pub src: String,
    pub dst: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub check: Vec<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<&'static str>,
}

/// The users admins may log in as with Tailscale SSH.
const SSH_USERS: &[&str] = &["root", "autogroup:nonroot"];

/// Who the grants name: the tags that select every server, every agent, every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selectors {
    pub servers: Vec<String>,
    pub agents: Vec<String>,
    pub nodes: Vec<String>,
    /// No agent carries a server tag: the policy can keep agents away from etcd.
    pub roles_apart: bool,
}

/// The selectors of `spec`'s nodes; `None` when some node advertises no tag (a policy
/// selects nodes by tag).
pub fn selectors(spec: &Spec) -> Option<Selectors> {
    let has = |role: Role| spec.nodes.iter().any(|n| n.role == role);
    let servers = node_tags(&spec.tailscale, Role::Server);
    let agents = if has(Role::Agent) {
        node_tags(&spec.tailscale, Role::Agent)
    } else {
        Vec::new()
    };
    if servers.is_empty() || (has(Role::Agent) && agents.is_empty()) {
        return None;
    }
    // Servers are picked by their own tags when they have some, so that agents (which
    // share `tags`) are not picked with them.
    let server_pick = if spec.tailscale.server_tags.is_empty() {
        servers.clone()
    } else {
        dedup(spec.tailscale.server_tags.clone())
    };
    let agent_pick = if spec.tailscale.agent_tags.is_empty() {
        agents.clone()
    } else {
        dedup(spec.tailscale.agent_tags.clone())
    };
    let roles_apart = !agents.iter().any(|t| server_pick.contains(t));
    let mut nodes = server_pick.clone();
    nodes.extend(agent_pick.iter().cloned());
    Some(Selectors {
        servers: server_pick,
        agents: agent_pick,
        nodes: dedup(nodes),
        roles_apart,
    })
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// `proto:port` or `proto:start-end`, as grants write ports.
fn ip(proto: &str, p: PortRange) -> String {
    format!("{proto}:{p}")
}

/// `host:port` items of a test: one per port of `p` that a test names (the first and last
/// port of a range; tests take single ports).
fn at(host: &str, p: PortRange) -> Vec<String> {
    let mut v = vec![format!("{host}:{}", p.start)];
    if p.end != p.start {
        v.push(format!("{host}:{}", p.end));
    }
    v
}

/// The ports every node opens to every other node on the mesh: the kubelet, the flannel
/// port(s), and the spec's `firewall.mesh_tcp`/`mesh_udp`.
fn node_ports(spec: &Spec) -> Vec<String> {
    let mut v = vec![ip("tcp", KUBELET)];
    match spec.k3s.flannel_backend {
        FlannelBackend::Vxlan => v.push(ip("udp", FLANNEL_VXLAN)),
        FlannelBackend::WireguardNative => v.push(ip("udp", FLANNEL_WIREGUARD)),
        FlannelBackend::None => {}
    }
    v.extend(spec.firewall.mesh_tcp.iter().map(|p| ip("tcp", *p)));
    v.extend(spec.firewall.mesh_udp.iter().map(|p| ip("udp", *p)));
    v
}

/// Admins reach port 22 over the mesh: sshd listens there (`firewall.ssh: tailscale`, or
/// `public`, which opens it everywhere), or Tailscale SSH needs the network grant too.
pub fn admin_ssh(spec: &Spec) -> bool {
    spec.firewall.ssh != SshPolicy::Off || spec.tailscale.ssh
}

/// The cluster's tailnet policy; `None` when a node advertises no tag.
pub fn policy(spec: &Spec) -> Option<Policy> {
    let sel = selectors(spec)?;
    let ts = &spec.tailscale;
    let admins = &ts.admins;

    // Every tag a node advertises needs an owner, or Tailscale refuses to apply it.
    let tag_owners = node_tags(ts, Role::Server)
        .into_iter()
        .chain(node_tags(ts, Role::Agent))
        .map(|t| (t, ts.tag_owners.clone()))
        .collect();

    let grant = |src: &[String], dst: &[String], ip: Vec<String>| Grant {
        src: src.to_vec(),
        dst: dst.to_vec(),
        ip,
    };
    let mut grants = vec![
        grant(&sel.nodes, &sel.nodes, node_ports(spec)),
        grant(&sel.nodes, &sel.servers, vec![ip("tcp", API_SERVER)]),
        grant(&sel.servers, &sel.servers, vec![ip("tcp", ETCD)]),
    ];
    if !admins.is_empty() {
        grants.push(grant(admins, &sel.servers, vec![ip("tcp", API_SERVER)]));
        if admin_ssh(spec) {
            grants.push(grant(admins, &sel.nodes, vec![ip("tcp", SSH)]));
        }
    }

    let ssh = if ts.ssh && !admins.is_empty() {
        vec![SshRule {
            action: "check",
            src: admins.clone(),
            dst: sel.nodes.clone(),
            users: SSH_USERS.to_vec(),
        }]
    } else {
        Vec::new()
    };

    // One representative tag per role: a node carries all of its role's tags, and a grant
    // that names any of them matches it.
    let server = &sel.servers[0];
    let agent = sel.agents.first();
    let mut tests = Vec::new();
    let mut accept = at(server, API_SERVER);
    accept.extend(at(server, ETCD));
    accept.extend(at(server, KUBELET));
    if let Some(a) = agent {
        accept.extend(at(a, KUBELET));
    }
    tests.push(Test {
        src: server.clone(),
        proto: "tcp",
        accept,
        deny: Vec::new(),
    });
    if let Some(a) = agent {
        let mut accept = at(server, API_SERVER);
        accept.extend(at(server, KUBELET));
        accept.extend(at(a, KUBELET));
        let mut deny = if sel.roles_apart {
            at(server, ETCD)
        } else {
            Vec::new()
        };
        deny.extend(at(server, SSH));
        tests.push(Test {
            src: a.clone(),
            proto: "tcp",
            accept,
            deny,
        });
    }
    let flannel = match spec.k3s.flannel_backend {
        FlannelBackend::Vxlan => Some(FLANNEL_VXLAN),
        FlannelBackend::WireguardNative => Some(FLANNEL_WIREGUARD),
        FlannelBackend::None => None,
    };
    if let Some(port) = flannel {
        let mut accept = at(server, port);
        if let Some(a) = agent {
            accept.extend(at(a, port));
        }
        tests.push(Test {
            src: agent.unwrap_or(server).clone(),
            proto: "udp",
            accept,
            deny: Vec::new(),
        });
    }
    if let Some(admin) = admins.first() {
        let mut accept = at(server, API_SERVER);
        if admin_ssh(spec) {
            accept.extend(at(server, SSH));
        }
        let mut deny = at(server, ETCD);
        deny.extend(at(server, KUBELET));
        tests.push(Test {
            src: admin.clone(),
            proto: "tcp",
            accept,
            deny,
        });
    }
    // A device of a tailnet member, untagged: none of the cluster's ports but what admins
    // get (a member may be an admin), so etcd and the kubelet are denied.
    let mut deny = at(server, ETCD);
    deny.extend(at(server, KUBELET));
    if let Some(a) = agent {
        deny.extend(at(a, KUBELET));
    }
    tests.push(Test {
        src: "autogroup:member".into(),
        proto: "tcp",
        accept: Vec::new(),
        deny,
    });

    let mut ssh_tests = Vec::new();
    if let (Some(admin), false) = (admins.first(), ssh.is_empty()) {
        ssh_tests.push(SshTest {
            src: admin.clone(),
            dst: vec![server.clone()],
            check: vec!["root"],
            deny: Vec::new(),
        });
        if let Some(a) = agent {
            ssh_tests.push(SshTest {
                src: a.clone(),
                dst: vec![server.clone()],
                check: Vec::new(),
                deny: vec!["root"],
            });
        }
    }

    Some(Policy {
        tag_owners,
        grants,
        ssh,
        tests,
        ssh_tests,
    })
}

/// The policy as `meshboot policy` prints it: a `//` header, then pretty JSON.
pub fn text(spec: &Spec, policy: &Policy) -> String {
    let mut out = format!(
        "// Tailnet policy for the K3s cluster {name}, generated by meshboot. Merge it into your\n\
         // policy (tagOwners is a map; grants, ssh, tests and sshTests are lists): see the\n\
         // README, \"The tailnet policy\". Tailscale runs the tests when the policy is saved;\n\
         // a failing deny test means another rule of your policy opens the cluster.\n",
        name = spec.cluster.name
    );
    if selectors(spec).is_some_and(|s| !s.roles_apart) {
        out.push_str(
            "// Servers and agents share their tags, so agents can reach etcd (2379-2380):\n\
             // set tailscale.server_tags and tailscale.agent_tags to keep them apart.\n",
        );
    }
    out.push_str(&serde_json::to_string_pretty(policy).unwrap_or_default());
    out.push('\n');
    out
}
