//! Stage 1b, the spec: the typed cluster spec, read from the [`crate::source`] tree.
//!
//! Reading is forgiving in one way only: it keeps going after a problem so that every
//! structural error (unknown key, wrong type, missing field) is reported at once, each with
//! its spec path. Semantic checks live in [`crate::validate`]; decisions live in
//! [`crate::plan`].

use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::problem::{ChoiceHint, Found, KeyHint, Problem};
use crate::redact::{SECRET_FIELDS, holds_secret, looks_like_secret, secret_flag_value};
use crate::source::{Node, NodeKind, join};
use serde::Serialize;
use std::collections::HashMap;

/// The spec versions this build understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// The largest `count` of one node entry.
pub const MAX_COUNT: u32 = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Spec {
    pub version: u32,
    pub cluster: Cluster,
    pub tailscale: Tailscale,
    pub k3s: K3s,
    pub firewall: Firewall,
    pub defaults: NodeFields,
    pub nodes: Vec<NodeSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
}

/// Where a secret comes from. Secrets never live in the spec itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    Env(String),
    File(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Tailscale {
    pub auth_key: SecretRef,
    pub tags: Vec<String>,
    pub ssh: bool,
    pub accept_dns: bool,
    pub login_server: Option<String>,
    /// Version of the static Tailscale build used on Flatcar / Fedora CoreOS; `None`
    /// resolves the newest stable release at boot.
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlannelBackend {
    Vxlan,
    WireguardNative,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct K3s {
    pub version: Option<String>,
    pub channel: Option<String>,
    pub token: SecretRef,
    /// A separate token for agents (`agent-token` on servers): agents then never hold the
    /// server token, which lets its holder join as a server.
    pub agent_token: Option<SecretRef>,
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub flannel_backend: FlannelBackend,
    pub disable: Vec<String>,
    pub server_args: Vec<String>,
    pub agent_args: Vec<String>,
    /// Escape hatch: allow `server_args`/`agent_args` to set flags meshboot owns.
    pub allow_owned_args: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallBackend {
    Ufw,
    Nftables,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SshPolicy {
    Tailscale,
    Public,
    Off,
}

/// A port or an inclusive port range, as written: `443` or `"30000-32767"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PortRange {
    pub start: u32,
    pub end: u32,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Firewall {
    pub backend: FirewallBackend,
    pub ssh: SshPolicy,
    pub public_tcp: Vec<PortRange>,
    pub public_udp: Vec<PortRange>,
    /// Extra ports opened on tailscale0 beyond the K3s ports.
    pub mesh_tcp: Vec<PortRange>,
    pub mesh_udp: Vec<PortRange>,
    /// Acknowledges that a public port exposes a K3s-internal port.
    pub allow_public_k3s_ports: bool,
    /// Lets pods reach the cloud metadata service (169.254.169.254), which serves the
    /// node's user data, secrets included. Off by default.
    pub allow_pod_metadata: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Os {
    #[serde(rename = "ubuntu-22.04")]
    Ubuntu2204,
    #[serde(rename = "ubuntu-24.04")]
    Ubuntu2404,
    #[serde(rename = "debian-12")]
    Debian12,
    #[serde(rename = "flatcar")]
    Flatcar,
    #[serde(rename = "fedora-coreos")]
    FedoraCoreos,
}

impl Os {
    pub const ALL: [(&'static str, Os); 5] = [
        ("ubuntu-22.04", Os::Ubuntu2204),
        ("ubuntu-24.04", Os::Ubuntu2404),
        ("debian-12", Os::Debian12),
        ("flatcar", Os::Flatcar),
        ("fedora-coreos", Os::FedoraCoreos),
    ];

    pub fn name(self) -> &'static str {
        Os::ALL
            .iter()
            .find(|(_, o)| *o == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Server,
    Agent,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Hcloud {
    #[serde(rename = "type")]
    pub server_type: Option<String>,
    pub location: Option<String>,
}

/// Per-node firewall additions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFirewall {
    pub backend: Option<FirewallBackend>,
    pub public_tcp: Vec<PortRange>,
    pub public_udp: Vec<PortRange>,
}

/// The fields a node may set and `defaults` may supply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeFields {
    pub os: Option<Os>,
    pub hcloud: Option<Hcloud>,
    pub labels: Option<Vec<(String, String)>>,
    pub taints: Option<Vec<String>>,
    pub firewall: Option<NodeFirewall>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeSpec {
    pub name: String,
    pub role: Role,
    pub count: Option<u32>,
    pub fields: NodeFields,
}

const TOP_KEYS: &[&str] = &[
    "version",
    "cluster",
    "tailscale",
    "k3s",
    "firewall",
    "defaults",
    "nodes",
];
const CLUSTER_KEYS: &[&str] = &["name"];
const TAILSCALE_KEYS: &[&str] = &[
    "auth_key",
    "tags",
    "ssh",
    "accept_dns",
    "login_server",
    "version",
];
const K3S_KEYS: &[&str] = &[
    "version",
    "channel",
    "token",
    "agent_token",
    "cluster_cidr",
    "service_cidr",
    "flannel_backend",
    "disable",
    "server_args",
    "agent_args",
    "allow_owned_args",
];
const FIREWALL_KEYS: &[&str] = &[
    "backend",
    "ssh",
    "public_tcp",
    "public_udp",
    "mesh_tcp",
    "mesh_udp",
    "allow_public_k3s_ports",
    "allow_pod_metadata",
];
const NODE_FIELD_KEYS: &[&str] = &["os", "hcloud", "labels", "taints", "firewall"];
const NODE_KEYS: &[&str] = &[
    "name", "role", "count", "os", "hcloud", "labels", "taints", "firewall",
];
const HCLOUD_KEYS: &[&str] = &["type", "location"];
const NODE_FIREWALL_KEYS: &[&str] = &["backend", "public_tcp", "public_udp"];
const SECRET_KEYS: &[&str] = &["env", "file"];

/// Reads the spec tree, collecting every structural problem into `diags`.
/// Returns `None` when the spec cannot be used.
pub fn read(root: &Node, diags: &mut Vec<Diagnostic>) -> Option<Spec> {
    let mut r = Reader {
        diags,
        suggested: Vec::new(),
    };
    // Refused, but not a reason to stop reading: the rest of the spec is still checked.
    pasted_secrets(root, "", r.diags);
    let before = r.diags.iter().filter(|d| d.is_error()).count();
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
        Some(v) => match scalar(v) {
            Some("1") => Some(SUPPORTED_VERSION),
            _ => {
                r.diags.push(Diagnostic::new(
                    "version",
                    Problem::UnsupportedVersion(found(v)),
                ));
                // Everything else may mean something different in another version.
                return None;
            }
        },
    };

    let cluster = r.required(&top, "cluster").and_then(|n| {
        let m = r.map(n, "cluster", CLUSTER_KEYS)?;
        Some(Cluster {
            name: r
                .required(&m, "name")
                .and_then(|n| r.string(n, "cluster.name"))?,
        })
    });
    let tailscale = r.required(&top, "tailscale").and_then(|n| r.tailscale(n));
    let k3s = r.required(&top, "k3s").and_then(|n| r.k3s(n));
    let firewall = match top.get("firewall") {
        Some(n) if !n.is_null() => r.firewall(n),
        _ => Some(Firewall {
            backend: FirewallBackend::Ufw,
            ssh: SshPolicy::Tailscale,
            public_tcp: vec![],
            public_udp: vec![],
            mesh_tcp: vec![],
            mesh_udp: vec![],
            allow_public_k3s_ports: false,
            allow_pod_metadata: false,
        }),
    };
    let defaults = match top.get("defaults") {
        Some(n) if !n.is_null() => r
            .map(n, "defaults", NODE_FIELD_KEYS)
            .map(|m| r.node_fields(&m, "defaults")),
        _ => Some(NodeFields::default()),
    };
    let nodes = r.required(&top, "nodes").and_then(|n| {
        let items = r.seq(n, "nodes")?;
        if items.is_empty() {
            r.diags.push(Diagnostic::new("nodes", Problem::NoNodes));
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(n) = r.node(item, &format!("nodes[{i}]")) {
                out.push(n);
            }
        }
        Some(out)
    });

    let after = r.diags.iter().filter(|d| d.is_error()).count();
    let spec = Spec {
        version: version?,
        cluster: cluster?,
        tailscale: tailscale?,
        k3s: k3s?,
        firewall: firewall?,
        defaults: defaults?,
        nodes: nodes?,
    };
    (after == before).then_some(spec)
}

/// Refuses every secret written into the spec outside the secret-reference fields: each
/// scalar (key or value) that is a credential flag (`--token=...`, see [`refusal`]) or that
/// looks like a key or token, or holds one as a word. This is the one place that looks;
/// whatever else
/// the reader or [`crate::validate`] finds wrong with such a value is dropped later
/// ([`crate::diagnostics::drop_shadowed`]), so the secret is reported once and never shown.
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
}

fn scalar(n: &Node) -> Option<&str> {
    match &n.kind {
        NodeKind::Scalar { value, .. } if !n.is_null() => Some(value),
        _ => None,
    }
}

/// The last key of a path: `nodes[0].role` -> `role`.
fn last_key(path: &str) -> &str {
    path.rsplit(['.', ']']).next().unwrap_or(path)
}

/// A value as a message shows it (see [`Found`]).
fn found(n: &Node) -> Found {
    match &n.kind {
        NodeKind::Scalar { .. } if n.is_null() => Found::Null,
        NodeKind::Scalar { value, .. } => Found::Value(value.clone()),
        _ => Found::Shape(n.shape()),
    }
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

/// What meshboot calls the roles other tools name differently.
const ROLE_ALIASES: &[(&str, &str)] = &[
    ("worker", "agent"),
    ("node", "agent"),
    ("master", "server"),
    ("control-plane", "server"),
    ("controlplane", "server"),
];

/// Other names for the values of the smaller choices (flannel backend, ssh policy).
const CHOICE_ALIASES: &[(&str, &str)] = &[
    ("wireguard", "wireguard-native"),
    ("wg", "wireguard-native"),
    ("mesh", "tailscale"),
    ("none", "off"),
    ("internet", "public"),
];

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Reader<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// Paths that an unknown key was suggested for (`auth-key` -> `tailscale.auth_key`):
    /// their "missing" error would only repeat the suggestion.
    suggested: Vec<String>,
}

impl Reader<'_> {
    /// The top level: a mapping of sections.
    fn top<'n>(&mut self, root: &'n Node) -> Option<MapView<'n>> {
        let problem = match &root.kind {
            NodeKind::Map(_) => return self.map(root, "", TOP_KEYS),
            NodeKind::Scalar { .. } if root.is_null() && root.span.len == 0 => Problem::EmptySpec,
            NodeKind::Seq(_) => Problem::SpecIsList,
            NodeKind::Scalar { .. } => Problem::SpecIsScalar(root.shape()),
        };
        let problem = Diagnostic::new("", problem);
        let problem = if root.span.len == 0 {
            problem
        } else {
            problem.at(root.span)
        };
        self.diags.push(problem);
        None
    }

    fn map<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<MapView<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.diags.push(Diagnostic::new(
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
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (k, v) in entries {
            let Some(key) = scalar(k) else {
                self.diags
                    .push(Diagnostic::new(path, Problem::KeyNotWord(k.shape())).at(k.span));
                continue;
            };
            if let Some(first_line) = seen.insert(key, k.span.line) {
                self.diags.push(
                    Diagnostic::new(
                        join(path, key),
                        Problem::DuplicateKey {
                            key: key.to_string(),
                            first_line,
                        },
                    )
                    .on_key()
                    .at(k.span),
                );
                continue;
            }
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
            self.diags.push(
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

    fn required<'n>(&mut self, m: &MapView<'n>, key: &str) -> Option<&'n Node> {
        let v = m.get(key);
        if v.is_none() && !self.suggested.contains(&m.child(key)) {
            self.diags.push(
                Diagnostic::new(
                    m.child(key),
                    Problem::Missing {
                        key: key.to_string(),
                        within: m.path.clone(),
                    },
                )
                .on_parent_key(),
            );
        }
        v
    }

    fn seq<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.kind {
            NodeKind::Seq(items) => Some(items),
            _ if node.is_null() => Some(&[]),
            _ => {
                self.diags.push(Diagnostic::new(
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

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { value, .. } if !node.is_null() => Some(value.clone()),
            _ => {
                self.diags.push(Diagnostic::new(
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

    fn opt_string(&mut self, m: &MapView, key: &str) -> Option<Option<String>> {
        match m.get(key) {
            None => Some(None),
            Some(n) if n.is_null() => Some(None),
            Some(n) => self.string(n, &m.child(key)).map(Some),
        }
    }

    fn bool(&mut self, m: &MapView, key: &str, default: bool) -> Option<bool> {
        let Some(n) = m.get(key) else {
            return Some(default);
        };
        match &n.kind {
            NodeKind::Scalar { value, plain: true } if value == "true" => Some(true),
            NodeKind::Scalar { value, plain: true } if value == "false" => Some(false),
            _ => {
                self.diags.push(Diagnostic::new(
                    m.child(key),
                    Problem::ExpectedBool {
                        key: key.to_string(),
                        found: found(n),
                    },
                ));
                None
            }
        }
    }

    fn strings(&mut self, m: &MapView, key: &str) -> Option<Vec<String>> {
        let Some(n) = m.get(key) else {
            return Some(vec![]);
        };
        let path = m.child(key);
        let items = self.seq(n, &path)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &format!("{path}[{i}]")) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn choice<T: Copy>(
        &mut self,
        node: &Node,
        path: &str,
        what: &'static str,
        options: &[(&'static str, T)],
        aliases: &[(&'static str, &'static str)],
    ) -> Option<T> {
        let names: Vec<&'static str> = options.iter().map(|(n, _)| *n).collect();
        if let Some(v) = scalar(node)
            && let Some((_, t)) = options.iter().find(|(n, _)| *n == v)
        {
            return Some(*t);
        }
        let given = scalar(node).unwrap_or("");
        let aliases: Vec<&(&'static str, &'static str)> = aliases
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
        self.diags.push(Diagnostic::new(
            path,
            Problem::UnknownChoice {
                what,
                found: found(node),
                names,
                hint,
            },
        ));
        None
    }

    fn opt_choice<T: Copy>(
        &mut self,
        m: &MapView,
        key: &str,
        what: &'static str,
        options: &[(&'static str, T)],
        default: T,
    ) -> Option<T> {
        match m.get(key) {
            None => Some(default),
            Some(n) => self.choice(n, &m.child(key), what, options, CHOICE_ALIASES),
        }
    }

    /// A secret reference. A literal value is refused and never echoed: the value of a
    /// secret field is masked in the source line too (see [`crate::secrets`]).
    fn secret(&mut self, node: &Node, path: &str) -> Option<SecretRef> {
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
                let m = self.map(node, path, SECRET_KEYS)?;
                let env = self.opt_string(&m, "env")?;
                let file = self.opt_string(&m, "file")?;
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
                self.diags.push(Diagnostic::new(at, problem));
                return None;
            }
        };
        self.diags.push(Diagnostic::new(path, problem));
        None
    }

    fn port(&mut self, node: &Node, path: &str) -> Option<PortRange> {
        let bad = |r: &mut Self, problem: Problem| {
            r.diags.push(Diagnostic::new(path, problem));
            None
        };
        let Some(text) = scalar(node) else {
            return bad(self, Problem::NotAPort(Found::Shape(node.shape())));
        };
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
        match (start, end) {
            (Some(s), Some(e))
                if (1..=65535).contains(&s) && (1..=65535).contains(&e) && s <= e =>
            {
                Some(PortRange { start: s, end: e })
            }
            (Some(s), Some(e)) if s > e && e >= 1 => {
                bad(self, Problem::PortRangeBackwards(text.to_string()))
            }
            (Some(_), Some(_)) => bad(self, Problem::PortOutOfRange(text.to_string())),
            _ => bad(self, Problem::NotAPort(Found::Value(text.to_string()))),
        }
    }

    fn ports(&mut self, m: &MapView, key: &str) -> Option<Vec<PortRange>> {
        let Some(n) = m.get(key) else {
            return Some(vec![]);
        };
        let path = m.child(key);
        let items = self.seq(n, &path)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.port(item, &format!("{path}[{i}]")) {
                Some(p) => out.push(p),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn tailscale(&mut self, node: &Node) -> Option<Tailscale> {
        let m = self.map(node, "tailscale", TAILSCALE_KEYS)?;
        let auth_key = self
            .required(&m, "auth_key")
            .and_then(|n| self.secret(n, "tailscale.auth_key"));
        let tags = self.strings(&m, "tags");
        let ssh = self.bool(&m, "ssh", false);
        let accept_dns = self.bool(&m, "accept_dns", false);
        let login_server = self.opt_string(&m, "login_server");
        let version = self.opt_string(&m, "version");
        Some(Tailscale {
            auth_key: auth_key?,
            tags: tags?,
            ssh: ssh?,
            accept_dns: accept_dns?,
            login_server: login_server?,
            version: version?,
        })
    }

    fn k3s(&mut self, node: &Node) -> Option<K3s> {
        let m = self.map(node, "k3s", K3S_KEYS)?;
        let version = self.opt_string(&m, "version");
        let channel = self.opt_string(&m, "channel");
        let token = self
            .required(&m, "token")
            .and_then(|n| self.secret(n, "k3s.token"));
        let agent_token = match m.get("agent_token") {
            None => Some(None),
            Some(n) => self.secret(n, "k3s.agent_token").map(Some),
        };
        let cluster_cidr = self.opt_string(&m, "cluster_cidr");
        let service_cidr = self.opt_string(&m, "service_cidr");
        let flannel_backend = self.opt_choice(
            &m,
            "flannel_backend",
            "flannel backend",
            &[
                ("vxlan", FlannelBackend::Vxlan),
                ("wireguard-native", FlannelBackend::WireguardNative),
                ("none", FlannelBackend::None),
            ],
            FlannelBackend::Vxlan,
        );
        let disable = self.strings(&m, "disable");
        let server_args = self.strings(&m, "server_args");
        let agent_args = self.strings(&m, "agent_args");
        let allow_owned_args = self.bool(&m, "allow_owned_args", false);
        Some(K3s {
            version: version?,
            channel: channel?,
            token: token?,
            agent_token: agent_token?,
            cluster_cidr: cluster_cidr?.unwrap_or_else(|| "10.42.0.0/16".into()),
            service_cidr: service_cidr?.unwrap_or_else(|| "10.43.0.0/16".into()),
            flannel_backend: flannel_backend?,
            disable: disable?,
            server_args: server_args?,
            agent_args: agent_args?,
            allow_owned_args: allow_owned_args?,
        })
    }

    fn backend(
        &mut self,
        m: &MapView,
        default: Option<FirewallBackend>,
    ) -> Option<Option<FirewallBackend>> {
        match m.get("backend") {
            None => Some(default),
            Some(n) => self
                .choice(
                    n,
                    &m.child("backend"),
                    "firewall backend",
                    &[
                        ("ufw", FirewallBackend::Ufw),
                        ("nftables", FirewallBackend::Nftables),
                        ("none", FirewallBackend::None),
                    ],
                    &[("iptables", "nftables"), ("nft", "nftables")],
                )
                .map(Some),
        }
    }

    fn firewall(&mut self, node: &Node) -> Option<Firewall> {
        let m = self.map(node, "firewall", FIREWALL_KEYS)?;
        let backend = self.backend(&m, Some(FirewallBackend::Ufw));
        let ssh = self.opt_choice(
            &m,
            "ssh",
            "ssh policy",
            &[
                ("tailscale", SshPolicy::Tailscale),
                ("public", SshPolicy::Public),
                ("off", SshPolicy::Off),
            ],
            SshPolicy::Tailscale,
        );
        let public_tcp = self.ports(&m, "public_tcp");
        let public_udp = self.ports(&m, "public_udp");
        let mesh_tcp = self.ports(&m, "mesh_tcp");
        let mesh_udp = self.ports(&m, "mesh_udp");
        let allow = self.bool(&m, "allow_public_k3s_ports", false);
        let allow_metadata = self.bool(&m, "allow_pod_metadata", false);
        Some(Firewall {
            backend: backend??,
            ssh: ssh?,
            public_tcp: public_tcp?,
            public_udp: public_udp?,
            mesh_tcp: mesh_tcp?,
            mesh_udp: mesh_udp?,
            allow_public_k3s_ports: allow?,
            allow_pod_metadata: allow_metadata?,
        })
    }

    fn labels(&mut self, n: &Node, lpath: &str) -> Option<Vec<(String, String)>> {
        if n.is_null() {
            return Some(vec![]);
        }
        let NodeKind::Map(entries) = &n.kind else {
            self.diags
                .push(Diagnostic::new(lpath, Problem::LabelsNotMapping(n.shape())));
            return None;
        };
        let mut out = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut ok = true;
        for (k, v) in entries {
            let Some(key) = scalar(k) else {
                self.diags
                    .push(Diagnostic::new(lpath, Problem::LabelKeyNotValue(k.shape())).at(k.span));
                ok = false;
                continue;
            };
            if let Some(first_line) = seen.insert(key, k.span.line) {
                self.diags.push(
                    Diagnostic::new(
                        join(lpath, key),
                        Problem::DuplicateLabel {
                            key: key.to_string(),
                            first_line,
                        },
                    )
                    .on_key()
                    .at(k.span),
                );
                ok = false;
                continue;
            }
            let value = match &v.kind {
                NodeKind::Scalar { value, .. } => value.clone(),
                _ => {
                    self.diags.push(Diagnostic::new(
                        join(lpath, key),
                        Problem::LabelValueNotValue(v.shape()),
                    ));
                    ok = false;
                    continue;
                }
            };
            out.push((key.to_string(), value));
        }
        ok.then_some(out)
    }

    fn node_fields(&mut self, m: &MapView, path: &str) -> NodeFields {
        let os = m.get("os").and_then(|n| {
            self.choice(
                n,
                &join(path, "os"),
                "os",
                &Os::ALL,
                &[
                    ("ubuntu", "ubuntu-24.04"),
                    ("debian", "debian-12"),
                    ("fcos", "fedora-coreos"),
                    ("coreos", "fedora-coreos"),
                ],
            )
        });
        let hcloud = m.get("hcloud").and_then(|n| {
            if n.is_null() {
                return None;
            }
            let hm = self.map(n, &join(path, "hcloud"), HCLOUD_KEYS)?;
            Some(Hcloud {
                server_type: self.opt_string(&hm, "type")?,
                location: self.opt_string(&hm, "location")?,
            })
        });
        let labels = m
            .get("labels")
            .and_then(|n| self.labels(n, &join(path, "labels")));
        let taints = m
            .get("taints")
            .map(|_| self.strings(m, "taints").unwrap_or_default());
        let firewall = m.get("firewall").and_then(|n| {
            if n.is_null() {
                return None;
            }
            let fpath = join(path, "firewall");
            let fm = self.map(n, &fpath, NODE_FIREWALL_KEYS)?;
            Some(NodeFirewall {
                backend: self.backend(&fm, None)?,
                public_tcp: self.ports(&fm, "public_tcp")?,
                public_udp: self.ports(&fm, "public_udp")?,
            })
        });
        NodeFields {
            os,
            hcloud,
            labels,
            taints,
            firewall,
        }
    }

    fn node(&mut self, node: &Node, path: &str) -> Option<NodeSpec> {
        let m = self.map(node, path, NODE_KEYS)?;
        let name = self
            .required(&m, "name")
            .and_then(|n| self.string(n, &m.child("name")));
        let role = self.required(&m, "role").and_then(|n| {
            self.choice(
                n,
                &m.child("role"),
                "role",
                &[("server", Role::Server), ("agent", Role::Agent)],
                ROLE_ALIASES,
            )
        });
        let count = match m.get("count") {
            None => Some(None),
            Some(n) => match scalar(n)
                .filter(|s| s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u32>().ok())
            {
                Some(c) if (1..=MAX_COUNT).contains(&c) => Some(Some(c)),
                _ => {
                    self.diags.push(Diagnostic::new(
                        m.child("count"),
                        Problem::CountOutOfRange {
                            found: found(n),
                            max: MAX_COUNT,
                        },
                    ));
                    None
                }
            },
        };
        let fields = self.node_fields(&m, path);
        Some(NodeSpec {
            name: name?,
            role: role?,
            count: count?,
            fields,
        })
    }
}
