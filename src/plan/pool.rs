//! The plan's pool part: what makes a pool node different from a fixed one. It is named
//! after its server, which the Hetzner cluster-autoscaler creates as `<pool>-<hex>`, so its
//! name is read at boot (from the source its OS makes reliable) and checked before anything
//! uses it; and its labels and taints are the ones the autoscaler is told about.

use super::Envelope;
use serde::Serialize;
use std::fmt;

/// Hetzner's metadata service: the server's name (afterburn's hetzner provider reads the
/// same endpoint, coreos/afterburn src/providers/hetzner/mod.rs, `hostname()`).
pub const HETZNER_HOSTNAME_URL: &str = "http://169.254.169.254/hetzner/v1/metadata/hostname";
/// Hetzner's metadata service: the server's ID, a number, as plain text (docs.hetzner.cloud
/// "Server Metadata": `/hetzner/v1/metadata/instance-id`).
pub const HETZNER_INSTANCE_ID_URL: &str = "http://169.254.169.254/hetzner/v1/metadata/instance-id";
/// The provider-ID prefix of Hetzner Cloud servers (kubernetes/autoscaler
/// cluster-autoscaler/cloudprovider/hetzner/hetzner_cloud_provider.go, `providerIDPrefix`).
pub const HCLOUD_PROVIDER_ID_PREFIX: &str = "hcloud://";

/// The provider ID a pool node registers with, `hcloud://<server id>`, the ID read at boot.
///
/// Why: the cluster-autoscaler matches its servers to nodes by provider ID. Its Hetzner
/// provider names each server `hcloud://<id>` (hetzner_node_group.go `toInstance`,
/// `toProviderID`), and finds a node's server by `node.Spec.ProviderID` when the node has
/// one: any prefix but `hcloud://` gives no server, with no fallback to the node's name
/// (hetzner_manager.go `serverForNode`: "Any other provider ID prefix is invalid, and we
/// return no server"). K3s's embedded cloud controller gives every node `k3s://<node name>`
/// (k3s-io/k3s pkg/cloudprovider/instances.go `InstanceMetadata`), so without this a pool's
/// servers would never count as registered: the autoscaler would delete them after
/// `--max-node-provision-time` and could never scale the pool down.
///
/// How: K3s passes the kubelet no `--provider-id` of its own (pkg/daemons/agent
/// agent_linux.go, `kubeletArgsAndConfig`: with its cloud controller on, only
/// `cloud-provider=external`), and passes `kubelet-arg` values through (pkg/util/args.go
/// `GetArgs`: a value replaces K3s's own for that flag, repeated ones all go through). The
/// kubelet sets `spec.providerID` from `--provider-id` when it registers the node
/// (kubernetes pkg/kubelet/kubelet_node_status.go, `initialNode`), and K3s's cloud controller
/// keeps a provider ID the node already has (`InstanceMetadata`: "if node.Spec.ProviderID
/// != "" { metadata.ProviderID = node.Spec.ProviderID }"; its `InstanceExists` is always
/// true, so the node is never deleted for it). So no `disable-cloud-controller` and no
/// Hetzner cloud controller is needed.
///
/// Pools only: they are the nodes the autoscaler manages and the only ones meshboot knows
/// run on Hetzner Cloud (the provider creates them). A fixed node may run anywhere (a file
/// pasted into another provider's console), where this metadata service does not exist, and
/// the autoscaler neither creates nor deletes it: a provider ID would buy it nothing, while
/// reading one would make its boot depend on Hetzner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderId {
    /// Where the bootstrap reads the server's ID.
    pub url: &'static str,
    /// What goes before the ID.
    pub prefix: &'static str,
}

impl ProviderId {
    /// A Hetzner Cloud server's: `hcloud://<id>`, the ID from the metadata service.
    pub fn hetzner() -> ProviderId {
        ProviderId {
            url: HETZNER_INSTANCE_ID_URL,
            prefix: HCLOUD_PROVIDER_ID_PREFIX,
        }
    }
}

/// A pool: one plan (and one file) for every server the autoscaler creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolPlan {
    /// The prefix of its servers' names: each is `<name>-<hex>`.
    pub name: String,
    /// `--nodes=MIN:MAX:...`.
    pub min: u32,
    pub max: u32,
    /// Where the bootstrap reads the server's name.
    pub name_source: NameSource,
}

/// Where a pool node learns its server's name at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NameSource {
    /// The kernel's hostname (`uname -n`): cloud-init's Hetzner datasource takes
    /// `local-hostname` from the metadata's `hostname` (the server's name;
    /// cloudinit/sources/DataSourceHetzner.py), and its `set_hostname` module sets it in
    /// the init stage (`cloud_init_modules` of /etc/cloud/cloud.cfg), before the config
    /// stage's `runcmd` starts the bootstrap unit.
    Hostname,
    /// The metadata service itself. Flatcar and Fedora CoreOS set no hostname from
    /// Ignition, and whether Afterburn's hostname unit runs on Hetzner depends on the
    /// image, so the bootstrap asks the source Afterburn would ask.
    Metadata { url: &'static str },
}

impl NameSource {
    /// The reliable source on `envelope`'s OSes.
    pub fn for_envelope(envelope: Envelope) -> NameSource {
        match envelope {
            Envelope::CloudInit => NameSource::Hostname,
            Envelope::Ignition => NameSource::Metadata {
                url: HETZNER_HOSTNAME_URL,
            },
        }
    }
}

/// A Kubernetes node label, as K3s registers it (`node-label: key=value`) and as the
/// autoscaler is told about it (`nodeConfigs.<pool>.labels`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

/// A Kubernetes taint, parsed from `key[=value]:Effect` (validated before planning). K3s
/// takes it as written (`node-taint`); the autoscaler takes apiv1.Taint's JSON shape
/// (`{"key", "value", "effect"}`, `value` omitted when empty: k8s.io/api core/v1 types.go,
/// `Value string json:"value,omitempty"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taint {
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
}

impl Taint {
    /// A taint from its spec form, which validation checked.
    pub fn parse(text: &str) -> Taint {
        let (kv, effect) = text.rsplit_once(':').unwrap_or((text, ""));
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        Taint {
            key: key.to_string(),
            value: value.to_string(),
            effect: effect.to_string(),
        }
    }
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.key, self.effect)
        } else {
            write!(f, "{}={}:{}", self.key, self.value, self.effect)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_read_back_as_written() {
        for text in [
            "dedicated=edge:NoSchedule",
            "gpu:NoExecute",
            "a/b=c:PreferNoSchedule",
        ] {
            assert_eq!(Taint::parse(text).to_string(), text);
        }
        assert_eq!(
            Taint::parse("dedicated=edge:NoSchedule"),
            Taint {
                key: "dedicated".into(),
                value: "edge".into(),
                effect: "NoSchedule".into()
            }
        );
        let json = serde_json::to_string(&Taint::parse("gpu:NoExecute")).unwrap();
        assert_eq!(json, r#"{"key":"gpu","effect":"NoExecute"}"#);
    }
}
