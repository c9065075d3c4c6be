//! Stage 1b, reading: the [`crate::source`] tree -> the typed [`Spec`] for
//! [`crate::validate`], with every structural problem as a [`Diagnostic`].
//!
//! Reading is forgiving in one way only: it keeps going after a problem so that every
//! structural error (unknown key, wrong type, missing field) is reported at once, each with
//! its spec path. Each type reads itself ([`FromNode`]): scalars, lists, choices and the
//! sections of the spec, each section with its one table of allowed keys
//! ([`allowed_keys`] lists them for the schema test). Secrets pasted anywhere outside the
//! secret fields are refused here, once, over the whole tree ([`pasted_secrets`]).

use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::problem::{ChoiceHint, Found, KeyHint, Problem};
use crate::redact::{SECRET_FIELDS, holds_secret, looks_like_secret, secret_flag_value};
use crate::source::{Node, NodeKind, join};
use crate::spec::{
    Autoscale, Choice, Cluster, Firewall, Hcloud, K3s, MAX_COUNT, MAX_POOL_SIZE, Networks,
    NodeFields, NodeFirewall, NodeSpec, PortRange, SUPPORTED_VERSION, SecretRef, Spec, Tailscale,
    default_admins, default_cluster_cidr, default_service_cidr, default_tag_owners,
};
use ipnet::IpNet;
use std::collections::HashMap;

const TOP_KEYS: &[&str] = &[
    "version",
    "cluster",
    "tailscale",
    "k3s",
    "firewall",
    "defaults",
    "nodes",
];
const NODE_FIELD_KEYS: &[&str] = &["os", "hcloud", "labels", "taints", "firewall"];
const NODE_KEYS: &[&str] = &[
    "name",
    "role",
    "count",
    "autoscale",
    "os",
    "hcloud",
    "labels",
    "taints",
    "firewall",
];
const SECRET_KEYS: &[&str] = &["env", "file"];

/// Every mapping the reader reads, by where it is (`nodes[]` for any node entry), with the
/// keys it allows there.
pub fn allowed_keys() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("", TOP_KEYS),
        ("cluster", CLUSTER_KEYS),
        ("tailscale", TAILSCALE_KEYS),
        ("tailscale.auth_key", SECRET_KEYS),
        ("tailscale.pool_auth_key", SECRET_KEYS),
        ("k3s", K3S_KEYS),
        ("k3s.token", SECRET_KEYS),
        ("k3s.agent_token", SECRET_KEYS),
        ("firewall", FIREWALL_KEYS),
        ("defaults", NODE_FIELD_KEYS),
        ("defaults.hcloud", HCLOUD_KEYS),
        ("defaults.firewall", NODE_FIREWALL_KEYS),
        ("nodes[]", NODE_KEYS),
        ("nodes[].autoscale", AUTOSCALE_KEYS),
        ("nodes[].hcloud", HCLOUD_KEYS),
        ("nodes[].firewall", NODE_FIREWALL_KEYS),
    ]
}

/// Reads the spec tree, collecting every structural problem into `diags`.
/// Returns `None` when the spec cannot be used.
pub fn read(root: &Node, diags: &mut Vec<Diagnostic>) -> Option<Spec> {
    let mut r = Reader {
        diags,
        suggested: Vec::new(),
        unusable: false,
    };
    // Refused, but not a reason to stop reading: the rest of the spec is still checked.
    pasted_secrets(root, "", r.diags);
    let top = r.top(root)?;

    let version = match top.get("version") {
        None => {
            r.diags.push(Diagnostic::new(
                "version",
                Problem::Missing {
                    key: "version".into(),
                    within: String::new(),
                },
            ));
            None
        }
        Some(v) if scalar(v) == Some("1") => Some(SUPPORTED_VERSION),
        Some(v) => {
            r.diags.push(Diagnostic::new(
                "version",
                Problem::UnsupportedVersion(found(v)),
            ));
            // Everything else may mean something different in another version.
            return None;
        }
    };
    let cluster = top.required(&mut r, "cluster");
    let tailscale = top.required(&mut r, "tailscale");
    let k3s = top.required(&mut r, "k3s");
    let firewall = top.unset_or(&mut r, "firewall", Firewall::default);
    let defaults = top.unset_or(&mut r, "defaults", Defaults::default);
    let nodes = top.required::<Nodes>(&mut r, "nodes");

    let spec = Spec {
        version: version?,
        cluster: cluster?,
        tailscale: tailscale?,
        k3s: k3s?,
        firewall: firewall?,
        defaults: defaults?.0,
        nodes: nodes?.0,
    };
    (!r.unusable).then_some(spec)
}

