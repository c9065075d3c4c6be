//! Delivery to the Hetzner cluster-autoscaler: what `meshboot autoscaler` prints, built from
//! the checked plan and the pools' rendered files.
//!
//! The official provider (kubernetes/autoscaler, cluster-autoscaler/cloudprovider/hetzner)
//! reads its node groups from `--nodes=MIN:MAX:TYPE:LOCATION:POOL` arguments and their
//! servers' settings from `HCLOUD_CLUSTER_CONFIG`, base64 of a JSON document, or
//! `HCLOUD_CLUSTER_CONFIG_FILE`, the path of the same JSON (hetzner_manager.go, `newManager`:
//! `base64.StdEncoding.DecodeString`, then `json.Unmarshal` into `ClusterConfig`). Its shape
//! (`ClusterConfig`, `ImageList`, `NodeConfig`; Go matches JSON keys to field names without
//! regard to case): `{"imagesForArch": {"arm64", "amd64"}, "nodeConfigs": {POOL:
//! {"cloudInit", "labels", "taints"}}}`. `cloudInit` goes verbatim into each new server's
//! user data (hetzner_node_group.go, `createServer`: `UserData: cloudInit`), so it is the
//! pool's built file byte for byte; `labels` and `taints` (apiv1.Taint) are what the
//! autoscaler assumes a new node of the pool will carry (`TemplateNodeInfo`), the same values
//! K3s registers from the plan. `imagesForArch` names an image per CPU architecture: an
//! image name or ID, or a label selector of snapshots, the newest of which is used
//! (`findImage`). Globally it is one image per architecture for every pool; newer
//! autoscalers also read a pool's own `nodeConfigs.<pool>.imagesForArch` first
//! (hetzner_node_group.go `findImage`: "Check for nodepool-specific images first, then fall
//! back to global images", kubernetes/autoscaler#8297), which meshboot always writes.
//!
//! [`check_pools`] finds what the autoscaler cannot use (a pool without a server type,
//! location or image), as positioned problems; [`secret`] prints the Secret.

use crate::delivery::hcloud::{cluster_firewall, ports_firewalls};
use crate::delivery::{Arch, stock_image};
use crate::diagnostics::Diagnostic;
use crate::emit::sha256_hex;
use crate::error::Error;
use crate::plan::{ClusterPlan, Taint};
use crate::problem::Problem;
use crate::render::Artifact;
use crate::resolve::{expand, node_os};
use crate::spec::{Hcloud, Os, Spec};
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The environment variable that holds base64 of the JSON.
pub const CONFIG_ENV: &str = "HCLOUD_CLUSTER_CONFIG";
/// The environment variable that names a file holding the JSON (not base64).
pub const CONFIG_FILE_ENV: &str = "HCLOUD_CLUSTER_CONFIG_FILE";
/// The Secret's key for the JSON when it is mounted as a file.
pub const CONFIG_FILE_KEY: &str = "cluster-config.json";
/// Where the README's Deployment mounts the Secret for `--config-file`.
pub const CONFIG_MOUNT: &str = "/etc/meshboot-autoscaler";

/// The kernel's limit on one environment string, `NAME=value` and its NUL
/// (MAX_ARG_STRLEN, 32 pages of 4 KiB: include/uapi/linux/binfmts.h). A longer
/// `HCLOUD_CLUSTER_CONFIG` makes the container fail with "argument list too long".
pub const MAX_ENV_STRING: usize = 32 * 4096;
/// The most a Secret may hold (Kubernetes: "Individual secrets are limited to 1MiB").
pub const MAX_SECRET: usize = 1024 * 1024;

/// The image a pool's servers boot: its `hcloud.image` (an image ID or name, or a label
/// selector of snapshots such as the one `meshboot packer` prints), else Hetzner's stock
/// image of its OS; `None` for Flatcar and Fedora CoreOS without one (no stock image).
pub fn pool_image(os: Os, hcloud: &Hcloud) -> Option<String> {
    hcloud
        .image
        .clone()
        .or_else(|| stock_image(os).map(String::from))
}

