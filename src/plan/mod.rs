//! Stage 3, the plan: every decision for every node, made in Rust.
//!
//! [`plan`] turns a validated [`Spec`] into a [`ClusterPlan`]: one [`NodePlan`] per node that
//! [`crate::resolve`] expanded, holding its role and join targets, the Tailscale and K3s settings, the
//! firewall, the packages, and the files to deliver with their modes. Templates in
//! [`crate::render`] only print what is decided here. The plan is serializable and
//! snapshotted: a behaviour change shows as a plan diff first. It never holds a secret value.

mod boot;
mod k3s;
mod pool;
mod services;
mod tailscale;
pub mod updates;

pub use boot::{BootConfig, Join};
pub use k3s::{BAKED_K3S_INSTALLER, BakedK3s, ConfigValue, EnvVar, K3S_INSTALL_URL, K3sPlan};
pub use pool::{
    HCLOUD_PROVIDER_ID_PREFIX, HETZNER_HOSTNAME_URL, HETZNER_INSTANCE_ID_URL, Label, NameSource,
    PoolPlan, ProviderId, Taint,
};
pub use services::{DROP_IN, MESH_WAIT_PATH, MESH_WAIT_S, Services};
pub use tailscale::{
    Arch, Installed, JsonTool, KeySource, ShippedOauth, StaticBuild, TAILSCALE_PKGS,
    TAILSCALE_STATIC_DIR, TailscaleInstall, TailscalePlan, Tarball, node_tags,
};

use crate::firewall::{FirewallInput, FirewallPlan, plan_firewall};
use crate::spec::{FirewallBackend, Hcloud, Os, PortRange, Role, Spec};
use boot::plan_join;
use k3s::plan_k3s;
use serde::Serialize;
use services::plan_services;
use tailscale::plan_tailscale;

pub const BOOTSTRAP_PATH: &str = "/opt/meshboot/bootstrap.sh";
pub const AUTH_KEY_PATH: &str = "/etc/meshboot/tailscale-authkey";
/// The token this node joins with: the server token on servers, the agent token (when the
/// spec has one) on agents.
pub const TOKEN_PATH: &str = "/etc/meshboot/k3s-token";
/// Servers only, with `k3s.agent_token`: the token agents join with (`agent-token-file`).
pub const AGENT_TOKEN_PATH: &str = "/etc/meshboot/k3s-agent-token";
pub const NFTABLES_PATH: &str = "/etc/meshboot/firewall.nft";
/// K3s's config file: what is known at build time, delivered by the envelope.
pub const K3S_CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";
/// The drop-in the bootstrap writes once the node is on the mesh ([`BootConfig`]). K3s reads
/// `config.yaml.d/*.yaml` after config.yaml, in name order.
pub const K3S_BOOT_CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml.d/50-meshboot-boot.yaml";
pub const K3S_INSTALLER_PATH: &str = "/opt/meshboot/k3s-install.sh";
pub const LOG_PATH: &str = "/var/log/meshboot.log";
pub const STATE_DIR: &str = "/var/lib/meshboot";
pub const UNIT_DIR: &str = "/etc/systemd/system";
pub const BOOTSTRAP_UNIT: &str = "meshboot-bootstrap.service";
pub const FIREWALL_UNIT: &str = "meshboot-firewall.service";
pub const TAILSCALED_UNIT: &str = "tailscaled.service";
/// The distribution's nftables unit (Debian's, Ubuntu's, Fedora's nftables package), which
/// flushes the whole ruleset when it starts, reloads or stops.
pub const NFTABLES_UNIT: &str = "nftables.service";
/// Flatcar only: tells systemd-networkd to leave tailscale0 alone.
pub const TAILSCALE_NETWORK_PATH: &str = "/etc/systemd/network/50-tailscale.network";

/// Ignition spec version of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum IgnitionVersion {
    #[default]
    #[serde(rename = "3.3.0")]
    V3_3,
    #[serde(rename = "3.4.0")]
    V3_4,
}