/// A value that can be read from a node of the tree at a spec path. `None` means a problem
/// was reported (or the value cannot be used); reading goes on elsewhere.
pub trait FromNode: Sized {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self>;
}

/// Whose keys a mapping holds: the spec's own, or a node's labels (the words differ).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    Spec,
    Labels,
}

pub struct Reader<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// Paths that an unknown key was suggested for (`auth-key` -> `tailscale.auth_key`):
    /// their "missing" error would only repeat the suggestion.
    suggested: Vec<String>,
    /// An error was reported that leaves the spec unusable even for the semantic checks.
    unusable: bool,
}

/// A mapping whose keys were checked against the allowed set.
struct MapView<'n> {
    path: String,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> MapView<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A key that must be there.
    fn required<T: FromNode>(&self, r: &mut Reader, key: &str) -> Option<T> {
        let Some(n) = self.get(key) else {
            if !r.suggested.contains(&self.child(key)) {
                r.push(
                    Diagnostic::new(
                        self.child(key),
                        Problem::Missing {
                            key: key.to_string(),
                            within: self.path.clone(),
                        },
                    )
                    .on_parent_key(),
                );
            }
            return None;
        };
        T::from_node(r, n, &self.child(key))
    }

    /// A key that may be left out, or set to null (`key: ~`): `Some(None)` then. For
    /// values where null reads as "not set" (strings, sections, lists).
    fn optional<T: FromNode>(&self, r: &mut Reader, key: &str) -> Option<Option<T>> {
        match self.get(key) {
            Some(n) if !n.is_null() => T::from_node(r, n, &self.child(key)).map(Some),
            _ => Some(None),
        }
    }

    /// A key that may be left out (`Some(None)` then); when it is there, null included, `T`
    /// reads it. For values where null is a mistake (booleans, choices, secret references).
    fn present<T: FromNode>(&self, r: &mut Reader, key: &str) -> Option<Option<T>> {
        match self.get(key) {
            Some(n) => T::from_node(r, n, &self.child(key)).map(Some),
            None => Some(None),
        }
    }

    /// [`Self::present`], with `default()` for a key that is left out.
    fn or<T: FromNode>(&self, r: &mut Reader, key: &str, default: impl Fn() -> T) -> Option<T> {
        Some(self.present(r, key)?.unwrap_or_else(default))
    }

    /// [`Self::or`] with `T`'s default.
    fn or_default<T: FromNode + Default>(&self, r: &mut Reader, key: &str) -> Option<T> {
        self.or(r, key, T::default)
    }

    /// [`Self::optional`], with `default()` for a key that is left out or null.
    fn unset_or<T: FromNode>(
        &self,
        r: &mut Reader,
        key: &str,
        default: impl Fn() -> T,
    ) -> Option<T> {
        Some(self.optional(r, key)?.unwrap_or_else(default))
    }
}

fn scalar(n: &Node) -> Option<&str> {
    match &n.kind {
        NodeKind::Scalar { value, .. } if !n.is_null() => Some(value),
        _ => None,
    }
}

/// A value as a message shows it (see [`Found`]).
fn found(n: &Node) -> Found {
    match &n.kind {
        NodeKind::Scalar { .. } if n.is_null() => Found::Null,
        NodeKind::Scalar { value, .. } => Found::Value(value.clone()),
        _ => Found::Shape(n.shape()),
    }
}