/// What the autoscaler cannot use, at the pools' places in the spec: a pool without
/// `hcloud.type` or `hcloud.location` (its `--nodes` needs both) or without an image
/// ([`pool_image`]); and, as a warning, two pools of one architecture that boot different
/// images, which only an autoscaler that reads per-pool images tells apart.
pub fn check_pools(spec: &Spec) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let mut images: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
    for n in expand(spec).iter().filter(|n| n.pool.is_some()) {
        let at = format!("nodes[{}].autoscale", n.entry);
        let hcloud = n.fields.hcloud.clone().unwrap_or_default();
        for (key, value) in [
            ("type", &hcloud.server_type),
            ("location", &hcloud.location),
        ] {
            if value.is_none() {
                d.push(
                    Diagnostic::new(
                        &at,
                        Problem::PoolWithoutHcloud {
                            pool: n.name.clone(),
                            key,
                        },
                    )
                    .on_key(),
                );
            }
        }
        let os = node_os(n);
        let Some(image) = pool_image(os, &hcloud) else {
            d.push(
                Diagnostic::new(
                    &at,
                    Problem::PoolWithoutImage {
                        pool: n.name.clone(),
                        os: os.name(),
                    },
                )
                .on_key(),
            );
            continue;
        };
        let Some(server_type) = &hcloud.server_type else {
            continue;
        };
        let arch = Arch::of_server_type(server_type).go_name();
        match images.get(arch) {
            Some((other_pool, other_image)) if *other_image != image => d.push(
                Diagnostic::new(
                    &at,
                    Problem::PoolImagesDiffer {
                        arch,
                        pool: n.name.clone(),
                        image,
                        other_pool: other_pool.clone(),
                        other_image: other_image.clone(),
                    },
                )
                .on_key(),
            ),
            Some(_) => {}
            None => {
                images.insert(arch, (n.name.clone(), image));
            }
        }
    }
    d
}

/// `ClusterConfig` of hetzner_manager.go, as JSON.
#[derive(Debug, Serialize)]
pub struct ClusterConfig {
    #[serde(rename = "imagesForArch")]
    pub images_for_arch: BTreeMap<&'static str, String>,
    #[serde(rename = "nodeConfigs")]
    pub node_configs: BTreeMap<String, NodeConfig>,
}

/// `NodeConfig` of hetzner_manager.go, as JSON.
#[derive(Debug, Serialize)]
pub struct NodeConfig {
    /// The pool's built file, byte for byte.
    #[serde(rename = "cloudInit")]
    pub cloud_init: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// The pool's own image, for its servers' architecture: `findImage` takes it over the
    /// global `imagesForArch` (kubernetes/autoscaler#8297; an older autoscaler ignores it).
    #[serde(rename = "imagesForArch")]
    pub images_for_arch: BTreeMap<&'static str, String>,
    /// The cloud firewall of the pool's own public ports (its entry's `firewall`, or
    /// `defaults.firewall`), which `meshboot hcloud` creates; the cluster's firewall comes
    /// from `HCLOUD_FIREWALL`. kubernetes/autoscaler @55c37cd, hetzner_manager.go
    /// `NodeConfig.Firewalls` ("additional firewall ids or names attached to this nodepool's
    /// servers, on top of the cluster-wide HCLOUD_FIREWALL"; added by #9810, 2026-07);
    /// hetzner_cloud_provider.go `BuildHetzner` stops the autoscaler (`klog.Fatalf`) when one
    /// does not exist; hetzner_node_group.go `buildServerCreateFirewalls` merges both, by id.
    /// An older autoscaler ignores the field (`json.Unmarshal` skips unknown keys): its pool
    /// servers then have the cluster firewall only, which keeps the pool's ports closed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub firewalls: Vec<String>,
}

/// One pool's `--nodes` argument.
pub fn nodes_arg(min: u32, max: u32, server_type: &str, location: &str, pool: &str) -> String {
    format!("--nodes={min}:{max}:{server_type}:{location}:{pool}")
}

