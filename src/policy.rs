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
//!   user, group, tag or host; no `*` and no autogroup: see [`outsider_host`]) and single
//!   numeric ports; Tailscale rejects a policy whose tests fail, or that it cannot run;
//! - `hosts` maps a name to an address;
//! - `ssh` rules `{action, src, dst, users}` need a network grant to port 22 as well;
//!   `sshTests` are `{src, dst: [...], accept|check|deny: [users]}`, whose `src` is a user
//!   or a tag here ([`ssh_test_source`]).
//!
//! The output is JSON (HuJSON is a superset) with a `//` header, serialized with serde_json
//! from the types below, so the same spec always gives the same bytes.

use crate::firewall::{API_SERVER, ETCD, FLANNEL_VXLAN, FLANNEL_WIREGUARD, KUBELET, SSH};
use crate::plan::node_tags;
use crate::spec::{FlannelBackend, PortRange, Role, Spec, SshPolicy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub tag_owners: BTreeMap<String, Vec<String>>,
    /// Names for addresses: the outsider the tests speak for ([`outsider_host`]).
    pub hosts: BTreeMap<String, String>,
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

/// The address of the outsider host: in Tailscale's CGNAT range but in the part it never
/// gives a device (tailscale/tailscale net/tsaddr/tsaddr.go, `ChromeOSVMRange`,
/// 100.115.92.0/23: "We avoid allocating Tailscale IPs from it"), so no tag, user or grant
/// of a tailnet names it, and only a grant from `*` or an address range reaches it.
pub const OUTSIDER_ADDRESS: &str = "100.115.92.1";

/// The `hosts` name of a device outside the cluster, the source of the tests that say what
/// it cannot reach. Tailscale's tests take a user, a group, a tag or a host as their source
/// (tailscale.com/kb/1337/policy-syntax, "tests"; tailscale/tailscale#5954: "ACL tests
/// currently support: users, groups, tags, and hosts. ACL tests do not currently support
/// autogroups"), so an untagged member's device (`autogroup:member`) cannot be one
/// (tailscale/tailscale#12370: "unknown user or host"; #4416, open), and a made-up user
/// may be refused as unknown; a host the policy itself defines always exists.
pub fn outsider_host(spec: &Spec) -> String {
    format!("meshboot-{}-outsider", spec.cluster.name)
}

/// Whether `s` can be the source of a test: a user, a group or a tag, not an autogroup
/// (groups since tailscale/tailscale#4281).
pub fn test_source(s: &str) -> bool {
    !s.starts_with("autogroup:") && s != "*"
}

/// Whether `s` can be the source of an SSH test: a user or a tag (see [`policy`]).
pub fn ssh_test_source(s: &str) -> bool {
    test_source(s) && !s.starts_with("group:")
}

/// The `tests` of a policy, one per source and protocol, each destination once.
#[derive(Default)]
struct Tests(Vec<Test>);

impl Tests {
    fn entry(&mut self, src: &str, proto: &'static str) -> &mut Test {
        let i = match self.0.iter().position(|t| t.src == src && t.proto == proto) {
            Some(i) => i,
            None => {
                self.0.push(Test {
                    src: src.to_string(),
                    proto,
                    accept: Vec::new(),
                    deny: Vec::new(),
                });
                self.0.len() - 1
            }
        };
        &mut self.0[i]
    }

    fn accept(&mut self, src: &str, proto: &'static str, dst: Vec<String>) {
        let t = self.entry(src, proto);
        for d in dst {
            if !t.accept.contains(&d) {
                t.accept.push(d);
            }
        }
    }

    fn deny(&mut self, src: &str, proto: &'static str, dst: Vec<String>) {
        let t = self.entry(src, proto);
        for d in dst {
            if !t.deny.contains(&d) {
                t.deny.push(d);
            }
        }
    }
}

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
    let server = sel.servers[0].as_str();
    let agent = sel.agents.first().map(String::as_str);
    let flannel = match spec.k3s.flannel_backend {
        FlannelBackend::Vxlan => Some(FLANNEL_VXLAN),
        FlannelBackend::WireguardNative => Some(FLANNEL_WIREGUARD),
        FlannelBackend::None => None,
    };
    let mut tests = Tests::default();
    // Servers reach the API, etcd and every kubelet.
    tests.accept(server, "tcp", at(server, API_SERVER));
    tests.accept(server, "tcp", at(server, ETCD));
    tests.accept(server, "tcp", at(server, KUBELET));
    if let Some(a) = agent {
        tests.accept(server, "tcp", at(a, KUBELET));
        // Agents reach the API and every kubelet, not etcd (with role tags), nor SSH
        // (unless their tag is an admin).
        tests.accept(a, "tcp", at(server, API_SERVER));
        tests.accept(a, "tcp", at(server, KUBELET));
        tests.accept(a, "tcp", at(a, KUBELET));
        if sel.roles_apart {
            tests.deny(a, "tcp", at(server, ETCD));
        }
        if !admins.iter().any(|x| x == a) {
            tests.deny(a, "tcp", at(server, SSH));
        }
    }
    if let Some(port) = flannel {
        let src = agent.unwrap_or(server);
        tests.accept(src, "udp", at(server, port));
        if let Some(a) = agent {
            tests.accept(src, "udp", at(a, port));
        }
    }
    // Admins reach the API (and SSH), not etcd or the kubelet. Tailscale takes a user, a
    // group or a tag as a test's source, never an autogroup: the first admin it takes
    // stands for them all (not a tag of the cluster's nodes, whose own tests say what it
    // reaches).
    if let Some(admin) = admins
        .iter()
        .find(|a| test_source(a) && !sel.nodes.contains(a))
    {
        tests.accept(admin, "tcp", at(server, API_SERVER));
        if admin_ssh(spec) {
            tests.accept(admin, "tcp", at(server, SSH));
        }
        tests.deny(admin, "tcp", at(server, ETCD));
        tests.deny(admin, "tcp", at(server, KUBELET));
    }
    // A device outside the cluster, which no grant names: none of the cluster's ports.
    let outsider = outsider_host(spec);
    let mut closed = at(server, API_SERVER);
    closed.extend(at(server, ETCD));
    closed.extend(at(server, KUBELET));
    if let Some(a) = agent {
        closed.extend(at(a, KUBELET));
    }
    if admin_ssh(spec) {
        closed.extend(at(server, SSH));
    }
    tests.deny(&outsider, "tcp", closed);
    if let Some(port) = flannel {
        let mut closed = at(server, port);
        if let Some(a) = agent {
            closed.extend(at(a, port));
        }
        tests.deny(&outsider, "udp", closed);
    }

    // SSH tests take a user or a tag as their source: not an autogroup
    // (tailscale/tailscale#14102: "SSH tests src contains disallowed element"), and not a
    // group, which Tailscale can wrongly deny (tailscale/tailscale#11790, open).
    let mut ssh_tests = Vec::new();
    if !ssh.is_empty() {
        if let Some(admin) = admins.iter().find(|a| ssh_test_source(a)) {
            ssh_tests.push(SshTest {
                src: admin.clone(),
                dst: vec![server.to_string()],
                check: vec!["root"],
                deny: Vec::new(),
            });
        }
        if let Some(a) = agent.filter(|a| !admins.iter().any(|x| x == a)) {
            ssh_tests.push(SshTest {
                src: a.to_string(),
                dst: vec![server.to_string()],
                check: Vec::new(),
                deny: vec!["root"],
            });
        }
    }

    Some(Policy {
        tag_owners,
        hosts: BTreeMap::from([(outsider, OUTSIDER_ADDRESS.to_string())]),
        grants,
        ssh,
        tests: tests.0,
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
    let _ = writeln!(
        out,
        "// The tests' host {host} is {OUTSIDER_ADDRESS}, an address Tailscale never\n\
         // gives a device: it stands for a device outside the cluster, since a test cannot name\n\
         // an untagged member's device (autogroup:member: tailscale/tailscale#12370, #4416).\n\
         // Its tests catch a grant from \"*\" or an address range; a grant from autogroup:member\n\
         // to the cluster is caught only by the tests of an admin that is a user or a group.",
        host = outsider_host(spec)
    );
    let untested: Vec<&str> = spec
        .tailscale
        .admins
        .iter()
        .filter(|a| !test_source(a))
        .map(String::as_str)
        .collect();
    if !untested.is_empty() {
        let _ = writeln!(
            out,
            "// Granted, not tested: tailscale.admins {}. Tailscale refuses an autogroup\n\
             // as the source of a test (tailscale/tailscale#12370, #4416) or of an SSH test (#14102).",
            untested.join(", ")
        );
    }
    if policy.ssh.iter().any(|r| !r.src.is_empty())
        && !spec.tailscale.admins.iter().any(|a| ssh_test_source(a))
    {
        out.push_str(
            "// No SSH test for the admins: an SSH test takes a user or a tag as its source\n\
             // (an autogroup is refused, tailscale/tailscale#14102; a group can be wrongly\n\
             // denied, #11790).\n",
        );
    }
    out.push_str(&serde_json::to_string_pretty(policy).unwrap_or_default());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(admins: &str, ssh: bool) -> Spec {
        let text = format!(
            "version: 1\ncluster: {{ name: c }}\ntailscale: {{ auth_key: {{ env: A }}, tags: [tag:k3s], server_tags: [tag:s], agent_tags: [tag:a], admins: {admins}, ssh: {ssh} }}\nk3s: {{ version: v1.33.5+k3s1, token: {{ env: T }} }}\nnodes:\n  - {{ name: s, role: server }}\n  - {{ name: a, role: agent }}\n"
        );
        let (root, _) = crate::source::parse(&text).expect("parses");
        let mut diags = Vec::new();
        crate::reader::read(&root, &mut diags).expect("reads")
    }

    fn sources(p: &Policy) -> Vec<&str> {
        p.tests.iter().map(|t| t.src.as_str()).collect()
    }

    #[test]
    fn the_first_admin_tailscale_can_test_speaks_for_the_admins() {
        let p = policy(&spec(
            "[autogroup:admin, alice@example.com, group:ops]",
            true,
        ))
        .expect("policy");
        assert_eq!(
            sources(&p),
            [
                "tag:s",
                "tag:a",
                "tag:a",
                "alice@example.com",
                "meshboot-c-outsider",
                "meshboot-c-outsider"
            ]
        );
        let ssh_sources: Vec<&str> = p.ssh_tests.iter().map(|t| t.src.as_str()).collect();
        assert_eq!(ssh_sources, ["alice@example.com", "tag:a"]);

        // A group is a test source, not an SSH test source.
        let p = policy(&spec("[autogroup:admin, group:ops]", true)).expect("policy");
        assert!(sources(&p).contains(&"group:ops"));
        let ssh_sources: Vec<&str> = p.ssh_tests.iter().map(|t| t.src.as_str()).collect();
        assert_eq!(ssh_sources, ["tag:a"]);
        let header = text(&spec("[autogroup:admin, group:ops]", true), &p);
        assert!(header.contains("Granted, not tested: tailscale.admins autogroup:admin."));
        assert!(header.contains("No SSH test for the admins"));

        // Autogroups only: no admin test at all, and the header says why.
        let s = spec("[autogroup:admin, autogroup:member]", false);
        let p = policy(&s).expect("policy");
        assert!(p.tests.iter().all(|t| !t.src.starts_with("autogroup:")));
        assert!(
            text(&s, &p).contains(
                "Granted, not tested: tailscale.admins autogroup:admin, autogroup:member."
            )
        );
    }

    /// A node tag among the admins is granted SSH and the API as an admin: the tests of its
    /// role neither deny it SSH nor say as an admin's test that it cannot reach the kubelet
    /// its role reaches (one test per source: the two would contradict each other).
    #[test]
    fn an_agent_tag_that_is_an_admin_is_not_denied_ssh() {
        let p = policy(&spec("[tag:a, group:ops]", false)).expect("policy");
        let agent_tcp = p
            .tests
            .iter()
            .find(|t| t.src == "tag:a" && t.proto == "tcp")
            .expect("agent test");
        assert!(
            !agent_tcp.deny.iter().any(|d| d.ends_with(":22")),
            "{agent_tcp:?}"
        );
        for t in &p.tests {
            assert!(
                !t.accept.iter().any(|d| t.deny.contains(d)),
                "a contradicting test: {t:?}"
            );
        }
        assert!(sources(&p).contains(&"group:ops"), "{:?}", sources(&p));
    }
}
