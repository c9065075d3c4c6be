//! Stage 2b, validation: semantic checks over a structurally valid [`Spec`].
//!
//! Returns every problem as a [`Diagnostic`] (errors and warnings), never only the first.
//! Each problem is reported once, at the place in the spec where it is written: a label
//! inherited from `defaults` is reported at `defaults.labels`, not once per node.
//! Anything that would reach a shell, YAML or JSON is checked here against a strict
//! character set, so that the renderer's quoting is a second line of defence, not the
//! only one. A value that looks like a secret was refused while reading
//! ([`crate::reader::pasted_secrets`]); whatever else is wrong with it here is not reported
//! again (see [`crate::diagnostics::drop_shadowed`]).

use crate::diagnostics::Diagnostic;
use crate::firewall::{K3S_INTERNAL_TCP, K3S_INTERNAL_UDP, overlaps};
use crate::k3s_flags::Flag;
use crate::problem::{Flaw, Problem, Subject, VersionHint};
use crate::redact::url_has_credentials;
use crate::resolve::{
    ExpandedNode, ImageRef, comma_list, declared_backend, expand, image_ref, node_backend, node_os,
    parse_args, selector_terms,
};
use crate::spec::{
    FirewallBackend, FlannelBackend, MAX_POOL_NAME, NodeFields, Os, PortRange, Role, Spec,
};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

use crate::firewall::{TAILSCALE_V4, TAILSCALE_V6};

/// The most servers (embedded etcd members) a cluster may have.
pub const MAX_SERVERS: usize = 7;

/// The first K3s release that reads the bootstrap's `config.yaml.d` drop-in as written
/// ([`crate::plan::boot::BootConfig`]: the node's mesh address and join target), as (minor,
/// patch) of v1.MINOR.PATCH: the directory came in v1.21.0 (k3s-io/k3s#3205, #3207), the
/// `key+:` appending the drop-in uses for `tls-san` and `kubelet-arg` in k3s-io/k3s#3229,
/// merged after v1.21.0 and shipped in v1.21.1. An older K3s ignores the drop-in (or its
/// appended keys): a server would bind to the public interface and start a cluster of its
/// own, an agent would not find its server.
const FIRST_DROP_IN: (u32, u32) = (21, 1);

/// The first K3s release of each line with the fix for flannel.1 disappearing when its
/// interface (tailscale0) is recreated: k3s-io/k3s#12436, fixed by #14086 and backported in
/// #14117 (1.33, validated on v1.33.13-rc2), #14116 (1.34, v1.34.9-rc2), #14115 (1.35,
/// v1.35.6-rc2) and #14114 (1.36, v1.36.2-rc2). Lines before 1.33 got no backport; later ones
/// branched after the fix.
const FLANNEL_FIX: &[(u32, u32, &str)] = &[
    (33, 13, "v1.33.13+k3s1"),
    (34, 9, "v1.34.9+k3s1"),
    (35, 6, "v1.35.6+k3s1"),
    (36, 2, "v1.36.2+k3s1"),
];

/// Components K3s can `--disable`.
const K3S_COMPONENTS: &[&str] = &[
    "coredns",
    "servicelb",
    "traefik",
    "local-storage",
    "metrics-server",
    "runtimes",
];

pub fn validate(spec: &Spec) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let name = &spec.cluster.name;
    d.extend(flawed(
        "cluster.name",
        Subject::ClusterName,
        name,
        label_problem(name),
    ));
    let nodes = expand(spec);
    check_names(spec, &nodes, &mut d);
    check_fields(spec, &spec.defaults, "defaults", &mut d);
    for (i, n) in spec.nodes.iter().enumerate() {
        check_fields(spec, &n.fields, &format!("nodes[{i}]"), &mut d);
    }
    check_servers(spec, &nodes, &mut d);
    check_pools(spec, &mut d);
    check_os_firewall(spec, &nodes, &mut d);
    check_tailscale(spec, &mut d);
    check_untagged(spec, &mut d);
    check_k3s(spec, &mut d);
    check_flannel_fix(spec, &mut d);
    check_firewall(spec, &mut d);
    d
}

/// What a spec is compiled for beyond its first-boot files: the delivery commands need
/// more of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `meshboot hcloud`: every fixed node needs a server type, a location and an image
    /// Hetzner can create it from (pools are the autoscaler's).
    Hcloud,
    /// `meshboot packer`: pinned versions to bake, and every node's and pool's server type
    /// (its architecture picks the snapshot it boots from).
    Packer,
}

/// The checks `target` adds to [`validate`], each reported once per place in the spec.
pub fn for_target(spec: &Spec, target: Target) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    let nodes = expand(spec);
    let mut seen = BTreeSet::new();
    let keys: &[&'static str] = match target {
        Target::Hcloud => &["type", "location"],
        Target::Packer => &["type"],
    };
    // Pools are the cluster-autoscaler's to create (`meshboot autoscaler` checks them), but
    // Packer must know their architecture to bake their image.
    for n in nodes
        .iter()
        .filter(|n| target == Target::Packer || n.pool.is_none())
    {
        let h = n.fields.hcloud.clone().unwrap_or_default();
        for key in keys {
            let missing = match *key {
                "type" => h.server_type.is_none(),
                _ => h.location.is_none(),
            };
            if missing && seen.insert((n.entry, *key)) {
                d.push(Diagnostic::new(
                    format!("nodes[{}].name", n.entry),
                    Problem::HcloudMissing {
                        key,
                        command: target.command(),
                    },
                ));
            }
        }
        let os = node_os(n);
        if target == Target::Hcloud && h.image.is_none() && !os_has_stock_image(os) {
            let path = os_path(spec, n);
            if !d.iter().any(|x| x.path == path) {
                d.push(Diagnostic::new(
                    path,
                    Problem::NoStockImage { os: os.name() },
                ));
            }
        }
    }
    if target == Target::Packer {
        if spec.tailscale.version.is_none() {
            d.push(
                Diagnostic::new("tailscale", Problem::UnpinnedBake { what: "Tailscale" }).on_key(),
            );
        }
        if spec.k3s.version.is_none() {
            let at = if spec.k3s.channel.is_some() {
                Diagnostic::new("k3s.channel", Problem::UnpinnedBake { what: "K3s" })
            } else {
                Diagnostic::new("k3s", Problem::UnpinnedBake { what: "K3s" }).on_key()
            };
            d.push(at);
        }
    }
    d
}

