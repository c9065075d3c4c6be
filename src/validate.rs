//! Stage 2, validation: semantic checks over a structurally valid [`Spec`].
//!
//! Returns every problem as a [`Diagnostic`] (errors and warnings), never only the first.
//! Each problem is reported once, at the place in the spec where it is written: a label
//! inherited from `defaults` is reported at `defaults.labels`, not once per node.
//! Anything that would reach a shell, YAML or JSON is checked here against a strict
//! character set, so that the renderer's quoting is a second line of defence, not the
//! only one. Literal secrets are refused wherever they appear.

use crate::diagnostics::Diagnostic;
use crate::firewall::{K3S_INTERNAL_TCP, K3S_INTERNAL_UDP, overlaps};
use crate::plan::{ExpandedNode, cidr_list, expand, parse_args};
use crate::secrets::{looks_like_secret, secret_flag_value, url_has_credentials};
use crate::spec::{FirewallBackend, NodeFields, Os, PortRange, Role, Spec, quote_short};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

use crate::firewall::{TAILSCALE_V4, TAILSCALE_V6};

/// The most servers (embedded etcd members) a cluster may have.
pub const MAX_SERVERS: usize = 7;

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
    if looks_like_secret(&spec.cluster.name) {
        d.push(pasted_secret("cluster.name"));
    } else if let Some(why) = label_problem(&spec.cluster.name) {
        d.push(
            Diagnostic::error("cluster.name", format!("cluster name {} {why}", quote_short(&spec.cluster.name)))
                .help("the cluster name is a DNS label: lowercase letters, digits and `-`, at most 63 characters, not starting or ending with `-`"),
        );
    }
    let nodes = expand(spec);
    check_names(spec, &mut d);
    check_fields(spec, &spec.defaults, "defaults", &mut d);
    for (i, n) in spec.nodes.iter().enumerate() {
        check_fields(spec, &n.fields, &format!("nodes[{i}]"), &mut d);
    }
    check_servers(spec, &nodes, &mut d);
    check_os_firewall(spec, &nodes, &mut d);
    check_tailscale(spec, &mut d);
    check_k3s(spec, &mut d);
    check_firewall(spec, &mut d);
    d
}

/// RFC 1123 label: lowercase letters, digits and `-`, 1-63 characters, alphanumeric at
/// both ends.
pub fn is_dns_label(s: &str) -> bool {
    label_problem(s).is_none()
}

/// What is wrong with `s` as a lowercase DNS label, in words (`None` when it is fine).
fn label_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(if c.is_ascii_uppercase() {
            format!("has an uppercase letter `{c}` (names are lowercase)")
        } else {
            contains(c)
        });
    }
    if s.len() > 63 {
        return Some(format!("is {} characters long (at most 63)", s.len()));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("starts or ends with `-`".into());
    }
    None
}

/// A value outside the secret fields that looks like a key or token: refused, not shown.
fn pasted_secret(path: impl Into<String>) -> Diagnostic {
    Diagnostic::error(
        path,
        "this looks like a secret (a Tailscale key or a K3s token); meshboot refuses secrets in the spec",
    )
    .help("secrets belong in `tailscale.auth_key` and `k3s.token`, as `{ env: VAR }` or `{ file: PATH }` references; if this value was ever committed or shared, revoke it")
}

/// "contains X" for a character that is not allowed, named so that it can be seen.
fn contains(c: char) -> String {
    match c {
        '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' => "contains a line break".into(),
        ' ' => "contains a space".into(),
        '`' => "contains a backtick".into(),
        c if c.is_control() => format!("contains the control character U+{:04X}", c as u32),
        c if c.is_ascii() => format!("contains `{c}`"),
        c if c.is_alphanumeric() => format!("contains the non-ASCII character `{c}`"),
        c => format!("contains the character U+{:04X}", c as u32),
    }
}

/// Why `s` is not a Kubernetes label value: empty, or at most 63 of [A-Za-z0-9-_.],
/// alphanumeric at both ends.
fn label_value_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return None;
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(contains(c));
    }
    if s.len() > 63 {
        return Some(format!("is {} characters long (at most 63)", s.len()));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric()
        || !s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
    {
        return Some("does not start and end with a letter or digit".into());
    }
    None
}