/// The cluster config and the `--nodes` arguments of `plan`'s pools (of `spec`), whose
/// files are `artifacts` (in plan order). [`check_pools`] has made sure every pool has a
/// type, a location and an image; a pool without them here is a meshboot bug.
pub fn cluster_config(
    spec: &Spec,
    plan: &ClusterPlan,
    artifacts: &[Artifact],
) -> Result<(ClusterConfig, Vec<String>), Error> {
    let bug = |what: &str| {
        Error::Internal(format!(
            "error: internal error: {what}; this is a meshboot bug, please report it\n"
        ))
    };
    let mut config = ClusterConfig {
        images_for_arch: BTreeMap::new(),
        node_configs: BTreeMap::new(),
    };
    let mut args = Vec::new();
    let (_, ports_firewall) = ports_firewalls(spec, &plan.cluster);
    for (node, artifact) in plan.nodes.iter().zip(artifacts) {
        let Some(pool) = &node.pool else { continue };
        if artifact.node != node.name {
            return Err(bug("the artifacts are not in plan order"));
        }
        let (Some(server_type), Some(location)) = (&node.hcloud.server_type, &node.hcloud.location)
        else {
            return Err(bug(&format!("pool {} has no type or location", node.name)));
        };
        let image = pool_image(node.os, &node.hcloud)
            .ok_or_else(|| bug(&format!("pool {} has no image", node.name)))?;
        let arch = Arch::of_server_type(server_type).go_name();
        // The first pool of an architecture gives the global image: what an autoscaler that
        // reads no per-pool image boots every pool of that architecture from.
        config
            .images_for_arch
            .entry(arch)
            .or_insert_with(|| image.clone());
        config.node_configs.insert(
            node.name.clone(),
            NodeConfig {
                cloud_init: artifact.contents.clone(),
                labels: node
                    .labels
                    .iter()
                    .map(|l| (l.key.clone(), l.value.clone()))
                    .collect(),
                taints: node.taints.clone(),
                images_for_arch: BTreeMap::from([(arch, image)]),
                firewalls: ports_firewall
                    .get(&node.name)
                    .cloned()
                    .into_iter()
                    .collect(),
            },
        );
        args.push(nodes_arg(
            pool.min,
            pool.max,
            server_type,
            location,
            &pool.name,
        ));
    }
    Ok((config, args))
}

/// How `meshboot autoscaler` hands the JSON over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// `HCLOUD_CLUSTER_CONFIG` from the Secret's key of that name (base64 of the JSON).
    #[default]
    Env,
    /// The JSON as the Secret's `cluster-config.json`, mounted as a file that
    /// `HCLOUD_CLUSTER_CONFIG_FILE` names: no size limit but the Secret's.
    File,
}

/// How the README's Deployment (the provider's example
/// `examples/cluster-autoscaler-run-on-master.yaml`: Deployment `cluster-autoscaler` in
/// `kube-system`) is restarted. The provider reads `HCLOUD_CLUSTER_CONFIG` (or the file) once,
/// in `newManager` at start-up (hetzner_manager.go; hetzner_cloud_provider.go `BuildHetzner`),
/// and an environment variable from a `secretKeyRef` is fixed when the container starts, so a
/// re-applied Secret reaches new servers only after a restart.
pub const RESTART: &str = "kubectl -n kube-system rollout restart deployment/cluster-autoscaler";

/// The environment variable naming the cloud firewall of every server the autoscaler
/// creates (hetzner_manager.go `newManager`, read once at start-up; hcloud-go's
/// `FirewallClient.Get`: "If the Firewall does not exist, nil is returned", so a missing
/// one is silently not attached).
pub const FIREWALL_ENV: &str = "HCLOUD_FIREWALL";
/// The environment variable naming the one SSH key put on every server the autoscaler
/// creates (hetzner_manager.go `newManager`: one `client.SSHKey.Get`; hetzner_node_group.go
/// `createServer`: `opts.SSHKeys = []*hcloud.SSHKey{n.manager.sshKey}`). There is no
/// per-pool SSH key in `NodeConfig` (kubernetes/autoscaler @55c37cd).
pub const SSH_KEY_ENV: &str = "HCLOUD_SSH_KEY";