/// The last key of a path: `tailscale.auth_key` -> `auth_key`.
fn last_key(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Where a key belongs when it is written in the wrong place (only when unambiguous).
fn home_of(key: &str) -> Option<&'static str> {
    const HOMES: &[(&str, &[&str])] = &[
        ("the top level of the spec", TOP_KEYS),
        ("`cluster:`", CLUSTER_KEYS),
        ("`tailscale:`", TAILSCALE_KEYS),
        ("`k3s:`", K3S_KEYS),
        ("`firewall:`", FIREWALL_KEYS),
        ("a node under `nodes:` (or under `defaults:`)", NODE_KEYS),
        ("`hcloud:`", HCLOUD_KEYS),
    ];
    let mut homes = HOMES.iter().filter(|(_, keys)| keys.contains(&key));
    match (homes.next(), homes.next()) {
        (Some((home, _)), None) => Some(home),
        _ => None,
    }
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Refuses every secret written into the spec outside the secret-reference fields: each
/// scalar (key or value) that is a credential flag (`--token=...`) or that
/// looks like a key or token, or holds one as a word. This is the one place that looks;
/// whatever else the reader or [`crate::validate`] finds wrong with such a value is dropped
/// later ([`crate::diagnostics::drop_shadowed`]), so the secret is reported once and never
/// shown.
pub fn pasted_secrets(node: &Node, path: &str, diags: &mut Vec<Diagnostic>) {
    if SECRET_FIELDS.contains(&path) {
        return;
    }
    match &node.kind {
        NodeKind::Scalar { value, .. } => {
            if let Some(problem) = refusal(value) {
                diags.push(Diagnostic::new(path, problem));
            }
        }
        NodeKind::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                pasted_secrets(item, &format!("{path}[{i}]"), diags);
            }
        }
        NodeKind::Map(entries) => {
            for (k, v) in entries {
                let Some(key) = scalar(k) else {
                    pasted_secrets(k, path, diags);
                    continue;
                };
                let child = join(path, key);
                if let Some(problem) = refusal(key) {
                    diags.push(Diagnostic::new(&child, problem).on_key().at(k.span));
                }
                pasted_secrets(v, &child, diags);
            }
        }
    }
}

/// Why a scalar outside the secret fields is refused, if it is: a K3s flag whose value is a
/// credential, whatever the value (`--token=...`), or anything holding a key or token.
fn refusal(text: &str) -> Option<Problem> {
    if let Some((flag, _)) = secret_flag_value(text) {
        return Some(Problem::CredentialFlag(flag.to_string()));
    }
    holds_secret(text).then_some(Problem::PastedSecret)
}