/// Why `s` is not a Kubernetes qualified name (`name` or `prefix/name`).
fn qualified_name_problem(s: &str) -> Option<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(is_dns_label))
    {
        return Some(format!(
            "has a prefix {} that is not a DNS subdomain",
            quote_short(p)
        ));
    }
    if name.is_empty() {
        return Some("has an empty name".into());
    }
    label_value_problem(name)
}

/// Why `t` is not a taint `key[=value]:Effect`.
fn taint_problem(t: &str) -> Option<String> {
    const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Some(contains(c));
    }
    let Some((kv, effect)) = t.rsplit_once(':') else {
        return Some("has no `:Effect`".into());
    };
    if !EFFECTS.contains(&effect) {
        return Some(match crate::diagnostics::did_you_mean(effect, EFFECTS) {
            Some(e) => format!(
                "has the effect {} (did you mean `{e}`?)",
                quote_short(effect)
            ),
            None => format!(
                "has the effect {}, not one of NoSchedule, PreferNoSchedule, NoExecute",
                quote_short(effect)
            ),
        });
    }
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    if k.is_empty() {
        return Some("has an empty key".into());
    }
    if let Some(p) = qualified_name_problem(k) {
        return Some(format!("has a key that {p}"));
    }
    label_value_problem(v).map(|p| format!("has a value that {p}"))
}

/// Node names after `count` expansion: valid hostnames, and unique.
fn check_names(spec: &Spec, d: &mut Vec<Diagnostic>) {
    const HELP: &str = "node names become hostnames and Tailscale machine names: lowercase letters, digits and `-`, at most 63 characters";
    // Expanded name -> the entry that produced it first.
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut reported: BTreeSet<(usize, usize)> = BTreeSet::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        let path = format!("nodes[{i}].name");
        if looks_like_secret(&n.name) {
            d.push(pasted_secret(&path));
            continue;
        }
        if let Some(why) = label_problem(&n.name) {
            d.push(
                Diagnostic::error(&path, format!("node name {} {why}", quote_short(&n.name)))
                    .help(HELP),
            );
            continue;
        }
        let names: Vec<String> = match n.count {
            None => vec![n.name.clone()],
            Some(c) => (1..=c).map(|k| format!("{}-{k}", n.name)).collect(),
        };
        if let Some(longest) = names.last()
            && longest.len() > 63
        {
            let c = n.count.unwrap_or(1);
            d.push(
                Diagnostic::error(
                    &path,
                    format!(
                        "with `count: {c}` the last node is named NAME-{c}, {} characters long (at most 63)",
                        longest.len()
                    ),
                )
                .help(format!(
                    "shorten the name to at most {} characters",
                    63 - (longest.len() - n.name.len())
                )),
            );
            continue;
        }
        let made_by = |e: &crate::spec::NodeSpec| {
            e.count.map(|c| {
                format!(
                    " (`{}` with `count: {c}` makes {}-1 .. {}-{c})",
                    e.name, e.name, e.name
                )
            })
        };
        for name in names {
            match owner.get(&name) {
                Some(&first) if first != i => {
                    if reported.insert((first, i)) {
                        let subject = match n.count {
                            Some(c) => {
                                format!("`{}` with `count: {c}` makes \"{name}\", which", n.name)
                            }
                            None => format!("node name \"{name}\""),
                        };
                        let theirs = made_by(&spec.nodes[first]).unwrap_or_default();
                        d.push(
                            Diagnostic::error(
                                &path,
                                format!("{subject} is already taken by nodes[{first}]{theirs}"),
                            )
                            .help("every node needs its own name: rename one of the entries"),
                        );
                    }
                }
                Some(_) => {}
                None => {
                    owner.insert(name, i);
                }
            }
        }
    }
}

