//! The plan of `meshboot hcloud`: the script that creates a cluster's servers in Hetzner
//! Cloud with the hcloud CLI (hetznercloud/cli; every command and flag here is spelt as in
//! its docs/reference/manual): cloud firewalls that mirror the public side of the host
//! firewall, spread placement groups, and one `hcloud server create` per fixed node.
//! Pools are the cluster-autoscaler's: it creates their servers (`<pool>-<hex>`) from
//! what `meshboot autoscaler` prints, so the script creates none and names them.
//!
//! Cloud firewalls are attached with `--firewall` in the same call that creates the
//! server, so the public side is closed from the server's first packet, before cloud-init
//! or Ignition has loaded the host firewall. Their rules are JSON in the shape of the API's
//! firewall rules (`hcloud firewall create --rules-file`: a list of `{direction, protocol,
//! port, source_ips, description}`, cli internal/cmd/firewall/create.go
//! `parseRulesFile`), serialized here with serde_json.

use super::{Arch, CLUSTER_LABEL, ROLE_LABEL, stock_image};
use crate::firewall::{SSH, TAILSCALE_UDP};
use crate::plan::{ClusterPlan, NodePlan};
use crate::resolve::{ImageRef, image_ref};
use crate::spec::{PortRange, Spec, SshPolicy};
use serde::Serialize;
use std::collections::BTreeMap;

/// Hetzner: "Up to 10 servers per Placement Group (type Spread)" (docs.hetzner.com,
/// cloud/placement-groups/overview).
pub const SERVERS_PER_SPREAD_GROUP: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct HcloudPlan {
    pub cluster: String,
    /// Where `meshboot build` wrote the nodes' files (`--out`); `None` under
    /// `--firewalls-only`, whose script creates the cloud firewalls and nothing else.
    pub out_dir: Option<String>,
    /// `key=value` labels on everything the script creates.
    pub labels: Vec<String>,
    pub firewalls: Vec<CloudFirewall>,
    pub placement_groups: Vec<String>,
    /// Label selectors the script resolves to the newest matching snapshot of a server
    /// type's architecture, as the autoscaler's `findImage` does (the CLI's `--image`
    /// takes only an ID or a name).
    pub image_lookups: Vec<ImageLookup>,
    pub servers: Vec<Server>,
    /// The pools, which the script leaves to the cluster-autoscaler.
    pub pools: Vec<PoolNote>,
}

