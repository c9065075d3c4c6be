//! What a bootstrapped node must look like: the expectation types.

use super::world::{INIT_IP, LATEST_TAILSCALE};
use meshboot::plan::{Envelope, NodePlan, NodeRole, TailscaleInstall};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Firewall {
    Ufw,
    Nftables,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TailscaleFrom {
    /// The apt repository, e.g. `ubuntu/noble`.
    Apt(String),
    /// The static tarball of `version`, linked as `link`.
    Static { version: String, link: String },
}

/// What one node's first boot must do, written from the fixture (not read from the plan),
/// so that a change in the plan shows up as a failure here.
#[derive(Debug, Clone)]
pub struct Expect {
    pub firewall: Firewall,
    pub tailscale: TailscaleFrom,
    /// The server joined through, with its mesh address; `None`: `cluster-init`.
    pub join: Option<(String, String)>,
    /// Every INSTALL_K3S_* variable the install script must see, and nothing else.
    pub install_env: BTreeMap<String, String>,
    /// `tls-san` names besides the node's address (servers only).
    pub tls_san_names: Vec<String>,
    /// A dual-stack cluster: `node-ip` and `tls-san` carry the IPv6 address too.
    pub dual_stack: bool,
    /// flannel runs (bound to tailscale0); false with `flannel_backend: none`.
    pub flannel: bool,
}

impl Expect {
    pub fn new(firewall: Firewall, tailscale: TailscaleFrom, install_env: &[(&str, &str)]) -> Self {
        Expect {
            firewall,
            tailscale,
            join: None,
            // Every node starts K3s itself, with a bounded wait.
            install_env: install_env
                .iter()
                .chain(&[("INSTALL_K3S_SKIP_START", "true")])
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tls_san_names: Vec::new(),
            dual_stack: false,
            flannel: true,
        }
    }
    pub fn without_flannel(mut self) -> Self {
        self.flannel = false;
        self
    }
    pub fn dual_stack(mut self) -> Self {
        self.dual_stack = true;
        self
    }
    pub fn joining(mut self, server: &str, ip: &str) -> Self {
        self.join = Some((server.into(), ip.into()));
        self
    }
    pub fn tls_san(mut self, names: &[&str]) -> Self {
        self.tls_san_names = names.iter().map(|n| n.to_string()).collect();
        self
    }
    pub fn is_server(&self) -> bool {
        self.install_env.get("INSTALL_K3S_EXEC").map(String::as_str) == Some("server")
    }
}

pub fn apt(repo: &str) -> TailscaleFrom {
    TailscaleFrom::Apt(repo.into())
}

pub fn static_build(version: &str, link: &str) -> TailscaleFrom {
    TailscaleFrom::Static {
        version: version.into(),
        link: link.into(),
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no static Tailscale build for {other}"),
    }
}

/// The happy path of any node of the fixtures, for the sweep over all of them: the
/// firewall, versions and installer environment are written from the fixtures; the role,
/// OS, Tailscale source and join target are taken from the plan (the per-node tests below
/// write those out too).
pub fn expect_from_fixture(node: &NodePlan) -> Expect {
    let firewall = match node.envelope {
        Envelope::Ignition => Firewall::Nftables,
        Envelope::CloudInit if node.name.starts_with("nft-") || node.name.starts_with("ds-") => {
            Firewall::Nftables
        }
        Envelope::CloudInit => Firewall::Ufw,
    };
    let tailscale = match &node.tailscale.install {
        TailscaleInstall::Apt {
            distro, codename, ..
        } => apt(&format!("{distro}/{codename}")),
        TailscaleInstall::Static { link_dir, .. } => {
            let version = if node.name.starts_with("worker-") {
                LATEST_TAILSCALE
            } else {
                "1.90.6"
            };
            static_build(version, &format!("{link_dir}/tailscale"))
        }
    };
    let exec = if node.role.is_server() {
        "server"
    } else {
        "agent"
    };
    let mut env = vec![("INSTALL_K3S_EXEC", exec)];
    match node.name.as_str() {
        n if n.starts_with("nft-") => env.push(("INSTALL_K3S_VERSION", "v1.32.9+k3s1")),
        n if n.starts_with("core-") || n.starts_with("pool-") || n == "fcos-1" => {
            env.push(("INSTALL_K3S_CHANNEL", "stable"))
        }
        _ => env.push(("INSTALL_K3S_VERSION", "v1.33.5+k3s1")),
    }
    match node.os {
        meshboot::spec::Os::Flatcar => env.push(("INSTALL_K3S_BIN_DIR", "/opt/bin")),
        meshboot::spec::Os::FedoraCoreos => env.extend([
            ("INSTALL_K3S_SKIP_SELINUX_RPM", "true"),
            ("INSTALL_K3S_SELINUX_WARN", "true"),
        ]),
        _ => {}
    }
    let mut expect = Expect::new(firewall, tailscale, &env);
    if node.role.is_server() && node.name.starts_with("core-") {
        expect = expect.tls_san(&["api.ignite.example"]);
    }
    if node.role != NodeRole::InitServer {
        expect = expect.joining(&node.join.init_server, INIT_IP);
    }
    if node.name.starts_with("ds-") {
        // dual-stack.yaml: dual-stack CIDRs and no flannel.
        expect = expect.dual_stack().without_flannel();
    }
    expect
}

/// cluster.yaml's servers: Ubuntu 24.04 behind ufw, K3s pinned.
pub fn cluster_server() -> Expect {
    Expect::new(
        Firewall::Ufw,
        apt("ubuntu/noble"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_VERSION", "v1.33.5+k3s1"),
        ],
    )
}

/// cluster.yaml's workers: Flatcar agents behind nftables, the latest static Tailscale.
pub fn cluster_worker() -> Expect {
    Expect::new(
        Firewall::Nftables,
        static_build(LATEST_TAILSCALE, "/opt/bin/tailscale"),
        &[
            ("INSTALL_K3S_EXEC", "agent"),
            ("INSTALL_K3S_VERSION", "v1.33.5+k3s1"),
            ("INSTALL_K3S_BIN_DIR", "/opt/bin"),
        ],
    )
}

/// nftables.yaml's servers: Debian 12 behind nftables.
pub fn netfilter_server() -> Expect {
    Expect::new(
        Firewall::Nftables,
        apt("debian/bookworm"),
        &[
            ("INSTALL_K3S_EXEC", "server"),
            ("INSTALL_K3S_VERSION", "v1.32.9+k3s1"),
        ],
    )
}