/// Checks the fields of `defaults` or of one node entry, at their own path.
fn check_fields(spec: &Spec, f: &NodeFields, base: &str, d: &mut Vec<Diagnostic>) {
    for (k, v) in f.labels.iter().flatten() {
        let path = format!("{base}.labels.{k}");
        if looks_like_secret(k) || looks_like_secret(v) {
            d.push(pasted_secret(&path));
        } else if let Some(why) = qualified_name_problem(k) {
            d.push(
                Diagnostic::error(&path, format!("label key {} {why}", quote_short(k)))
                    .help("write `name` or `prefix/name`: the name is at most 63 of A-Z a-z 0-9 `-` `_` `.`, starting and ending with a letter or digit; the prefix is a DNS subdomain such as example.com")
                    .on_key(),
            );
        } else if let Some(why) = label_value_problem(v) {
            d.push(
                Diagnostic::error(&path, format!("label value {} {why}", quote_short(v)))
                .help("a label value is empty, or at most 63 of A-Z a-z 0-9 `-` `_` `.`, starting and ending with a letter or digit"),
            );
        }
    }
    for (i, t) in f.taints.iter().flatten().enumerate() {
        if looks_like_secret(t) {
            d.push(pasted_secret(format!("{base}.taints[{i}]")));
        } else if let Some(why) = taint_problem(t) {
            d.push(
                Diagnostic::error(format!("{base}.taints[{i}]"), format!("taint {} {why}", quote_short(t)))
                    .help("for example \"dedicated=edge:NoSchedule\": key and value as in labels, and Effect one of NoSchedule, PreferNoSchedule, NoExecute"),
            );
        }
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
        for (key, value, example) in [
            ("type", &h.server_type, "cx22, cax21, ccx13"),
            ("location", &h.location, "fsn1, nbg1, hel1, ash, hil, sin"),
        ] {
            if let Some(v) = value
                && !(v.len() <= 32
                    && !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
            {
                d.push(
                    Diagnostic::error(
                        format!("{base}.hcloud.{key}"),
                        format!("{} is not a Hetzner Cloud server {key}", quote_short(v)),
                    )
                    .help(format!(
                        "Hetzner names are lowercase letters, digits and `-`, e.g. {example}"
                    )),
                );
            }
        }
    }
}

/// How many servers, whether the number suits embedded etcd, and where they are.
fn check_servers(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let servers: Vec<&ExpandedNode> = nodes.iter().filter(|n| n.role == Role::Server).collect();
    if servers.is_empty() && !nodes.is_empty() {
        d.push(Diagnostic::error("nodes", "the spec has no server").help(
            "give at least one node `role: server`; the first server initialises the cluster",
        ));
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
        d.push(
            Diagnostic::error(&at, format!("{n} servers: every server is an embedded etcd member, and etcd is meant for 3, 5 or 7"))
                .help(format!("use at most {MAX_SERVERS} servers and make the other nodes agents (`role: agent`); agents can be as many as you like")),
        );
    } else if n > 1 && n.is_multiple_of(2) {
        d.push(
            Diagnostic::warning(
                &at,
                format!(
                    "{n} servers: an even number of etcd members tolerates no more failures than {} (both survive {} failure{})",
                    n - 1,
                    (n - 1) / 2,
                    if (n - 1) / 2 == 1 { "" } else { "s" }
                ),
            )
            .help("use an odd number of servers (1, 3 or 5); agents can be any number"),
        );
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
        let list: Vec<String> = locations.iter().map(|l| quote_short(l)).collect();
        d.push(
            Diagnostic::warning(
                path,
                format!(
                    "servers span several locations ({}): K3s does not support embedded etcd across regions, and etcd is sensitive to the latency between them",
                    list.join(", ")
                ),
            )
            .help("keep the servers in one location (agents may go anywhere), and pin `k3s.version`"),
        );
    }
}

/// Where a node's Hetzner location is written: on its entry, or in `defaults`.
fn location_path(spec: &Spec, n: &ExpandedNode) -> String {
    let own = spec
        .nodes
        .iter()
        .enumerate()
        .find(|(i, _)| format!("nodes[{i}]") == n.path)
        .and_then(|(_, e)| e.fields.hcloud.as_ref()?.location.as_ref())
        .is_some();
    if own {
        format!("{}.hcloud.location", n.path)
    } else {
        "defaults.hcloud.location".into()
    }
}

/// ufw does not exist on Flatcar and Fedora CoreOS: say that those nodes use nftables.
fn check_os_firewall(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let mut seen = BTreeSet::new();
    for n in nodes {
        let declared = n
            .fields
            .firewall
            .as_ref()
            .and_then(|f| f.backend)
            .unwrap_or(spec.firewall.backend);
        let os = n.fields.os.unwrap_or(crate::plan::DEFAULT_OS);
        if declared == FirewallBackend::Ufw && matches!(os, Os::Flatcar | Os::FedoraCoreos) {
            let entry_os = spec
                .nodes
                .iter()
                .enumerate()
                .find(|(i, _)| format!("nodes[{i}]") == n.path)
                .and_then(|(_, e)| e.fields.os);
            let path = if entry_os.is_some() {
                format!("{}.os", n.path)
            } else {
                "defaults.os".into()
            };
            if seen.insert(path.clone()) {
                d.push(
                    Diagnostic::warning(
                        path,
                        format!(
                            "{} has no ufw: these nodes get the same rules through nftables",
                            os.name()
                        ),
                    )
                    .help("set `firewall: { backend: nftables }` on these nodes (or in `defaults:`) to say so"),
                );
            }
        }
    }
}

fn check_tailscale(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let ts = &spec.tailscale;
    for (i, tag) in ts.tags.iter().enumerate() {
        if looks_like_secret(tag) {
            d.push(pasted_secret(format!("tailscale.tags[{i}]")));
            continue;
        }
        let why = match tag.strip_prefix("tag:") {
            None => Some("does not start with `tag:`".to_string()),
            Some("") => Some("has no name after `tag:`".to_string()),
            Some(t) if t.len() > 64 => Some(format!(
                "is {} characters long (at most 64 after `tag:`)",
                t.len()
            )),
            Some(t) => t
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
                .map(|c| {
                    if c.is_ascii_uppercase() {
                        format!("has an uppercase letter `{c}` (tags are lowercase)")
                    } else {
                        contains(c)
                    }
                }),
        };
        if let Some(why) = why {
            d.push(
                Diagnostic::error(
                    format!("tailscale.tags[{i}]"),
                    format!("tag {} {why}", quote_short(tag)),
                )
                .help("tags look like `tag:k3s`: `tag:` then lowercase letters, digits and `-`"),
            );
        }
    }
    if let Some(url) = &ts.login_server {
        if looks_like_secret(url) {
            d.push(pasted_secret("tailscale.login_server"));
            return check_tailscale_version(spec, d);
        }
        if url_has_credentials(url) {
            d.push(
                Diagnostic::error(
                    "tailscale.login_server",
                    "the control server URL holds a user name or password",
                )
                .help("write the URL without credentials, e.g. https://headscale.example.com; nodes authenticate with `auth_key`"),
            );
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
            let why = if rest.is_none() {
                "does not start with https://".to_string()
            } else if let Some(c) = bad {
                format!("{}, which a URL cannot hold unencoded", contains(c))
            } else if url.len() > 2048 {
                format!("is {} characters long (at most 2048)", url.len())
            } else {
                "does not name a host".to_string()
            };
            d.push(
                Diagnostic::error("tailscale.login_server", format!("{} {why}", quote_short(url)))
                    .help("write the URL of your Headscale or control server, e.g. https://headscale.example.com; percent-encode anything else (a space is %20)"),
            );
        } else if url.starts_with("http://") {
            d.push(
                Diagnostic::warning(
                    "tailscale.login_server",
                    "the control server URL is plain http",
                )
                .help("use https:// so that node registration cannot be intercepted"),
            );
        }
    }
    check_tailscale_version(spec, d);
}

fn check_tailscale_version(spec: &Spec, d: &mut Vec<Diagnostic>) {
    if let Some(v) = &spec.tailscale.version
        && !is_semver(v)
    {
        d.push(
            Diagnostic::error("tailscale.version", format!("{} is not a Tailscale version", quote_short(v)))
                .help("write a release number such as 1.90.6, or leave it out for the newest stable release"),
        );
    }
}

fn is_semver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn check_k3s(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let k = &spec.k3s;
    if k.agent_token.is_none() && spec.nodes.iter().any(|n| n.role == Role::Agent) {
        d.push(
            Diagnostic::warning("k3s.token", "agents get the server token, which lets whoever holds it join as a server")
                .help("add `agent_token: { env: K3S_AGENT_TOKEN }`: servers then accept agents with it, and agents never hold the server token"),
        );
    }
    match (&k.version, &k.channel) {
        (Some(_), Some(_)) => d.push(
            Diagnostic::error("k3s.channel", "both `version` and `channel` are set")
                .help("pin `version` (recommended: every node, now and later, runs the same release) or follow a `channel`, not both"),
        ),
        (None, None) => d.push(
            Diagnostic::warning(
                "k3s",
                "no K3s version is pinned: every node installs whatever `stable` is on the day it boots",
            )
            .on_key()
            .help(
                "set `version: v1.33.5+k3s1` (or another release) so that every node runs the same release",
            ),
        ),
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
            let help = if is_channel(v) {
                format!("`{v}` is a channel: write `channel: {v}` instead of `version:`")
            } else if is_semver(v) {
                format!("did you mean `v{v}+k3s1`? K3s releases look like v1.33.5+k3s1")
            } else if v.strip_prefix('v').is_some_and(is_semver) {
                format!("did you mean `{v}+k3s1`? K3s releases look like v1.33.5+k3s1")
            } else {
                "K3s releases look like v1.33.5+k3s1; to follow a release line, write `channel: stable` instead".into()
            };
            d.push(
                Diagnostic::error(
                    "k3s.version",
                    format!("{} is not a K3s release", quote_short(v)),
                )
                .help(help),
            );
        }
    }
    if let Some(c) = &k.channel
        && !is_channel(c)
    {
        d.push(
            Diagnostic::error(
                "k3s.channel",
                format!("{} is not a K3s channel", quote_short(c)),
            )
            .help("use stable, latest, testing, or a minor line such as v1.33 (to pin a release, write `version: v1.33.5+k3s1`)"),
        );
    }
    for (i, item) in k.disable.iter().enumerate() {
        if looks_like_secret(item) {
            d.push(pasted_secret(format!("k3s.disable[{i}]")));
        } else if !K3S_COMPONENTS.contains(&item.as_str()) {
            let hint = crate::diagnostics::did_you_mean(item, K3S_COMPONENTS)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            let d0 = if is_dns_label(item) {
                Diagnostic::warning(
                    format!("k3s.disable[{i}]"),
                    format!(
                        "{} is not a component this meshboot knows K3s can disable",
                        quote_short(item)
                    ),
                )
            } else {
                Diagnostic::error(
                    format!("k3s.disable[{i}]"),
                    format!("{} is not a K3s component", quote_short(item)),
                )
            };
            d.push(d0.help(format!(
                "{hint}K3s's packaged components are {}",
                K3S_COMPONENTS.join(", ")
            )));
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

fn is_channel(c: &str) -> bool {
    matches!(c, "stable" | "latest" | "testing")
        || c.strip_prefix('v').is_some_and(|r| {
            let parts: Vec<&str> = r.split('.').collect();
            parts.len() == 2
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn check_cidrs(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let mut parsed: Vec<(&str, IpNet, String)> = Vec::new();
    for (field, value) in [
        ("k3s.cluster_cidr", &spec.k3s.cluster_cidr),
        ("k3s.service_cidr", &spec.k3s.service_cidr),
    ] {
        let list = cidr_list(value);
        if list.is_empty() {
            d.push(Diagnostic::error(field, "no network given").help(
                "write a network such as 10.42.0.0/16, or leave the key out for the default",
            ));
            continue;
        }
        let mut families = BTreeSet::new();
        for c in list {
            match c.parse::<IpNet>() {
                Ok(net) if net.trunc() != net => d.push(
                    Diagnostic::error(field, format!("{} has host bits set", quote_short(&c)))
                        .help(format!("write the network address: {}", net.trunc()))
                        .narrow(c.as_str()),
                ),
                Ok(net) => {
                    if !families.insert(matches!(net, IpNet::V4(_))) {
                        d.push(
                            Diagnostic::error(field, format!("more than one IPv{} network", if matches!(net, IpNet::V4(_)) { 4 } else { 6 }))
                                .help("K3s takes at most one IPv4 and one IPv6 network (dual-stack: \"10.42.0.0/16,fd00:42::/56\")")
                                .narrow(c.as_str()),
                        );
                    } else {
                        parsed.push((field, net, c));
                    }
                }
                Err(_) => d.push(
                    Diagnostic::error(field, format!("{} is not a CIDR", quote_short(&c)))
                        .help("write a network such as 10.42.0.0/16 (dual-stack: \"10.42.0.0/16,fd00:42::/56\")")
                        .narrow(c.as_str()),
                ),
            }
        }
    }
    let ts: [IpNet; 2] = [
        TAILSCALE_V4.parse().unwrap_or_else(|_| unreachable!()),
        TAILSCALE_V6.parse().unwrap_or_else(|_| unreachable!()),
    ];
    for (field, net, written) in &parsed {
        for t in &ts {
            if net_overlap(net, t) {
                d.push(
                    Diagnostic::error(*field, format!("{net} overlaps Tailscale's address range {t}"))
                        .help("pick a range outside 100.64.0.0/10 and fd7a:115c:a1e0::/48, e.g. the defaults 10.42.0.0/16 and 10.43.0.0/16")
                        .narrow(written.as_str()),
                );
            }
        }
    }
    for (i, (fa, a, _)) in parsed.iter().enumerate() {
        for (fb, b, written) in &parsed[i + 1..] {
            if net_overlap(a, b) {
                d.push(
                    Diagnostic::error(*fb, format!("{b} overlaps {a} of `{fa}`"))
                        .help("the pod network (cluster_cidr) and the service network (service_cidr) must not overlap")
                        .narrow(written.as_str()),
                );
            }
        }
    }
    // flannel rides on tailscale0 (MTU 1280): its interfaces get about 1230, and the kernel
    // refuses IPv6 on an interface below 1280, so dual-stack pods would get no address.
    if spec.k3s.flannel_backend != crate::spec::FlannelBackend::None
        && let Some((_, _, written)) = parsed
            .iter()
            .find(|(f, n, _)| *f == "k3s.cluster_cidr" && matches!(n, IpNet::V6(_)))
    {
        d.push(
            Diagnostic::error(
                "k3s.cluster_cidr",
                "an IPv6 pod network needs pod interfaces with an MTU of at least 1280, and flannel over tailscale0 (MTU 1280) leaves about 1230",
            )
            .help("use an IPv4 pod network, or `flannel_backend: none` with a CNI of your own that handles the MTU")
            .narrow(written.as_str()),
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
        if let Some((flag, _)) = secret_flag_value(arg) {
            let help = match flag {
                "token" | "agent-token" => {
                    "the cluster token comes from `k3s.token` (`{ env: K3S_TOKEN }` or `{ file: PATH }`); meshboot writes it to a 0600 file and passes token-file"
                }
                "vpn-auth" => {
                    "meshboot joins the node to the mesh itself with `tailscale.auth_key`; K3s's --vpn-auth is not used"
                }
                _ => {
                    "keep credentials out of the spec: K3s reads the etcd S3 credentials from the etcd-s3-config-secret or its environment"
                }
            };
            d.push(
                Diagnostic::error(&path, format!("--{flag} would put a credential into the spec; secrets are refused in the spec"))
                    .help(format!("{help}. If this value was ever committed or shared, revoke it")),
            );
            continue;
        }
        let name_ok = arg.starts_with("--")
            && !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !name_ok {
            let why = if !arg.starts_with("--") {
                "does not start with `--`".to_string()
            } else if let Some(c) = name
                .chars()
                .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
            {
                format!("is not a K3s flag: its name {}", contains(c))
            } else {
                "is not a K3s flag".to_string()
            };
            d.push(
                Diagnostic::error(&path, format!("{} {why}", quote_short(arg)))
                    .help("write each flag as one string, `--name=value` or `--name`, e.g. \"--kube-apiserver-arg=audit-log-maxage=30\""),
            );
            continue;
        }
        if value
            .as_deref()
            .is_some_and(|v| looks_like_secret(v) || url_has_credentials(v))
        {
            d.push(
                Diagnostic::error(
                    &path,
                    format!(
                        "the value of --{name} looks like a secret; secrets are refused in the spec"
                    ),
                )
                .help("pass credentials to K3s through files on the node, not through the spec"),
            );
            continue;
        }
        if let Some(c) = value
            .as_deref()
            .and_then(|v| v.chars().find(|c| c.is_control()))
        {
            d.push(
                Diagnostic::error(&path, format!("the value of --{name} {}", contains(c)))
                    .help("a flag value is a single line without control characters"),
            );
            continue;
        }
        if let Some(v) = value.as_deref().filter(|v| v.len() > 4096) {
            d.push(
                Diagnostic::error(
                    &path,
                    format!("the value of --{name} is {} bytes long (at most 4096)", v.len()),
                )
                .help("pass long settings to K3s through a file on the node, e.g. --kube-apiserver-arg=audit-policy-file=/etc/..."),
            );
            continue;
        }
        if name == "tls-san" {
            let bad: Vec<String> = value
                .iter()
                .flat_map(|v| cidr_list(v))
                .filter(|s| !is_san(s))
                .collect();
            if value.as_deref().is_none_or(|v| cidr_list(v).is_empty()) || !bad.is_empty() {
                let shown = bad
                    .first()
                    .map(|b| quote_short(b))
                    .unwrap_or_else(|| "nothing".into());
                d.push(
                    Diagnostic::error(&path, format!("--tls-san names {shown}, which is not a hostname or an IP address"))
                        .help("--tls-san=api.example.com adds a name to the API server certificate (comma-separate several)")
                        .narrow(bad.first().cloned().unwrap_or_default()),
                );
            }
            continue;
        }
        if let Some(why) = owned_flag(&name)
            && !allow_owned
        {
            d.push(
                Diagnostic::error(&path, format!("--{name} is set by meshboot")).help(format!(
                    "{why}; to override it anyway, set `k3s.allow_owned_args: true`"
                )),
            );
        }
    }
}

fn check_firewall(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let fw = &spec.firewall;
    check_public_ports(spec, &fw.public_tcp, &fw.public_udp, "firewall", d);
    if fw.backend == FirewallBackend::None {
        d.push(
            Diagnostic::warning("firewall.backend", "no host firewall: every port K3s opens faces the internet")
                .help("use ufw or nftables, unless a provider firewall in front of every node blocks all but 41641/udp"),
        );
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
                d.push(
                    Diagnostic::error(
                        format!("{base}.public_{proto}[{i}]"),
                        format!("public port {p}/{proto} exposes the K3s-internal port {hit}/{proto} to the internet"),
                    )
                    .help("K3s ports are open over the mesh already; if you really mean to expose it, set `firewall.allow_public_k3s_ports: true`"),
                );
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
        assert_eq!(
            qualified_name_problem("$(x)").as_deref(),
            Some("contains `$`")
        );
        assert_eq!(taint_problem("dedicated=edge:NoSchedule"), None);
        assert_eq!(taint_problem("gpu:NoExecute"), None);
        assert!(taint_problem("gpu=true:Maybe").is_some());
        assert_eq!(
            taint_problem("a=`b`:NoSchedule").as_deref(),
            Some("has a value that contains a backtick")
        );
    }

    #[test]
    fn names_and_sans() {
        assert_eq!(
            label_problem("Cp-1").as_deref(),
            Some("has an uppercase letter `C` (names are lowercase)")
        );
        assert!(label_problem(&"a".repeat(64)).is_some());
        assert!(is_san("api.example.com") && is_san("10.0.0.1") && is_san("fd00::1"));
        assert!(!is_san("$(touch x)") && !is_san("a b"));
    }

    #[test]
    fn channels_and_credentials_in_urls() {
        assert!(is_channel("stable") && is_channel("v1.33") && !is_channel("v1.33.5+k3s1"));
        assert!(url_has_credentials("https://u:p@h.example.com/x"));
        assert!(!url_has_credentials("https://h.example.com/a@b"));
    }
}