impl Target {
    fn command(self) -> &'static str {
        match self {
            Target::Hcloud => "meshboot hcloud",
            Target::Packer => "meshboot packer",
        }
    }
}

/// Hetzner has a stock image for Ubuntu and Debian (named as meshboot's `os`), none for
/// Flatcar or Fedora CoreOS (flatcar.org "Running on Hetzner"; Fedora CoreOS docs,
/// "Provisioning Fedora CoreOS on Hetzner": both install through rescue mode or upload).
pub fn os_has_stock_image(os: Os) -> bool {
    !matches!(os, Os::Flatcar | Os::FedoraCoreos)
}

/// Where a node's OS is written: its entry's `os`, or `defaults.os`.
fn os_path(spec: &Spec, n: &ExpandedNode) -> String {
    if spec.nodes[n.entry].fields.os.is_some() {
        format!("nodes[{}].os", n.entry)
    } else {
        "defaults.os".into()
    }
}

/// RFC 1123 label: lowercase letters, digits and `-`, 1-63 characters, alphanumeric at
/// both ends.
pub fn is_dns_label(s: &str) -> bool {
    label_problem(s).is_none()
}

/// The problem of `value` at `path`, when `flaw` says what is wrong with it.
fn flawed(
    path: impl Into<String>,
    what: Subject,
    value: &str,
    flaw: Option<Flaw>,
) -> Option<Diagnostic> {
    let value = value.to_string();
    flaw.map(|flaw| Diagnostic::new(path, Problem::Flawed { what, value, flaw }))
}

/// What is wrong with `s` as a lowercase DNS label (`None` when it is fine).
fn label_problem(s: &str) -> Option<Flaw> {
    if s.is_empty() {
        return Some(Flaw::Empty);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(if c.is_ascii_uppercase() {
            Flaw::Uppercase(c, "names")
        } else {
            Flaw::Contains(c)
        });
    }
    if s.len() > 63 {
        return Some(Flaw::TooLong {
            len: s.len(),
            max: 63,
        });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some(Flaw::DashAtEnds);
    }
    None
}

/// Why `s` is not a Kubernetes label value: empty, or at most 63 of [A-Za-z0-9-_.],
/// alphanumeric at both ends.
fn label_value_problem(s: &str) -> Option<Flaw> {
    if s.is_empty() {
        return None;
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(Flaw::Contains(c));
    }
    if s.len() > 63 {
        return Some(Flaw::TooLong {
            len: s.len(),
            max: 63,
        });
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric()
        || !s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    {
        return Some(Flaw::NotAlphanumericAtEnds);
    }
    None
}

/// Why `s` is not a Kubernetes qualified name (`name` or `prefix/name`).
fn qualified_name_problem(s: &str) -> Option<Flaw> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(is_dns_label))
    {
        return Some(Flaw::PrefixNotSubdomain(p.to_string()));
    }
    if name.is_empty() {
        return Some(Flaw::EmptyName);
    }
    label_value_problem(name)
}

/// Why `t` is not a taint `key[=value]:Effect`.
fn taint_problem(t: &str) -> Option<Flaw> {
    const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Some(Flaw::Contains(c));
    }
    let Some((kv, effect)) = t.rsplit_once(':') else {
        return Some(Flaw::NoEffect);
    };
    if !EFFECTS.contains(&effect) {
        return Some(match crate::diagnostics::did_you_mean(effect, EFFECTS) {
            Some(suggestion) => Flaw::EffectDidYouMean {
                effect: effect.to_string(),
                suggestion,
            },
            None => Flaw::UnknownEffect(effect.to_string()),
        });
    }
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    if k.is_empty() {
        return Some(Flaw::EmptyKey);
    }
    if let Some(p) = qualified_name_problem(k) {
        return Some(Flaw::KeyThat(Box::new(p)));
    }
    label_value_problem(v).map(|p| Flaw::ValueThat(Box::new(p)))
}

/// Why `image` is not an image ID, an image name or a label selector of snapshots, read
/// as Hetzner reads it ([`image_ref`]). Selector keys and values follow Hetzner's label
/// rules (docs.hetzner.cloud, "Labels": a key is `[prefix/]name`, the name at most 63 of
/// `[a-zA-Z0-9-_.]` starting and ending alphanumeric, the prefix a DNS subdomain; a value
/// is empty or the same as a name), which are Kubernetes' rules.
fn image_problem(image: &str) -> Option<Flaw> {
    match image_ref(image) {
        ImageRef::Id(id) if id.len() > 19 => Some(Flaw::TooLong {
            len: id.len(),
            max: 19,
        }),
        ImageRef::Id(_) => None,
        ImageRef::Name(name) => {
            if name.is_empty() {
                return Some(Flaw::Empty);
            }
            if let Some(c) = name.chars().find(|c| {
                !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
            }) {
                return Some(if c.is_ascii_uppercase() {
                    Flaw::Uppercase(c, "image names")
                } else {
                    Flaw::Contains(c)
                });
            }
            (name.len() > 64).then_some(Flaw::TooLong {
                len: name.len(),
                max: 64,
            })
        }
        ImageRef::Selector(selector) => selector_terms(selector)
            .into_iter()
            .find_map(selector_term_problem),
    }
}

