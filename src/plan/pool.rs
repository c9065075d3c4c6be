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
