//! What each node's first boot must do: one row per fixture and node, written out.
//!
//! Nothing here is read from the plan under test. Every value is written by hand from the
//! fixture's text, meshboot's documented defaults (README "The spec") and the upstream facts
//! in `../shared/design/FIELD.md` (K3s flags and ports, `tailscale up` flags, ufw semantics),
//! so that a change in what meshboot plans shows up here as a failure to review, not as a
//! new expectation. One exception, said where it applies: the accepted adversarial specs'
//! K3s extra args are too long and too hostile to repeat, so their expected config.yaml
//! entries are derived from the fixture's text, parsed here with serde_yaml (not by
//! meshboot), by K3s's own rule (a repeated flag is a list).
//!
//! What the sandbox world decides (the node's own mesh address, the init server's address,
//! the newest Tailscale version) comes from `world`, which the stand-ins serve.

use super::world::{INIT_IP, LATEST_TAILSCALE};
use crate::support::fixtures_dir;
use std::collections::BTreeMap;

/// A node's role after count expansion; joiners name the server they join through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The spec's first server: `cluster-init: true` (unless another server answers).
    Init,
    /// Another server, joining through the init server `via`.
    Server { via: &'static str },
    /// An agent, joining through the init server `via`.
    Agent { via: &'static str },
}

impl Role {
    pub fn is_server(self) -> bool {
        !matches!(self, Role::Agent { .. })
    }
}

/// The host firewall, as the node must set it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firewall {
    /// ufw: every command the firewall step runs, in order, each after `ufw ` (then
    /// `ufw --force enable`).
    Ufw(&'static [&'static str]),
    /// nftables: the ports the loaded ruleset's input chain opens.
    Nftables(Ports),
}

/// Ports open on the public side and on tailscale0 only, in nft's spelling (`a-b`), in the
/// order the ruleset lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub public_tcp: &'static [&'static str],
    pub public_udp: &'static [&'static str],
    pub mesh_tcp: &'static [&'static str],
    pub mesh_udp: &'static [&'static str],
}

impl Ports {
    /// The four lists, labelled, for comparing with what a ruleset opens.
    pub fn labelled(&self) -> Vec<(&'static str, Vec<String>)> {
        let own = |l: &[&str]| l.iter().map(|p| p.to_string()).collect();
        vec![
            ("public tcp", own(self.public_tcp)),
            ("public udp", own(self.public_udp)),
            ("mesh tcp", own(self.mesh_tcp)),
            ("mesh udp", own(self.mesh_udp)),
        ]
    }
}

/// Where Tailscale comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailscaleFrom {
    /// The apt repository at pkgs.tailscale.com/stable/`{distro}/{codename}`.
    Apt(&'static str),
    /// The static tarball of `version`, its binaries in `dir` (and `tailscale` linked as
    /// `link`, where `dir` is not on PATH).
    Static {
        version: &'static str,
        dir: &'static str,
        link: Option<&'static str>,
    },
}

/// The K3s config.yaml keys known when the spec is built, besides `tls-san` (the check adds
/// the servers' names from `tls_san`; the boot adds the node's address, appends it to
/// `tls-san` and adds the join target in a config.yaml.d drop-in; `node-name` is the row's
/// node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum K3sConfig {
    /// Written out, as YAML.
    Literal(&'static str),
    /// Written out, plus the role's extra args from the spec's text (adversarial fixtures).
    LiteralAndSpecArgs(&'static str),
}

/// One node of one fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The fixture, relative to `fixtures/`.
    pub fixture: &'static str,
    pub node: &'static str,
    pub role: Role,
    /// The spec's `os` for the node (its envelope follows: cloud-init for Ubuntu and
    /// Debian, Ignition for Flatcar and Fedora CoreOS).
    pub os: &'static str,
    pub firewall: Firewall,
    pub tailscale: TailscaleFrom,
    /// `tailscale up`'s arguments after `--hostname=<node>` (the check writes the first
    /// three: `up --auth-key=file:<key file> --hostname=<node>`).
    pub up: &'static [&'static str],
    /// Every INSTALL_K3S_* variable the install script must see, and nothing else.
    pub install_env: &'static [(&'static str, &'static str)],
    pub k3s: K3sConfig,
    /// `tls-san` names after the node's name (servers only), in config.yaml; the boot
    /// appends the node's addresses.
    pub tls_san: &'static [&'static str],
    /// node-ip and tls-san carry the node's IPv6 address too.
    pub dual_stack: bool,
    /// A pool (`autoscale`): the node takes its server's name, `<node>-<hex>`, at boot, from
    /// where its OS has it.
    pub pool: Option<NamedBy>,
}

/// Where a pool node finds its server's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// The kernel's hostname, which cloud-init sets from Hetzner's metadata before runcmd
    /// (cloud-init's Hetzner datasource: `local-hostname` is the metadata's `hostname`).
    Hostname,
    /// Hetzner's metadata service, `http://169.254.169.254/hetzner/v1/metadata/hostname`
    /// (docs.hetzner.cloud "Server Metadata"; what afterburn's hetzner provider reads).
    Metadata,
}

