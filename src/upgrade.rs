//! Beside stage 4: the system-upgrade-controller Plans `meshboot upgrade` prints, which
//! upgrade the cluster's existing nodes to `k3s.version` (or follow `k3s.channel`).
//!
//! The shape is the controller's CRD (rancher/system-upgrade-controller,
//! `pkg/apis/upgrade.cattle.io/v1/types.go` and the generated
//! `pkg/crds/yaml/generated/upgrade.cattle.io_plans.yaml`; `examples/k3s-upgrade.yaml`
//! for K3s): `upgrade.cattle.io/v1` `Plan`, namespaced; `spec.upgrade.image` is required;
//! `concurrency`, `cordon`, `nodeSelector` (a LabelSelector), `serviceAccountName`,
//! `tolerations`, `version` or `channel`, and a `prepare` container that runs before the
//! upgrade. The `rancher/k3s-upgrade` image's `prepare PLAN` waits until that plan has
//! finished, so agents start after every server is done.
//!
//! Servers are picked by the label K3s gives them, `node-role.kubernetes.io/control-plane:
//! "true"` (K3s `pkg/node`: control-plane, master and, with embedded etcd, etcd roles),
//! agents by its absence; a node labelled `k3s-upgrade: "false"` (or `disabled`) is left
//! alone, as in the upstream example. Every job tolerates every taint, so nodes the spec
//! taints (and servers tainted by hand) upgrade too. YAML is serialized with serde_yaml.

use crate::plan::ClusterPlan;
use crate::spec::Spec;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where the controller's manifest installs it, with its service account.
pub const NAMESPACE: &str = "system-upgrade";
pub const SERVICE_ACCOUNT: &str = "system-upgrade";
/// K3s's upgrade image (its tag is the plan's resolved version).
pub const K3S_UPGRADE_IMAGE: &str = "rancher/k3s-upgrade";
/// The channel server K3s documents for automated upgrades (docs.k3s.io, "Automated
/// Upgrades").
pub const CHANNEL_URL: &str = "https://update.k3s.io/v1-release/channels/";
pub const SERVER_PLAN: &str = "k3s-server";
pub const AGENT_PLAN: &str = "k3s-agent";
const CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
const OPT_OUT: &str = "k3s-upgrade";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: PlanSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metadata {
    pub name: &'static str,
    pub namespace: &'static str,
    pub labels: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSpec {
    pub concurrency: u32,
    pub cordon: bool,
    pub node_selector: Selector,
    pub service_account_name: &'static str,
    pub tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepare: Option<Container>,
    pub upgrade: Container,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requirement {
    pub key: &'static str,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Toleration {
    pub operator: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub image: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<&'static str>,
}

/// The server plan, then the agent plan (only when the spec has agents).
pub fn plans(spec: &Spec, plan: &ClusterPlan) -> Vec<Plan> {
    let (version, channel) = match (&spec.k3s.version, &spec.k3s.channel) {
        (Some(v), _) => (Some(v.clone()), None),
        (None, c) => (
            None,
            Some(format!("{CHANNEL_URL}{}", c.as_deref().unwrap_or("stable"))),
        ),
    };
    let opt_out = Requirement {
        key: OPT_OUT,
        operator: "NotIn",
        values: vec!["disabled", "false"],
    };
    let make = |name: &'static str, role: Requirement, prepare: Option<Container>| Plan {
        api_version: "upgrade.cattle.io/v1",
        kind: "Plan",
        metadata: Metadata {
            name,
            namespace: NAMESPACE,
            labels: BTreeMap::from([("app.kubernetes.io/managed-by", "meshboot".to_string())]),
        },
        spec: PlanSpec {
            // One node at a time: servers are etcd members (losing two of three loses
            // quorum); agents one by one keep workloads schedulable.
            concurrency: 1,
            cordon: true,
            node_selector: Selector {
                match_expressions: vec![role, opt_out.clone()],
            },
            service_account_name: SERVICE_ACCOUNT,
            // An empty key with operator Exists tolerates every taint (Kubernetes,
            // "Taints and Tolerations").
            tolerations: vec![Toleration { operator: "Exists" }],
            version: version.clone(),
            channel: channel.clone(),
            prepare,
            upgrade: Container {
                image: K3S_UPGRADE_IMAGE,
                args: Vec::new(),
            },
        },
    };
    let mut out = vec![make(
        SERVER_PLAN,
        Requirement {
            key: CONTROL_PLANE,
            operator: "In",
            values: vec!["true"],
        },
        None,
    )];
    if plan.nodes.iter().any(|n| !n.role.is_server()) {
        out.push(make(
            AGENT_PLAN,
            Requirement {
                key: CONTROL_PLANE,
                operator: "DoesNotExist",
                values: Vec::new(),
            },
            Some(Container {
                image: K3S_UPGRADE_IMAGE,
                args: vec!["prepare", SERVER_PLAN],
            }),
        ));
    }
    out
}

/// The plans as `meshboot upgrade` prints them: a comment, then one YAML document each.
pub fn text(spec: &Spec, plan: &ClusterPlan) -> String {
    let target = match (&spec.k3s.version, &spec.k3s.channel) {
        (Some(v), _) => v.clone(),
        (None, c) => format!("channel {}", c.as_deref().unwrap_or("stable")),
    };
    let mut out = format!(
        "# system-upgrade-controller Plans for cluster {}: K3s {target}, servers one at a time\n\
         # (cordoned), then agents. Install the controller first (README, \"Upgrades\"),\n\
         # then: kubectl apply -f this-file. Generated by meshboot.\n",
        spec.cluster.name
    );
    for p in plans(spec, plan) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&p).unwrap_or_default());
    }
    out
}
