//! The plan's first-boot part: who a node joins through, and what the bootstrap writes for
//! K3s once the node is on the mesh. Everything here is decided at build time; the
//! bootstrap only looks up addresses and probes the servers it is given.

use super::{K3S_BOOT_CONFIG_PATH, NodeRole, ProviderId};
use crate::k3s_flags::Flag;
use serde::Serialize;

/// Who a node joins through on first boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Join {
    /// The init server: `cluster-init`, unless one of `rejoin` (the other servers, each
    /// probed once) already answers. A re-created init server then joins that one instead
    /// of forking a second cluster. Empty in a single-server cluster: nothing to probe.
    Init { rejoin: Vec<String> },
    /// Joining servers and agents: wait for one of `candidates` (the init server first,
    /// then the other servers, tried in this order each round), then join it.
    Via {
        init_server: String,
        candidates: Vec<String>,
    },
}

impl Join {
    /// The servers the bootstrap probes, in order: none for a lone init server.
    pub fn probes(&self) -> &[String] {
        match self {
            Join::Init { rejoin } => rejoin,
            Join::Via { candidates, .. } => candidates,
        }
    }
}

/// The join of node `name` in role `role`; `servers` are all servers in spec order, the
/// first of which is `init`.
pub(super) fn plan_join(role: NodeRole, name: &str, init: &str, servers: &[&str]) -> Join {
    let others = servers
        .iter()
        .filter(|s| **s != name && **s != init)
        .map(|s| s.to_string());
    match role {
        NodeRole::InitServer => Join::Init {
            rejoin: others.collect(),
        },
        NodeRole::JoinServer | NodeRole::Agent => Join::Via {
            init_server: init.to_string(),
            candidates: std::iter::once(init.to_string()).chain(others).collect(),
        },
    }
}

/// The K3s settings the bootstrap writes once the node is on the mesh, as a drop-in at
/// `path`: the rows of [`crate::k3s_flags`] whose value is known only at boot. A key the
/// spec sets itself (under `k3s.allow_owned_args`) is left out here, so the spec's value
/// in config.yaml stands.
///
/// K3s (v1.21.0 and later: k3s-io/k3s#3205, docs.k3s.io "Multiple Config Files") reads
/// `/etc/rancher/k3s/config.yaml`, then every `config.yaml.d/*.yaml` and `*.yml` in name
/// order (pkg/configfilearg/parser.go, `dotDFiles` over `os.ReadDir`, which sorts; other
/// names, such as the `.tmp` the bootstrap writes first, are skipped). A key in a later
/// file replaces the earlier value, lists included, unless written `key+:`, which appends
/// to the earlier list (`readConfigFile`: `append(toSlice(old), toSlice(v)...)`). So the
/// drop-in writes only keys config.yaml lacks, and `tls-san+:` for the one list both
/// hold: the names stay, the addresses are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootConfig {
    pub path: &'static str,
    /// `node-ip`: the node's mesh IPv4 address (plus IPv6 with `ipv6`).
    pub node_ip: bool,
    /// `advertise-address`: the mesh IPv4 address (servers).
    pub advertise_address: bool,
    /// `tls-san+`: the mesh address(es), appended to config.yaml's names (servers).
    pub tls_san: bool,
    /// `server:` with the join target's address, or `cluster-init: true` on the init
    /// server (see [`Join`]).
    pub join: bool,
    /// The cluster is dual-stack and a key above carries the node's mesh IPv6 address: the
    /// bootstrap looks it up (`tailscale ip -6`) only then.
    pub ipv6: bool,
    /// `node-name`: the server's name, checked at boot (pool nodes; a fixed node's name is in
    /// config.yaml).
    pub node_name: bool,
    /// `kubelet-arg+: [provider-id=<prefix><id>]`, the server's ID read at boot and checked
    /// to be a number (pool nodes: the cluster-autoscaler's provider finds their servers
    /// by it; see [`ProviderId`]).
    pub provider_id: Option<ProviderId>,
}

impl BootConfig {
    pub(super) fn new(role: NodeRole, dual_stack: bool, pool: bool) -> Self {
        BootConfig {
            path: K3S_BOOT_CONFIG_PATH,
            node_ip: true,
            advertise_address: role.is_server(),
            tls_san: role.is_server(),
            join: true,
            ipv6: dual_stack,
            node_name: pool,
            provider_id: pool.then(ProviderId::hetzner),
        }
    }

    /// The spec sets `flag` itself (`k3s.allow_owned_args`): the bootstrap leaves it alone.
    pub(super) fn leave_to_spec(&mut self, flag: Flag) {
        match flag {
            Flag::NodeIp => self.node_ip = false,
            Flag::AdvertiseAddress => self.advertise_address = false,
            Flag::Server | Flag::ClusterInit => self.join = false,
            // Refused for pools by validation, even under allow_owned_args.
            Flag::NodeName => self.node_name = false,
            _ => {}
        }
        self.ipv6 &= self.node_ip || self.tls_san;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s_flags::{File, TABLE, UserArgs};

    #[test]
    fn the_init_server_probes_the_other_servers_and_joiners_start_with_it() {
        let servers = ["cp-1", "cp-2", "cp-3"];
        assert_eq!(
            plan_join(NodeRole::InitServer, "cp-1", "cp-1", &servers),
            Join::Init {
                rejoin: vec!["cp-2".into(), "cp-3".into()]
            }
        );
        assert_eq!(
            plan_join(NodeRole::JoinServer, "cp-2", "cp-1", &servers),
            Join::Via {
                init_server: "cp-1".into(),
                candidates: vec!["cp-1".into(), "cp-3".into()]
            }
        );
        assert_eq!(
            plan_join(NodeRole::Agent, "w-1", "cp-1", &servers).probes(),
            ["cp-1", "cp-2", "cp-3"]
        );
        let alone = plan_join(NodeRole::InitServer, "solo", "solo", &["solo"]);
        assert!(alone.probes().is_empty());
    }

    /// Every flag the table says is written at boot and may be set by the spec instead is
    /// one the boot config can leave alone: the table and the bootstrap agree.
    #[test]
    fn every_boot_time_flag_the_spec_may_own_can_be_left_to_it() {
        for row in TABLE.iter().filter(|r| r.file != File::Config) {
            // A pool node, so that node-name is written at boot too.
            let mut boot = BootConfig::new(NodeRole::InitServer, true, true);
            let before = boot.clone();
            boot.leave_to_spec(row.flag);
            match row.user_args {
                UserArgs::Refused(_) => assert_ne!(boot, before, "{}", row.name),
                UserArgs::Added => assert_eq!(boot, before, "{}", row.name),
            }
        }
    }

    #[test]
    fn the_ipv6_address_is_looked_up_only_when_a_key_carries_it() {
        let mut agent = BootConfig::new(NodeRole::Agent, true, false);
        assert!(agent.ipv6);
        agent.leave_to_spec(Flag::NodeIp);
        assert!(
            !agent.ipv6,
            "an agent whose node-ip the spec sets needs no IPv6"
        );
        let mut server = BootConfig::new(NodeRole::JoinServer, true, false);
        server.leave_to_spec(Flag::NodeIp);
        assert!(server.ipv6, "tls-san still carries it");
        assert!(!BootConfig::new(NodeRole::JoinServer, false, false).ipv6);
    }
}
