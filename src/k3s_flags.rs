//! The K3s flags meshboot sets itself, in one table.
//!
//! Each [`Row`] says which flag, on which nodes, where its value comes from (a spec field, the
//! node's mesh address at boot, or meshboot's own decision), which file holds it (the static
//! `config.yaml` the envelope delivers, or the `config.yaml.d` drop-in the bootstrap writes at
//! boot), why meshboot sets it, and what happens when `server_args`/`agent_args` repeat it.
//! [`crate::validate`] refuses the flags the table refuses, [`crate::plan`] writes every key
//! through [`Flag`], `meshboot plan` prints [`text`], and the README holds [`markdown`] between
//! marker comments (a test keeps the two equal). A leaf module: it imports nothing from the
//! crate, so every stage may read it.

/// A K3s flag meshboot sets. The plan names the keys it writes through this type, so a key
/// meshboot sets cannot be missing from [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    NodeName,
    TokenFile,
    AgentTokenFile,
    NodeIp,
    AdvertiseAddress,
    TlsSan,
    Server,
    ClusterInit,
    FlannelIface,
    FlannelBackend,
    ClusterCidr,
    ServiceCidr,
    Disable,
    NodeLabel,
    NodeTaint,
    KubeProxyArg,
    KubeletArg,
}

/// Which nodes get a flag (a row's `only` may narrow it further).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nodes {
    All,
    Servers,
    /// The first server, which initialises the cluster.
    InitServer,
    /// Joining servers and agents.
    Joiners,
    /// The nodes of pools (`autoscale`), which the cluster-autoscaler creates.
    Pools,
}

/// Where a flag's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A field of the spec.
    Spec(&'static str),
    /// The node's mesh address, known once it is on the mesh (at boot).
    MeshAddress,
    /// meshboot's own decision.
    Meshboot,
}

/// Which file holds a flag on the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    /// `/etc/rancher/k3s/config.yaml`, delivered by the envelope.
    Config,
    /// The `config.yaml.d` drop-in the bootstrap writes once the node is on the mesh.
    DropIn,
    /// Both: the drop-in appends to the list in config.yaml (`key+:`).
    Both,
    /// config.yaml, except on pool nodes, whose value is known only at boot: the drop-in.
    ConfigOrDropInForPools,
}

/// What happens when `server_args`/`agent_args` set the flag too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserArgs {
    /// Refused, with this help (what to do instead), unless `k3s.allow_owned_args`; then the
    /// user's value replaces meshboot's (or, for a repeatable flag, is added to it).
    Refused(&'static str),
    /// The user's values are added to meshboot's.
    Added,
}

/// One flag meshboot sets.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub flag: Flag,
    /// The flag's name without dashes, as config.yaml spells the key.
    pub name: &'static str,
    pub nodes: Nodes,
    /// A condition on top of `nodes`, e.g. "unless `flannel_backend: none`".
    pub only: Option<&'static str>,
    pub source: Source,
    /// What the value is.
    pub value: &'static str,
    pub file: File,
    /// A list in config.yaml (K3s takes the flag several times).
    pub repeatable: bool,
    pub why: &'static str,
    pub user_args: UserArgs,
}

const TAILSCALE_ADDRESS_AND_NAME: &str =
    "meshboot sets it from the node's Tailscale address and name";
const WHO_JOINS: &str = "meshboot decides who initialises the cluster and who joins";
const TOKEN: &str = "the token comes from `k3s.token` and reaches K3s through token-file";
const MUST_MATCH: &str =
    "a critical flag: K3s refuses a server whose value differs from the others'";