/// Why one term of a label selector is not `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`
/// or `k notin (a,b)` with a valid key and values.
fn selector_term_problem(term: &str) -> Option<Flaw> {
    let bad = || Some(Flaw::SelectorTerm(term.to_string()));
    if term.is_empty() {
        return bad();
    }
    let key_and = |key: &str, values: &[&str]| {
        qualified_name_problem(key.trim())
            .map(|f| Flaw::KeyThat(Box::new(f)))
            .or_else(|| {
                values
                    .iter()
                    .find_map(|v| label_value_problem(v.trim()))
                    .map(|f| Flaw::ValueThat(Box::new(f)))
            })
    };
    if let Some(key) = term.strip_prefix('!') {
        return key_and(key, &[]);
    }
    for op in [" notin ", " in "] {
        if let Some((key, set)) = term.split_once(op) {
            let Some(inner) = set
                .trim()
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
            else {
                return bad();
            };
            let values: Vec<&str> = inner.split(',').collect();
            return key_and(key, &values);
        }
    }
    if term.contains(['(', ')']) {
        return bad();
    }
    let (key, value) = term
        .split_once("!=")
        .or_else(|| term.split_once("=="))
        .or_else(|| term.split_once('='))
        .unwrap_or((term, ""));
    if value.contains(['=', '!']) {
        return bad();
    }
    key_and(key, &[value])
}

/// Why `name` cannot be passed as one `--ssh-key` value. hcloud reads that flag as a
/// comma-separated list (pflag `StringSlice`, parsed as CSV: hetznercloud/cli
/// internal/cmd/server/create.go), so a name holding `,` or `"` would be split or refused.
fn ssh_key_problem(name: &str) -> Option<Flaw> {
    if name.is_empty() {
        return Some(Flaw::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, ',' | '"'))
    {
        return Some(Flaw::Contains(c));
    }
    if name.trim() != name {
        return Some(Flaw::SpaceAtEnds);
    }
    (name.chars().count() > 128).then_some(Flaw::TooLong {
        len: name.chars().count(),
        max: 128,
    })
}

/// Node names after `count` expansion (`nodes`, from [`expand`]): valid hostnames, and
/// unique. Each problem is reported at the name of the entry that makes the node.
fn check_names(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let at = |entry: usize| format!("nodes[{entry}].name");
    // Entries whose own name is wrong: their expanded names are not compared.
    let mut wrong = BTreeSet::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        if let Some(bad) = flawed(at(i), Subject::NodeName, &n.name, label_problem(&n.name)) {
            d.push(bad);
            wrong.insert(i);
        }
    }
    // The last node of an entry has its longest name.
    let mut last_of_entry: BTreeMap<usize, &ExpandedNode> = BTreeMap::new();
    for n in nodes {
        last_of_entry.insert(n.entry, n);
    }
    for (&i, last) in &last_of_entry {
        let base = &spec.nodes[i];
        if last.name.len() > 63 && wrong.insert(i) {
            d.push(Diagnostic::new(
                at(i),
                Problem::CountNameTooLong {
                    count: base.count.unwrap_or(1),
                    len: last.name.len(),
                    shorten_to: 63 - (last.name.len() - base.name.len()),
                },
            ));
        }
    }
    // Expanded name -> the entry that made it first; each pair of entries reported once.
    let mut owner: BTreeMap<&str, usize> = BTreeMap::new();
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    for n in nodes.iter().filter(|n| !wrong.contains(&n.entry)) {
        let first = *owner.entry(&n.name).or_insert(n.entry);
        if first != n.entry && reported.insert((first, n.entry)) {
            let (mine, theirs) = (&spec.nodes[n.entry], &spec.nodes[first]);
            d.push(Diagnostic::new(
                at(n.entry),
                Problem::NameTaken {
                    name: n.name.clone(),
                    entry: (mine.name.clone(), mine.count),
                    first,
                    first_entry: (theirs.name.clone(), theirs.count),
                },
            ));
        }
    }
}

/// Pools: agents only, not with `count`, min at most max, a name that leaves room for the
/// autoscaler's suffix, and neither the server token nor a name of their own from
/// `agent_args`.
fn check_pools(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let mut pools = false;
    for (i, n) in spec.nodes.iter().enumerate() {
        let Some(size) = n.autoscale else { continue };
        pools = true;
        let at = |key: &str| format!("nodes[{i}].{key}");
        if n.role == Role::Server {
            d.push(Diagnostic::new(at("autoscale"), Problem::PoolIsServer).on_key());
        }
        if n.count.is_some() {
            d.push(Diagnostic::new(at("count"), Problem::PoolWithCount));
        }
        if size.min > size.max {
            d.push(Diagnostic::new(
                at("autoscale.min"),
                Problem::PoolMinOverMax {
                    min: size.min,
                    max: size.max,
                },
            ));
        }
        // A name that is no DNS label at all is reported by check_names.
        if n.name.len() > MAX_POOL_NAME && n.name.len() <= 63 {
            d.push(Diagnostic::new(
                at("name"),
                Problem::PoolNameTooLong {
                    len: n.name.len(),
                    max: MAX_POOL_NAME,
                },
            ));
        }
        if n.role == Role::Agent && spec.k3s.agent_token.is_none() {
            d.push(
                Diagnostic::new(
                    at("autoscale"),
                    Problem::PoolGetsServerToken(n.name.clone()),
                )
                .on_key(),
            );
        }
    }
    // Without allow_owned_args, --node-name is refused like every flag meshboot owns.
    if pools && spec.k3s.allow_owned_args {
        for (i, (name, _)) in parse_args(&spec.k3s.agent_args).iter().enumerate() {
            if name == Flag::NodeName.name() {
                d.push(Diagnostic::new(
                    format!("k3s.agent_args[{i}]"),
                    Problem::NodeNameArgWithPools,
                ));
            }
        }
    }
}

