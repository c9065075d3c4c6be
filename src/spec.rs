//! Stage 1b, the spec: the typed cluster spec, as [`crate::reader`] reads it from the
//! [`crate::source`] tree and hands it to [`crate::validate`].
//!
//! These types are the user-facing contract (SPEC.md), and they describe themselves: the
//! JSON Schema that `meshboot schema` prints ([`crate::schema`]) is derived from them, doc
//! comments included. Each enum of fixed names is declared with `choice!`, whose one
//! table of names serves reading, messages, serialization and the schema. Defaults that
//! the reader fills in for an absent key are the functions and `Default` impls here; the
//! `#[serde(default)]` attributes only tell the schema about them (nothing deserializes
//! these types with serde: [`crate::reader`] reads them).

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Serialize, Serializer};
use std::borrow::Cow;

/// The spec versions this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// The largest `count` of one node entry.
pub const MAX_COUNT: u32 = 1000;

/// The largest `autoscale.max` of a pool (as many servers as the largest `count`).
pub const MAX_POOL_SIZE: u32 = MAX_COUNT;

/// The longest pool name: the Hetzner cluster-autoscaler names the servers of a pool
/// `<pool>-<hex>`, `fmt.Sprintf("%s-%x", n.id, rand.Int63())` (kubernetes/autoscaler,
/// cluster-autoscaler/cloudprovider/hetzner/hetzner_node_group.go, `newNodeName`): up to 16
/// hex digits after a dash, and the whole name must stay a 63-character DNS label.
pub const MAX_POOL_NAME: usize = 63 - POOL_SUFFIX_MAX;

/// The longest suffix the autoscaler adds to a pool's name: `-` and up to 16 hex digits
/// (`rand.Int63()` is below 2^63).
pub const POOL_SUFFIX_MAX: usize = 1 + 16;

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

/// `JsonSchema` for a type the reader reads by hand: its name and its schema.
macro_rules! schema {
    ($ty:ty, $name:expr, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// Declares an enum of fixed names: the enum, its [`Choice`] table, `name()`, and
/// `Serialize` and `JsonSchema` as the name.
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

        schema!($name, stringify!($name), { "type": "string", "enum": [$($text),+] });
    };
}

/// A meshboot cluster spec: one YAML file in, one first-boot config per node out.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "meshboot cluster spec")]
pub struct Spec {
    /// The spec version; this meshboot reads version 1.
    #[schemars(schema_with = "version_schema")]
    pub version: u32,
    pub cluster: Cluster,
    pub tailscale: Tailscale,
    pub k3s: K3s,
    /// The host firewall of every node.
    #[serde(default)]
    pub firewall: Firewall,
    /// Node fields every node gets unless it sets its own.
    #[serde(default)]
    pub defaults: NodeFields,
    /// The nodes; the first `server` initialises the cluster.
    #[schemars(length(min = 1))]
    pub nodes: Vec<NodeSpec>,
}

fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": SUPPORTED_VERSION })
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// The cluster's name, a DNS label (a-z, 0-9, `-`, at most 63).
    pub name: String,
}

/// Where a secret comes from: `{ env: NAME }` or `{ file: PATH }` (relative to the spec).
/// Secrets never live in the spec itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable that holds the secret at build time.
    Env(String),
    /// A file that holds the secret, relative to the spec.
    File(String),
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tailscale {
    /// A pre-auth key or an OAuth client secret (`tskey-client-...`, needs `tags`).
    pub auth_key: SecretRef,
    /// The key pool nodes join with instead of `auth_key`: a reusable, ephemeral, tagged
    /// pre-auth key, so that pool nodes leave the tailnet when the autoscaler deletes their
    /// servers while fixed nodes join with a key that is not ephemeral.
    pub pool_auth_key: Option<SecretRef>,
    /// `tailscale up --advertise-tags`, e.g. `[tag:k3s]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `tailscale up --ssh`.
    #[serde(default)]
    pub ssh: bool,
    /// `tailscale up --accept-dns`.
    #[serde(default)]
    pub accept_dns: bool,
    /// A control server URL, e.g. a Headscale instance.
    pub login_server: Option<String>,
    /// Version of the static Tailscale build used on Flatcar / Fedora CoreOS; `None`
    /// resolves the newest stable release at boot.
    pub version: Option<String>,
    /// The tailnet's MagicDNS domain, e.g. `example-org.ts.net`: each server's
    /// `<name>.<tailnet>` goes into its API certificate (`tls-san`), and `meshboot
    /// kubeconfig` points kubectl at the init server's MagicDNS name.
    pub tailnet: Option<String>,
    /// Who may assign the cluster's tags, in the policy `meshboot policy` prints
    /// (`tagOwners`): users, `group:`, `autogroup:` or `tag:` names.
    #[serde(default = "default_tag_owners")]
    pub tag_owners: Vec<String>,
    /// Tags only servers advertise (besides `tags`): the policy then lets only servers
    /// reach etcd (2379-2380).
    #[serde(default)]
    pub server_tags: Vec<String>,
    /// Tags only agents advertise (besides `tags`).
    #[serde(default)]
    pub agent_tags: Vec<String>,
    /// `tailscale up --netfilter-mode`: `on` (tailscaled accepts all tailscale0 traffic
    /// before the host firewall), `nodivert` or `off` (the host firewall sees it).
    #[serde(default)]
    pub netfilter_mode: NetfilterMode,
    /// Who may reach the API (6443) and SSH on the nodes over the mesh, in the policy
    /// `meshboot policy` prints: users, `group:`, `autogroup:` or `tag:` names.
    #[serde(default = "default_admins")]
    pub admins: Vec<String>,
}