/// Every flag meshboot sets, in the order the docs show them.
pub const TABLE: &[Row] = &[
    Row {
        flag: Flag::NodeName,
        name: "node-name",
        nodes: Nodes::All,
        only: None,
        source: Source::Meshboot,
        value: "the node's name (after `count` expansion); a pool node's is its server's name (`<pool>-<hex>`), read and checked at boot",
        file: File::ConfigOrDropInForPools,
        repeatable: false,
        why: "the node registers under the name the mesh and the joiners know it by",
        user_args: UserArgs::Refused(TAILSCALE_ADDRESS_AND_NAME),
    },
    Row {
        flag: Flag::TokenFile,
        name: "token-file",
        nodes: Nodes::All,
        only: None,
        source: Source::Spec("k3s.token"),
        value: "a 0600 file holding the token (agents: `k3s.agent_token`, when set)",
        file: File::Config,
        repeatable: false,
        why: "the token stays off command lines and out of the K3s unit's environment file",
        user_args: UserArgs::Refused(TOKEN),
    },
    Row {
        flag: Flag::AgentTokenFile,
        name: "agent-token-file",
        nodes: Nodes::Servers,
        only: Some("with `k3s.agent_token`"),
        source: Source::Spec("k3s.agent_token"),
        value: "a 0600 file holding it",
        file: File::Config,
        repeatable: false,
        why: "agents join with a token of their own and never hold the server token",
        user_args: UserArgs::Refused(TOKEN),
    },
    Row {
        flag: Flag::NodeIp,
        name: "node-ip",
        nodes: Nodes::All,
        only: None,
        source: Source::MeshAddress,
        value: "the node's Tailscale IPv4 address (plus its IPv6 one in a dual-stack cluster)",
        file: File::DropIn,
        repeatable: false,
        why: "K3s talks to the other nodes over the mesh, not the public interface",
        user_args: UserArgs::Refused(TAILSCALE_ADDRESS_AND_NAME),
    },
    Row {
        flag: Flag::AdvertiseAddress,
        name: "advertise-address",
        nodes: Nodes::Servers,
        only: None,
        source: Source::MeshAddress,
        value: "the node's Tailscale IPv4 address",
        file: File::DropIn,
        repeatable: false,
        why: "it would default to node-external-ip/node-ip; the API server advertises its mesh address",
        user_args: UserArgs::Refused(TAILSCALE_ADDRESS_AND_NAME),
    },
    Row {
        flag: Flag::TlsSan,
        name: "tls-san",
        nodes: Nodes::Servers,
        only: None,
        source: Source::MeshAddress,
        value: "its Tailscale address(es), appended to the node's name, its MagicDNS name `<node>.<tailscale.tailnet>` (with `tailscale.tailnet`) and the `--tls-san` names of `server_args`",
        file: File::Both,
        repeatable: true,
        why: "the API server's certificate is valid for the names and addresses used over the mesh",
        user_args: UserArgs::Added,
    },
    Row {
        flag: Flag::Server,
        name: "server",
        nodes: Nodes::Joiners,
        only: Some("and the init server when another server already runs the cluster"),
        source: Source::Meshboot,
        value: "`https://<Tailscale IPv4>:6443` of the first server that answers on the mesh at boot",
        file: File::DropIn,
        repeatable: false,
        why: "nodes join over the mesh; no Tailscale address is in the spec",
        user_args: UserArgs::Refused(WHO_JOINS),
    },
    Row {
        flag: Flag::ClusterInit,
        name: "cluster-init",
        nodes: Nodes::InitServer,
        only: Some("unless another server already answers at boot"),
        source: Source::Meshboot,
        value: "`true`",
        file: File::DropIn,
        repeatable: false,
        why: "the first server starts embedded etcd; a re-created one rejoins instead of forking a second cluster",
        user_args: UserArgs::Refused(WHO_JOINS),
    },
    Row {
        flag: Flag::FlannelIface,
        name: "flannel-iface",
        nodes: Nodes::All,
        only: Some("unless `flannel_backend: none`"),
        source: Source::Meshboot,
        value: "`tailscale0`",
        file: File::Config,
        repeatable: false,
        why: "pod traffic between nodes crosses the mesh",
        user_args: UserArgs::Refused("meshboot binds flannel to tailscale0"),
    },
    Row {
        flag: Flag::FlannelBackend,
        name: "flannel-backend",
        nodes: Nodes::Servers,
        only: None,
        source: Source::Spec("k3s.flannel_backend"),
        value: "`vxlan`, `wireguard-native` or `none`",
        file: File::Config,
        repeatable: false,
        why: MUST_MATCH,
        user_args: UserArgs::Refused("set `k3s.flannel_backend` instead"),
    },
    Row {
        flag: Flag::ClusterCidr,
        name: "cluster-cidr",
        nodes: Nodes::Servers,
        only: None,
        source: Source::Spec("k3s.cluster_cidr"),
        value: "the pod network(s)",
        file: File::Config,
        repeatable: false,
        why: MUST_MATCH,
        user_args: UserArgs::Refused("set `k3s.cluster_cidr` instead"),
    },
    Row {
        flag: Flag::ServiceCidr,
        name: "service-cidr",
        nodes: Nodes::Servers,
        only: None,
        source: Source::Spec("k3s.service_cidr"),
        value: "the service network(s)",
        file: File::Config,
        repeatable: false,
        why: MUST_MATCH,
        user_args: UserArgs::Refused("set `k3s.service_cidr` instead"),
    },
    Row {
        flag: Flag::Disable,
        name: "disable",
        nodes: Nodes::Servers,
        only: Some("when `k3s.disable` is not empty"),
        source: Source::Spec("k3s.disable"),
        value: "the packaged components not to run",
        file: File::Config,
        repeatable: true,
        why: MUST_MATCH,
        user_args: UserArgs::Refused("list components in `k3s.disable` instead"),
    },
    Row {
        flag: Flag::NodeLabel,
        name: "node-label",
        nodes: Nodes::All,
        only: Some("with `labels`"),
        source: Source::Spec("labels"),
        value: "one `key=value` per label",
        file: File::Config,
        repeatable: true,
        why: "labels are a field of the node",
        user_args: UserArgs::Refused("set `labels` on the node instead"),
    },
    Row {
        flag: Flag::NodeTaint,
        name: "node-taint",
        nodes: Nodes::All,
        only: Some("with `taints`"),
        source: Source::Spec("taints"),
        value: "the node's taints",
        file: File::Config,
        repeatable: true,
        why: "taints are a field of the node",
        user_args: UserArgs::Refused("set `taints` on the node instead"),
    },
    Row {
        flag: Flag::KubeProxyArg,
        name: "kube-proxy-arg",
        nodes: Nodes::All,
        only: Some("unless the node's public ports overlap 30000-32767"),
        source: Source::Meshboot,
        value: "`nodeport-addresses=` Tailscale's address ranges",
        file: File::Config,
        repeatable: true,
        why: "kube-proxy accepts NodePort traffic before the host firewall could refuse it: NodePorts answer on mesh addresses only",
        user_args: UserArgs::Added,
    },
    Row {
        flag: Flag::KubeletArg,
        name: "kubelet-arg",
        nodes: Nodes::Pools,
        only: None,
        source: Source::Meshboot,
        value: "`provider-id=hcloud://<server id>`, the ID read from Hetzner's metadata service at boot and checked to be a number",
        file: File::DropIn,
        repeatable: true,
        why: "the cluster-autoscaler finds a node's server, and counts it as registered, by `hcloud://<id>` only; K3s would give the node `k3s://<name>`",
        user_args: UserArgs::Added,
    },
];

