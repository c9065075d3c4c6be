//! Stage 2, validation: semantic checks over a structurally valid [`Spec`].
//!
//! Returns every problem as a [`Diagnostic`] (errors and warnings), never only the first.
//! Anything that would reach a shell, YAML or JSON is checked here against a strict
//! character set, so that the renderer's quoting is a second line of defence, not the
//! only one.

use crate::diagnostics::Diagnostic;
use crate::firewall::{K3S_INTERNAL_TCP, K3S_INTERNAL_UDP, overlaps};
use crate::plan::{ExpandedNode, cidr_list, expand, parse_args};
use crate::spec::{FirewallBackend, Os, PortRange, Role, Spec, quote_short};
use ipnet::IpNet;
use std::collections::BTreeMap;

const TAILSCALE_V4: &str = "100.64.0.0/10";
const TAILSCALE_V6: &str = "fd7a:115c:a1e0::/48";

pub fn validate(spec: &Spec) -> Vec<Diagnostic> {
    let mut d = Vec::new();
    if !is_dns_label(&spec.cluster.name) {
        d.push(
            Diagnostic::error("cluster.name", format!("{} is not a DNS label", quote_short(&spec.cluster.name)))
                .help("use lowercase letters, digits and `-`, at most 63 characters, not starting or ending with `-`"),
        );
    }
    let nodes = expand(spec);
    check_nodes(spec, &nodes, &mut d);
    check_tailscale(spec, &mut d);
    check_k3s(spec, &mut d);
    check_firewall(spec, &nodes, &mut d);
    d
}

pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_nodes(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for n in nodes {
        let name_path = format!("{}.name", n.path);
        if !is_dns_label(&n.name) {
            let why = if n.name.len() > 63 {
                format!(
                    "node name {} is longer than 63 characters",
                    quote_short(&n.name)
                )
            } else {
                format!("node name {} is not a valid hostname", quote_short(&n.name))
            };
            d.push(Diagnostic::error(&name_path, why).help(
                "node names become hostnames and Tailscale names: lowercase letters, digits and `-`, at most 63 characters (count adds `-N`)",
            ));
        } else if let Some(first) = seen.insert(&n.name, &n.path) {
            d.push(
                Diagnostic::error(
                    &name_path,
                    format!("node name \"{}\" is already used by {first}", n.name),
                )
                .help("every node needs its own name; with `count`, names are NAME-1 .. NAME-N"),
            );
        }
        check_labels(n, d);
        check_taints(n, d);
        if let Some(fw) = &n.fields.firewall {
            check_public_ports(
                spec,
                &fw.public_tcp,
                &fw.public_udp,
                &format!("{}.firewall", n.path),
                d,
            );
        }
    }
    // Duplicate-name errors for count-expanded entries repeat once per copy; keep one.
    d.dedup();

    let servers: Vec<&ExpandedNode> = nodes.iter().filter(|n| n.role == Role::Server).collect();
    if servers.is_empty() && !nodes.is_empty() {
        d.push(Diagnostic::error("nodes", "the spec has no server").help(
            "give at least one node `role: server`; the first server initialises the cluster",
        ));
    }
    if servers.len() > 1 && servers.len().is_multiple_of(2) {
        d.push(
            Diagnostic::warning(
                &servers[0].path,
                format!(
                    "{} servers run embedded etcd: an even number tolerates no more failures than one server fewer",
                    servers.len()
                ),
            )
            .help("use an odd number of servers (1, 3 or 5)"),
        );
    }
    let locations: std::collections::BTreeSet<&str> = servers
        .iter()
        .filter_map(|n| n.fields.hcloud.as_ref()?.location.as_deref())
        .collect();
    if locations.len() > 1 {
        let first_other = servers
            .iter()
            .find(|n| {
                n.fields.hcloud.as_ref().and_then(|h| h.location.as_deref())
                    != locations.first().copied()
            })
            .map(|n| format!("{}.hcloud.location", n.path))
            .unwrap_or_default();
        d.push(
            Diagnostic::warning(
                first_other,
                format!(
                    "servers span several locations ({}): embedded etcd across regions is unsupported upstream and sensitive to latency",
                    locations.into_iter().collect::<Vec<_>>().join(", ")
                ),
            )
            .help("keep servers in one location (agents may go anywhere), and pin k3s.version"),
        );
    }
    for n in nodes {
        let declared = n
            .fields
            .firewall
            .as_ref()
            .and_then(|f| f.backend)
            .unwrap_or(spec.firewall.backend);
        let os = n.fields.os.unwrap_or(crate::plan::DEFAULT_OS);
        if declared == FirewallBackend::Ufw && matches!(os, Os::Flatcar | Os::FedoraCoreos) {
            d.push(
                Diagnostic::warning(
                    format!("{}.os", n.path),
                    format!(
                        "{} has no ufw: these nodes get the same rules through nftables",
                        os.name()
                    ),
                )
                .help("set `firewall: { backend: nftables }` on this node to say so explicitly"),
            );
        }
    }
    d.dedup();
}