impl Reader<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.unusable |= d.is_error();
        self.diags.push(d);
    }

    /// Reports an error about a value that is still read, in part, so that the semantic
    /// checks see the rest of it (a list of networks with one bad item). The spec stays
    /// invalid: the error is reported like any other.
    fn report_and_go_on(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// The top level: a mapping of sections.
    fn top<'n>(&mut self, root: &'n Node) -> Option<MapView<'n>> {
        let problem = match &root.kind {
            NodeKind::Map(_) => return self.map(root, "", TOP_KEYS),
            NodeKind::Scalar { .. } if root.is_null() && root.span.len == 0 => Problem::EmptySpec,
            NodeKind::Seq(_) => Problem::SpecIsList,
            NodeKind::Scalar { .. } => Problem::SpecIsScalar(root.shape()),
        };
        let d = Diagnostic::new("", problem);
        self.push(if root.span.len == 0 {
            d
        } else {
            d.at(root.span)
        });
        None
    }

    /// A mapping with the keys `allowed`; every other key is reported (with a suggestion)
    /// and left out of the view.
    fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<MapView<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.push(Diagnostic::new(
                path,
                Problem::ExpectedMapping {
                    within: path.to_string(),
                    found: node.shape(),
                    allowed,
                },
            ));
            return None;
        };
        let mut view = MapView {
            path: path.to_string(),
            entries: Vec::new(),
        };
        let (keyed, _) = self.keyed(entries, path, Keys::Spec);
        for (k, key, v) in keyed {
            if allowed.contains(&key) {
                view.entries.push((key, v));
                continue;
            }
            let hint = if key == "<<" {
                KeyHint::MergeKey
            } else if let Some(s) = did_you_mean(key, allowed) {
                self.suggested.push(join(path, s));
                KeyHint::DidYouMean(s)
            } else if let Some(home) = home_of(key) {
                KeyHint::BelongsUnder(home)
            } else {
                KeyHint::None
            };
            self.push(
                Diagnostic::new(
                    join(path, key),
                    Problem::UnknownKey {
                        key: key.to_string(),
                        within: path.to_string(),
                        allowed,
                        hint,
                    },
                )
                .on_key()
                .at(k.span),
            );
        }
        Some(view)
    }

    /// The entries of a mapping whose key is a single word, each key once; every other
    /// entry is reported (`keys` chooses the words). The flag says whether all were fine.
    fn keyed<'n>(
        &mut self,
        entries: &'n [(Node, Node)],
        path: &str,
        keys: Keys,
    ) -> (Vec<(&'n Node, &'n str, &'n Node)>, bool) {
        let mut out = Vec::new();
        let mut ok = true;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (k, v) in entries {
            let problem = match scalar(k) {
                None if keys == Keys::Spec => Problem::KeyNotWord(k.shape()),
                None => Problem::LabelKeyNotValue(k.shape()),
                Some(key) => match seen.insert(key, k.span.line) {
                    None => {
                        out.push((k, key, v));
                        continue;
                    }
                    Some(first_line) => {
                        let at = join(path, key);
                        let key = key.to_string();
                        let problem = match keys {
                            Keys::Spec => Problem::DuplicateKey { key, first_line },
                            Keys::Labels => Problem::DuplicateLabel { key, first_line },
                        };
                        ok = false;
                        self.push(Diagnostic::new(at, problem).on_key().at(k.span));
                        continue;
                    }
                },
            };
            ok = false;
            self.push(Diagnostic::new(path, problem).at(k.span));
        }
        (out, ok)
    }

    /// The items of a list (null is an empty list).
    fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ if node.is_null() => Some(&[]),
            _ => {
                self.push(Diagnostic::new(
                    path,
                    Problem::ExpectedList {
                        within: path.to_string(),
                        found: node.shape(),
                    },
                ));
                None
            }
        }
    }

    /// One of `T`'s names, or a problem that suggests the closest one (or says what other
    /// tools call it).
    fn choice<T: Choice>(&mut self, node: &Node, path: &str) -> Option<T> {
        if let Some(v) = scalar(node)
            && let Some((_, t)) = T::ALL.iter().find(|(n, _)| *n == v)
        {
            return Some(*t);
        }
        let names = T::names();
        let given = scalar(node).unwrap_or("");
        let aliases: Vec<&(&'static str, &'static str)> = T::ALIASES
            .iter()
            .filter(|(_, ours)| names.contains(ours))
            .collect();
        let alias_names: Vec<&'static str> = aliases.iter().map(|(a, _)| *a).collect();
        let alias =
            did_you_mean(given, &alias_names).and_then(|a| aliases.iter().find(|(n, _)| *n == a));
        let hint = match (did_you_mean(given, &names), alias) {
            (Some(s), _) => ChoiceHint::DidYouMean(s),
            (None, Some((other, ours))) => ChoiceHint::Alias { other, ours },
            (None, None) => ChoiceHint::None,
        };
        self.push(Diagnostic::new(
            path,
            Problem::UnknownChoice {
                what: T::WHAT,
                found: found(node),
                names,
                hint,
            },
        ));
        None
    }
}

impl FromNode for String {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        match scalar(node) {
            Some(value) => Some(value.to_string()),
            None => {
                r.push(Diagnostic::new(
                    path,
                    Problem::ExpectedValue {
                        within: path.to_string(),
                        found: node.shape(),
                    },
                ));
                None
            }
        }
    }
}