// The table lists every flag once, in the order `Flag` declares them: a build-time check.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].flag as usize == i, "TABLE is not in `Flag` order");
        i += 1;
    }
};

impl Flag {
    /// This flag's row of [`TABLE`] (which lists the flags in declaration order, as a
    /// compile-time check below makes sure).
    pub fn row(self) -> &'static Row {
        &TABLE[self as usize]
    }

    /// The config.yaml key, e.g. `node-ip`.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The flag called `name` (without dashes), if meshboot sets it.
    pub fn named(name: &str) -> Option<Flag> {
        TABLE.iter().find(|r| r.name == name).map(|r| r.flag)
    }
}

/// When `server_args`/`agent_args` may not set `name` (without `k3s.allow_owned_args`):
/// what to do instead.
pub fn refused(name: &str) -> Option<&'static str> {
    match Flag::named(name)?.row().user_args {
        UserArgs::Refused(help) => Some(help),
        UserArgs::Added => None,
    }
}

impl Nodes {
    fn describe(self) -> &'static str {
        match self {
            Nodes::All => "all",
            Nodes::Servers => "servers",
            Nodes::InitServer => "the init server",
            Nodes::Joiners => "joining servers, agents",
            Nodes::Pools => "pool nodes",
        }
    }
}

impl Row {
    fn nodes_text(&self) -> String {
        match self.only {
            Some(only) => format!("{} {only}", self.nodes.describe()),
            None => self.nodes.describe().to_string(),
        }
    }

    fn source_text(&self) -> String {
        match self.source {
            Source::Spec(field) => format!("spec `{field}`: {}", self.value),
            Source::MeshAddress => format!("mesh address at boot: {}", self.value),
            Source::Meshboot => format!("meshboot: {}", self.value),
        }
    }