/// Kubernetes qualified name: optional DNS-subdomain prefix + `/` + name (<= 63).
fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(is_dns_label))
    {
        return false;
    }
    is_label_value(name) && !name.is_empty()
}

/// Kubernetes label value: empty, or <= 63 of [A-Za-z0-9-_.], alphanumeric at both ends.
fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn check_labels(n: &ExpandedNode, d: &mut Vec<Diagnostic>) {
    for (k, v) in n.fields.labels.iter().flatten() {
        let path = format!("{}.labels.{k}", n.path);
        if !is_qualified_name(k) {
            d.push(
                Diagnostic::error(&path, format!("label key {} is not a valid Kubernetes label key", quote_short(k)))
                    .help("use `name` or `prefix/name`: name is at most 63 of [A-Za-z0-9-_.], prefix a DNS subdomain"),
            );
        } else if !is_label_value(v) {
            d.push(
                Diagnostic::error(
                    &path,
                    format!(
                        "label value {} is not a valid Kubernetes label value",
                        quote_short(v)
                    ),
                )
                .help("at most 63 of [A-Za-z0-9-_.], starting and ending with a letter or digit"),
            );
        }
    }
}

fn check_taints(n: &ExpandedNode, d: &mut Vec<Diagnostic>) {
    for (i, t) in n.fields.taints.iter().flatten().enumerate() {
        let path = format!("{}.taints[{i}]", n.path);
        let ok = t.rsplit_once(':').is_some_and(|(kv, effect)| {
            matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute")
                && match kv.split_once('=') {
                    Some((k, v)) => is_qualified_name(k) && is_label_value(v),
                    None => is_qualified_name(kv),
                }
        });
        if !ok {
            d.push(
                Diagnostic::error(&path, format!("taint {} is not `key[=value]:Effect`", quote_short(t)))
                    .help("for example \"dedicated=edge:NoSchedule\"; Effect is NoSchedule, PreferNoSchedule or NoExecute"),
            );
        }
    }
}