impl FromNode for bool {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true } if value == "true" => Some(true),
            NodeKind::Scalar { value, plain: true } if value == "false" => Some(false),
            _ => {
                r.push(Diagnostic::new(
                    path,
                    Problem::ExpectedBool {
                        key: last_key(path).to_string(),
                        found: found(node),
                    },
                ));
                None
            }
        }
    }
}

/// A list: every item is read (and every bad one reported); the list is usable only when
/// all of them are.
impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let items = r.seq(node, path)?;
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, item)| T::from_node(r, item, &format!("{path}[{i}]")))
            .collect();
        read.into_iter().collect()
    }
}

impl<T: Choice> FromNode for T {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        r.choice(node, path)
    }
}

impl FromNode for PortRange {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let problem = match scalar(node) {
            None => Problem::NotAPort(Found::Shape(node.shape())),
            Some(text) => {
                let parse = |s: &str| {
                    let s = s.trim();
                    (!s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| s.parse::<u32>().ok())
                        .flatten()
                };
                let (start, end) = match text.split_once('-') {
                    Some((a, b)) => (parse(a), parse(b)),
                    None => (parse(text), parse(text)),
                };
                let valid = |p: u32| (1..=65535).contains(&p);
                match (start, end) {
                    (Some(s), Some(e)) if valid(s) && valid(e) && s <= e => {
                        return Some(PortRange { start: s, end: e });
                    }
                    (Some(s), Some(e)) if s > e && e >= 1 => {
                        Problem::PortRangeBackwards(text.to_string())
                    }
                    (Some(_), Some(_)) => Problem::PortOutOfRange(text.to_string()),
                    _ => Problem::NotAPort(Found::Value(text.to_string())),
                }
            }
        };
        r.push(Diagnostic::new(path, problem));
        None
    }
}

/// Networks, `10.42.0.0/16` or `"10.42.0.0/16,fd00:42::/56"`: each item parsed, at most one
/// per IP family. A bad item is reported at its place in the value and left out; the rest
/// is still read, so that the checks across networks (overlaps) run on what is usable.
impl FromNode for Networks {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let text = String::from_node(r, node, path)?;
        let mut nets = Networks::default();
        let items: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if items.is_empty() {
            r.report_and_go_on(Diagnostic::new(path, Problem::NoNetwork));
        }
        for item in items {
            let problem = match item.parse::<IpNet>() {
                Ok(net) if net.trunc() != net => Problem::HostBits {
                    cidr: item.to_string(),
                    network: net.trunc().to_string(),
                },
                Ok(net) => match nets.push(net) {
                    Ok(()) => continue,
                    Err(_) => Problem::TwoNetworksOfFamily(if matches!(net, IpNet::V4(_)) {
                        4
                    } else {
                        6
                    }),
                },
                Err(_) => Problem::NotACidr(item.to_string()),
            };
            r.report_and_go_on(Diagnostic::new(path, problem).narrow(item));
        }
        Some(nets)
    }
}

/// A secret reference. A literal value is refused and never echoed: the value of a secret
/// field is masked in the source line too (see [`crate::redact::sensitive_range`]).
impl FromNode for SecretRef {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let field = last_key(path).to_string();
        let problem = match &node.kind {
            _ if node.is_null() => Problem::NoSecretReference { field },
            NodeKind::Scalar { value, .. } => Problem::LiteralSecret {
                field,
                looks_secret: looks_like_secret(value) || value.chars().count() >= 16,
            },
            NodeKind::Seq(_) => Problem::SecretReferenceShape {
                field,
                found: node.shape(),
            },
            NodeKind::Map(_) => {
                let m = r.map(node, path, SECRET_KEYS)?;
                let env = m.optional::<String>(r, "env")?;
                let file = m.optional::<String>(r, "file")?;
                let (at, problem) = match (env, file) {
                    (Some(e), None) if looks_like_secret(&e) => {
                        (m.child("env"), Problem::SecretInEnv { field })
                    }
                    (Some(e), None) if !is_env_name(&e) => {
                        (m.child("env"), Problem::BadEnvName { field, name: e })
                    }
                    (Some(e), None) => return Some(SecretRef::Env(e)),
                    (None, Some(f)) if looks_like_secret(&f) => {
                        (m.child("file"), Problem::SecretInFile { field })
                    }
                    (None, Some(f)) if f.trim().is_empty() || f.chars().any(char::is_control) => {
                        (m.child("file"), Problem::BadSecretPath)
                    }
                    (None, Some(f)) => return Some(SecretRef::File(f)),
                    (Some(_), Some(_)) => (path.to_string(), Problem::EnvAndFile),
                    (None, None) => (path.to_string(), Problem::NeitherEnvNorFile { field }),
                };
                r.push(Diagnostic::new(at, problem));
                return None;
            }
        };
        r.push(Diagnostic::new(path, problem));
        None
    }
}