/// What `HCLOUD_SSH_KEY` can be for the pools of a plan.
#[derive(Debug, PartialEq, Eq)]
pub enum SshKey {
    /// The key, and the pools' other keys, which no server gets.
    Key { key: String, left_out: Vec<String> },
    /// No key, and why.
    None { why: &'static str },
}

/// The pools' SSH key: the provider puts one key on every pool's servers, so meshboot gives
/// it the first key (in the first pool's `hcloud.ssh_keys` order) that every pool lists;
/// none when a pool lists none (a key it did not ask for would be access the spec does not
/// grant) or no key is common to all. The keys left out are named.
pub fn pool_ssh_key(plan: &ClusterPlan) -> SshKey {
    let lists: Vec<&[String]> = plan
        .nodes
        .iter()
        .filter(|n| n.pool.is_some())
        .map(|n| n.hcloud.ssh_keys.as_deref().unwrap_or_default())
        .collect();
    if lists.iter().all(|l| l.is_empty()) {
        return SshKey::None {
            why: "no pool has hcloud.ssh_keys",
        };
    }
    if lists.iter().any(|l| l.is_empty()) {
        return SshKey::None {
            why: "a pool has no hcloud.ssh_keys, and the provider takes one key for every pool",
        };
    }
    let Some(key) = lists[0]
        .iter()
        .find(|k| lists.iter().all(|l| l.contains(k)))
    else {
        return SshKey::None {
            why: "no key is in every pool's hcloud.ssh_keys, and the provider takes one key for every pool",
        };
    };
    let mut left_out: Vec<String> = lists
        .iter()
        .flat_map(|l| l.iter())
        .filter(|k| *k != key)
        .cloned()
        .collect();
    left_out.sort();
    left_out.dedup();
    SshKey::Key {
        key: key.clone(),
        left_out,
    }
}

/// The Secret's name.
pub fn secret_name(cluster: &str) -> String {
    format!("meshboot-{cluster}-autoscaler")
}

#[derive(Serialize)]
struct Secret<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    #[serde(rename = "type")]
    secret_type: &'static str,
    data: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    namespace: &'static str,
    labels: BTreeMap<&'static str, &'static str>,
}