impl Row {
    /// The row for `node` of `fixture`; panics when the table lacks it.
    pub fn of(fixture: &str, node: &str) -> &'static Row {
        TABLE
            .iter()
            .find(|r| r.fixture == fixture && r.node == node)
            .unwrap_or_else(|| panic!("the expectation table has no row for {fixture} {node}"))
    }

    /// The config.yaml keys known at build time, `node-name` included.
    pub fn k3s_config(&self) -> BTreeMap<String, serde_yaml::Value> {
        let (yaml, spec_args) = match self.k3s {
            K3sConfig::Literal(y) => (y, false),
            K3sConfig::LiteralAndSpecArgs(y) => (y, true),
        };
        let mut config: BTreeMap<String, serde_yaml::Value> = serde_yaml::from_str(yaml)
            .unwrap_or_else(|e| {
                panic!("{} {}: the row's K3s config: {e}", self.fixture, self.node)
            });
        // A pool node's name is known at boot only: the drop-in holds it.
        if self.pool.is_none() {
            config.insert("node-name".into(), self.node.into());
        }
        if spec_args {
            let key = if self.role.is_server() {
                "server_args"
            } else {
                "agent_args"
            };
            for (flag, value) in spec_args_of(self.fixture, key) {
                add_flag(&mut config, flag, value);
            }
        }
        config
    }
}

/// `k3s.<key>` of a fixture, read from its text (serde_yaml, not meshboot) and split into
/// (flag, value) at the first `=` after the leading `--`.
fn spec_args_of(fixture: &str, key: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join(fixture)).expect("fixture");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("fixture parses");
    doc["k3s"][key]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|arg| {
            let arg = arg.as_str().expect("an arg is a string");
            let (flag, value) = arg
                .strip_prefix("--")
                .and_then(|a| a.split_once('='))
                .unwrap_or_else(|| panic!("{fixture}: {arg:?} is not --flag=value"));
            (flag.to_string(), value.to_string())
        })
        .collect()
}

/// K3s's config.yaml rule for a flag given again: the values become a list
/// (docs.k3s.io/installation/configuration: "repeatable CLI args ... as YAML lists").
fn add_flag(config: &mut BTreeMap<String, serde_yaml::Value>, flag: String, value: String) {
    use serde_yaml::Value;
    match config.remove(&flag) {
        None => config.insert(flag, Value::String(value)),
        Some(Value::Sequence(mut list)) => {
            list.push(Value::String(value));
            config.insert(flag, Value::Sequence(list))
        }
        Some(single) => config.insert(flag, Value::Sequence(vec![single, Value::String(value)])),
    };
}

/// The bootstrap's retry bounds (meshboot's defaults; no spec field changes them). The log
/// says them too ("attempt 2 of 6", "attempt 3 of 240").
pub const TAILSCALE_UP_ATTEMPTS: u32 = 6;
pub const JOIN_ATTEMPTS: u32 = 240;
pub const MAX_BACKOFF_S: u32 = 15;

/// What one boot of a node must do: its row, and the server it joins through in this
/// scenario with that server's mesh address (`None`: it initialises the cluster).
#[derive(Debug, Clone)]
pub struct Expect {
    pub row: &'static Row,
    pub join: Option<(String, String)>,
}

impl Expect {
    /// The row's node booting into a mesh where its init server (if it has one) answers at
    /// [`INIT_IP`].
    pub fn of(fixture: &str, node: &str) -> Expect {
        let row = Row::of(fixture, node);
        let join = match row.role {
            Role::Init => None,
            Role::Server { via } | Role::Agent { via } => Some((via.to_string(), INIT_IP.into())),
        };
        Expect { row, join }
    }
    /// Joining through `server` at `ip` instead.
    pub fn joining(mut self, server: &str, ip: &str) -> Self {
        self.join = Some((server.into(), ip.into()));
        self
    }
    pub fn is_server(&self) -> bool {
        self.row.role.is_server()
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no static Tailscale build for {other}"),
    }
}

// ---------------------------------------------------------------------------------------
// Shared pieces of the table. Every node's K3s config has `token-file` (never `token`:
// FIELD.md), `flannel-iface: tailscale0` unless flannel is off, and, unless it opens
// NodePorts publicly, `kube-proxy-arg: nodeport-addresses=<Tailscale's ranges>` so that
// NodePorts answer on the mesh only. ufw: FIELD.md "Host firewall semantics": default deny in,
// 41641/udp public, K3s ports on tailscale0 only (6443 and 2379-2380 on servers; 10250 and
// the flannel port everywhere), the CNI interfaces and the pod and service CIDRs trusted
// (the K3s docs' `ufw allow from 10.42.0.0/16`), routed traffic allowed from the CNI, the
// mesh and the pods, the metadata address dropped for pods first.

/// `tailscale up`'s key argument: the key is read from its file, never on argv (FIELD.md).
pub const AUTH_KEY_ARG: &str = "--auth-key=file:/etc/meshboot/tailscale-authkey";

/// ufw on a server with `ssh: tailscale`, vxlan and the default CIDRs, no public ports.
const UFW_SERVER: &[&str] = &[
    "default deny incoming",
    "default allow outgoing",
    "default deny routed",
    "allow 41641/udp",
    "allow in on tailscale0 to any port 22 proto tcp",
    "allow in on tailscale0 to any port 2379:2380 proto tcp",
    "allow in on tailscale0 to any port 6443 proto tcp",
    "allow in on tailscale0 to any port 10250 proto tcp",
    "allow in on tailscale0 to any port 8472 proto udp",
    "allow in on cni0",
    "allow in on flannel.1",
    "allow from 10.42.0.0/16",
    "allow from 10.43.0.0/16",
    "route deny from 10.42.0.0/16 to 169.254.169.254",
    "route allow in on cni0",
    "route allow in on flannel.1",
    "route allow in on tailscale0",
    "route allow from 10.42.0.0/16",
];

