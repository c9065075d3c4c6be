//! The plan's K3s part: the install script's environment and the node's config.yaml.

use super::{
    AGENT_TOKEN_PATH, BootConfig, ExpandedNode, Label, NodeRole, TOKEN_PATH, Taint, comma_list,
    parse_args,
};
use crate::firewall::{API_SERVER, MESH_INTERFACE};
use crate::k3s_flags::{File, Flag};
use crate::spec::{FlannelBackend, Os, Spec};
use serde::Serialize;
use std::collections::BTreeMap;

pub const K3S_INSTALL_URL: &str = "https://get.k3s.io";

/// A value in K3s's config.yaml.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct K3sPlan {
    /// `server` or `agent` (INSTALL_K3S_EXEC); everything else is in config.yaml.
    pub exec: &'static str,
    /// The systemd unit the install script creates: `k3s` or `k3s-agent`. The bootstrap
    /// starts it itself (INSTALL_K3S_SKIP_START) so that its wait is bounded.
    pub unit: &'static str,
    /// Where the install script comes from.
    pub install_url: &'static str,
    pub install_env: Vec<EnvVar>,
    /// The port of the servers' supervisor and API: joiners probe `/cacerts` there and
    /// join `https://<ip>:<port>` (from the firewall model, which opens it on the mesh).
    pub api_port: u32,
    /// config.yaml: every key known at build time. The envelope delivers it (0600).
    pub config: BTreeMap<String, ConfigValue>,
    /// What the bootstrap adds in a config.yaml.d drop-in once the node is on the mesh.
    pub boot_config: BootConfig,
    /// The kubelet client certificate K3s writes once a server accepted this node
    /// (`<data-dir>/agent/client-kubelet.crt`; k3s-io/k3s pkg/agent/config `get`). The server
    /// issues it only after checking the node's password (pkg/nodepassword), so it marks a
    /// node that joined under its name, which an active unit alone does not on a server.
    pub kubelet_cert: String,
    /// Servers: the embedded etcd's data (`<data-dir>/server/db`). Deleting a server's Node
    /// object also removes the etcd member it names (pkg/etcd member_controller
    /// `onRemove`), and a removed member cannot rejoin until this is deleted
    /// (k3s-io/k3s#13498, #2399: "you must backup and delete ... before rejoining").
    pub etcd_db: Option<String>,
    /// INSTALL_K3S_BIN_DIR, where it is not the install script's default /usr/local/bin:
    /// `/opt/bin` on Flatcar, whose /usr is read-only. The script moves k3s there without
    /// creating it (k3s-io/k3s install.sh `setup_binary`: `mv -f ${TMP_BIN} ${BIN_DIR}/k3s`),
    /// so the bootstrap makes it first, whatever else did or did not on this image.
    pub bin_dir: Option<&'static str>,
    /// A pinned K3s release: the bootstrap takes a pre-installed K3s of that release (a
    /// baked image's, see `meshboot packer`) instead of downloading it.
    pub baked: Option<BakedK3s>,
}

/// Where a baked image holds K3s, and the release it must be to be used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BakedK3s {
    pub version: String,
    /// The binary: `INSTALL_K3S_BIN_DIR/k3s` (the install script's default
    /// /usr/local/bin). `k3s --version` prints `k3s version <release> (<commit>)` first
    /// (k3s-io/k3s pkg/cli/cmds/root.go, `cli.VersionPrinter`).
    pub bin: String,
    /// The install script the image was baked with. Run with INSTALL_K3S_SKIP_DOWNLOAD=true
    /// it writes the role's unit, env file and uninstall script around the binary that is
    /// there, downloading nothing (get.k3s.io `download_and_verify`: "Skipping k3s download
    /// and verify"); the bootstrap copies it to its usual place first.
    pub installer: &'static str,
}

/// Where K3s goes on Flatcar.
pub const FLATCAR_BIN_DIR: &str = "/opt/bin";
/// K3s's data directory unless `--data-dir` says otherwise.
pub const K3S_DATA_DIR: &str = "/var/lib/rancher/k3s";

/// Where `meshboot packer`'s bake.sh leaves the K3s install script it ran.
pub const BAKED_K3S_INSTALLER: &str = "/opt/meshboot/baked/k3s-install.sh";

