//! The host firewall model: the one place that knows K3s ports, CIDRs and CNI interfaces.
//!
//! Beside stages 2 and 3: [`crate::validate`] checks public ports against its K3s ports and
//! the networks against Tailscale's ranges; [`crate::plan`] asks [`plan_firewall`] for a
//! node's [`FirewallPlan`], from parsed networks (one per IP family); the ufw commands and
//! the nftables ruleset in `templates/` only print what this model decided.
//!
//! The public side is default-deny. Allowed in: established/related, loopback, ICMP,
//! tailscaled's WireGuard port, SSH per policy, and the node's public ports. Pods, services
//! and the CNI interfaces may reach the host. K3s ports are open on tailscale0 only.
//! Forwarded traffic is allowed from the CNI and mesh interfaces, and from the internet only
//! to pod addresses on the node's public ports (that is what servicelb/hostPort ingress is).
//!
//! Forwarded traffic is filtered by meshboot's own nftables table on every node with a
//! firewall, ufw nodes included ([`NftTable`]): K3s's own iptables chains accept pod traffic
//! in FORWARD before ufw's routed rules ever see it. kube-router's network policy
//! controller, which K3s runs by default, inserts `-j KUBE-ROUTER-FORWARD` at position 1 of
//! FORWARD and ends that chain with `-m mark --mark 0x20000/0x20000 -j ACCEPT`, a mark it
//! sets on all traffic to and from a local pod that no NetworkPolicy selects
//! (cloudnativelabs/kube-router pkg/controllers/netpol/npc_iptables.go
//! `ensureTopLevelChains`, `ensureExplicitAccept`; pod.go `setupPodNetpolRules`,
//! `syncPodFirewallChains`). An accept ends only the base chain it is in: "The packet can
//! still be dropped later by another hook, for instance ... another forward base chain",
//! while after a drop "It is not possible to accept the packet in a later chain again"
//! (nft(8), VERDICT STATEMENT). iptables-nft's FORWARD is one base chain of the forward hook
//! and meshboot's is another (iptables-legacy's x_tables hook sits in the same hook list),
//! so a `drop` in `table inet meshboot`'s forward chain holds whatever iptables accepts. The input side needs no such table on ufw nodes: kube-router's
//! `KUBE-ROUTER-INPUT` accepts only packets whose source is a local pod
//! (`interceptPodOutboundTraffic` jumps `-s <pod ip>` to the pod's chain; its other rules
//! RETURN), which ufw accepts anyway (the pod network is trusted).

use crate::spec::{FirewallBackend, FlannelBackend, Networks, PortRange, SshPolicy};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};

/// tailscaled's WireGuard port: without it peers fall back to DERP relays.
pub const TAILSCALE_UDP: PortRange = PortRange::single(41641);
pub const SSH: PortRange = PortRange::single(22);
pub const API_SERVER: PortRange = PortRange::single(6443);
pub const ETCD: PortRange = PortRange {
    start: 2379,
    end: 2380,
};
pub const KUBELET: PortRange = PortRange::single(10250);
pub const FLANNEL_VXLAN: PortRange = PortRange::single(8472);
pub const FLANNEL_WIREGUARD: PortRange = PortRange {
    start: 51820,
    end: 51821,
};

/// Ports that must never face the internet without an explicit acknowledgement.
pub const K3S_INTERNAL_TCP: &[PortRange] = &[ETCD, API_SERVER, KUBELET];
pub const K3S_INTERNAL_UDP: &[PortRange] = &[FLANNEL_VXLAN, FLANNEL_WIREGUARD];

pub const MESH_INTERFACE: &str = "tailscale0";

/// Tailscale's address ranges: every mesh address is in one of them (100.64.0.0/10 and
/// fd7a:115c:a1e0::/48).
pub const TAILSCALE_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10);
pub const TAILSCALE_V6: Ipv6Net =
    Ipv6Net::new_assert(Ipv6Addr::new(0xfd7a, 0x115c, 0xa1e0, 0, 0, 0, 0, 0), 48);

/// The cloud metadata service: it serves the node's user data, secrets included, to any
/// process that asks, pods too.
pub const METADATA_V4: &str = "169.254.169.254";