/// Tailscale's own default owner of a tag: the tailnet's admins.
pub fn default_tag_owners() -> Vec<String> {
    vec!["autogroup:admin".to_string()]
}

/// The tailnet's admins reach the API and SSH unless the spec says otherwise.
pub fn default_admins() -> Vec<String> {
    vec!["autogroup:admin".to_string()]
}

choice! {
    /// How much of netfilter tailscaled manages (tailscale's `--netfilter-mode`,
    /// cmd/tailscale/cli/up.go: one of on, nodivert, off).
    pub enum NetfilterMode ("netfilter mode") { On = "on", Nodivert = "nodivert", Off = "off", }
    aliases { "no-divert" => "nodivert", "true" => "on", "false" => "off" }
}

impl Default for NetfilterMode {
    /// tailscaled's default on Linux.
    fn default() -> Self {
        NetfilterMode::On
    }
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

/// The pod or the service networks of the cluster, parsed: at most one IPv4 and one IPv6
/// network, in the order written (K3s takes the first as the primary family). Written in
/// the spec as `10.42.0.0/16` or `"10.42.0.0/16,fd00:42::/56"`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Adds `net`; when its family has a network already, `Err` with that one.
    pub fn push(&mut self, net: IpNet) -> Result<(), IpNet> {
        let same_family = |n: &&IpNet| matches!(n, IpNet::V4(_)) == matches!(net, IpNet::V4(_));
        match self.0.iter().find(same_family) {
            Some(other) => Err(*other),
            None => {
                self.0.push(net);
                Ok(())
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &IpNet> {
        self.0.iter()
    }

    pub fn v4(&self) -> Option<Ipv4Net> {
        self.0.iter().find_map(|n| match n {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        })
    }

    pub fn v6(&self) -> Option<Ipv6Net> {
        self.0.iter().find_map(|n| match n {
            IpNet::V6(n) => Some(*n),
            IpNet::V4(_) => None,
        })
    }
}

/// As K3s takes it: `10.42.0.0/16,fd00:42::/56`.
impl std::fmt::Display for Networks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

impl Serialize for Networks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

schema!(Networks, "Networks", {
    "description": "A network in CIDR notation, or an IPv4 and an IPv6 network separated by a comma (dual-stack).",
    "type": "string"
});

/// One IPv4 network.
fn ipv4_network(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Networks {
    Networks(vec![IpNet::V4(Ipv4Net::new_assert(
        std::net::Ipv4Addr::new(a, b, c, d),
        prefix,
    ))])
}

/// K3s's default pod network, 10.42.0.0/16.
pub fn default_cluster_cidr() -> Networks {
    ipv4_network(10, 42, 0, 0, 16)
}

/// K3s's default service network, 10.43.0.0/16.
pub fn default_service_cidr() -> Networks {
    ipv4_network(10, 43, 0, 0, 16)
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct K3s {
    /// A K3s release to pin, e.g. `v1.33.5+k3s1` (INSTALL_K3S_VERSION).
    pub version: Option<String>,
    /// A release channel instead of a version: stable, latest, testing, or `v1.33`.
    pub channel: Option<String>,
    /// The cluster token.
    pub token: SecretRef,
    /// A separate token for agents (`agent-token` on servers): agents then never hold the
    /// server token, which lets its holder join as a server.
    pub agent_token: Option<SecretRef>,
    /// The pod network (dual-stack: `"10.42.0.0/16,fd00:42::/56"`).
    #[serde(default = "default_cluster_cidr")]
    pub cluster_cidr: Networks,
    /// The service network.
    #[serde(default = "default_service_cidr")]
    pub service_cidr: Networks,
    /// flannel's backend (`flannel-backend`): `vxlan` across tailscale0, `wireguard-native`,
    /// or `none` for a CNI of your own.
    #[serde(default)]
    pub flannel_backend: FlannelBackend,
    /// Packaged components to disable, e.g. `[traefik]`.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Extra K3s server flags, each one string: `--name=value` or `--name`. Flags meshboot
    /// sets itself (the README's table) are refused unless `allow_owned_args` is true.
    #[serde(default)]
    pub server_args: Vec<String>,
    /// Extra K3s agent flags, as `server_args`.
    #[serde(default)]
    pub agent_args: Vec<String>,
    /// Escape hatch: allow `server_args`/`agent_args` to set flags meshboot owns.
    #[serde(default)]
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

schema!(PortRange, "PortRange", {
    "description": "A port (443) or an inclusive range in quotes (\"30000-32767\").",
    "oneOf": [
        { "type": "integer", "minimum": 1, "maximum": 65535 },
        { "type": "string", "pattern": "^\\s*[0-9]{1,5}\\s*(-\\s*[0-9]{1,5}\\s*)?$" }
    ]
});

impl PortRange {
    /// One port.
    pub const fn single(port: u32) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }
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

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Firewall {
    pub backend: FirewallBackend,
    /// tailscale: port 22 on tailscale0 only; public; off.
    pub ssh: SshPolicy,
    /// Ports open to the internet on every node.
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

/// Hetzner Cloud facts of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hcloud {
    /// The server type, e.g. cx22.
    #[serde(rename = "type")]
    pub server_type: Option<String>,
    /// The location, e.g. fsn1.
    pub location: Option<String>,
    /// The image to create the server from: an image ID (`123456789`, a snapshot's), an
    /// image name (`ubuntu-24.04`), or a label selector of snapshots
    /// (`meshboot.os=flatcar,meshboot.k3s=v1.33.5-k3s1`; the newest one is used). Without
    /// it, Ubuntu and Debian nodes use Hetzner's stock image of their `os`; Flatcar and
    /// Fedora CoreOS nodes need one (see `meshboot packer`).
    #[schemars(with = "Option<ImageValue>")]
    pub image: Option<String>,
    /// Names (or IDs) of SSH keys in the Hetzner project to put on the server.
    pub ssh_keys: Option<Vec<String>>,
}

/// An image as written: a number (an ID) or a string.
struct ImageValue;

schema!(ImageValue, "ImageValue", { "type": ["string", "integer"] });

/// Per-node firewall additions.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NodeFirewall {
    /// This node's backend, instead of `firewall.backend`.
    pub backend: Option<FirewallBackend>,
    /// Added to `firewall.public_tcp` on this node.
    pub public_tcp: Vec<PortRange>,
    pub public_udp: Vec<PortRange>,
}

/// The fields a node may set and `defaults` may supply.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hcloud: Option<Hcloud>,
    /// Kubernetes node labels, `{ key: value }`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<std::collections::BTreeMap<String, LabelValue>>")]
    pub labels: Option<Vec<(String, String)>>,
    /// Kubernetes taints, `key[=value]:Effect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firewall: Option<NodeFirewall>,
}

/// A label's value as written: any single value (quoted or not).
struct LabelValue;

schema!(LabelValue, "LabelValue", { "type": ["string", "number", "boolean"] });

/// The size of a pool: the Hetzner cluster-autoscaler keeps between `min` and `max`
/// servers of it (`--nodes=MIN:MAX:TYPE:LOCATION:POOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// The fewest servers of the pool (0 lets the pool scale to nothing).
    #[schemars(range(min = 0, max = MAX_POOL_SIZE))]
    pub min: u32,
    /// The most servers of the pool, at least `min`.
    #[schemars(range(min = 0, max = MAX_POOL_SIZE))]
    pub max: u32,
}

/// One entry of `nodes:`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The node's name (its hostname and Tailscale machine name); for a pool, the prefix of
    /// its servers' names (`NAME-<hex>`, at most 46 characters).
    pub name: String,
    pub role: Role,
    /// Expands the entry into NAME-1 .. NAME-N.
    #[schemars(range(min = 1, max = MAX_COUNT))]
    pub count: Option<u32>,
    /// Makes the entry a pool of agents that the Hetzner cluster-autoscaler scales: one
    /// first-boot file for any number of servers named NAME-<hex>. Not with `count`.
    pub autoscale: Option<Autoscale>,
    #[serde(flatten)]
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