/// The K3s part of node `n`'s plan; `labels` and `taints` are the node's, as the plan has
/// them (for a pool, the autoscaler is told the same ones).
pub(super) fn plan_k3s(
    spec: &Spec,
    n: &ExpandedNode,
    role: NodeRole,
    os: Os,
    (labels, taints): (&[Label], &[Taint]),
) -> K3sPlan {
    let k = &spec.k3s;
    // Every key meshboot sets is a row of the one table of flags (crate::k3s_flags).
    let mut config: BTreeMap<String, ConfigValue> = BTreeMap::new();
    let mut set = |flag: Flag, v: ConfigValue| config.insert(flag.name().to_string(), v);
    let s = |v: &str| ConfigValue::Str(v.to_string());
    // A pool node's name is its server's: the bootstrap writes it in the drop-in at boot.
    if n.pool.is_none() {
        set(Flag::NodeName, s(&n.name));
    }
    set(Flag::TokenFile, s(TOKEN_PATH));
    if k.flannel_backend != FlannelBackend::None {
        set(Flag::FlannelIface, s(MESH_INTERFACE));
    }
    let dual_stack = k.cluster_cidr.v6().is_some();
    // NodePorts answer on mesh addresses only: kube-proxy's rules accept NodePort traffic
    // before a host firewall's FORWARD rules see it. Unless the node opens NodePorts itself.
    let node_fw = n.fields.firewall.clone().unwrap_or_default();
    let public_nodeports = [
        &spec.firewall.public_tcp,
        &spec.firewall.public_udp,
        &node_fw.public_tcp,
        &node_fw.public_udp,
    ]
    .into_iter()
    .flatten()
    .any(|p| crate::firewall::overlaps(*p, crate::firewall::NODEPORTS));
    if !public_nodeports {
        let mut mesh = vec![crate::firewall::TAILSCALE_V4.to_string()];
        if dual_stack {
            mesh.push(crate::firewall::TAILSCALE_V6.to_string());
        }
        set(
            Flag::KubeProxyArg,
            ConfigValue::List(vec![format!("nodeport-addresses={}", mesh.join(","))]),
        );
    }
    if !labels.is_empty() {
        set(
            Flag::NodeLabel,
            ConfigValue::List(labels.iter().map(Label::to_string).collect()),
        );
    }
    if !taints.is_empty() {
        set(
            Flag::NodeTaint,
            ConfigValue::List(taints.iter().map(Taint::to_string).collect()),
        );
    }
    let mut tls_san_names = Vec::new();
    if role.is_server() {
        set(Flag::ClusterCidr, s(&k.cluster_cidr.to_string()));
        set(Flag::ServiceCidr, s(&k.service_cidr.to_string()));
        let backend = match k.flannel_backend {
            FlannelBackend::Vxlan => "vxlan",
            FlannelBackend::WireguardNative => "wireguard-native",
            FlannelBackend::None => "none",
        };
        set(Flag::FlannelBackend, s(backend));
        if !k.disable.is_empty() {
            set(Flag::Disable, ConfigValue::List(k.disable.clone()));
        }
        tls_san_names.push(n.name.clone());
        // kubectl over the mesh reaches the server by its MagicDNS name.
        if let Some(tailnet) = &spec.tailscale.tailnet {
            tls_san_names.push(format!("{}.{tailnet}", n.name));
        }
        if k.agent_token.is_some() {
            set(Flag::AgentTokenFile, s(AGENT_TOKEN_PATH));
        }
    }
    let mut boot_config = BootConfig::new(role, dual_stack, n.pool.is_some());
    let extra = if role.is_server() {
        &k.server_args
    } else {
        &k.agent_args
    };
    // `--data-dir` (`-d`) moves everything K3s writes, its certificates included.
    let data_dir = parse_args(extra)
        .into_iter()
        .filter(|(key, _)| key == "data-dir" || key == "d")
        .filter_map(|(_, value)| value)
        .next_back()
        .unwrap_or_else(|| K3S_DATA_DIR.to_string());
    for (key, value) in parse_args(extra) {
        let flag = Flag::named(&key);
        // `tls-san` from the user adds names to config.yaml's list.
        if flag == Some(Flag::TlsSan) {
            tls_san_names.extend(value.into_iter().flat_map(|v| comma_list(&v)));
            continue;
        }
        // With `allow_owned_args`, the user's value replaces what the bootstrap would write.
        if let Some(flag) = flag {
            boot_config.leave_to_spec(flag);
        }
        let v = match value {
            Some(v) => ConfigValue::Str(v),
            None => ConfigValue::Bool(true),
        };
        match config.get_mut(&key) {
            Some(ConfigValue::List(list)) => match v {
                ConfigValue::Str(v) => list.push(v),
                other => {
                    config.insert(key, other);
                }
            },
            Some(ConfigValue::Str(prev)) if !is_meshboot_key(&key) => {
                let prev = std::mem::take(prev);
                let merged = match v {
                    ConfigValue::Str(v) => ConfigValue::List(vec![prev, v]),
                    other => other,
                };
                config.insert(key, merged);
            }
            _ => {
                config.insert(key, v);
            }
        }
    }
    // The names go into config.yaml; the bootstrap appends the mesh address(es) at boot.
    tls_san_names.dedup();
    if boot_config.tls_san && !tls_san_names.is_empty() {
        config.insert(
            Flag::TlsSan.name().to_string(),
            ConfigValue::List(tls_san_names),
        );
    }

    let mut install_env = vec![
        EnvVar {
            name: "INSTALL_K3S_EXEC".into(),
            value: if role.is_server() { "server" } else { "agent" }.into(),
        },
        // The script's own start blocks until K3s is ready, without a bound; the bootstrap
        // starts the unit and waits a bounded time instead.
        EnvVar {
            name: "INSTALL_K3S_SKIP_START".into(),
            value: "true".into(),
        },
    ];
    match (&k.version, &k.channel) {
        (Some(v), _) => install_env.push(EnvVar {
            name: "INSTALL_K3S_VERSION".into(),
            value: v.clone(),
        }),
        (None, Some(c)) => install_env.push(EnvVar {
            name: "INSTALL_K3S_CHANNEL".into(),
            value: c.clone(),
        }),
        (None, None) => install_env.push(EnvVar {
            name: "INSTALL_K3S_CHANNEL".into(),
            value: "stable".into(),
        }),
    }
    let k3s_bin_dir = (os == Os::Flatcar).then_some(FLATCAR_BIN_DIR);
    if let Some(dir) = k3s_bin_dir {
        install_env.push(EnvVar {
            name: "INSTALL_K3S_BIN_DIR".into(),
            value: dir.into(),
        });
    }
    if os == Os::FedoraCoreos {
        install_env.push(EnvVar {
            name: "INSTALL_K3S_SKIP_SELINUX_RPM".into(),
            value: "true".into(),
        });
        install_env.push(EnvVar {
            name: "INSTALL_K3S_SELINUX_WARN".into(),
            value: "true".into(),
        });
    }
    install_env.sort_by(|a, b| a.name.cmp(&b.name));
    let bin_dir = install_env
        .iter()
        .find(|e| e.name == "INSTALL_K3S_BIN_DIR")
        .map_or("/usr/local/bin", |e| e.value.as_str());
    let baked = k.version.as_ref().map(|version| BakedK3s {
        version: version.clone(),
        bin: format!("{bin_dir}/k3s"),
        installer: BAKED_K3S_INSTALLER,
    });

    K3sPlan {
        exec: if role.is_server() { "server" } else { "agent" },
        unit: if role.is_server() { "k3s" } else { "k3s-agent" },
        install_url: K3S_INSTALL_URL,
        install_env,
        api_port: API_SERVER.start,
        config,
        boot_config,
        kubelet_cert: format!(
            "{}/agent/client-kubelet.crt",
            data_dir.trim_end_matches('/')
        ),
        etcd_db: role
            .is_server()
            .then(|| format!("{}/server/db", data_dir.trim_end_matches('/'))),
        bin_dir: k3s_bin_dir,
        baked,
    }
}

/// The single-valued keys meshboot writes into config.yaml: a user arg (under
/// `allow_owned_args`) replaces them rather than turning them into a list.
fn is_meshboot_key(key: &str) -> bool {
    Flag::named(key).is_some_and(|f| {
        matches!(f.row().file, File::Config | File::ConfigOrDropInForPools) && !f.row().repeatable
    })
}