impl IgnitionVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnitionVersion::V3_3 => "3.3.0",
            IgnitionVersion::V3_4 => "3.4.0",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterPlan {
    pub cluster: String,
    pub ignition_version: IgnitionVersion,
    /// Deliver large files gzipped (`--compress`): cloud-init `encoding: gz+b64`, Ignition
    /// `compression: gzip`.
    pub compress: bool,
    pub nodes: Vec<NodePlan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeRole {
    /// The first server: `cluster-init`, unless it finds a live cluster to rejoin.
    InitServer,
    /// Any other server: joins as a server.
    JoinServer,
    Agent,
}

impl NodeRole {
    pub fn is_server(self) -> bool {
        self != NodeRole::Agent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Envelope {
    CloudInit,
    Ignition,
}

impl Envelope {
    /// Every envelope: the extensions of the files `build` writes are theirs.
    pub const ALL: [Envelope; 2] = [Envelope::CloudInit, Envelope::Ignition];

    pub fn for_os(os: Os) -> Envelope {
        match os {
            Os::Ubuntu2204 | Os::Ubuntu2404 | Os::Debian12 => Envelope::CloudInit,
            Os::Flatcar | Os::FedoraCoreos => Envelope::Ignition,
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Envelope::CloudInit => "yaml",
            Envelope::Ignition => "ign",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Bootstrap,
    AuthKey,
    K3sConfig,
    Token,
    AgentToken,
    Nftables,
    FirewallUnit,
    TailscaledUnit,
    TailscaleNetwork,
    BootstrapUnit,
    /// tailscaled's drop-in: requires the firewall, restarts K3s.
    TailscaledDropIn,
    /// The K3s unit's drop-in: after tailscaled and the mesh address, requires the firewall.
    K3sDropIn,
    /// The K3s unit's wait for the mesh address.
    MeshWait,
    /// ufw nodes' firewall unit: loads the forward table and checks that ufw is active.
    UfwGuardUnit,
    /// nftables.service's drop-in: reloads the firewall unit after each of its flushes.
    NftablesDropIn,
    /// The OS's update-reboot settings ([`updates`]): Flatcar's update.conf or a Zincati
    /// config snippet.
    OsUpdates,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilePlan {
    pub path: String,
    /// Octal mode, e.g. 0o600.
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    pub kind: FileKind,
    /// A systemd unit to enable at delivery where the envelope can (Ignition's
    /// `enabled: true`); the bootstrap enables what it needs either way.
    pub enable: bool,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

impl FilePlan {
    pub fn is_unit(&self) -> bool {
        self.path.starts_with(UNIT_DIR) && self.path.ends_with(".service")
    }
    pub fn unit_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Retry bounds of the bootstrap's waits. Every wait is finite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retries {
    pub tailscale_up_attempts: u32,
    pub tailscale_up_timeout_s: u32,
    pub own_ip_attempts: u32,
    /// Rounds over the join candidates until one is on the mesh and its `/cacerts` answers.
    pub join_attempts: u32,
    pub download_attempts: u32,
    /// Longest pause between attempts, in seconds (the backoff doubles up to this).
    pub max_backoff_s: u32,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            tailscale_up_attempts: 6,
            tailscale_up_timeout_s: 60,
            own_ip_attempts: 30,
            join_attempts: 240,
            download_attempts: 5,
            max_backoff_s: 15,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePlan {
    /// The node's name; for a pool, the pool's (its nodes are named `<name>-<hex>`).
    pub name: String,
    pub role: NodeRole,
    /// The node is a pool: its name is its server's, read and checked at boot.
    pub pool: Option<PoolPlan>,
    pub os: Os,
    pub envelope: Envelope,
    pub hcloud: Hcloud,
    pub join: Join,
    pub tailscale: TailscalePlan,
    pub k3s: K3sPlan,
    /// The node's labels and taints: K3s registers these, and the autoscaler is told the
    /// same ones for a pool.
    pub labels: Vec<Label>,
    pub taints: Vec<Taint>,
    pub firewall: FirewallPlan,
    /// How K3s, tailscaled and the firewall are tied together at every boot.
    pub services: Services,
    /// The Debian packages the bootstrap uses (Ubuntu and Debian only): it installs the ones
    /// the image lacks, before the firewall step, whose tool is among them.
    pub packages: Vec<String>,
    pub files: Vec<FilePlan>,
    pub retries: Retries,
    /// When the OS may reboot for an update (Flatcar, Fedora CoreOS), one window per node;
    /// a pool's is the first of its choice, which its bootstrap replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot_window: Option<updates::RebootWindow>,
    /// A pool node's windows, from which its bootstrap takes one by the server's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot_window_choice: Option<updates::WindowChoice>,
}

impl NodePlan {
    /// This plan as it would be for a node named `to`: the name, a pool's name, and every
    /// K3s config value that is the name or a DNS name under it (`tls-san`'s
    /// `<name>.<tailnet>`) follow it. Nodes of one `count` entry differ in little else, so
    /// [`crate::render::Renderer`] renders their shared parts once, under a placeholder
    /// name, and puts each node's name in.
    pub fn renamed(&self, to: &str) -> NodePlan {
        let from = self.name.as_str();
        let swap = |s: &mut String| {
            if s == from {
                *s = to.to_string();
            } else if let Some(rest) = s.strip_prefix(from).filter(|r| r.starts_with('.')) {
                *s = format!("{to}{rest}");
            }
        };
        let mut n = self.clone();
        n.name = to.to_string();
        if let Some(pool) = &mut n.pool {
            swap(&mut pool.name);
        }
        for v in n.k3s.config.values_mut() {
            match v {
                ConfigValue::Str(s) => swap(s),
                ConfigValue::List(l) => l.iter_mut().for_each(swap),
                ConfigValue::Bool(_) => {}
            }
        }
        n
    }
}

// Resolution is shared with validation; these names stay reachable as `plan::...`.
pub use crate::resolve::{
    DEFAULT_OS, ExpandedNode, comma_list, effective_backend, expand, node_backend, parse_args,
};

pub fn plan(
    spec: &Spec,
    (ignition_version, compress): (IgnitionVersion, bool),
    oauth: ShippedOauth,
) -> ClusterPlan {
    let nodes = expand(spec);
    let servers: Vec<&str> = nodes
        .iter()
        .filter(|n| n.role == Role::Server)
        .map(|n| n.name.as_str())
        .collect();
    let init = servers.first().copied().unwrap_or_default().to_string();

    // Each node's index among the servers or the agents: its reboot window's slot.
    let (mut servers_seen, mut agents_seen) = (0, 0);
    let plans = nodes
        .iter()
        .map(|n| {
            let seen = match n.role {
                Role::Server => &mut servers_seen,
                Role::Agent => &mut agents_seen,
            };
            let role_index = *seen;
            *seen += 1;
            let os = n.fields.os.unwrap_or(DEFAULT_OS);
            let envelope = Envelope::for_os(os);
            let role = match n.role {
                Role::Agent => NodeRole::Agent,
                Role::Server if n.name == init => NodeRole::InitServer,
                Role::Server => NodeRole::JoinServer,
            };
            let join = plan_join(role, &n.name, &init, &servers);

            let backend = node_backend(spec, n);
            let node_fw = n.fields.firewall.clone().unwrap_or_default();
            // The cluster's public ports, then the node's own.
            let both = |cluster: &[PortRange], node: &[PortRange]| -> Vec<PortRange> {
                cluster.iter().chain(node).copied().collect()
            };
            let public_tcp = both(&spec.firewall.public_tcp, &node_fw.public_tcp);
            let public_udp = both(&spec.firewall.public_udp, &node_fw.public_udp);
            let firewall = plan_firewall(&FirewallInput {
                backend,
                is_server: role.is_server(),
                ssh: spec.firewall.ssh,
                flannel: spec.k3s.flannel_backend,
                public_tcp: &public_tcp,
                public_udp: &public_udp,
                mesh_tcp: &spec.firewall.mesh_tcp,
                mesh_udp: &spec.firewall.mesh_udp,
                cluster_cidrs: &spec.k3s.cluster_cidr,
                service_cidrs: &spec.k3s.service_cidr,
                allow_pod_metadata: spec.firewall.allow_pod_metadata,
            });

            let pool = n.pool.map(|size| PoolPlan {
                name: n.name.clone(),
                min: size.min,
                max: size.max,
                name_source: NameSource::for_envelope(envelope),
            });
            let labels: Vec<Label> = n
                .fields
                .labels
                .iter()
                .flatten()
                .map(|(key, value)| Label {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            let taints: Vec<Taint> = n
                .fields
                .taints
                .iter()
                .flatten()
                .map(|t| Taint::parse(t))
                .collect();
            let tailscale = plan_tailscale(spec, n.role, os, oauth, pool.is_some());
            let k3s = plan_k3s(spec, n, role, os, (&labels, &taints));
            let services = plan_services(k3s.unit, backend, spec.k3s.flannel_backend);

            let mut packages = vec!["ca-certificates".to_string(), "curl".to_string()];
            if backend == FirewallBackend::Ufw {
                packages.push("ufw".into());
            }
            // `nft` loads meshboot's table, on ufw nodes too (the forward chain): the stock
            // images need not have it (ufw needs only iptables).
            if firewall.table.is_some() {
                packages.push("nftables".into());
            }
            if envelope == Envelope::Ignition {
                packages.clear();
            }

            let file = |path: &str, mode: u32, kind: FileKind| FilePlan {
                path: path.to_string(),
                mode,
                kind,
                enable: false,
            };
            let mut files = vec![
                file(BOOTSTRAP_PATH, 0o700, FileKind::Bootstrap),
                file(AUTH_KEY_PATH, 0o600, FileKind::AuthKey),
                file(TOKEN_PATH, 0o600, FileKind::Token),
                file(K3S_CONFIG_PATH, 0o600, FileKind::K3sConfig),
            ];
            if role.is_server() && spec.k3s.agent_token.is_some() {
                files.push(file(AGENT_TOKEN_PATH, 0o600, FileKind::AgentToken));
            }
            if firewall.table.is_some() {
                // meshboot's table: input and forward chains, or on ufw nodes the forward
                // chain that holds whatever K3s's iptables chains accept (crate::firewall).
                files.push(file(NFTABLES_PATH, 0o600, FileKind::Nftables));
                // The unit tailscaled and K3s require: it loads the table at every boot (and
                // on ufw nodes checks that ufw is active). Where the envelope can enable
                // units (Ignition), the rules are in place before the network comes up on
                // first boot; the bootstrap enables it too.
                let kind = match backend {
                    FirewallBackend::Ufw => FileKind::UfwGuardUnit,
                    _ => FileKind::FirewallUnit,
                };
                files.push(FilePlan {
                    enable: true,
                    ..file(&format!("{UNIT_DIR}/{FIREWALL_UNIT}"), 0o644, kind)
                });
                // The distribution's nftables.service flushes the whole ruleset, this table
                // (and ufw's chains) with it, when it starts, reloads or stops: its drop-in
                // reloads the firewall unit after each (services.rs). Where the OS has no
                // nftables.service (Flatcar), the drop-in is never read.
                files.push(file(
                    &format!("{UNIT_DIR}/{NFTABLES_UNIT}.d/{DROP_IN}"),
                    0o644,
                    FileKind::NftablesDropIn,
                ));
            }
            // Both envelopes start the bootstrap through this unit, which re-runs it at
            // every boot until the done-stamp exists (an interrupted first boot resumes).
            files.push(FilePlan {
                enable: true,
                ..file(
                    &format!("{UNIT_DIR}/{BOOTSTRAP_UNIT}"),
                    0o644,
                    FileKind::BootstrapUnit,
                )
            });
            if matches!(tailscale.install, TailscaleInstall::Static { .. }) {
                files.push(file(
                    &format!("{UNIT_DIR}/{TAILSCALED_UNIT}"),
                    0o644,
                    FileKind::TailscaledUnit,
                ));
            }
            // Flatcar's systemd-networkd has a catch-all network (zz-default.network,
            // `Name=*`) that would manage tailscale0; this file, sorted before it, leaves the
            // link to tailscaled, as Flatcar's own Tailscale system extension does.
            if os == Os::Flatcar {
                files.push(file(
                    TAILSCALE_NETWORK_PATH,
                    0o644,
                    FileKind::TailscaleNetwork,
                ));
            }
            files.push(file(
                &format!("{UNIT_DIR}/{}.d/{DROP_IN}", services.k3s_unit),
                0o644,
                FileKind::K3sDropIn,
            ));
            files.push(file(MESH_WAIT_PATH, 0o700, FileKind::MeshWait));
            if services.tailscaled_drop_in() {
                files.push(file(
                    &format!("{UNIT_DIR}/{TAILSCALED_UNIT}.d/{DROP_IN}"),
                    0o644,
                    FileKind::TailscaledDropIn,
                ));
            }
            let reboot_window_choice = pool.as_ref().and_then(|p| updates::pool_windows(os, p));
            let reboot_window = match &reboot_window_choice {
                Some(choice) => choice.windows.first().cloned(),
                None => updates::reboot_window(os, role, role_index),
            };
            if let Some(w) = &reboot_window {
                files.push(file(w.path, 0o644, FileKind::OsUpdates));
            }
            files.sort_by(|a, b| a.path.cmp(&b.path));

            NodePlan {
                name: n.name.clone(),
                role,
                pool,
                os,
                envelope,
                hcloud: n.fields.hcloud.clone().unwrap_or_default(),
                join,
                tailscale,
                k3s,
                labels,
                taints,
                firewall,
                services,
                packages,
                files,
                retries: Retries::default(),
                reboot_window,
                reboot_window_choice,
            }
        })
        .collect();

    ClusterPlan {
        cluster: spec.cluster.name.clone(),
        ignition_version,
        compress,
        nodes: plans,
    }
}