/// ufw on an agent with `ssh: tailscale`, vxlan and the default CIDRs: no 6443, no etcd.
const UFW_AGENT: &[&str] = &[
    "default deny incoming",
    "default allow outgoing",
    "default deny routed",
    "allow 41641/udp",
    "allow in on tailscale0 to any port 22 proto tcp",
    "allow in on tailscale0 to any port 10250 proto tcp",
    "allow in on tailscale0 to any port 8472 proto udp",
    "allow in on cni0",
    "allow in on flannel.1",
    "allow from 10.42.0.0/16",
    "allow from 10.43.0.0/16",
    "route deny from 10.42.0.0/16 to 169.254.169.254",
    "route allow in on cni0",
    "route allow in on flannel.1",
    "route allow in on tailscale0",
    "route allow from 10.42.0.0/16",
];

/// nftables on a server with `ssh: tailscale` and vxlan, no public ports.
const NFT_SERVER: Ports = Ports {
    public_tcp: &[],
    public_udp: &["41641"],
    mesh_tcp: &["22", "2379-2380", "6443", "10250"],
    mesh_udp: &["8472"],
};

/// nftables on an agent with `ssh: tailscale` and vxlan, no public ports.
const NFT_AGENT: Ports = Ports {
    public_tcp: &[],
    public_udp: &["41641"],
    mesh_tcp: &["22", "10250"],
    mesh_udp: &["8472"],
};

/// The install environment every node gets: K3s is started by the bootstrap itself.
const SKIP_START: (&str, &str) = ("INSTALL_K3S_SKIP_START", "true");

// ---------------------------------------------------------------------------------------
// cluster.yaml: three Ubuntu 24.04 servers behind ufw, three Flatcar agents behind
// nftables (ufw does not exist there), K3s v1.33.13+k3s1, vxlan, tags [tag:k3s].

const CLUSTER_UP: &[&str] = &[
    "--advertise-tags=tag:k3s",
    "--ssh=false",
    "--accept-dns=false",
    "--netfilter-mode=on",
    "--timeout=60s",
];
const CLUSTER_SERVER_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_EXEC", "server"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];
const CLUSTER_SERVER_K3S: &str = "
cluster-cidr: 10.42.0.0/16
disable: [traefik]
flannel-backend: vxlan
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
service-cidr: 10.43.0.0/16
token-file: /etc/meshboot/k3s-token
";
const CLUSTER_WORKER_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
    ("INSTALL_K3S_EXEC", "agent"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];
const CLUSTER_WORKER_K3S: &str = "
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
node-label: [node.kubernetes.io/pool=general]
node-taint: ['dedicated=edge:NoSchedule']
token-file: /etc/meshboot/k3s-token
";
const CLUSTER_WORKER_PORTS: Ports = Ports {
    public_tcp: &["80", "443"],
    public_udp: &["41641"],
    mesh_tcp: &["22", "10250"],
    mesh_udp: &["8472"],
};