/// Declares how a section of the spec is read: its keys, in order (each the name of a field,
/// unless given as `field = "key"`), and how each is read (a [`MapView`] method). The keys
/// become the section's table of allowed keys (`$keys`). Every field is read, so that every
/// problem is reported, before one that failed makes the section unusable.
macro_rules! section {
    (
        $ty:ident, $keys:ident {
            $($field:ident $(= $key:literal)?: $how:ident $(($($arg:expr),*))?,)+
        }
    ) => {
        const $keys: &[&str] = &[$(section!(@key $field $($key)?)),+];

        impl FromNode for $ty {
            fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
                let m = r.map(node, path, $keys)?;
                $(let $field = m.$how(r, section!(@key $field $($key)?) $(, $($arg),*)?);)+
                Some($ty { $($field: $field?),+ })
            }
        }
    };
    (@key $field:ident $key:literal) => { $key };
    (@key $field:ident) => { stringify!($field) };
}

section! {
    Cluster, CLUSTER_KEYS {
        name: required,
    }
}

section! {
    Tailscale, TAILSCALE_KEYS {
        auth_key: required,
        pool_auth_key: present,
        tags: or_default,
        ssh: or_default,
        accept_dns: or_default,
        login_server: optional,
        version: optional,
        tailnet: optional,
        tag_owners: unset_or(default_tag_owners),
        server_tags: or_default,
        agent_tags: or_default,
        netfilter_mode: or_default,
        admins: unset_or(default_admins),
    }
}

section! {
    K3s, K3S_KEYS {
        version: optional,
        channel: optional,
        token: required,
        agent_token: present,
        cluster_cidr: unset_or(default_cluster_cidr),
        service_cidr: unset_or(default_service_cidr),
        flannel_backend: or_default,
        disable: or_default,
        server_args: or_default,
        agent_args: or_default,
        allow_owned_args: or_default,
    }
}

section! {
    Firewall, FIREWALL_KEYS {
        backend: or(|| Firewall::default().backend),
        ssh: or(|| Firewall::default().ssh),
        public_tcp: or_default,
        public_udp: or_default,
        mesh_tcp: or_default,
        mesh_udp: or_default,
        allow_public_k3s_ports: or_default,
        allow_pod_metadata: or_default,
    }
}

section! {
    Hcloud, HCLOUD_KEYS {
        server_type = "type": optional,
        location: optional,
        image: optional,
        ssh_keys: optional,
    }
}

section! {
    NodeFirewall, NODE_FIREWALL_KEYS {
        backend: present,
        public_tcp: or_default,
        public_udp: or_default,
    }
}

/// Node labels, `{ key: value }` in the order written; a value may be any single value.
struct Labels(Vec<(String, String)>);

impl FromNode for Labels {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        if node.is_null() {
            return Some(Labels(vec![]));
        }
        let NodeKind::Map(entries) = &node.kind else {
            r.push(Diagnostic::new(
                path,
                Problem::LabelsNotMapping(node.shape()),
            ));
            return None;
        };
        let mut out = Vec::new();
        let (keyed, mut ok) = r.keyed(entries, path, Keys::Labels);
        for (_, key, v) in keyed {
            match &v.kind {
                NodeKind::Scalar { value, .. } => out.push((key.to_string(), value.clone())),
                _ => {
                    r.push(Diagnostic::new(
                        join(path, key),
                        Problem::LabelValueNotValue(v.shape()),
                    ));
                    ok = false;
                }
            }
        }
        ok.then_some(Labels(out))
    }
}

