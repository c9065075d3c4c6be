//! Stage 2a, resolution: what the spec means for each node, decided once for
//! [`crate::validate`] and [`crate::plan`] alike.
//!
//! [`expand`] turns the node entries into the nodes there will be (`count` expanded, the
//! `defaults` merged in), each carrying the index of the entry it came from, so that a
//! problem with a node is reported where its entry is written. [`node_backend`] is the
//! firewall a node really gets. [`parse_args`] reads the extra K3s flags. Nothing here
//! reports a problem: validation judges what this resolves, the plan builds on it.

use crate::spec::{Autoscale, FirewallBackend, Hcloud, NodeFields, NodeSpec, Os, Role, Spec};

/// The OS of a node that names none, in its entry or in `defaults`.
pub const DEFAULT_OS: Os = Os::Ubuntu2404;

/// A node after `count` expansion and defaults merging.
#[derive(Debug, Clone)]
pub struct ExpandedNode {
    pub name: String,
    pub role: Role,
    /// The index in `nodes:` of the entry it came from.
    pub entry: usize,
    /// The entry is a pool: one node plan (and file) for every server the autoscaler makes.
    pub pool: Option<Autoscale>,
    pub fields: NodeFields,
}

/// The names of the nodes an entry makes: its name, or with `count: N` NAME-1 .. NAME-N. A
/// pool makes one, its name (the prefix of its servers' names).
pub fn entry_names(entry: &NodeSpec) -> Vec<String> {
    match entry.count {
        None => vec![entry.name.clone()],
        Some(c) => (1..=c).map(|k| format!("{}-{k}", entry.name)).collect(),
    }
}

/// Expands `count` and merges `defaults` (a node's own value wins), in spec order.
pub fn expand(spec: &Spec) -> Vec<ExpandedNode> {
    let d = &spec.defaults;
    let mut out = Vec::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        let own = &n.fields;
        let fields = NodeFields {
            os: own.os.or(d.os),
            hcloud: merge_hcloud(d.hcloud.as_ref(), own.hcloud.as_ref()),
            labels: own.labels.clone().or_else(|| d.labels.clone()),
            taints: own.taints.clone().or_else(|| d.taints.clone()),
            firewall: own.firewall.clone().or_else(|| d.firewall.clone()),
        };
        out.extend(entry_names(n).into_iter().map(|name| ExpandedNode {
            name,
            role: n.role,
            entry: i,
            pool: n.autoscale,
            fields: fields.clone(),
        }));
    }
    out
}

/// `defaults.hcloud` under a node's own `hcloud`: each field the node sets wins, as a
/// whole (a node's `ssh_keys` replaces the default list).
fn merge_hcloud(d: Option<&Hcloud>, n: Option<&Hcloud>) -> Option<Hcloud> {
    fn pick<T: Clone>(
        d: Option<&Hcloud>,
        n: Option<&Hcloud>,
        f: fn(&Hcloud) -> &Option<T>,
    ) -> Option<T> {
        n.and_then(|n| f(n).clone())
            .or_else(|| d.and_then(|d| f(d).clone()))
    }
    match (d, n) {
        (None, None) => None,
        (d, n) => Some(Hcloud {
            server_type: pick(d, n, |h| &h.server_type),
            location: pick(d, n, |h| &h.location),
            image: pick(d, n, |h| &h.image),
            ssh_keys: pick(d, n, |h| &h.ssh_keys),
        }),
    }
}

/// What a node's `hcloud.image` names, as Hetzner reads it. `hcloud server create --image`
/// takes an ID or a name (hetznercloud/cli internal/cmd/server/create.go:
/// `Image().GetForArchitecture(idOrName, arch)`); the cluster-autoscaler's `imagesForArch`
/// also takes a label selector of snapshots and uses the newest one of the server's
/// architecture (kubernetes/autoscaler cloudprovider/hetzner/hetzner_node_group.go,
/// `findImage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef<'a> {
    /// Digits only: an image ID (a snapshot's, usually).
    Id(&'a str),
    /// A label selector: it holds `=`, `!` or `(` (Hetzner's selector syntax: `k=v`,
    /// `k==v`, `k!=v`, `!k`, `k in (a,b)`, `k notin (a,b)`).
    Selector(&'a str),
    /// Anything else: an image name such as `ubuntu-24.04`.
    Name(&'a str),
}

/// Reads `hcloud.image` as Hetzner does (see [`ImageRef`]).
pub fn image_ref(image: &str) -> ImageRef<'_> {
    if !image.is_empty() && image.bytes().all(|b| b.is_ascii_digit()) {
        ImageRef::Id(image)
    } else if image.contains(['=', '!', '(']) {
        ImageRef::Selector(image)
    } else {
        ImageRef::Name(image)
    }
}

/// The terms of a label selector, split at the commas outside parentheses.
pub fn selector_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(selector[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(selector[start..].trim());
    terms
}

/// The OS a node runs.
pub fn node_os(n: &ExpandedNode) -> Os {
    n.fields.os.unwrap_or(DEFAULT_OS)
}

/// The firewall backend the spec asks for on a node: its own, or the cluster's.
pub fn declared_backend(spec: &Spec, n: &ExpandedNode) -> FirewallBackend {
    n.fields
        .firewall
        .as_ref()
        .and_then(|f| f.backend)
        .unwrap_or(spec.firewall.backend)
}

/// The firewall backend a node really gets: ufw does not exist on Flatcar or Fedora
/// CoreOS, so those nodes get the same rules through nftables (validation warns).
pub fn effective_backend(declared: FirewallBackend, os: Os) -> FirewallBackend {
    match (declared, os) {
        (FirewallBackend::Ufw, Os::Flatcar | Os::FedoraCoreos) => FirewallBackend::Nftables,
        (b, _) => b,
    }
}

/// [`effective_backend`] of a node.
pub fn node_backend(spec: &Spec, n: &ExpandedNode) -> FirewallBackend {
    effective_backend(declared_backend(spec, n), node_os(n))
}

/// The items of a comma-separated value, trimmed: `--tls-san=a.example, b.example`.
pub fn comma_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Parses `--flag=value` / `--flag` arguments into config.yaml keys, in order.
pub fn parse_args(args: &[String]) -> Vec<(String, Option<String>)> {
    args.iter()
        .map(|a| {
            let a = a.trim_start_matches('-');
            match a.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (a.to_string(), None),
            }
        })
        .collect()
}