/// NodePort range of kube-proxy (K3s's default `service-node-port-range`).
pub const NODEPORTS: PortRange = PortRange {
    start: 30000,
    end: 32767,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirewallPlan {
    pub backend: FirewallBackend,
    /// Open to the internet (and everywhere else).
    pub public_tcp: Vec<PortRange>,
    pub public_udp: Vec<PortRange>,
    /// Open on tailscale0 only.
    pub mesh_tcp: Vec<PortRange>,
    pub mesh_udp: Vec<PortRange>,
    /// Interfaces whose traffic to the host and through it is trusted: the CNI's.
    pub cni_interfaces: Vec<String>,
    /// Source CIDRs trusted to reach the host: the pod and service networks, by family.
    pub trusted_v4: Vec<String>,
    pub trusted_v6: Vec<String>,
    /// Pod CIDRs that public-port traffic may be forwarded to (DNAT by servicelb/hostPort).
    pub pods_v4: Vec<String>,
    pub pods_v6: Vec<String>,
    /// The node's own public ports (not tailscaled's or SSH): forwarded traffic to pods on
    /// these ports is allowed, since servicelb and hostPort DNAT them to pod addresses.
    pub forward_tcp: Vec<PortRange>,
    pub forward_udp: Vec<PortRange>,
    /// Drop forwarded traffic from pods to the metadata service.
    pub block_pod_metadata: bool,
    /// meshboot's own nftables table, `table inet meshboot`: every node with a host
    /// firewall has one (see the module's docs); `None` without a firewall.
    pub table: Option<NftTable>,
}

/// What `table inet meshboot` holds on a node. It always has the forward chain: pods,
/// hostPorts and servicelb, and the metadata block, whatever iptables accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NftTable {
    /// The input chain too (the nftables backend). On ufw nodes ufw filters the host's own
    /// traffic and the table holds the forward chain only.
    pub input: bool,
}

pub struct FirewallInput<'a> {
    pub backend: FirewallBackend,
    pub is_server: bool,
    pub ssh: SshPolicy,
    pub flannel: FlannelBackend,
    pub public_tcp: &'a [PortRange],
    pub public_udp: &'a [PortRange],
    pub mesh_tcp: &'a [PortRange],
    pub mesh_udp: &'a [PortRange],
    pub cluster_cidrs: &'a Networks,
    pub service_cidrs: &'a Networks,
    pub allow_pod_metadata: bool,
}

pub fn plan_firewall(i: &FirewallInput) -> FirewallPlan {
    let sorted = |l: &[PortRange]| {
        let mut v = l.to_vec();
        v.sort();
        v.dedup();
        v
    };
    let forward_tcp = sorted(i.public_tcp);
    let forward_udp = sorted(i.public_udp);
    let mut public_tcp = i.public_tcp.to_vec();
    let mut public_udp = vec![TAILSCALE_UDP];
    public_udp.extend_from_slice(i.public_udp);
    let mut mesh_tcp = vec![KUBELET];
    let mut mesh_udp = Vec::new();
    if i.is_server {
        mesh_tcp.push(API_SERVER);
        mesh_tcp.push(ETCD);
    }
    match i.flannel {
        FlannelBackend::Vxlan => mesh_udp.push(FLANNEL_VXLAN),
        FlannelBackend::WireguardNative => mesh_udp.push(FLANNEL_WIREGUARD),
        FlannelBackend::None => {}
    }
    match i.ssh {
        SshPolicy::Public => public_tcp.push(SSH),
        SshPolicy::Tailscale => mesh_tcp.push(SSH),
        SshPolicy::Off => {}
    }
    mesh_tcp.extend_from_slice(i.mesh_tcp);
    mesh_udp.extend_from_slice(i.mesh_udp);
    for list in [
        &mut public_tcp,
        &mut public_udp,
        &mut mesh_tcp,
        &mut mesh_udp,
    ] {
        list.sort();
        list.dedup();
    }
    let cni_interfaces = match i.flannel {
        FlannelBackend::Vxlan => vec!["cni0", "flannel.1"],
        FlannelBackend::WireguardNative => vec!["cni0", "flannel-wg", "flannel-wg-v6"],
        FlannelBackend::None => vec!["cni0"],
    }
    .into_iter()
    .map(String::from)
    .collect();
    let v4 = |nets: &[&Networks]| {
        nets.iter()
            .filter_map(|n| n.v4())
            .map(|n| n.to_string())
            .collect()
    };
    let v6 = |nets: &[&Networks]| {
        nets.iter()
            .filter_map(|n| n.v6())
            .map(|n| n.to_string())
            .collect()
    };
    let trusted = [i.cluster_cidrs, i.service_cidrs];
    let pods = [i.cluster_cidrs];
    FirewallPlan {
        backend: i.backend,
        public_tcp,
        public_udp,
        mesh_tcp,
        mesh_udp,
        cni_interfaces,
        trusted_v4: v4(&trusted),
        trusted_v6: v6(&trusted),
        pods_v4: v4(&pods),
        pods_v6: v6(&pods),
        forward_tcp,
        forward_udp,
        block_pod_metadata: !i.allow_pod_metadata,
        table: match i.backend {
            FirewallBackend::Nftables => Some(NftTable { input: true }),
            FirewallBackend::Ufw => Some(NftTable { input: false }),
            FirewallBackend::None => None,
        },
    }
}