const fn cluster_server(node: &'static str, role: Role) -> Row {
    Row {
        fixture: "cluster.yaml",
        node,
        role,
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(UFW_SERVER),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: CLUSTER_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(CLUSTER_SERVER_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

const fn cluster_worker(node: &'static str) -> Row {
    Row {
        fixture: "cluster.yaml",
        node,
        role: Role::Agent { via: "cp-1" },
        os: "flatcar",
        firewall: Firewall::Nftables(CLUSTER_WORKER_PORTS),
        // No tailscale.version: the newest stable build.
        tailscale: TailscaleFrom::Static {
            version: LATEST_TAILSCALE,
            dir: "/opt/tailscale",
            link: Some("/opt/bin/tailscale"),
        },
        up: CLUSTER_UP,
        install_env: CLUSTER_WORKER_ENV,
        k3s: K3sConfig::Literal(CLUSTER_WORKER_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

// ---------------------------------------------------------------------------------------
// dual-stack.yaml: Debian 12 behind nftables, dual-stack CIDRs, flannel_backend: none (so
// no flannel-iface and no flannel port), pods may reach the metadata service.

const DUAL_UP: &[&str] = CLUSTER_UP;
const DUAL_SERVER_K3S: &str = "
cluster-cidr: 10.42.0.0/16,fd00:42::/56
disable: [traefik, servicelb]
flannel-backend: none
kube-proxy-arg: ['nodeport-addresses=100.64.0.0/10,fd7a:115c:a1e0::/48']
service-cidr: 10.43.0.0/16,fd00:43::/112
token-file: /etc/meshboot/k3s-token
";
const DUAL_AGENT_K3S: &str = "
kube-proxy-arg: ['nodeport-addresses=100.64.0.0/10,fd7a:115c:a1e0::/48']
token-file: /etc/meshboot/k3s-token
";

// ---------------------------------------------------------------------------------------
// flatcar.yaml: Ignition only, Tailscale pinned to 1.90.6, K3s channel stable, ssh off,
// public_udp 30000-30010, extra server and agent args (the tls-san one goes to tls-san).
// Its public ports are NodePorts (30000-32767), so kube-proxy is not limited to the mesh
// addresses: no `kube-proxy-arg: nodeport-addresses=...` here, unlike every other fixture.

const FLATCAR_UP: &[&str] = &[
    "--advertise-tags=tag:k3s,tag:ignite",
    "--ssh=true",
    "--accept-dns=false",
    "--netfilter-mode=on",
    "--timeout=60s",
];
const FLATCAR_TAILSCALE: TailscaleFrom = TailscaleFrom::Static {
    version: "1.90.6",
    dir: "/opt/tailscale",
    link: Some("/opt/bin/tailscale"),
};
const FLATCAR_SERVER_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
    ("INSTALL_K3S_CHANNEL", "stable"),
    ("INSTALL_K3S_EXEC", "server"),
    SKIP_START,
];
const FLATCAR_SERVER_K3S: &str = "
cluster-cidr: 10.42.0.0/16
disable: [traefik, servicelb]
flannel-backend: vxlan
flannel-iface: tailscale0
kube-apiserver-arg: audit-log-maxage=30
service-cidr: 10.43.0.0/16
token-file: /etc/meshboot/k3s-token
";
const FLATCAR_SERVER_PORTS: Ports = Ports {
    public_tcp: &[],
    public_udp: &["30000-30010", "41641"],
    mesh_tcp: &["2379-2380", "6443", "10250"],
    mesh_udp: &["8472"],
};
const FLATCAR_AGENT_PORTS: Ports = Ports {
    public_tcp: &[],
    public_udp: &["30000-30010", "41641"],
    mesh_tcp: &["10250"],
    mesh_udp: &["8472"],
};

const fn flatcar_server(node: &'static str, role: Role) -> Row {
    Row {
        fixture: "flatcar.yaml",
        node,
        role,
        os: "flatcar",
        firewall: Firewall::Nftables(FLATCAR_SERVER_PORTS),
        tailscale: FLATCAR_TAILSCALE,
        up: FLATCAR_UP,
        install_env: FLATCAR_SERVER_ENV,
        k3s: K3sConfig::Literal(FLATCAR_SERVER_K3S),
        tls_san: &["api.ignite.example"],
        dual_stack: false,
        pool: None,
    }
}

const fn flatcar_pool(node: &'static str) -> Row {
    Row {
        fixture: "flatcar.yaml",
        node,
        role: Role::Agent { via: "core-1" },
        os: "flatcar",
        firewall: Firewall::Nftables(FLATCAR_AGENT_PORTS),
        tailscale: FLATCAR_TAILSCALE,
        up: FLATCAR_UP,
        install_env: &[
            ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
            ("INSTALL_K3S_CHANNEL", "stable"),
            ("INSTALL_K3S_EXEC", "agent"),
            SKIP_START,
        ],
        k3s: K3sConfig::Literal(
            "
flannel-iface: tailscale0
kubelet-arg: max-pods=150
node-label: [pool=arm]
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

// ---------------------------------------------------------------------------------------
// headscale.yaml: Ubuntu 22.04 behind ufw, an OAuth secret with tags, a Headscale
// login server, and an agent token (servers get agent-token-file; agents' token-file holds
// the agent token).

/// A server of a cluster with `agent_token`, defaults otherwise: it accepts agents with the
/// agent token (`agent-token-file`).
const AGENT_TOKEN_SERVER_K3S: &str = "
agent-token-file: /etc/meshboot/k3s-agent-token
cluster-cidr: 10.42.0.0/16
flannel-backend: vxlan
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
service-cidr: 10.43.0.0/16
token-file: /etc/meshboot/k3s-token
";

const HEADSCALE_UP: &[&str] = &[
    "--advertise-tags=tag:k3s-server,tag:lab",
    "--ssh=false",
    "--accept-dns=false",
    "--netfilter-mode=on",
    "--login-server=https://headscale.example.com",
    "--timeout=60s",
];

const fn headscale_agent(node: &'static str) -> Row {
    Row {
        fixture: "headscale.yaml",
        node,
        role: Role::Agent { via: "hs-server" },
        os: "ubuntu-22.04",
        firewall: Firewall::Ufw(UFW_AGENT),
        tailscale: TailscaleFrom::Apt("ubuntu/jammy"),
        up: HEADSCALE_UP,
        install_env: &[
            ("INSTALL_K3S_EXEC", "agent"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
        ],
        k3s: K3sConfig::Literal(
            "
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
node-label: [topology.kubernetes.io/zone=lab-a]
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

// ---------------------------------------------------------------------------------------
// nftables.yaml: Debian 12 servers and an Ubuntu 22.04 agent behind nftables, K3s
// v1.34.9+k3s1, custom CIDRs, wireguard-native (51820-51821/udp on the mesh), public SSH,
// public 443, mesh 9100, accept_dns.

const NFT_UP: &[&str] = &[
    "--advertise-tags=tag:k3s",
    "--ssh=false",
    "--accept-dns=true",
    "--netfilter-mode=on",
    "--timeout=60s",
];

const fn netfilter_server(node: &'static str, role: Role) -> Row {
    Row {
        fixture: "nftables.yaml",
        node,
        role,
        os: "debian-12",
        firewall: Firewall::Nftables(Ports {
            public_tcp: &["22", "443"],
            public_udp: &["41641"],
            mesh_tcp: &["2379-2380", "6443", "9100", "10250"],
            mesh_udp: &["51820-51821"],
        }),
        tailscale: TailscaleFrom::Apt("debian/bookworm"),
        up: NFT_UP,
        install_env: &[
            ("INSTALL_K3S_EXEC", "server"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.34.9+k3s1"),
        ],
        k3s: K3sConfig::Literal(
            "
cluster-cidr: 10.52.0.0/16
flannel-backend: wireguard-native
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
service-cidr: 10.53.0.0/16
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

// ---------------------------------------------------------------------------------------
// adversarial/extra_args.yaml: hostile K3s extra args on every OS, nftables, defaults
// otherwise. adversarial/login_server.yaml: a hostile control server URL.

const ADV_SERVER_K3S: &str = "
cluster-cidr: 10.42.0.0/16
flannel-backend: vxlan
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
service-cidr: 10.43.0.0/16
token-file: /etc/meshboot/k3s-token
";
/// An agent with no labels, taints or extra args, vxlan.
const PLAIN_AGENT_K3S: &str = "
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
token-file: /etc/meshboot/k3s-token
";
const ADV_LATEST: TailscaleFrom = TailscaleFrom::Static {
    version: LATEST_TAILSCALE,
    dir: "/opt/tailscale",
    link: Some("/opt/bin/tailscale"),
};
const LOGIN_SERVER_UP: &[&str] = &[
    "--advertise-tags=tag:k3s,tag:edge-1",
    "--ssh=false",
    "--accept-dns=false",
    "--netfilter-mode=on",
    "--login-server=https://hs.example.com:8443/a;touch+meshboot-canary&&touch%20meshboot-canary!b?c=d&e[f]=g@h,i%27j#frag;k",
    "--timeout=60s",
];

const fn extra_args(
    node: &'static str,
    role: Role,
    os: &'static str,
    tailscale: TailscaleFrom,
    install_env: &'static [(&'static str, &'static str)],
) -> Row {
    let server = !matches!(role, Role::Agent { .. });
    Row {
        fixture: "adversarial/extra_args.yaml",
        node,
        role,
        os,
        firewall: Firewall::Nftables(if server { NFT_SERVER } else { NFT_AGENT }),
        tailscale,
        up: CLUSTER_UP,
        install_env,
        k3s: K3sConfig::LiteralAndSpecArgs(if server {
            ADV_SERVER_K3S
        } else {
            PLAIN_AGENT_K3S
        }),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

const ADV_FLATCAR_SERVER_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
    ("INSTALL_K3S_EXEC", "server"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];
const ADV_DEBIAN_AGENT_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_EXEC", "agent"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];

// ---------------------------------------------------------------------------------------
// init.yaml, the spec `meshboot init` writes: one Ubuntu 24.04 server, two agents, ufw,
// an agent token, every other field at its default.

const fn starter_agent(node: &'static str) -> Row {
    Row {
        fixture: "init.yaml",
        node,
        role: Role::Agent { via: "cp-1" },
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(UFW_AGENT),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: CLUSTER_UP,
        install_env: &[
            ("INSTALL_K3S_EXEC", "agent"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
        ],
        k3s: K3sConfig::Literal(PLAIN_AGENT_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

// ---------------------------------------------------------------------------------------
// hetzner.yaml: Tailscale 1.90.6 and K3s v1.33.13+k3s1 pinned, an agent token, ufw with
// public SSH and 443 everywhere; hz-edge (Ubuntu 22.04) adds 80/tcp and 3478-3480/udp,
// hz-core is an Arm Flatcar agent behind nftables, hz-debian a Debian 12 agent.

const HZ_AGENT_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_EXEC", "agent"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];

// pools.yaml: an Ubuntu 24.04 server and a fixed agent behind ufw, an agent token, and two
// pools: `burst` (Ubuntu, ufw, a label and a taint) and `arm` (Debian 12, nftables).
// pools-flatcar.yaml: a Flatcar server and pool `flock` (Ignition), an OAuth secret.

const POOL_AGENT_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_EXEC", "agent"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];

/// ufw on an hetzner.yaml agent: public SSH and 443, then `extra` public rules, the mesh
/// ports of an agent, and `forward` routed rules to the pods after the usual ones.
const fn hz_agent(
    node: &'static str,
    os: &'static str,
    repo: &'static str,
    firewall: &'static [&'static str],
) -> Row {
    Row {
        fixture: "hetzner.yaml",
        node,
        role: Role::Agent { via: "hz-server" },
        os,
        firewall: Firewall::Ufw(firewall),
        tailscale: TailscaleFrom::Apt(repo),
        up: CLUSTER_UP,
        install_env: HZ_AGENT_ENV,
        k3s: K3sConfig::Literal(PLAIN_AGENT_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    }
}

const HZ_DEBIAN_UFW: &[&str] = &[
    "default deny incoming",
    "default allow outgoing",
    "default deny routed",
    "allow 22/tcp",
    "allow 443/tcp",
    "allow 41641/udp",
    "allow in on tailscale0 to any port 10250 proto tcp",
    "allow in on tailscale0 to any port 8472 proto udp",
    "allow in on cni0",
    "allow in on flannel.1",
    "allow from 10.42.0.0/16",
    "allow from 10.43.0.0/16",
    "route deny from 10.42.0.0/16 to 169.254.169.254",
    "route allow in on cni0",
    "route allow in on flannel.1",
    "route allow in on tailscale0",
    "route allow from 10.42.0.0/16",
    "route allow proto tcp from any to 10.42.0.0/16 port 443",
];

const HZ_EDGE_UFW: &[&str] = &[
    "default deny incoming",
    "default allow outgoing",
    "default deny routed",
    "allow 22/tcp",
    "allow 80/tcp",
    "allow 443/tcp",
    "allow 3478:3480/udp",
    "allow 41641/udp",
    "allow in on tailscale0 to any port 10250 proto tcp",
    "allow in on tailscale0 to any port 8472 proto udp",
    "allow in on cni0",
    "allow in on flannel.1",
    "allow from 10.42.0.0/16",
    "allow from 10.43.0.0/16",
    "route deny from 10.42.0.0/16 to 169.254.169.254",
    "route allow in on cni0",
    "route allow in on flannel.1",
    "route allow in on tailscale0",
    "route allow from 10.42.0.0/16",
    "route allow proto tcp from any to 10.42.0.0/16 port 80",
    "route allow proto tcp from any to 10.42.0.0/16 port 443",
    "route allow proto udp from any to 10.42.0.0/16 port 3478:3480",
];

const HZ_SERVER: Row = Row {
    fixture: "hetzner.yaml",
    node: "hz-server",
    role: Role::Init,
    os: "ubuntu-24.04",
    firewall: Firewall::Ufw(&[
        "default deny incoming",
        "default allow outgoing",
        "default deny routed",
        "allow 22/tcp",
        "allow 443/tcp",
        "allow 41641/udp",
        "allow in on tailscale0 to any port 2379:2380 proto tcp",
        "allow in on tailscale0 to any port 6443 proto tcp",
        "allow in on tailscale0 to any port 10250 proto tcp",
        "allow in on tailscale0 to any port 8472 proto udp",
        "allow in on cni0",
        "allow in on flannel.1",
        "allow from 10.42.0.0/16",
        "allow from 10.43.0.0/16",
        "route deny from 10.42.0.0/16 to 169.254.169.254",
        "route allow in on cni0",
        "route allow in on flannel.1",
        "route allow in on tailscale0",
        "route allow from 10.42.0.0/16",
        "route allow proto tcp from any to 10.42.0.0/16 port 443",
    ]),
    tailscale: TailscaleFrom::Apt("ubuntu/noble"),
    up: CLUSTER_UP,
    install_env: CLUSTER_SERVER_ENV,
    k3s: K3sConfig::Literal(AGENT_TOKEN_SERVER_K3S),
    tls_san: &[],
    dual_stack: false,
    pool: None,
};

const HZ_CORE: Row = Row {
    fixture: "hetzner.yaml",
    node: "hz-core",
    role: Role::Agent { via: "hz-server" },
    os: "flatcar",
    firewall: Firewall::Nftables(Ports {
        public_tcp: &["22", "443"],
        public_udp: &["41641"],
        mesh_tcp: &["10250"],
        mesh_udp: &["8472"],
    }),
    tailscale: FLATCAR_TAILSCALE,
    up: CLUSTER_UP,
    install_env: &[
        ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
        ("INSTALL_K3S_EXEC", "agent"),
        SKIP_START,
        ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
    ],
    k3s: K3sConfig::Literal(PLAIN_AGENT_K3S),
    tls_san: &[],
    dual_stack: false,
    pool: None,
};

const fn pools_agent(node: &'static str, pool: Option<NamedBy>, k3s: &'static str) -> Row {
    Row {
        fixture: "pools.yaml",
        node,
        role: Role::Agent { via: "cp-1" },
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(UFW_AGENT),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: CLUSTER_UP,
        install_env: POOL_AGENT_ENV,
        k3s: K3sConfig::Literal(k3s),
        tls_san: &[],
        dual_stack: false,
        pool,
    }
}

const FLOCK_SERVER_ENV: &[(&str, &str)] = &[
    ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
    ("INSTALL_K3S_EXEC", "server"),
    SKIP_START,
    ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
];

// ---------------------------------------------------------------------------------------
// The table.

pub static TABLE: &[Row] = &[
    // pools.yaml
    Row {
        fixture: "pools.yaml",
        node: "cp-1",
        role: Role::Init,
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(UFW_SERVER),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: CLUSTER_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(AGENT_TOKEN_SERVER_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    pools_agent("steady", None, PLAIN_AGENT_K3S),
    pools_agent(
        "burst",
        Some(NamedBy::Hostname),
        "
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
node-label: [node.kubernetes.io/pool=burst]
node-taint: ['burst=true:NoSchedule']
token-file: /etc/meshboot/k3s-token
",
    ),
    Row {
        fixture: "pools.yaml",
        node: "arm",
        role: Role::Agent { via: "cp-1" },
        os: "debian-12",
        firewall: Firewall::Nftables(NFT_AGENT),
        tailscale: TailscaleFrom::Apt("debian/bookworm"),
        up: CLUSTER_UP,
        install_env: POOL_AGENT_ENV,
        k3s: K3sConfig::Literal(PLAIN_AGENT_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: Some(NamedBy::Hostname),
    },
    // pools-flatcar.yaml
    Row {
        fixture: "pools-flatcar.yaml",
        node: "core-1",
        role: Role::Init,
        os: "flatcar",
        firewall: Firewall::Nftables(NFT_SERVER),
        tailscale: FLATCAR_TAILSCALE,
        up: CLUSTER_UP,
        install_env: FLOCK_SERVER_ENV,
        k3s: K3sConfig::Literal(
            "
agent-token-file: /etc/meshboot/k3s-agent-token
cluster-cidr: 10.42.0.0/16
flannel-backend: vxlan
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
service-cidr: 10.43.0.0/16
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    Row {
        fixture: "pools-flatcar.yaml",
        node: "flock",
        role: Role::Agent { via: "core-1" },
        os: "flatcar",
        firewall: Firewall::Nftables(NFT_AGENT),
        tailscale: FLATCAR_TAILSCALE,
        up: CLUSTER_UP,
        install_env: CLUSTER_WORKER_ENV,
        k3s: K3sConfig::Literal(
            "
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
node-label: [pool=flock]
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: Some(NamedBy::Metadata),
    },
    // cluster.yaml
    cluster_server("cp-1", Role::Init),
    cluster_server("cp-2", Role::Server { via: "cp-1" }),
    cluster_server("cp-3", Role::Server { via: "cp-1" }),
    cluster_worker("worker-1"),
    cluster_worker("worker-2"),
    cluster_worker("worker-3"),
    // dual-stack.yaml
    Row {
        fixture: "dual-stack.yaml",
        node: "ds-server",
        role: Role::Init,
        os: "debian-12",
        firewall: Firewall::Nftables(Ports {
            mesh_udp: &[],
            ..NFT_SERVER
        }),
        tailscale: TailscaleFrom::Apt("debian/bookworm"),
        up: DUAL_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(DUAL_SERVER_K3S),
        tls_san: &[],
        dual_stack: true,
        pool: None,
    },
    Row {
        fixture: "dual-stack.yaml",
        node: "ds-agent",
        role: Role::Agent { via: "ds-server" },
        os: "debian-12",
        firewall: Firewall::Nftables(Ports {
            mesh_udp: &[],
            ..NFT_AGENT
        }),
        tailscale: TailscaleFrom::Apt("debian/bookworm"),
        up: DUAL_UP,
        install_env: &[
            ("INSTALL_K3S_EXEC", "agent"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
        ],
        k3s: K3sConfig::Literal(DUAL_AGENT_K3S),
        tls_san: &[],
        dual_stack: true,
        pool: None,
    },
    // flatcar.yaml
    flatcar_server("core-1", Role::Init),
    flatcar_server("core-2", Role::Server { via: "core-1" }),
    flatcar_server("core-3", Role::Server { via: "core-1" }),
    flatcar_pool("pool-1"),
    flatcar_pool("pool-2"),
    Row {
        fixture: "flatcar.yaml",
        node: "fcos-1",
        role: Role::Agent { via: "core-1" },
        os: "fedora-coreos",
        firewall: Firewall::Nftables(FLATCAR_AGENT_PORTS),
        // Fedora CoreOS: /usr is read-only, /usr/local a link into /var (rpm-ostree
        // treefile docs, `opt-usrlocal-overlays`), and /usr/local/bin is on PATH.
        tailscale: TailscaleFrom::Static {
            version: "1.90.6",
            dir: "/usr/local/bin",
            link: None,
        },
        up: FLATCAR_UP,
        // No k3s-selinux RPM (it needs an rpm-ostree reboot); README "Limits".
        install_env: &[
            ("INSTALL_K3S_CHANNEL", "stable"),
            ("INSTALL_K3S_EXEC", "agent"),
            ("INSTALL_K3S_SELINUX_WARN", "true"),
            ("INSTALL_K3S_SKIP_SELINUX_RPM", "true"),
            SKIP_START,
        ],
        k3s: K3sConfig::Literal(
            "
flannel-iface: tailscale0
kubelet-arg: max-pods=150
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    // headscale.yaml
    Row {
        fixture: "headscale.yaml",
        node: "hs-server",
        role: Role::Init,
        os: "ubuntu-22.04",
        firewall: Firewall::Ufw(UFW_SERVER),
        tailscale: TailscaleFrom::Apt("ubuntu/jammy"),
        up: HEADSCALE_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(AGENT_TOKEN_SERVER_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    headscale_agent("hs-agent-1"),
    headscale_agent("hs-agent-2"),
    // init.yaml
    Row {
        fixture: "init.yaml",
        node: "cp-1",
        role: Role::Init,
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(UFW_SERVER),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: CLUSTER_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(AGENT_TOKEN_SERVER_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    starter_agent("worker-1"),
    starter_agent("worker-2"),
    // mesh.yaml: per-role tags, Tailscale SSH, nodivert, a tailnet (the server's MagicDNS
    // name joins its tls-san), mesh port 9100.
    Row {
        fixture: "mesh.yaml",
        node: "mesh-cp",
        role: Role::Init,
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(&[
            "default deny incoming",
            "default allow outgoing",
            "default deny routed",
            "allow 41641/udp",
            "allow in on tailscale0 to any port 22 proto tcp",
            "allow in on tailscale0 to any port 2379:2380 proto tcp",
            "allow in on tailscale0 to any port 6443 proto tcp",
            "allow in on tailscale0 to any port 9100 proto tcp",
            "allow in on tailscale0 to any port 10250 proto tcp",
            "allow in on tailscale0 to any port 8472 proto udp",
            "allow in on cni0",
            "allow in on flannel.1",
            "allow from 10.42.0.0/16",
            "allow from 10.43.0.0/16",
            "route deny from 10.42.0.0/16 to 169.254.169.254",
            "route allow in on cni0",
            "route allow in on flannel.1",
            "route allow in on tailscale0",
            "route allow from 10.42.0.0/16",
        ]),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: &[
            "--advertise-tags=tag:k3s,tag:k3s-server",
            "--ssh=true",
            "--accept-dns=false",
            "--netfilter-mode=nodivert",
            "--timeout=60s",
        ],
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(AGENT_TOKEN_SERVER_K3S),
        tls_san: &["mesh-cp.example-org.ts.net"],
        dual_stack: false,
        pool: None,
    },
    Row {
        fixture: "mesh.yaml",
        node: "mesh-worker",
        role: Role::Agent { via: "mesh-cp" },
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(&[
            "default deny incoming",
            "default allow outgoing",
            "default deny routed",
            "allow 41641/udp",
            "allow in on tailscale0 to any port 22 proto tcp",
            "allow in on tailscale0 to any port 9100 proto tcp",
            "allow in on tailscale0 to any port 10250 proto tcp",
            "allow in on tailscale0 to any port 8472 proto udp",
            "allow in on cni0",
            "allow in on flannel.1",
            "allow from 10.42.0.0/16",
            "allow from 10.43.0.0/16",
            "route deny from 10.42.0.0/16 to 169.254.169.254",
            "route allow in on cni0",
            "route allow in on flannel.1",
            "route allow in on tailscale0",
            "route allow from 10.42.0.0/16",
        ]),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: &[
            "--advertise-tags=tag:k3s,tag:k3s-agent",
            "--ssh=true",
            "--accept-dns=false",
            "--netfilter-mode=nodivert",
            "--timeout=60s",
        ],
        install_env: &[
            ("INSTALL_K3S_EXEC", "agent"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
        ],
        k3s: K3sConfig::Literal(PLAIN_AGENT_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    // nftables.yaml
    netfilter_server("nft-server-1", Role::Init),
    netfilter_server(
        "nft-server-2",
        Role::Server {
            via: "nft-server-1",
        },
    ),
    netfilter_server(
        "nft-server-3",
        Role::Server {
            via: "nft-server-1",
        },
    ),
    Row {
        fixture: "nftables.yaml",
        node: "nft-agent",
        role: Role::Agent {
            via: "nft-server-1",
        },
        os: "ubuntu-22.04",
        firewall: Firewall::Nftables(Ports {
            public_tcp: &["22", "443", "8000-8100"],
            public_udp: &["3478", "41641"],
            mesh_tcp: &["9100", "10250"],
            mesh_udp: &["51820-51821"],
        }),
        tailscale: TailscaleFrom::Apt("ubuntu/jammy"),
        up: NFT_UP,
        install_env: &[
            ("INSTALL_K3S_EXEC", "agent"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.34.9+k3s1"),
        ],
        k3s: K3sConfig::Literal(
            "
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
node-taint: ['gpu=true:NoExecute']
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    // single-server.yaml: public SSH and 80/443 (forwarded to pods too).
    Row {
        fixture: "single-server.yaml",
        node: "solo-1",
        role: Role::Init,
        os: "ubuntu-24.04",
        firewall: Firewall::Ufw(&[
            "default deny incoming",
            "default allow outgoing",
            "default deny routed",
            "allow 22/tcp",
            "allow 80/tcp",
            "allow 443/tcp",
            "allow 41641/udp",
            "allow in on tailscale0 to any port 2379:2380 proto tcp",
            "allow in on tailscale0 to any port 6443 proto tcp",
            "allow in on tailscale0 to any port 10250 proto tcp",
            "allow in on tailscale0 to any port 8472 proto udp",
            "allow in on cni0",
            "allow in on flannel.1",
            "allow from 10.42.0.0/16",
            "allow from 10.43.0.0/16",
            "route deny from 10.42.0.0/16 to 169.254.169.254",
            "route allow in on cni0",
            "route allow in on flannel.1",
            "route allow in on tailscale0",
            "route allow from 10.42.0.0/16",
            "route allow proto tcp from any to 10.42.0.0/16 port 80",
            "route allow proto tcp from any to 10.42.0.0/16 port 443",
        ]),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: CLUSTER_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(
            "
cluster-cidr: 10.42.0.0/16
flannel-backend: vxlan
flannel-iface: tailscale0
kube-proxy-arg: [nodeport-addresses=100.64.0.0/10]
service-cidr: 10.43.0.0/16
token-file: /etc/meshboot/k3s-token
",
        ),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    // hetzner.yaml
    HZ_SERVER,
    hz_agent("hz-edge", "ubuntu-22.04", "ubuntu/jammy", HZ_EDGE_UFW),
    HZ_CORE,
    hz_agent("hz-debian", "debian-12", "debian/bookworm", HZ_DEBIAN_UFW),
    // adversarial/extra_args.yaml
    extra_args(
        "cp-1",
        Role::Init,
        "ubuntu-24.04",
        TailscaleFrom::Apt("ubuntu/noble"),
        CLUSTER_SERVER_ENV,
    ),
    extra_args(
        "core-1",
        Role::Server { via: "cp-1" },
        "flatcar",
        ADV_LATEST,
        ADV_FLATCAR_SERVER_ENV,
    ),
    extra_args(
        "core-2",
        Role::Server { via: "cp-1" },
        "flatcar",
        ADV_LATEST,
        ADV_FLATCAR_SERVER_ENV,
    ),
    extra_args(
        "worker-1",
        Role::Agent { via: "cp-1" },
        "debian-12",
        TailscaleFrom::Apt("debian/bookworm"),
        ADV_DEBIAN_AGENT_ENV,
    ),
    extra_args(
        "worker-2",
        Role::Agent { via: "cp-1" },
        "debian-12",
        TailscaleFrom::Apt("debian/bookworm"),
        ADV_DEBIAN_AGENT_ENV,
    ),
    extra_args(
        "fc-worker",
        Role::Agent { via: "cp-1" },
        "fedora-coreos",
        TailscaleFrom::Static {
            version: LATEST_TAILSCALE,
            dir: "/usr/local/bin",
            link: None,
        },
        &[
            ("INSTALL_K3S_EXEC", "agent"),
            ("INSTALL_K3S_SELINUX_WARN", "true"),
            ("INSTALL_K3S_SKIP_SELINUX_RPM", "true"),
            SKIP_START,
            ("INSTALL_K3S_VERSION", "v1.33.13+k3s1"),
        ],
    ),
    // adversarial/login_server.yaml
    Row {
        fixture: "adversarial/login_server.yaml",
        node: "cp-1",
        role: Role::Init,
        os: "ubuntu-24.04",
        firewall: Firewall::Nftables(NFT_SERVER),
        tailscale: TailscaleFrom::Apt("ubuntu/noble"),
        up: LOGIN_SERVER_UP,
        install_env: CLUSTER_SERVER_ENV,
        k3s: K3sConfig::Literal(ADV_SERVER_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
    Row {
        fixture: "adversarial/login_server.yaml",
        node: "edge",
        role: Role::Agent { via: "cp-1" },
        os: "flatcar",
        firewall: Firewall::Nftables(NFT_AGENT),
        tailscale: ADV_LATEST,
        up: LOGIN_SERVER_UP,
        install_env: CLUSTER_WORKER_ENV,
        k3s: K3sConfig::Literal(PLAIN_AGENT_K3S),
        tls_san: &[],
        dual_stack: false,
        pool: None,
    },
];

/// The rows of `fixture`, in table order.
pub fn rows_of(fixture: &str) -> Vec<&'static Row> {
    TABLE.iter().filter(|r| r.fixture == fixture).collect()
}