/// What the key pools join with means (known once the secrets are read).
pub struct PoolKeys {
    /// It is an OAuth client secret shipped as it is: it never expires, and every pool
    /// node holds it in its user data.
    pub oauth_shipped: bool,
    /// It is the plain pre-auth key the fixed nodes join with: whether their nodes are
    /// ephemeral is the key's, so one of the two kinds of node gets the wrong kind.
    pub shared_plain: bool,
}

/// The warnings about the key pools join with ([`PoolKeys`]), at the field that holds it.
pub fn check_pool_keys(spec: &Spec, keys: &PoolKeys) -> Vec<Diagnostic> {
    let pools: Vec<String> = spec
        .nodes
        .iter()
        .filter(|n| n.autoscale.is_some())
        .map(|n| n.name.clone())
        .collect();
    if pools.is_empty() {
        return Vec::new();
    }
    let field = if spec.tailscale.pool_auth_key.is_some() {
        "tailscale.pool_auth_key"
    } else {
        "tailscale.auth_key"
    };
    let mut d = Vec::new();
    if keys.oauth_shipped {
        d.push(Diagnostic::new(field, Problem::OAuthInPools(pools.clone())));
    }
    if keys.shared_plain {
        d.push(Diagnostic::new(field, Problem::PoolsShareFixedKey(pools)));
    }
    d
}

/// Checks the fields of `defaults` or of one node entry, at their own path.
fn check_fields(spec: &Spec, f: &NodeFields, base: &str, d: &mut Vec<Diagnostic>) {
    for (k, v) in f.labels.iter().flatten() {
        let path = format!("{base}.labels.{k}");
        let key = flawed(&path, Subject::LabelKey, k, qualified_name_problem(k));
        d.extend(match key {
            Some(bad) => Some(bad.on_key()),
            None => flawed(&path, Subject::LabelValue, v, label_value_problem(v)),
        });
    }
    for (i, t) in f.taints.iter().flatten().enumerate() {
        let path = format!("{base}.taints[{i}]");
        d.extend(flawed(path, Subject::Taint, t, taint_problem(t)));
    }
    if let Some(fw) = &f.firewall {
        check_public_ports(
            spec,
            &fw.public_tcp,
            &fw.public_udp,
            &format!("{base}.firewall"),
            d,
        );
    }
    if let Some(h) = &f.hcloud {
        if let Some(image) = &h.image {
            let path = format!("{base}.hcloud.image");
            d.extend(flawed(
                path,
                Subject::HcloudImage,
                image,
                image_problem(image),
            ));
        }
        for (i, key) in h.ssh_keys.iter().flatten().enumerate() {
            let path = format!("{base}.hcloud.ssh_keys[{i}]");
            d.extend(flawed(path, Subject::SshKey, key, ssh_key_problem(key)));
        }
        for (key, value) in [("type", &h.server_type), ("location", &h.location)] {
            if let Some(v) = value
                && !(v.len() <= 32
                    && !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
            {
                d.push(Diagnostic::new(
                    format!("{base}.hcloud.{key}"),
                    Problem::HcloudName {
                        key,
                        value: v.clone(),
                    },
                ));
            }
        }
    }
}

/// How many servers, whether the number suits embedded etcd, and where they are.
fn check_servers(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let servers: Vec<&ExpandedNode> = nodes.iter().filter(|n| n.role == Role::Server).collect();
    if servers.is_empty() && !nodes.is_empty() {
        d.push(Diagnostic::new("nodes", Problem::NoServer));
        return;
    }
    // The last server entry is where adding or removing servers happens.
    let last_entry = spec
        .nodes
        .iter()
        .rposition(|n| n.role == Role::Server)
        .unwrap_or(0);
    let at = if spec.nodes[last_entry].count.is_some() {
        format!("nodes[{last_entry}].count")
    } else {
        format!("nodes[{last_entry}].role")
    };
    let n = servers.len();
    if n > MAX_SERVERS {
        d.push(Diagnostic::new(
            &at,
            Problem::TooManyServers {
                count: n,
                max: MAX_SERVERS,
            },
        ));
    } else if n > 1 && n.is_multiple_of(2) {
        d.push(Diagnostic::new(&at, Problem::EvenServers(n)));
    }
    let locations: BTreeSet<&str> = servers
        .iter()
        .filter_map(|n| n.fields.hcloud.as_ref()?.location.as_deref())
        .collect();
    if locations.len() > 1 {
        let first = servers
            .iter()
            .find_map(|n| n.fields.hcloud.as_ref()?.location.as_deref());
        let other = servers
            .iter()
            .find(|n| n.fields.hcloud.as_ref().and_then(|h| h.location.as_deref()) != first);
        let path = other
            .map(|n| location_path(spec, n))
            .unwrap_or_else(|| "nodes".into());
        d.push(Diagnostic::new(
            path,
            Problem::ServersSpanLocations(locations.iter().map(|l| l.to_string()).collect()),
        ));
    }
}

/// Where a node's Hetzner location is written: on its entry, or in `defaults`.
fn location_path(spec: &Spec, n: &ExpandedNode) -> String {
    let entry = &spec.nodes[n.entry];
    if entry
        .fields
        .hcloud
        .as_ref()
        .is_some_and(|h| h.location.is_some())
    {
        format!("nodes[{}].hcloud.location", n.entry)
    } else {
        "defaults.hcloud.location".into()
    }
}

/// Where the spec asks for ufw and the OS has none (see
/// [`crate::resolve::effective_backend`]): say that those nodes use nftables, once per
/// place the OS is written.
fn check_os_firewall(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let mut seen = BTreeSet::new();
    for n in nodes {
        if declared_backend(spec, n) == node_backend(spec, n) {
            continue;
        }
        let path = if spec.nodes[n.entry].fields.os.is_some() {
            format!("nodes[{}].os", n.entry)
        } else {
            "defaults.os".into()
        };
        if seen.insert(path.clone()) {
            let os = node_os(n).name();
            d.push(Diagnostic::new(path, Problem::NoUfw { os }));
        }
    }
}

/// Why `tag` is not a Tailscale tag (`tag:` then lowercase letters, digits and `-`).
fn tag_problem(tag: &str) -> Option<Flaw> {
    match tag.strip_prefix("tag:") {
        None => Some(Flaw::NoTagPrefix),
        Some("") => Some(Flaw::NoTagName),
        Some(t) if t.len() > 64 => Some(Flaw::TagTooLong(t.len())),
        Some(t) => t
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            .map(|c| {
                if c.is_ascii_uppercase() {
                    Flaw::Uppercase(c, "tags")
                } else {
                    Flaw::Contains(c)
                }
            }),
    }
}

/// Why `s` is not a policy selector meshboot writes into a `src` or `tagOwners`: a user
/// (`alice@example.com`, `alice@github`), `group:NAME`, `autogroup:NAME` or `tag:NAME`
/// (tailscale.com/kb/1337/policy-syntax, "Tag owners" and "Autogroups"). `*` is refused:
/// policy tests cannot use it as a source, and it would open the API to every device.
fn selector_problem(s: &str) -> Option<Flaw> {
    if s.is_empty() {
        return Some(Flaw::Empty);
    }
    if s == "*" {
        return Some(Flaw::Wildcard);
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '@' | ':' | '.' | '-' | '_' | '+')))
    {
        return Some(Flaw::Contains(c));
    }
    if s.len() > 256 {
        return Some(Flaw::TooLong {
            len: s.len(),
            max: 256,
        });
    }
    if s.starts_with("tag:") {
        return tag_problem(s);
    }
    let named = ["group:", "autogroup:"].iter().any(|p| {
        s.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && !n.contains(':'))
    });
    let user = s
        .split_once('@')
        .is_some_and(|(u, domain)| !u.is_empty() && !domain.is_empty() && !s.contains(':'));
    (!named && !user).then_some(Flaw::NotASelector)
}