    fn file_text(&self) -> &'static str {
        match self.file {
            File::Config => "config.yaml",
            File::DropIn => "config.yaml.d, at boot",
            File::Both => "config.yaml; `tls-san+:` in config.yaml.d at boot",
            File::ConfigOrDropInForPools => "config.yaml; pools: config.yaml.d, at boot",
        }
    }

    fn user_args_text(&self) -> &'static str {
        match (self.user_args, self.repeatable) {
            (UserArgs::Added, _) => "added",
            (UserArgs::Refused(_), false) => "refused; with `allow_owned_args`, replaces",
            (UserArgs::Refused(_), true) => "refused; with `allow_owned_args`, added",
        }
    }
}

/// The table as Markdown, as the README shows it.
pub fn markdown() -> String {
    let mut out = String::from(
        "| flag | nodes | value | file | why | in `server_args`/`agent_args` |\n|---|---|---|---|---|---|\n",
    );
    for r in TABLE {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            r.name,
            r.nodes_text(),
            r.source_text(),
            r.file_text(),
            r.why,
            r.user_args_text()
        ));
    }
    out
}

/// The table as plain text for a terminal (`meshboot plan`): a heading, then flag, nodes,
/// value.
pub fn text() -> String {
    let added: Vec<&str> = TABLE
        .iter()
        .filter(|r| r.user_args == UserArgs::Added)
        .map(|r| r.name)
        .collect();
    let except = match added.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => added.join(""),
    };
    let mut out = format!(
        "Flags meshboot sets itself (server_args/agent_args may not repeat them, except {except}):\n"
    );
    let width = TABLE.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in TABLE {
        out.push_str(&format!(
            "  {:<width$}  {}; {}\n",
            r.name,
            r.nodes_text(),
            r.source_text()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Flag; 17] = [
        Flag::NodeName,
        Flag::TokenFile,
        Flag::AgentTokenFile,
        Flag::NodeIp,
        Flag::AdvertiseAddress,
        Flag::TlsSan,
        Flag::Server,
        Flag::ClusterInit,
        Flag::FlannelIface,
        Flag::FlannelBackend,
        Flag::ClusterCidr,
        Flag::ServiceCidr,
        Flag::Disable,
        Flag::NodeLabel,
        Flag::NodeTaint,
        Flag::KubeProxyArg,
        Flag::KubeletArg,
    ];

    #[test]
    fn every_flag_has_exactly_one_row() {
        for flag in ALL {
            let rows = TABLE.iter().filter(|r| r.flag == flag).count();
            assert_eq!(rows, 1, "{flag:?}");
            assert_eq!(flag.row().flag, flag);
            assert_eq!(Flag::named(flag.name()), Some(flag));
        }
        assert_eq!(TABLE.len(), ALL.len());
    }

    #[test]
    fn names_are_config_keys() {
        for r in TABLE {
            assert!(
                !r.name.is_empty()
                    && !r.name.starts_with('-')
                    && r.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn only_the_flags_users_may_add_to_are_not_refused() {
        let added: Vec<&str> = TABLE
            .iter()
            .filter(|r| r.user_args == UserArgs::Added)
            .map(|r| r.name)
            .collect();
        assert_eq!(added, ["tls-san", "kube-proxy-arg", "kubelet-arg"]);
        assert_eq!(refused("tls-san"), None);
        assert_eq!(refused("kubelet-arg"), None);
        assert_eq!(
            refused("cluster-init"),
            Some("meshboot decides who initialises the cluster and who joins")
        );
    }

    /// Docs that run: the README's copy of the table is the table. On a failure, paste the
    /// printed block between the README's markers.
    #[test]
    fn the_readme_shows_this_table() {
        let readme = include_str!("../README.md");
        let start =
            "<!-- k3s-flags:start (generated from src/k3s_flags.rs; a test keeps it equal) -->\n";
        let end = "<!-- k3s-flags:end -->";
        let from = readme.find(start).expect("README lacks the start marker") + start.len();
        let to = readme[from..]
            .find(end)
            .expect("README lacks the end marker")
            + from;
        let want = markdown();
        assert!(
            readme[from..to] == want,
            "the README's table of flags meshboot sets differs from src/k3s_flags.rs; put this between its markers:\n{want}"
        );
    }
}
