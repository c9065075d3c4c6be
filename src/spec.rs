//! Stage 1b, the spec: the typed cluster spec, as [`crate::reader`] reads it from the
//! [`crate::source`] tree and hands it to [`crate::validate`].
//!
//! These types are the user-facing contract (SPEC.md). Each enum of fixed names is declared
//! with [`choice!`], whose one table of names serves reading, messages, serialization and
//! the schema. Defaults that the reader fills in for an absent key are the functions and
//! `Default` impls here.

use serde::{Serialize, Serializer};

/// The spec versions this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// The largest `count` of one node entry.
pub const MAX_COUNT: u32 = 1000;

/// An enum whose values are written as fixed names in the spec.
pub trait Choice: Copy + 'static {
    /// What the value is, as messages call it: "role", "flannel backend".
    const WHAT: &'static str;
    /// Every value with its name in the spec, in the order messages list them.
    const ALL: &'static [(&'static str, Self)];
    /// Names other tools use, and the name meshboot uses for the same thing.
    const ALIASES: &'static [(&'static str, &'static str)];

    /// The names, in order.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|(n, _)| *n).collect()
    }
}

/// Declares an enum of fixed names: the enum, its [`Choice`] table, `name()`, and
/// `Serialize` as the name.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
        aliases { $($alias:literal => $ours:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl Choice for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [(&'static str, Self)] = &[$(($text, $name::$variant)),+];
            const ALIASES: &'static [(&'static str, &'static str)] = &[$(($alias, $ours)),*];
        }

        impl $name {
            /// The name of this value in the spec.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub version: u32,
    pub cluster: Cluster,
    pub tailscale: Tailscale,
    pub k3s: K3s,
    pub firewall: Firewall,
    pub defaults: NodeFields,
    pub nodes: Vec<NodeSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
}

/// Where a secret comes from. Secrets never live in the spec itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    Env(String),
    File(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Tailscale {
    pub auth_key: SecretRef,
    pub tags: Vec<String>,
    pub ssh: bool,
    pub accept_dns: bool,
    pub login_server: Option<String>,
    /// Version of the static Tailscale build used on Flatcar / Fedora CoreOS; `None`
    /// resolves the newest stable release at boot.
    pub version: Option<String>,
}

choice! {
    pub enum FlannelBackend ("flannel backend") { Vxlan = "vxlan", WireguardNative = "wireguard-native", None = "none", }
    aliases { "wireguard" => "wireguard-native", "wg" => "wireguard-native" }
}

impl Default for FlannelBackend {
    /// K3s's default, carried over tailscale0.
    fn default() -> Self {
        FlannelBackend::Vxlan
    }
}

/// K3s's default pod network.
pub fn default_cluster_cidr() -> String {
    "10.42.0.0/16".into()
}

/// K3s's default service network.
pub fn default_service_cidr() -> String {
    "10.43.0.0/16".into()
}

#[derive(Debug, Clone, Serialize)]
pub struct K3s {
    pub version: Option<String>,
    pub channel: Option<String>,
    pub token: SecretRef,
    /// A separate token for agents (`agent-token` on servers): agents then never hold the
    /// server token, which lets its holder join as a server.
    pub agent_token: Option<SecretRef>,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub flannel_backend: FlannelBackend,
    pub disable: Vec<String>,
    pub server_args: Vec<String>,
    pub agent_args: Vec<String>,
    /// Escape hatch: allow `server_args`/`agent_args` to set flags meshboot owns.
    pub allow_owned_args: bool,
}

choice! {
    pub enum FirewallBackend ("firewall backend") { Ufw = "ufw", Nftables = "nftables", None = "none", }
    aliases { "iptables" => "nftables", "nft" => "nftables" }
}

choice! {
    pub enum SshPolicy ("ssh policy") { Tailscale = "tailscale", Public = "public", Off = "off", }
    aliases { "mesh" => "tailscale", "none" => "off", "internet" => "public" }
}

/// A port or an inclusive port range, as written: `443` or `"30000-32767"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PortRange {
    pub start: u32,
    pub end: u32,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Firewall {
    pub backend: FirewallBackend,
    pub ssh: SshPolicy,
    pub public_tcp: Vec<PortRange>,
    pub public_udp: Vec<PortRange>,
    /// Extra ports opened on tailscale0 beyond the K3s ports.
    pub mesh_tcp: Vec<PortRange>,
    pub mesh_udp: Vec<PortRange>,
    /// Acknowledges that a public port exposes a K3s-internal port.
    pub allow_public_k3s_ports: bool,
    /// Lets pods reach the cloud metadata service (169.254.169.254), which serves the
    /// node's user data, secrets included. Off by default.
    pub allow_pod_metadata: bool,
}

impl Default for Firewall {
    /// ufw, SSH over the mesh only, no public ports.
    fn default() -> Self {
        Firewall {
            backend: FirewallBackend::Ufw,
            ssh: SshPolicy::Tailscale,
            public_tcp: vec![],
            public_udp: vec![],
            mesh_tcp: vec![],
            mesh_udp: vec![],
            allow_public_k3s_ports: false,
            allow_pod_metadata: false,
        }
    }
}

choice! {
    pub enum Os ("os") {
        Ubuntu2204 = "ubuntu-22.04",
        Ubuntu2404 = "ubuntu-24.04",
        Debian12 = "debian-12",
        Flatcar = "flatcar",
        FedoraCoreos = "fedora-coreos",
    }
    aliases {
        "ubuntu" => "ubuntu-24.04",
        "debian" => "debian-12",
        "fcos" => "fedora-coreos",
        "coreos" => "fedora-coreos",
    }
}

choice! {
    pub enum Role ("role") { Server = "server", Agent = "agent", }
    aliases {
        "worker" => "agent",
        "node" => "agent",
        "master" => "server",
        "control-plane" => "server",
        "controlplane" => "server",
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hcloud {
    #[serde(rename = "type")]
    pub server_type: Option<String>,
    pub location: Option<String>,
}

/// Per-node firewall additions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFirewall {
    pub backend: Option<FirewallBackend>,
    pub public_tcp: Vec<PortRange>,
    pub public_udp: Vec<PortRange>,
}

/// The fields a node may set and `defaults` may supply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFields {
    pub os: Option<Os>,
    pub hcloud: Option<Hcloud>,
    pub labels: Option<Vec<(String, String)>>,
    pub taints: Option<Vec<String>>,
    pub firewall: Option<NodeFirewall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    pub name: String,
    pub role: Role,
    pub count: Option<u32>,
    pub fields: NodeFields,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_of_names_per_choice() {
        for (name, os) in Os::ALL {
            assert_eq!(os.name(), *name);
            assert_eq!(serde_json::to_value(os).ok(), Some((*name).into()));
        }
        // Every alias points at a real name.
        for (_, ours) in Os::ALIASES
            .iter()
            .chain(Role::ALIASES)
            .chain(FlannelBackend::ALIASES)
        {
            assert!(
                Os::names()
                    .iter()
                    .chain(&Role::names())
                    .chain(&FlannelBackend::names())
                    .any(|n| n == ours),
                "{ours}"
            );
        }
    }
}