/// Why `s` is not a tailnet's DNS name (`example-org.ts.net`): lowercase labels, at least two.
fn tailnet_problem(s: &str) -> Option<Flaw> {
    if s.is_empty() {
        return Some(Flaw::Empty);
    }
    if s.len() > 253 {
        return Some(Flaw::TooLong {
            len: s.len(),
            max: 253,
        });
    }
    if let Some(flaw) = s.split('.').find_map(label_problem) {
        return Some(flaw);
    }
    (!s.contains('.')).then_some(Flaw::OneLabel)
}

fn check_tailscale(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let ts = &spec.tailscale;
    for (field, tags) in [
        ("tags", &ts.tags),
        ("server_tags", &ts.server_tags),
        ("agent_tags", &ts.agent_tags),
    ] {
        for (i, tag) in tags.iter().enumerate() {
            d.extend(flawed(
                format!("tailscale.{field}[{i}]"),
                Subject::Tag,
                tag,
                tag_problem(tag),
            ));
        }
    }
    for (field, list) in [("tag_owners", &ts.tag_owners), ("admins", &ts.admins)] {
        for (i, s) in list.iter().enumerate() {
            d.extend(flawed(
                format!("tailscale.{field}[{i}]"),
                Subject::Selector,
                s,
                selector_problem(s),
            ));
        }
    }
    if let Some(t) = &ts.tailnet {
        d.extend(flawed(
            "tailscale.tailnet",
            Subject::Tailnet,
            t,
            tailnet_problem(t),
        ));
    }
    if let Some(url) = &ts.login_server {
        if url_has_credentials(url) {
            d.push(Diagnostic::new(
                "tailscale.login_server",
                Problem::LoginServerCredentials,
            ));
            return check_tailscale_version(spec, d);
        }
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let host_ok = rest.is_some_and(|r| {
            let host = r.split(['/', '?', '#']).next().unwrap_or("");
            !host.is_empty()
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        });
        let chars_ok = url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!&+,;=%".contains(&b));
        if !host_ok || !chars_ok || url.len() > 2048 {
            let bad = url
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?#[]@!&+,;=%".contains(*c)));
            let flaw = if rest.is_none() {
                Flaw::NotHttps
            } else if let Some(c) = bad {
                Flaw::UrlContains(c)
            } else if url.len() > 2048 {
                Flaw::TooLong {
                    len: url.len(),
                    max: 2048,
                }
            } else {
                Flaw::NoHost
            };
            d.extend(flawed(
                "tailscale.login_server",
                Subject::LoginServer,
                url,
                Some(flaw),
            ));
        } else if url.starts_with("http://") {
            d.push(Diagnostic::new(
                "tailscale.login_server",
                Problem::PlainHttpLoginServer,
            ));
        }
    }
    check_tailscale_version(spec, d);
}