/// True when the two port ranges share a port.
pub fn overlaps(a: PortRange, b: PortRange) -> bool {
    a.start <= b.end && b.start <= a.end
}

/// The ufw commands that realise `plan`, each as its argument list (after `ufw`).
/// ufw's own before-rules already accept loopback, established traffic and ICMP.
pub fn ufw_commands(plan: &FirewallPlan) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    // Every word is a keyword, a port, an interface or a network: none holds a space.
    let mut rule = |words: String| out.push(words.split_whitespace().map(String::from).collect());
    rule("default deny incoming".into());
    rule("default allow outgoing".into());
    rule("default deny routed".into());
    for (proto, list) in [("tcp", &plan.public_tcp), ("udp", &plan.public_udp)] {
        for p in list {
            rule(format!("allow {}/{proto}", ufw_port(*p)));
        }
    }
    for (proto, list) in [("tcp", &plan.mesh_tcp), ("udp", &plan.mesh_udp)] {
        for p in list {
            let port = ufw_port(*p);
            rule(format!(
                "allow in on {MESH_INTERFACE} to any port {port} proto {proto}"
            ));
        }
    }
    for iface in &plan.cni_interfaces {
        rule(format!("allow in on {iface}"));
    }
    for cidr in plan.trusted_v4.iter().chain(&plan.trusted_v6) {
        rule(format!("allow from {cidr}"));
    }
    // Route rules apply in order: the metadata block comes before the allows.
    if plan.block_pod_metadata {
        for cidr in &plan.pods_v4 {
            rule(format!("route deny from {cidr} to {METADATA_V4}"));
        }
    }
    for iface in plan
        .cni_interfaces
        .iter()
        .map(String::as_str)
        .chain([MESH_INTERFACE])
    {
        rule(format!("route allow in on {iface}"));
    }
    for cidr in plan.pods_v4.iter().chain(&plan.pods_v6) {
        rule(format!("route allow from {cidr}"));
    }
    for cidr in plan.pods_v4.iter().chain(&plan.pods_v6) {
        for (proto, list) in [("tcp", &plan.forward_tcp), ("udp", &plan.forward_udp)] {
            for p in list {
                let port = ufw_port(*p);
                rule(format!(
                    "route allow proto {proto} from any to {cidr} port {port}"
                ));
            }
        }
    }
    out
}

/// What the bootstrap hands ufw's frontend in one process (`ufw_batch` in
/// `templates/bootstrap.sh.j2`): each of [`ufw_commands`] as one string, its words joined by
/// a space (no word holds one, so the frontend's `split()` gives them back), then
/// `--force enable`, the command that loads the rules.
pub fn ufw_batch(plan: &FirewallPlan) -> Vec<String> {
    ufw_commands(plan)
        .iter()
        .map(|words| words.join(" "))
        .chain(["--force enable".to_string()])
        .collect()
}

/// ufw writes ranges as `a:b`.
fn ufw_port(p: PortRange) -> String {
    if p.start == p.end {
        p.start.to_string()
    } else {
        format!("{}:{}", p.start, p.end)
    }
}