fn check_tailscale(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let ts = &spec.tailscale;
    for (i, tag) in ts.tags.iter().enumerate() {
        let ok = tag.strip_prefix("tag:").is_some_and(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        if !ok {
            d.push(
                Diagnostic::error(
                    format!("tailscale.tags[{i}]"),
                    format!("{} is not a Tailscale tag", quote_short(tag)),
                )
                .help("tags look like `tag:k3s`: `tag:` then lowercase letters, digits and `-`"),
            );
        }
    }
    if let Some(url) = &ts.login_server {
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
            d.push(
                Diagnostic::error("tailscale.login_server", format!("{} is not a control server URL", quote_short(url)))
                    .help("write the URL of your Headscale or control server, e.g. https://headscale.example.com"),
            );
        } else if url.starts_with("http://") {
            d.push(
                Diagnostic::warning(
                    "tailscale.login_server",
                    "the control server URL is plain http",
                )
                .help("use https:// so node registration cannot be intercepted"),
            );
        }
    }
    if let Some(v) = &ts.version
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
    match (&k.version, &k.channel) {
        (Some(_), Some(_)) => d.push(
            Diagnostic::error("k3s.channel", "both `version` and `channel` are set")
                .help("pin `version` (recommended for production) or follow a `channel`, not both"),
        ),
        (None, None) => d.push(
            Diagnostic::warning(
                "k3s",
                "no K3s version is pinned: nodes install whatever `stable` is when they boot",
            )
            .help(
                "set `version: v1.33.5+k3s1` so every node, now and later, runs the same release",
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
            d.push(
                Diagnostic::error("k3s.version", format!("{} is not a K3s release", quote_short(v)))
                    .help("K3s versions look like v1.33.5+k3s1; to follow a release line use `channel: stable`"),
            );
        }
    }
    if let Some(c) = &k.channel {
        let ok = !c.is_empty()
            && c.len() <= 32
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok {
            d.push(
                Diagnostic::error(
                    "k3s.channel",
                    format!("{} is not a K3s channel", quote_short(c)),
                )
                .help("use stable, latest, testing or a minor line such as v1.33"),
            );
        }
    }
    for (i, item) in k.disable.iter().enumerate() {
        if !is_dns_label(item) {
            d.push(
                Diagnostic::error(format!("k3s.disable[{i}]"), format!("{} is not a K3s component", quote_short(item)))
                    .help("name packaged components such as traefik, servicelb, local-storage, metrics-server"),
            );
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

fn check_cidrs(spec: &Spec, d: &mut Vec<Diagnostic>) {
    let mut parsed: Vec<(&str, IpNet)> = Vec::new();
    for (field, value) in [
        ("k3s.cluster_cidr", &spec.k3s.cluster_cidr),
        ("k3s.service_cidr", &spec.k3s.service_cidr),
    ] {
        for c in cidr_list(value) {
            match c.parse::<IpNet>() {
                Ok(net) if net.trunc() == net => parsed.push((field, net)),
                Ok(net) => d.push(
                    Diagnostic::error(field, format!("{} has host bits set", quote_short(&c)))
                        .help(format!("write the network address: {}", net.trunc())),
                ),
                Err(_) => d.push(
                    Diagnostic::error(field, format!("{} is not a CIDR", quote_short(&c)))
                        .help("write a network such as 10.42.0.0/16 (dual-stack: \"10.42.0.0/16,fd00:42::/56\")"),
                ),
            }
        }
    }
    let ts: [IpNet; 2] = [
        TAILSCALE_V4.parse().unwrap_or_else(|_| unreachable!()),
        TAILSCALE_V6.parse().unwrap_or_else(|_| unreachable!()),
    ];
    for (field, net) in &parsed {
        for t in &ts {
            if net_overlap(net, t) {
                d.push(
                    Diagnostic::error(*field, format!("{net} overlaps Tailscale's address range {t}"))
                        .help("pick a range outside 100.64.0.0/10 and fd7a:115c:a1e0::/48, e.g. the defaults 10.42.0.0/16 and 10.43.0.0/16"),
                );
            }
        }
    }
    for (i, (fa, a)) in parsed.iter().enumerate() {
        for (fb, b) in &parsed[i + 1..] {
            if net_overlap(a, b) {
                d.push(
                    Diagnostic::error(*fb, format!("{b} overlaps {a} ({fa})"))
                        .help("the pod and service networks must be disjoint"),
                );
            }
        }
    }
}

fn net_overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Flags meshboot sets itself, and what to do instead.
fn owned_flag(name: &str) -> Option<&'static str> {
    Some(match name {
        "node-ip" | "advertise-address" | "node-name" => {
            "meshboot sets it from the node's Tailscale address and name"
        }
        "server" | "cluster-init" => "meshboot decides who initialises the cluster and who joins",
        "token" | "token-file" | "agent-token" | "agent-token-file" => {
            "the token comes from `k3s.token` and reaches K3s through token-file"
        }
        "flannel-iface" => "meshboot binds flannel to tailscale0",
        "cluster-cidr" => "set `k3s.cluster_cidr` instead",
        "service-cidr" => "set `k3s.service_cidr` instead",
        "flannel-backend" => "set `k3s.flannel_backend` instead",
        "disable" => "list components in `k3s.disable` instead",
        "node-label" => "set `labels` on the node instead",
        "node-taint" => "set `taints` on the node instead",
        _ => return None,
    })
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
            d.push(
                Diagnostic::error(&path, format!("{} is not a K3s flag", quote_short(arg)))
                    .help("write each flag as one string, `--name=value` or `--name`, e.g. \"--kube-apiserver-arg=audit-log-maxage=30\""),
            );
            continue;
        }
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control) || v.len() > 4096)
        {
            d.push(
                Diagnostic::error(
                    &path,
                    format!("the value of --{name} contains control characters or is too long"),
                )
                .help("flag values are one line of at most 4096 characters"),
            );
            continue;
        }
        if let Some(why) = owned_flag(&name)
            && !allow_owned
        {
            d.push(
                Diagnostic::error(&path, format!("--{name} is set by meshboot")).help(format!(
                    "{why}; to override anyway set `k3s.allow_owned_args: true`"
                )),
            );
        }
    }
}

fn check_firewall(spec: &Spec, nodes: &[ExpandedNode], d: &mut Vec<Diagnostic>) {
    let fw = &spec.firewall;
    check_public_ports(spec, &fw.public_tcp, &fw.public_udp, "firewall", d);
    if fw.backend == FirewallBackend::None {
        d.push(
            Diagnostic::warning("firewall.backend", "no host firewall: every port K3s opens faces the internet")
                .help("use ufw or nftables unless a provider firewall in front of every node blocks all but 41641/udp"),
        );
    }
    let _ = nodes;
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
                        format!("public port {p}/{proto} exposes K3s-internal port {hit}/{proto} to the internet"),
                    )
                    .help("K3s ports are reachable over the mesh already; if you really mean to expose it, set `firewall.allow_public_k3s_ports: true`"),
                );
            }
        }
    }
}