/// Untagged nodes are owned by the user whose key joined them, and their node keys expire
/// (Tailscale's key expiry, 180 days by default; tagged nodes' do not), which splits the
/// cluster when they do. An OAuth client secret without tags is refused when secrets are
/// read; any other key gets this warning.
fn check_untagged(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let ts = &spec.tailscale;
    // A role's nodes advertise `tags` and the role's own tags (plan::node_tags).
    let untagged = |role: Role, role_tags: &[String]| {
        ts.tags.is_empty() && role_tags.is_empty() && spec.nodes.iter().any(|n| n.role == role)
    };
    if untagged(Role::Server, &ts.server_tags) || untagged(Role::Agent, &ts.agent_tags) {
        d.push(Diagnostic::new("tailscale.tags", Problem::UntaggedNodes).on_key_or_parent());
    }
}

/// A pinned K3s release before the flannel fix ([`FLANNEL_FIX`]), in a cluster whose flannel
/// runs VXLAN over tailscale0: the device the fix is about.
fn check_flannel_fix(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let k = &spec.k3s;
    if k.flannel_backend != FlannelBackend::Vxlan {
        return;
    }
    let Some(v) = &k.version else { return };
    if predates_drop_in(v) {
        return; // refused outright by check_k3s
    }
    if let Some(fixed_in) = predates_flannel_fix(v) {
        d.push(Diagnostic::new(
            "k3s.version",
            Problem::K3sBeforeFlannelFix {
                version: v.clone(),
                fixed_in,
            },
        ));
    }
}

/// For a K3s release `v1.MINOR.PATCH+k3sN` before the flannel fix of its line: the first
/// fixed release of that line, if it has one. None for a fixed release (or another string).
fn predates_flannel_fix(v: &str) -> Option<Option<&'static str>> {
    let (minor, Some(patch)) = k3s_line(v)? else {
        return None;
    };
    match FLANNEL_FIX.iter().find(|(m, _, _)| *m == minor) {
        Some((_, first, release)) => (patch < *first).then_some(Some(*release)),
        None => (minor < FLANNEL_FIX[0].0).then_some(None),
    }
}

fn check_tailscale_version(spec: &Spec, d: &mut Vec<Diagnostic>) {
    if let Some(v) = &spec.tailscale.version
        && !is_semver(v)
    {
        d.push(Diagnostic::new(
            "tailscale.version",
            Problem::TailscaleVersion(v.clone()),
        ));
    }
}

/// `count` numbers of at most `digits` digits each, joined by `.`: `1.33.5`.
fn dotted_numbers(s: &str, count: usize, digits: usize) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == count
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= digits && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_semver(v: &str) -> bool {
    dotted_numbers(v, 3, 6)
}

fn check_k3s(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let k = &spec.k3s;
    if k.agent_token.is_none() && spec.nodes.iter().any(|n| n.role == Role::Agent) {
        d.push(Diagnostic::new("k3s.token", Problem::AgentsHoldServerToken));
    }
    match (&k.version, &k.channel) {
        (Some(_), Some(_)) => d.push(Diagnostic::new("k3s.channel", Problem::VersionAndChannel)),
        (None, None) => d.push(Diagnostic::new("k3s", Problem::NoK3sVersion).on_key()),
        _ => {}
    }
    if let Some(v) = &k.version {
        let ok = v
            .strip_prefix('v')
            .and_then(|r| r.split_once("+k3s"))
            .is_some_and(|(semver, n)| {
                is_semver(semver)
                    && !n.is_empty()
                    && n.len() <= 3
                    && n.bytes().all(|b| b.is_ascii_digit())
            });
        if !ok {
            let hint = if is_channel(v) {
                VersionHint::IsChannel
            } else if is_semver(v) {
                VersionHint::AddPrefixAndSuffix
            } else if v.strip_prefix('v').is_some_and(is_semver) {
                VersionHint::AddSuffix
            } else {
                VersionHint::None
            };
            d.push(Diagnostic::new(
                "k3s.version",
                Problem::K3sVersion {
                    version: v.clone(),
                    hint,
                },
            ));
        } else if predates_drop_in(v) {
            d.push(Diagnostic::new(
                "k3s.version",
                Problem::K3sBeforeDropIn(v.clone()),
            ));
        }
    }
    if let Some(c) = &k.channel {
        if !is_channel(c) {
            d.push(Diagnostic::new(
                "k3s.channel",
                Problem::K3sChannel(c.clone()),
            ));
        } else if predates_drop_in(c) {
            d.push(Diagnostic::new(
                "k3s.channel",
                Problem::K3sBeforeDropIn(c.clone()),
            ));
        }
    }
    for (i, item) in k.disable.iter().enumerate() {
        if !K3S_COMPONENTS.contains(&item.as_str()) {
            let (item, suggestion, known) = (
                item.clone(),
                crate::diagnostics::did_you_mean(item, K3S_COMPONENTS),
                K3S_COMPONENTS,
            );
            let problem = if is_dns_label(&item) {
                Problem::UnknownComponent {
                    item,
                    suggestion,
                    known,
                }
            } else {
                Problem::NotAComponent {
                    item,
                    suggestion,
                    known,
                }
            };
            d.push(Diagnostic::new(format!("k3s.disable[{i}]"), problem));
        }
    }
    check_cidrs(spec, d);
    for (field, args) in [
        ("k3s.server_args", &k.server_args),
        ("k3s.agent_args", &k.agent_args),
    ] {
        check_args(field, args, k.allow_owned_args, d);
    }
}