/// What `meshboot autoscaler` prints: the Secret as YAML, after comments that say how to run
/// the autoscaler with it (its `--nodes` arguments and environment).
pub fn secret(
    spec: &Spec,
    plan: &ClusterPlan,
    artifacts: &[Artifact],
    delivery: Delivery,
) -> Result<String, Error> {
    let (config, args) = cluster_config(spec, plan, artifacts)?;
    let json = serde_json::to_string(&config)
        .map_err(|e| Error::Internal(format!("error: internal error: {e}\n")))?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let name = secret_name(&plan.cluster);
    let (key, value) = match delivery {
        Delivery::Env => {
            let value = b64(&json);
            let env_len = CONFIG_ENV.len() + 1 + value.len() + 1;
            if env_len > MAX_ENV_STRING {
                return Err(Error::InvalidSpec(format!(
                    "error: {CONFIG_ENV} would be {env_len} bytes, over the kernel's {MAX_ENV_STRING}-byte limit on one environment variable (the autoscaler would not start: \"argument list too long\")\n  = help: pass --config-file: the Secret then holds the JSON as {CONFIG_FILE_KEY}, mounted as a file that {CONFIG_FILE_ENV} names ({} bytes)\n",
                    json.len()
                )));
            }
            (CONFIG_ENV, value)
        }
        Delivery::File => (CONFIG_FILE_KEY, json.clone()),
    };
    let data_len = b64(&value).len();
    if value.len() > MAX_SECRET {
        return Err(Error::InvalidSpec(format!(
            "error: the Secret would hold {} bytes, over Kubernetes' {MAX_SECRET}-byte limit on a Secret ({data_len} bytes as base64 in the manifest)\n  = help: fewer pools, or smaller pool files (`--compress`)\n",
            value.len()
        )));
    }
    let manifest = Secret {
        api_version: "v1",
        kind: "Secret",
        metadata: Metadata {
            name: &name,
            namespace: "kube-system",
            labels: BTreeMap::from([("app.kubernetes.io/managed-by", "meshboot")]),
        },
        secret_type: "Opaque",
        data: BTreeMap::from([(key, b64(&value))]),
    };
    let yaml = serde_yaml::to_string(&manifest)
        .map_err(|e| Error::Internal(format!("error: internal error: {e}\n")))?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The Hetzner cluster-autoscaler's configuration for cluster {}, written by meshboot.\n# It holds secrets (every pool's first-boot file): apply it, do not commit it.\n#   meshboot autoscaler SPEC | kubectl apply --server-side -f -\n# The autoscaler reads it only when it starts: after re-applying it (a pool's new key, a new\n# K3s version), restart the autoscaler, or new servers keep getting the old files:\n#   {RESTART}",
        plan.cluster
    );
    let _ = writeln!(
        out,
        "# Run cluster-autoscaler with --cloud-provider=hetzner, one --nodes=MIN:MAX:TYPE:LOCATION:POOL per pool:"
    );
    for a in &args {
        let _ = writeln!(out, "#   {a}");
    }
    let _ = writeln!(
        out,
        "# and this environment (HCLOUD_TOKEN from a Secret of your own):"
    );
    let env_value = |name: &str, value: &str| -> Result<String, Error> {
        // The value as YAML writes it (quoted when it must be): SSH key names may hold
        // anything but a comma or a double quote (crate::validate).
        let value = serde_yaml::to_string(value)
            .map_err(|e| Error::Internal(format!("error: internal error: {e}\n")))?;
        Ok(format!(
            "#   - name: {name}\n#     value: {}\n",
            value.trim_end()
        ))
    };
    match delivery {
        Delivery::Env => {
            let _ = writeln!(
                out,
                "#   - name: {CONFIG_ENV}\n#     valueFrom: {{ secretKeyRef: {{ name: {name}, key: {CONFIG_ENV} }} }}"
            );
        }
        Delivery::File => {
            out.push_str(&env_value(
                CONFIG_FILE_ENV,
                &format!("{CONFIG_MOUNT}/{CONFIG_FILE_KEY}"),
            )?);
        }
    }
    out.push_str(&env_value(FIREWALL_ENV, &cluster_firewall(&plan.cluster))?);
    let ssh_key = pool_ssh_key(plan);
    if let SshKey::Key { key, .. } = &ssh_key {
        out.push_str(&env_value(SSH_KEY_ENV, key)?);
    }
    if delivery == Delivery::File {
        let _ = writeln!(
            out,
            "# with the Secret mounted at {CONFIG_MOUNT} (a volume `secret: {{ secretName: {name} }}`)."
        );
    }
    let pool_firewalls = config
        .node_configs
        .values()
        .any(|n| !n.firewalls.is_empty());
    let _ = writeln!(
        out,
        "{}",
        if pool_firewalls {
            "# HCLOUD_FIREWALL is the cloud firewall `meshboot hcloud SPEC` creates, as it creates the\n# pools' own (nodeConfigs.<pool>.firewalls): run its script before the autoscaler starts (a\n# missing HCLOUD_FIREWALL is silently not attached, a missing pool firewall stops it)."
        } else {
            "# HCLOUD_FIREWALL is the cloud firewall `meshboot hcloud SPEC` creates: run its script\n# before the autoscaler starts (a missing one is silently not attached)."
        }
    );
    match ssh_key {
        SshKey::Key { left_out, .. } if left_out.is_empty() => {}
        SshKey::Key { left_out, .. } => {
            let _ = writeln!(
                out,
                "# {SSH_KEY_ENV}: the provider puts one key on every pool's servers; not given: {}.",
                left_out.join(", ")
            );
        }
        SshKey::None { why } => {
            let _ = writeln!(
                out,
                "# No {SSH_KEY_ENV}: {why}; the pools' servers get no SSH key."
            );
        }
    }
    for (pool, node) in &config.node_configs {
        let _ = writeln!(
            out,
            "# nodeConfigs.{pool}.cloudInit: {} bytes, sha256 {} (the pool's built file)",
            node.cloud_init.len(),
            sha256_hex(node.cloud_init.as_bytes())
        );
    }
    out.push_str(&yaml);
    Ok(out)
}