impl NodeFields {
    /// The node fields of `m` (a node entry or `defaults`). Each field that cannot be read
    /// is left unset; its problem is reported.
    fn read(r: &mut Reader, m: &MapView) -> NodeFields {
        // Null labels or taints are empty ones: set, so `defaults` do not apply.
        NodeFields {
            os: m.present(r, "os").flatten(),
            hcloud: m.optional(r, "hcloud").flatten(),
            labels: m.present::<Labels>(r, "labels").flatten().map(|l| l.0),
            taints: m.present(r, "taints").flatten(),
            firewall: m.optional(r, "firewall").flatten(),
        }
    }
}

/// `defaults:`, the node fields every node inherits.
#[derive(Default)]
struct Defaults(NodeFields);

impl FromNode for Defaults {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let m = r.map(node, path, NODE_FIELD_KEYS)?;
        Some(Defaults(NodeFields::read(r, &m)))
    }
}

/// A plain decimal scalar of at most six digits (no sign, no YAML 1.1 octal or hex) within
/// `range`; anything else is reported as `out_of_range(found, max)`.
fn small_number(
    r: &mut Reader,
    node: &Node,
    path: &str,
    range: std::ops::RangeInclusive<u32>,
    out_of_range: fn(Found, u32) -> Problem,
) -> Option<u32> {
    let n = scalar(node)
        .filter(|s| s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|n| range.contains(n));
    if n.is_none() {
        r.push(Diagnostic::new(
            path,
            out_of_range(found(node), *range.end()),
        ));
    }
    n
}

/// A newtype read by [`small_number`] within a range, reported as the given problem.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident, $range:expr, $problem:ident) => {
        $(#[$doc])*
        struct $name(u32);

        impl FromNode for $name {
            fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
                small_number(r, node, path, $range, |found, max| Problem::$problem { found, max })
                    .map($name)
            }
        }
    };
}

bounded!(
    /// `count:`, from 1 to [`MAX_COUNT`].
    Count,
    1..=MAX_COUNT,
    CountOutOfRange
);
bounded!(
    /// A pool size (`autoscale.min`, `autoscale.max`), from 0 to [`MAX_POOL_SIZE`].
    PoolSize,
    0..=MAX_POOL_SIZE,
    PoolSizeOutOfRange
);

const AUTOSCALE_KEYS: &[&str] = &["min", "max"];

impl FromNode for Autoscale {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let m = r.map(node, path, AUTOSCALE_KEYS)?;
        let min = m.required::<PoolSize>(r, "min");
        let max = m.required::<PoolSize>(r, "max");
        Some(Autoscale {
            min: min?.0,
            max: max?.0,
        })
    }
}

impl FromNode for NodeSpec {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let m = r.map(node, path, NODE_KEYS)?;
        let name = m.required(r, "name");
        let role = m.required(r, "role");
        // `count: ~` is not "no count": it is reported like any other non-number.
        let count = m.present::<Count>(r, "count");
        let autoscale = m.present::<Autoscale>(r, "autoscale");
        let fields = NodeFields::read(r, &m);
        Some(NodeSpec {
            name: name?,
            role: role?,
            count: count?.map(|c| c.0),
            autoscale: autoscale?,
            fields,
        })
    }
}

/// `nodes:`: at least one; entries that cannot be read are left out (their problems are
/// reported), so the others are still checked.
struct Nodes(Vec<NodeSpec>);

impl FromNode for Nodes {
    fn from_node(r: &mut Reader, node: &Node, path: &str) -> Option<Self> {
        let items = r.seq(node, path)?;
        if items.is_empty() {
            r.push(Diagnostic::new(path, Problem::NoNodes));
        }
        Some(Nodes(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| NodeSpec::from_node(r, item, &format!("{path}[{i}]")))
                .collect(),
        ))
    }
}