/// A release `v1.MINOR.PATCH+k3sN` older than [`FIRST_DROP_IN`], or a minor channel
/// `v1.MINOR` whose line is (its newest release is what it installs); a well-formed one:
/// the format is checked on its own.
fn predates_drop_in(v: &str) -> bool {
    match k3s_line(v) {
        Some((minor, Some(patch))) => (minor, patch) < FIRST_DROP_IN,
        Some((minor, None)) => minor < FIRST_DROP_IN.0,
        None => false,
    }
}

/// A K3s release `v1.MINOR.PATCH+k3sN` as (MINOR, Some(PATCH)), a minor channel `v1.MINOR`
/// as (MINOR, None); None for anything else.
fn k3s_line(v: &str) -> Option<(u32, Option<u32>)> {
    let rest = v.strip_prefix("v1.")?;
    match rest.split_once('+') {
        Some((semver, _)) => {
            let (minor, patch) = semver.split_once('.')?;
            Some((minor.parse().ok()?, Some(patch.parse().ok()?)))
        }
        None => Some((rest.parse().ok()?, None)),
    }
}

fn is_channel(c: &str) -> bool {
    matches!(c, "stable" | "latest" | "testing")
        || c.strip_prefix('v').is_some_and(|r| dotted_numbers(r, 2, 4))
}

/// The networks across each other: none overlaps Tailscale's ranges or the other one, and
/// an IPv6 pod network needs a CNI that is not flannel over tailscale0. (Each network was
/// parsed, and its own problems reported, by the reader.)
fn check_cidrs(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let k = &spec.k3s;
    let parsed: Vec<(&str, IpNet)> = [
        ("k3s.cluster_cidr", &k.cluster_cidr),
        ("k3s.service_cidr", &k.service_cidr),
    ]
    .into_iter()
    .flat_map(|(field, nets)| nets.iter().map(move |net| (field, *net)))
    .collect();
    let tailscale = [IpNet::V4(TAILSCALE_V4), IpNet::V6(TAILSCALE_V6)];
    for (field, net) in &parsed {
        for t in tailscale.iter().filter(|t| net_overlap(net, t)) {
            let problem = Problem::OverlapsTailscale {
                net: net.to_string(),
                tailscale: t.to_string(),
            };
            d.push(Diagnostic::new(*field, problem).narrow(net.to_string()));
        }
    }
    for (i, (fa, a)) in parsed.iter().enumerate() {
        for (fb, b) in parsed[i + 1..].iter().filter(|(_, b)| net_overlap(a, b)) {
            let problem = Problem::NetworksOverlap {
                net: b.to_string(),
                other: a.to_string(),
                other_field: fa.to_string(),
            };
            d.push(Diagnostic::new(*fb, problem).narrow(b.to_string()));
        }
    }
    // flannel rides on tailscale0 (MTU 1280): its interfaces get about 1230, and the kernel
    // refuses IPv6 on an interface below 1280, so dual-stack pods would get no address.
    if k.flannel_backend != FlannelBackend::None
        && let Some(v6) = k.cluster_cidr.v6()
    {
        d.push(
            Diagnostic::new("k3s.cluster_cidr", Problem::Ipv6PodsOverFlannel)
                .narrow(v6.to_string()),
        );
    }
}

fn net_overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Flags meshboot sets itself, and what to do instead: the table in [`crate::k3s_flags`].
fn owned_flag(name: &str) -> Option<&'static str> {
    crate::k3s_flags::refused(name)
}

/// A hostname (or `*.` wildcard) or an IP address, as `--tls-san` takes.
fn is_san(s: &str) -> bool {
    let host = s.strip_prefix("*.").unwrap_or(s).to_ascii_lowercase();
    s.parse::<std::net::IpAddr>().is_ok()
        || (host.len() <= 253 && host.split('.').all(is_dns_label))
}

fn check_args(field: &str, args: &[String], allow_owned: bool, d: &mut Vec<Diagnostic>) {
    for (i, (arg, (name, value))) in args.iter().zip(parse_args(args)).enumerate() {
        let path = format!("{field}[{i}]");
        let name_ok = arg.starts_with("--")
            && !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            let flaw = if !arg.starts_with("--") {
                Flaw::NoDashes
            } else if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                Flaw::FlagNameContains(c)
            } else {
                Flaw::NotAFlag
            };
            d.extend(flawed(&path, Subject::Flag, arg, Some(flaw)));
            continue;
        }
        if value.as_deref().is_some_and(url_has_credentials) {
            d.push(Diagnostic::new(&path, Problem::FlagValueSecret(name)));
            continue;
        }
        if let Some(c) = value
            .as_deref()
            .and_then(|v| v.chars().find(|c| c.is_control()))
        {
            d.push(Diagnostic::new(
                &path,
                Problem::FlagValueControl { name, c },
            ));
            continue;
        }
        if let Some(v) = value.as_deref().filter(|v| v.len() > 4096) {
            d.push(Diagnostic::new(
                &path,
                Problem::FlagValueTooLong { len: v.len(), name },
            ));
            continue;
        }
        if name == "tls-san" {
            let bad: Vec<String> = value
                .iter()
                .flat_map(|v| comma_list(v))
                .filter(|s| !is_san(s))
                .collect();
            if value.as_deref().is_none_or(|v| comma_list(v).is_empty()) || !bad.is_empty() {
                d.push(
                    Diagnostic::new(&path, Problem::BadTlsSan(bad.first().cloned()))
                        .narrow(bad.first().cloned().unwrap_or_default()),
                );
            }
            continue;
        }
        if let Some(why) = owned_flag(&name)
            && !allow_owned
        {
            d.push(Diagnostic::new(&path, Problem::OwnedFlag { name, why }));
        }
    }
}