/// A pool, as the script's header names it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolNote {
    pub name: String,
    pub min: u32,
    pub max: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudFirewall {
    pub name: String,
    /// Why it exists, for the script's comment.
    pub what: String,
    /// The rules, serialized (`--rules-file -`).
    pub rules_json: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageLookup {
    /// The shell variable that holds the image ID.
    pub var: String,
    pub selector: String,
    pub arch: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Server {
    pub name: String,
    /// `hcloud server create` arguments after `--name NAME`, each one word; `$IMAGE_N`
    /// words are the one exception, printed as a variable ([`Server::image_var`]).
    pub args: Vec<String>,
    /// The variable holding the image ID when the image is a label selector.
    pub image_var: Option<String>,
    /// The user-data file, checked before anything is created.
    pub user_data: String,
}

/// One rule of a Hetzner Cloud firewall (API: `FirewallRule`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rule {
    pub description: String,
    pub direction: &'static str,
    pub protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    pub source_ips: [&'static str; 2],
}

const ANYWHERE: [&str; 2] = ["0.0.0.0/0", "::/0"];

fn rule(description: String, protocol: &'static str, port: Option<PortRange>) -> Rule {
    Rule {
        description,
        direction: "in",
        protocol,
        // The API writes a range as `1024-5000`, as PortRange displays it.
        port: port.map(|p| p.to_string()),
        source_ips: ANYWHERE,
    }
}

fn port_rules(tcp: &[PortRange], udp: &[PortRange], why: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    for (proto, list) in [("tcp", tcp), ("udp", udp)] {
        let mut list = list.to_vec();
        list.sort();
        list.dedup();
        for p in list {
            rules.push(rule(format!("{why} {p}/{proto}"), proto, Some(p)));
        }
    }
    rules
}

/// The rules every node gets: what the host firewall opens to the internet on every node
/// (crate::firewall): ICMP, tailscaled's WireGuard port, SSH under `ssh: public`, and the
/// cluster's public ports. Anything else inbound is dropped by the cloud firewall;
/// outbound stays open (no `out` rules).
fn cluster_rules(spec: &Spec) -> Vec<Rule> {
    let mut rules = vec![
        rule("ICMP".into(), "icmp", None),
        rule(
            "tailscaled direct connections".into(),
            "udp",
            Some(TAILSCALE_UDP),
        ),
    ];
    if spec.firewall.ssh == SshPolicy::Public {
        rules.push(rule("SSH (firewall.ssh: public)".into(), "tcp", Some(SSH)));
    }
    rules.extend(port_rules(
        &spec.firewall.public_tcp,
        &spec.firewall.public_udp,
        "firewall.public_*",
    ));
    rules
}

fn to_json(rules: &[Rule]) -> String {
    serde_json::to_string(rules).unwrap_or_default()
}

/// Where a node's own public ports are written: its entry's `firewall`, or
/// `defaults.firewall` (a node's `firewall` replaces the default one, crate::resolve).
fn port_source(spec: &Spec, entry: usize) -> Option<(&str, &crate::spec::NodeFirewall)> {
    let node = &spec.nodes[entry];
    match (&node.fields.firewall, &spec.defaults.firewall) {
        (Some(own), _) => Some((node.name.as_str(), own)),
        (None, Some(d)) => Some(("defaults", d)),
        (None, None) => None,
    }
}

/// The name of the cloud firewall every node of `cluster` gets, fixed nodes and pools
/// alike: the one place it is named (`meshboot hcloud` creates it, `meshboot autoscaler`
/// hands it to the autoscaler as `HCLOUD_FIREWALL`).
pub fn cluster_firewall(cluster: &str) -> String {
    cluster.to_string()
}

/// The name of the cloud firewall of the public ports written at `source` (a node entry's
/// name, or `defaults`).
fn ports_firewall(cluster: &str, source: &str) -> String {
    format!("{cluster}-{source}")
}

/// The cloud firewalls of node-level public ports, one per place they are written (an
/// entry's `firewall`, or `defaults.firewall`), and which node or pool (by name) gets which.
/// Pools are included: the autoscaler attaches a pool's as `nodeConfigs.<pool>.firewalls`.
pub fn ports_firewalls(
    spec: &Spec,
    cluster: &str,
) -> (Vec<CloudFirewall>, BTreeMap<String, String>) {
    let mut firewalls: Vec<CloudFirewall> = Vec::new();
    let mut of_node = BTreeMap::new();
    for n in crate::resolve::expand(spec) {
        let Some((source, fw)) = port_source(spec, n.entry) else {
            continue;
        };
        let rules = port_rules(&fw.public_tcp, &fw.public_udp, "node public port");
        if rules.is_empty() {
            continue;
        }
        let name = ports_firewall(cluster, source);
        if !firewalls.iter().any(|f| f.name == name) {
            let what = if source == "defaults" {
                "the public ports of defaults.firewall".to_string()
            } else if n.pool.is_some() {
                format!("the public ports of the pool {source} (the autoscaler attaches it)")
            } else {
                format!("the public ports of the node entry {source}")
            };
            firewalls.push(CloudFirewall {
                name: name.clone(),
                what,
                rules_json: to_json(&rules),
            });
        }
        of_node.insert(n.name.clone(), name);
    }
    (firewalls, of_node)
}

/// Plans the script for `plan`'s fixed nodes, whose files `meshboot build` wrote to
/// `out_dir`. The spec passed [`crate::validate::for_target`] for hcloud: every fixed node
/// has a type, a location and an image Hetzner can boot. Without `out_dir`
/// (`--firewalls-only`, for pools whose fixed nodes are created some other way) the plan
/// holds the cloud firewalls only, which need none of that: the autoscaler's servers must
/// find them (`HCLOUD_FIREWALL`, `nodeConfigs.<pool>.firewalls`) whoever creates the rest.
pub fn plan_hcloud(spec: &Spec, plan: &ClusterPlan, out_dir: Option<&str>) -> HcloudPlan {
    let fixed: Vec<&NodePlan> = match out_dir {
        Some(_) => plan.nodes.iter().filter(|n| n.pool.is_none()).collect(),
        None => Vec::new(),
    };
    let pools: Vec<PoolNote> = plan
        .nodes
        .iter()
        .filter_map(|n| n.pool.as_ref())
        .map(|p| PoolNote {
            name: p.name.clone(),
            min: p.min,
            max: p.max,
        })
        .collect();
    let cluster = plan.cluster.clone();
    let cluster_label = format!("{CLUSTER_LABEL}={cluster}");
    let mut firewalls = vec![CloudFirewall {
        name: cluster_firewall(&cluster),
        what: if pools.is_empty() {
            "every node: the public side of the host firewall"
        } else {
            "every node and pool server: the public side of the host firewall"
        }
        .into(),
        rules_json: to_json(&cluster_rules(spec)),
    }];
    // Node-level public ports: one more firewall per place they are written, pools' too
    // (the autoscaler only attaches firewalls that exist, and refuses to start without one
    // a pool names).
    let (own, node_firewall) = ports_firewalls(spec, &cluster);
    firewalls.extend(own);

    // Spread placement groups per location, servers first so that the etcd members share
    // the first group, at most SERVERS_PER_SPREAD_GROUP each.
    let mut by_location: BTreeMap<&str, Vec<&NodePlan>> = BTreeMap::new();
    for n in &fixed {
        by_location
            .entry(n.hcloud.location.as_deref().unwrap_or_default())
            .or_default()
            .push(n);
    }
    let mut placement_groups = Vec::new();
    let mut group_of: BTreeMap<&str, String> = BTreeMap::new();
    for (location, mut nodes) in by_location {
        nodes.sort_by_key(|n| !n.role.is_server());
        for (i, chunk) in nodes.chunks(SERVERS_PER_SPREAD_GROUP).enumerate() {
            let name = format!("{cluster}-{location}-{}", i + 1);
            for n in chunk {
                group_of.insert(n.name.as_str(), name.clone());
            }
            placement_groups.push(name);
        }
    }

    let mut image_lookups: Vec<ImageLookup> = Vec::new();
    let servers = fixed
        .iter()
        .map(|n| {
            let h = &n.hcloud;
            let server_type = h.server_type.clone().unwrap_or_default();
            let user_data = format!(
                "{}/{}.{}",
                out_dir.unwrap_or_default().trim_end_matches('/'),
                n.name,
                n.envelope.extension()
            );
            let mut image_var = None;
            let image = match h.image.as_deref().map(image_ref) {
                Some(ImageRef::Selector(selector)) => {
                    let arch = Arch::of_server_type(&server_type).name();
                    let found = image_lookups
                        .iter()
                        .find(|l| l.selector == selector && l.arch == arch);
                    let var = match found {
                        Some(l) => l.var.clone(),
                        None => {
                            let var = format!("IMAGE_{}", image_lookups.len() + 1);
                            image_lookups.push(ImageLookup {
                                var: var.clone(),
                                selector: selector.to_string(),
                                arch,
                            });
                            var
                        }
                    };
                    image_var = Some(var.clone());
                    format!("${var}")
                }
                Some(ImageRef::Id(s) | ImageRef::Name(s)) => s.to_string(),
                None => stock_image(n.os).unwrap_or_default().to_string(),
            };
            let role = if n.role.is_server() {
                "server"
            } else {
                "agent"
            };
            let mut args = vec![
                "--type".to_string(),
                server_type,
                "--location".into(),
                h.location.clone().unwrap_or_default(),
                "--image".into(),
                image,
                "--user-data-from-file".into(),
                user_data.clone(),
                "--label".into(),
                cluster_label.clone(),
                "--label".into(),
                format!("{ROLE_LABEL}={role}"),
            ];
            for key in h.ssh_keys.iter().flatten() {
                args.push("--ssh-key".into());
                args.push(key.clone());
            }
            args.push("--firewall".into());
            args.push(cluster_firewall(&cluster));
            if let Some(fw) = node_firewall.get(&n.name) {
                args.push("--firewall".into());
                args.push(fw.clone());
            }
            if let Some(group) = group_of.get(n.name.as_str()) {
                args.push("--placement-group".into());
                args.push(group.clone());
            }
            Server {
                name: n.name.clone(),
                args,
                image_var,
                user_data,
            }
        })
        .collect();

    HcloudPlan {
        cluster,
        out_dir: out_dir.map(String::from),
        labels: vec![cluster_label],
        firewalls,
        placement_groups,
        image_lookups,
        servers,
        pools,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_is_the_cax_line() {
        assert_eq!(Arch::of_server_type("cax21"), Arch::Arm);
        assert_eq!(Arch::of_server_type("cx22"), Arch::X86);
        assert_eq!(Arch::of_server_type("ccx13"), Arch::X86);
    }

    #[test]
    fn rules_are_the_api_shape() {
        let json = to_json(&[rule(
            "x".into(),
            "udp",
            Some(PortRange {
                start: 3478,
                end: 3480,
            }),
        )]);
        assert_eq!(
            json,
            r#"[{"description":"x","direction":"in","protocol":"udp","port":"3478-3480","source_ips":["0.0.0.0/0","::/0"]}]"#
        );
    }
}