fn check_firewall(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let fw = &spec.firewall;
    check_public_ports(spec, &fw.public_tcp, &fw.public_udp, "firewall", d);
    if fw.backend == FirewallBackend::None {
        d.push(Diagnostic::new("firewall.backend", Problem::NoFirewall));
    }
}

fn check_public_ports(
    spec: &Spec,
    tcp: &[PortRange],
    udp: &[PortRange],
    base: &str,
    d: &mut Vec<Diagnostic>,
) {
    if spec.firewall.allow_public_k3s_ports {
        return;
    }
    for (proto, list, internal) in [
        ("tcp", tcp, K3S_INTERNAL_TCP),
        ("udp", udp, K3S_INTERNAL_UDP),
    ] {
        for (i, p) in list.iter().enumerate() {
            if let Some(hit) = internal.iter().find(|k| overlaps(*p, **k)) {
                d.push(Diagnostic::new(
                    format!("{base}.public_{proto}[{i}]"),
                    Problem::PublicK3sPort {
                        port: p.to_string(),
                        proto,
                        internal: hit.to_string(),
                    },
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_taints() {
        assert_eq!(qualified_name_problem("node.kubernetes.io/pool"), None);
        assert!(qualified_name_problem("a/b/c").is_some());
        assert_eq!(qualified_name_problem("$(x)"), Some(Flaw::Contains('$')));
        assert_eq!(taint_problem("dedicated=edge:NoSchedule"), None);
        assert_eq!(taint_problem("gpu:NoExecute"), None);
        assert!(taint_problem("gpu=true:Maybe").is_some());
        assert_eq!(
            taint_problem("a=`b`:NoSchedule").map(|f| f.to_string()),
            Some("has a value that contains a backtick".to_string())
        );
    }

    #[test]
    fn names_and_sans() {
        assert_eq!(
            label_problem("Cp-1").map(|f| f.to_string()),
            Some("has an uppercase letter `C` (names are lowercase)".to_string())
        );
        assert!(label_problem(&"a".repeat(64)).is_some());
        assert!(is_san("api.example.com") && is_san("10.0.0.1") && is_san("fd00::1"));
        assert!(!is_san("$(touch x)") && !is_san("a b"));
    }

    #[test]
    fn the_flannel_fix_is_found_per_release_line() {
        // k3s-io/k3s#14114-#14117: the first fixed patch of 1.33 to 1.36; nothing for 1.32.
        assert_eq!(predates_flannel_fix("v1.32.13+k3s1"), Some(None));
        assert_eq!(
            predates_flannel_fix("v1.33.5+k3s1"),
            Some(Some("v1.33.13+k3s1"))
        );
        assert_eq!(
            predates_flannel_fix("v1.33.12+k3s2"),
            Some(Some("v1.33.13+k3s1"))
        );
        assert_eq!(
            predates_flannel_fix("v1.36.1+k3s1"),
            Some(Some("v1.36.2+k3s1"))
        );
        for fixed in [
            "v1.33.13+k3s1",
            "v1.34.9+k3s2",
            "v1.35.10+k3s1",
            "v1.36.2+k3s1",
            "v1.37.0+k3s1",
        ] {
            assert_eq!(predates_flannel_fix(fixed), None, "{fixed}");
        }
    }

    #[test]
    fn releases_and_channels_before_config_yaml_d_are_found() {
        for old in [
            "v1.20.15+k3s1",
            "v1.19.16+k3s1",
            "v1.20",
            "v1.9.0+k3s1",
            "v1.21.0+k3s1",
        ] {
            assert!(predates_drop_in(old), "{old}");
        }
        for new in ["v1.21.1+k3s1", "v1.21", "v1.33.13+k3s1", "v1.100.0+k3s1"] {
            assert!(!predates_drop_in(new), "{new}");
        }
        for other in ["stable", "latest", "testing", "1.20.1", "v2.1"] {
            assert!(!predates_drop_in(other), "{other}");
        }
    }

    #[test]
    fn selectors_and_tailnets() {
        for ok in [
            "autogroup:admin",
            "group:ops",
            "alice@example.com",
            "bob@github",
            "tag:k3s",
        ] {
            assert_eq!(selector_problem(ok), None, "{ok}");
        }
        assert_eq!(selector_problem("*"), Some(Flaw::Wildcard));
        assert_eq!(selector_problem("admins"), Some(Flaw::NotASelector));
        assert_eq!(selector_problem("group:"), Some(Flaw::NotASelector));
        assert_eq!(selector_problem("a b"), Some(Flaw::Contains(' ')));
        assert_eq!(
            selector_problem("tag:K3s"),
            Some(Flaw::Uppercase('K', "tags"))
        );
        assert_eq!(tailnet_problem("example-org.ts.net"), None);
        assert_eq!(tailnet_problem("localhost"), Some(Flaw::OneLabel));
        assert_eq!(tailnet_problem("a..b"), Some(Flaw::Empty));
        assert!(tailnet_problem("Example.ts.net").is_some());
    }

    #[test]
    fn channels_and_credentials_in_urls() {
        assert!(is_channel("stable") && is_channel("v1.33") && !is_channel("v1.33.5+k3s1"));
        assert!(url_has_credentials("https://u:p@h.example.com/x"));
        assert!(!url_has_credentials("https://h.example.com/a@b"));
    }
}
