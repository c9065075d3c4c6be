//! The checks a first boot must pass, each comparing what the sandbox recorded with an
//! [`Expect`](super::expect::Expect).

use super::calls::{Call, find_from};
use super::expect::{AUTH_KEY_ARG, Expect, Firewall, TailscaleFrom, host_arch};
use super::sandbox::{Run, Sandbox};
use super::world::{K3S_INSTALLER, OWN_IP, OWN_IP6};
use crate::support::all_fake_secret_values;
use meshboot::plan::{self, Envelope};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The whole of a successful first boot: every check below.
pub fn assert_bootstrapped(sb: &Sandbox, run: &Run, expect: &Expect) {
    assert_converged(sb, run);
    // The tailnet called the node by its own name: no stale machine holds it.
    assert!(
        !sb.log().contains("the tailnet calls this node"),
        "{}",
        sb.report()
    );
    assert_envelope(sb, expect);
    let calls = sb.calls_of_last_run();
    assert_firewall_first(sb, &calls, expect.row.firewall);
    assert_tailscale_installed(sb, &calls, &expect.row.tailscale);
    assert_packages_checked(sb, &calls, expect);
    assert_steps_in_order(sb, &calls, expect);
    assert_up_args(sb, &calls, expect);
    assert_k3s_config(sb, expect);
    assert_install_env(sb, expect);
    assert_files_and_modes(sb);
    assert_no_secrets(sb);
}

pub fn assert_converged(sb: &Sandbox, run: &Run) {
    assert!(
        run.success(),
        "the bootstrap failed (exit {:?})\n{}",
        run.code,
        sb.report()
    );
    let log = sb.log();
    assert!(
        log.lines().last().is_some_and(|l| l.contains(&format!(
            "meshboot[finish]: node {} is bootstrapped",
            sb.server()
        ))),
        "the log does not end with the finish line\n{}",
        sb.report()
    );
    assert!(
        sb.exists(&format!("{}/done", plan::STATE_DIR)),
        "no done stamp\n{}",
        sb.report()
    );
}

/// The node's OS family picks its envelope: cloud-init for Ubuntu and Debian, Ignition
/// for Flatcar and Fedora CoreOS (SPEC.md "defaults.os").
pub fn assert_envelope(sb: &Sandbox, expect: &Expect) {
    let os = expect.row.os;
    let want = match os {
        "ubuntu-22.04" | "ubuntu-24.04" | "debian-12" => Envelope::CloudInit,
        "flatcar" | "fedora-coreos" => Envelope::Ignition,
        other => panic!("the table names an OS meshboot does not know: {other}"),
    };
    let a = &sb.node.artifact;
    assert_eq!(
        a.envelope, want,
        "{}: the envelope of a {os} node",
        a.file_name
    );
    let looks_like = if a.contents.starts_with("#cloud-config\n") {
        Envelope::CloudInit
    } else {
        Envelope::Ignition
    };
    assert_eq!(
        looks_like, want,
        "{}: the contents of a {os} node",
        a.file_name
    );
}

/// The firewall calls a node makes, in order.
pub fn firewall_calls(firewall: Firewall) -> Vec<(String, Vec<String>)> {
    let call = |tool: &str, args: &[&str]| {
        (
            tool.to_string(),
            args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        )
    };
    // meshboot's nftables table, loaded and its unit enabled: the whole firewall on nftables
    // nodes, the forward chain on ufw nodes (K3s's iptables chains accept pod traffic before
    // ufw's routed rules; a drop in this table holds whatever they accept).
    let table = [
        call("nft", &["-f", plan::NFTABLES_PATH]),
        call("systemctl", &["daemon-reload"]),
        call("systemctl", &["enable", plan::FIREWALL_UNIT]),
    ];
    match firewall {
        // One python3 process runs ufw's frontend over every command, the last one
        // `--force enable` (the stand-in records the process, then each command).
        Firewall::Ufw(commands) => [call("python3", &["import", "ufw"])]
            .into_iter()
            .chain(
                commands
                    .iter()
                    .map(|c| call("ufw", &c.split_whitespace().collect::<Vec<_>>())),
            )
            .chain([call("ufw", &["--force", "enable"])])
            .chain(table)
            .collect(),
        Firewall::Nftables(_) => table.to_vec(),
    }
}

/// The forward chain a ufw node's table must hold: what its ufw routed rules say, in nft
/// (the same order): the metadata block first, then established traffic, then the routed
/// accepts, public ports matched on the port the client sent to (`ct original proto-dst`).
pub fn forward_chain_of_ufw_rules(commands: &[&str]) -> Vec<String> {
    let family = |cidr: &str| if cidr.contains(':') { "ip6" } else { "ip" };
    let mut chain = Vec::new();
    for c in commands {
        let words: Vec<&str> = c.split_whitespace().collect();
        let rule = match words.as_slice() {
            ["route", "deny", "from", _, "to", "169.254.169.254"] => {
                "ip daddr 169.254.169.254 drop".to_string()
            }
            ["route", "allow", "in", "on", iface] => format!("iifname \"{iface}\" accept"),
            ["route", "allow", "from", cidr] => format!("{} saddr {cidr} accept", family(cidr)),
            [
                "route",
                "allow",
                "proto",
                proto,
                "from",
                "any",
                "to",
                cidr,
                "port",
                port,
            ] => format!(
                "{} daddr {cidr} meta l4proto {proto} ct original proto-dst {} accept",
                family(cidr),
                port.replace(':', "-")
            ),
            ["route", ..] => panic!("a ufw route rule the check does not know: {c}"),
            _ => continue,
        };
        if rule.ends_with(" accept") && !chain.iter().any(|r: &String| r.ends_with(" accept")) {
            chain.push("ct state established,related accept".to_string());
        }
        chain.push(rule);
    }
    chain
}

/// The rules of a ruleset's forward chain, without its type line and comments.
pub fn forward_chain(ruleset: &str) -> Vec<String> {
    let (_, forward) = ruleset
        .split_once("chain forward {")
        .unwrap_or_else(|| panic!("no forward chain:\n{ruleset}"));
    forward
        .lines()
        .map(str::trim)
        .take_while(|l| *l != "}")
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("type "))
        .map(String::from)
        .collect()
}

/// Where the firewall's calls start: after the package step's (`dpkg-query`, and `apt-get`
/// when the image lacks a package), which come first because the firewall's tool may be
/// among the missing ones ([`assert_packages_checked`] checks them).
pub fn firewall_start(calls: &[Call]) -> usize {
    calls
        .iter()
        .position(|c| c.tool != "dpkg-query" && c.tool != "apt-get")
        .unwrap_or(calls.len())
}

/// After the package step, the calls of the run are exactly the firewall's, all
/// successful: nothing else touches the network or starts a daemon before the public side
/// is default-deny.
pub fn assert_firewall_first(sb: &Sandbox, calls: &[Call], firewall: Firewall) {
    let expected = firewall_calls(firewall);
    let start = firewall_start(calls);
    let got: Vec<(String, Vec<String>)> = calls[start..]
        .iter()
        .take(expected.len())
        .map(|c| (c.tool.clone(), c.args.clone()))
        .collect();
    assert_eq!(
        got,
        expected,
        "the run does not start with the firewall of the table\n{}",
        sb.report()
    );
    assert!(
        calls[start..].iter().take(expected.len()).all(Call::ok),
        "a firewall call failed\n{}",
        sb.report()
    );
    match firewall {
        Firewall::Ufw(commands) => {
            for rule in [
                &["default", "deny", "incoming"][..],
                &["allow", "41641/udp"],
            ] {
                assert!(
                    calls.iter().any(|c| c.is("ufw", rule)),
                    "no `ufw {}`\n{}",
                    rule.join(" "),
                    sb.report()
                );
            }
            // The table holds the forward chain only (ufw filters the host's own traffic),
            // the same rules as ufw's routed ones.
            let ruleset = sb.read_world("nft-loaded.1");
            assert_replaces_only_its_own_table(&ruleset);
            assert!(!ruleset.contains("chain input"), "{ruleset}");
            assert_eq!(
                forward_chain(&ruleset),
                forward_chain_of_ufw_rules(commands),
                "{}: the loaded forward chain\n{ruleset}",
                sb.server()
            );
        }
        Firewall::Nftables(ports) => {
            let ruleset = sb.read_world("nft-loaded.1");
            assert_replaces_only_its_own_table(&ruleset);
            assert_eq!(
                open_ports(&ruleset),
                ports.labelled(),
                "{}: the ports the loaded ruleset opens\n{ruleset}",
                sb.server()
            );
            assert!(!calls.iter().any(|c| c.tool == "ufw"), "{}", sb.report());
        }
    }
}

/// The ports an nftables ruleset's input chain accepts: `tcp dport P accept` (public) and
/// `iifname "tailscale0" tcp dport P accept` (mesh), per protocol, in order, read from the
/// ruleset text nft loaded. Labelled like [`Ports::labelled`].
pub fn open_ports(ruleset: &str) -> Vec<(&'static str, Vec<String>)> {
    let (_, input) = ruleset
        .split_once("chain input {")
        .unwrap_or_else(|| panic!("no input chain:\n{ruleset}"));
    let mut lists: [Vec<String>; 4] = Default::default();
    for line in input.lines().map(str::trim).take_while(|l| *l != "}") {
        let (mesh, rule) = match line.strip_prefix("iifname \"tailscale0\" ") {
            Some(rule) => (true, rule),
            None => (false, line),
        };
        let Some(rule) = rule.strip_suffix(" accept") else {
            continue;
        };
        let (udp, port) = match (
            rule.strip_prefix("tcp dport "),
            rule.strip_prefix("udp dport "),
        ) {
            (Some(p), _) => (false, p),
            (_, Some(p)) => (true, p),
            _ => continue,
        };
        lists[usize::from(mesh) * 2 + usize::from(udp)].push(port.to_string());
    }
    ["public tcp", "public udp", "mesh tcp", "mesh udp"]
        .into_iter()
        .zip(lists)
        .collect()
}

/// Loading the ruleset twice leaves one copy: it creates, deletes and re-creates its own
/// table and never flushes the whole ruleset.
pub fn assert_replaces_only_its_own_table(ruleset: &str) {
    let statements: Vec<&str> = ruleset
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        statements.get(..3),
        Some(
            &[
                "table inet meshboot {}",
                "delete table inet meshboot",
                "table inet meshboot {"
            ][..]
        ),
        "the ruleset does not replace table inet meshboot:\n{ruleset}"
    );
    assert!(!ruleset.contains("flush ruleset"), "{ruleset}");
    assert!(ruleset.contains("policy drop"), "{ruleset}");
}

/// `apt-get update` of the index of Tailscale's repository only: its source list, no other
/// (apt.conf(5) Dir::Etc::sourcelist and sourceparts; apt-pkg/sourcelist.cc `ReadMainList`
/// reads no directory for /dev/null), keeping the other repositories' indexes
/// (apt-get(8) --no-list-cleanup).
pub const TAILSCALE_INDEX_ONLY: &[&str] = &[
    "-o",
    "DPkg::Lock::Timeout=300",
    "update",
    "-o",
    "Dir::Etc::sourcelist=/etc/apt/sources.list.d/tailscale.list",
    "-o",
    "Dir::Etc::sourceparts=/dev/null",
    "--no-list-cleanup",
];

/// Tailscale came from where the node's OS gets it, and tailscaled was started after.
pub fn assert_tailscale_installed(sb: &Sandbox, calls: &[Call], from: &TailscaleFrom) {
    let started = find_from(calls, 0, |c| {
        c.is("systemctl", &["enable", "--now", "tailscaled"]) && c.ok()
    })
    .unwrap_or_else(|| panic!("tailscaled was never started\n{}", sb.report()));
    match from {
        TailscaleFrom::Apt(repo) => {
            let base = format!("https://pkgs.tailscale.com/stable/{repo}");
            for (url, file) in [
                (
                    format!("{base}.noarmor.gpg"),
                    "/usr/share/keyrings/tailscale-archive-keyring.gpg",
                ),
                (
                    format!("{base}.tailscale-keyring.list"),
                    "/etc/apt/sources.list.d/tailscale.list",
                ),
            ] {
                assert!(
                    calls
                        .iter()
                        .any(|c| c.url() == Some(url.as_str()) && c.ok()),
                    "{url} not fetched\n{}",
                    sb.report()
                );
                assert_eq!(sb.mode(file), 0o644, "{file}");
            }
            // apt-get runs twice in the whole boot: it refreshes the index of Tailscale's
            // repository alone, then installs Tailscale's package.
            let apt: Vec<(usize, &Call)> = calls
                .iter()
                .enumerate()
                .filter(|(_, c)| c.tool == "apt-get")
                .collect();
            assert_eq!(apt.len(), 2, "apt-get calls\n{}", sb.report());
            let (_, update) = apt[0];
            assert_eq!(
                update.args,
                TAILSCALE_INDEX_ONLY,
                "not an update of Tailscale's index alone\n{}",
                sb.report()
            );
            let (install, call) = apt[1];
            assert!(
                call.args[..5]
                    == [
                        "-o",
                        "DPkg::Lock::Timeout=300",
                        "install",
                        "-y",
                        "--no-install-recommends"
                    ]
                    && call
                        .args
                        .last()
                        .is_some_and(|p| p == "tailscale" || p.starts_with("tailscale=")),
                "not an install of Tailscale's package\n{}",
                sb.report()
            );
            assert!(
                update.ok() && call.ok() && install < started,
                "{}",
                sb.report()
            );
            assert_eq!(sb.read_world("apt-get.frontend").trim(), "noninteractive");
        }
        TailscaleFrom::Static { version, dir, link } => {
            let tarball = format!(
                "https://pkgs.tailscale.com/stable/tailscale_{version}_{}.tgz",
                host_arch()
            );
            let fetched = find_from(calls, 0, |c| c.url() == Some(tarball.as_str()) && c.ok())
                .unwrap_or_else(|| panic!("{tarball} not fetched\n{}", sb.report()));
            let reload = find_from(calls, fetched, |c| c.is("systemctl", &["daemon-reload"]))
                .unwrap_or_else(|| panic!("no daemon-reload after the install\n{}", sb.report()));
            assert!(reload < started, "{}", sb.report());
            assert!(
                !calls.iter().any(|c| c.tool == "apt-get"),
                "{}",
                sb.report()
            );
            for bin in ["tailscale", "tailscaled"] {
                assert_eq!(sb.mode(&format!("{dir}/{bin}")), 0o755, "{bin}");
            }
            if let Some(link) = link {
                let target = fs::read_link(sb.host(link))
                    .unwrap_or_else(|e| panic!("{link} is not a symlink: {e}\n{}", sb.report()));
                assert_eq!(target, Path::new(dir).join("tailscale"));
            }
        }
    }
}

/// The Debian packages a node's bootstrap checks for, in order (README "What a node does on
/// first boot"): ca-certificates and curl, then its firewall's tool. Ignition images
/// (Flatcar, Fedora CoreOS) have no dpkg and need none.
pub fn packages_of(expect: &Expect) -> Vec<&'static str> {
    match expect.row.os {
        "flatcar" | "fedora-coreos" => Vec::new(),
        _ => {
            // ufw nodes load meshboot's forward table with `nft` too.
            match expect.row.firewall {
                Firewall::Ufw(_) => vec!["ca-certificates", "curl", "ufw", "nftables"],
                Firewall::Nftables(_) => vec!["ca-certificates", "curl", "nftables"],
            }
        }
    }
}

/// `dpkg-query`'s status word of `package`, as the bootstrap asks for it.
pub fn is_status_query(c: &Call, package: &str) -> bool {
    c.is("dpkg-query", &["-W", "-f=${db:Status-Status}", package])
}

/// The package step on an image that holds every package the node uses: one status query
/// per package, and no apt-get, before anything else. cloud-init itself installs nothing:
/// the cloud-config has no `packages` (cloud-init 22.4 refreshes the whole package index for
/// any non-empty list, `cc_package_update_upgrade_install.handle`), and no
/// `package_update` or `package_upgrade`. Only Tailscale's own package may come from apt
/// later ([`assert_tailscale_installed`]).
pub fn assert_packages_checked(sb: &Sandbox, calls: &[Call], expect: &Expect) {
    if sb.node.artifact.envelope == Envelope::CloudInit {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&sb.node.artifact.contents).expect("cloud-config");
        for key in ["packages", "package_update", "package_upgrade"] {
            assert!(
                doc.get(key).is_none(),
                "{}: the cloud-config has `{key}`",
                sb.node.artifact.file_name
            );
        }
    }
    let packages = packages_of(expect);
    let start = firewall_start(calls);
    assert_eq!(
        start,
        packages.len(),
        "the package step made other calls than one status query per package\n{}",
        sb.report()
    );
    for (call, package) in calls.iter().zip(&packages) {
        assert!(
            is_status_query(call, package) && call.ok(),
            "{package} was not found installed\n{}",
            sb.report()
        );
    }
}

/// Tailscale up, then the node's own address, then (joiners) the tailnet's machines from
/// `tailscale status --json` and the chosen server's /cacerts, then the K3s download and
/// install, then starting K3s's unit and waiting until it is active, each after the one
/// before.
pub fn assert_steps_in_order(sb: &Sandbox, calls: &[Call], expect: &Expect) {
    let report = || sb.report();
    let up = find_from(calls, 0, |c| c.is_tailscale_up() && c.ok())
        .unwrap_or_else(|| panic!("tailscale up never succeeded\n{}", report()));
    let own = find_from(calls, up, |c| c.is_own_ip_lookup() && c.ok())
        .unwrap_or_else(|| panic!("no `tailscale ip -4` after up\n{}", report()));
    let before_k3s = match &expect.join {
        Some((server, ip)) => {
            let status = find_from(calls, own, |c| {
                c.is("tailscale", &["status", "--json"]) && c.ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "the tailnet was never read after the own address\n{}",
                    report()
                )
            });
            let cacerts = format!("https://{ip}:6443/cacerts");
            let answered = find_from(calls, status, |c| {
                c.url() == Some(cacerts.as_str()) && c.ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "{cacerts} never answered after the tailnet was read\n{}",
                    report()
                )
            });
            let log = sb.log();
            assert!(
                log.contains(&format!("joining through {server} at {ip}"))
                    || log.contains(&format!("a cluster is already running at {server};")),
                "the node did not join through {server} at {ip}\n{}",
                report()
            );
            answered
        }
        None => {
            assert!(
                !calls
                    .iter()
                    .any(|c| c.url().is_some_and(|u| u.ends_with("/cacerts")) && c.ok()),
                "an init server found a running server\n{}",
                report()
            );
            own
        }
    };
    let download = find_from(calls, before_k3s, |c| {
        c.url() == Some(plan::K3S_INSTALL_URL)
            && c.args
                .windows(2)
                .any(|w| w == ["-o", plan::K3S_INSTALLER_PATH])
            && c.ok()
    })
    .unwrap_or_else(|| {
        panic!(
            "the K3s install script was not downloaded after the join target\n{}",
            report()
        )
    });
    let install =
        find_from(calls, download, |c| c.tool == "k3s-install" && c.ok()).unwrap_or_else(|| {
            panic!(
                "the K3s install script did not run after its download\n{}",
                report()
            )
        });
    // It runs under retry: failed runs may come before, but it succeeds once.
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.tool == "k3s-install" && c.ok())
            .count(),
        1,
        "the K3s install script succeeded more than once\n{}",
        report()
    );
    // Then the bootstrap starts K3s's unit itself and waits until it is active: nothing
    // else happens after the install.
    let after: Vec<String> = calls[install + 1..]
        .iter()
        .map(|c| format!("{} {}", c.tool, c.args.join(" ")))
        .collect();
    let unit = if expect.is_server() {
        "k3s"
    } else {
        "k3s-agent"
    };
    assert_eq!(
        after.first().map(String::as_str),
        Some(format!("systemctl start --no-block {unit}").as_str()),
        "K3s's unit was not started right after the install\n{}",
        report()
    );
    // Then it waits: is the unit active (and has K3s this node's kubelet certificate)? If
    // not, has K3s logged a refusal since the start?
    let check = format!("systemctl is-active --quiet {unit}");
    let journal = format!("journalctl -u {unit} --since @");
    assert!(
        after.len() >= 2
            && after[1..].iter().all(|c| {
                *c == check
                    || c.starts_with("sleep ")
                    || (c.starts_with(&journal) && c.ends_with(" --no-pager -o cat"))
            })
            && calls
                .last()
                .is_some_and(|c| c.ok() && c.tool == "systemctl"),
        "after the install: {after:?}\n{}",
        report()
    );
}

/// Every `tailscale up` passes exactly the table's arguments, the key as `file:` and a
/// timeout (FIELD.md: `--timeout` defaults to 0s, blocking forever).
pub fn assert_up_args(sb: &Sandbox, calls: &[Call], expect: &Expect) {
    let hostname = format!("--hostname={}", sb.server());
    let want: Vec<String> = ["up", AUTH_KEY_ARG, &hostname]
        .into_iter()
        .chain(expect.row.up.iter().copied())
        .map(String::from)
        .collect();
    for c in calls.iter().filter(|c| c.is_tailscale_up()) {
        assert_eq!(
            c.args,
            want,
            "`tailscale up` of {}\n{}",
            sb.server(),
            sb.report()
        );
        assert!(c.args.iter().any(|a| a == AUTH_KEY_ARG), "{c}");
        assert!(c.args.contains(&hostname), "{c}");
        assert!(
            c.args
                .iter()
                .any(|a| a.starts_with("--timeout=") && a != "--timeout=0s"),
            "`tailscale up` without a timeout blocks forever: {c}"
        );
    }
}

pub fn yaml_str(v: &serde_yaml::Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// The drop-in's file name in config.yaml.d.
fn boot_config_name() -> &'static str {
    plan::K3S_BOOT_CONFIG_PATH
        .rsplit('/')
        .next()
        .expect("file name")
}

/// The value list `v` stands for when a `key+:` appends to or from it.
fn to_slice(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// K3s's merge of its config files, modelled on k3s-io/k3s pkg/configfilearg/parser.go
/// (`readConfigFile`; docs.k3s.io "Multiple Config Files"): the files in order, a plain key
/// replacing the value so far (lists too), `key+:` appending to it. What it proves: the
/// values K3s ends up with under that documented rule; not that a given K3s version applies
/// it (v1.21.0 and later do).
pub fn merge_k3s_config(files: &[(String, String)]) -> BTreeMap<String, Value> {
    let mut merged: BTreeMap<String, Value> = BTreeMap::new();
    for (name, text) in files {
        let doc: serde_yaml::Mapping = serde_yaml::from_str(text)
            .unwrap_or_else(|e| panic!("{name} does not parse as a mapping: {e}\n{text}"));
        for (k, v) in doc {
            let key = k.as_str().expect("string keys").to_string();
            match key.strip_suffix('+') {
                Some(base) => {
                    let mut list = merged.get(base).map(to_slice).unwrap_or_default();
                    list.extend(to_slice(&v));
                    merged.insert(base.to_string(), Value::Sequence(list));
                }
                None => {
                    merged.insert(key, v);
                }
            }
        }
    }
    merged
}

/// config.yaml and the config.yaml.d drop-ins as the install script found them, in the
/// order K3s reads them.
fn k3s_config_files(sb: &Sandbox) -> Vec<(String, String)> {
    let mut files = vec![(
        plan::K3S_CONFIG_PATH.to_string(),
        sb.read_world("k3s-config.seen"),
    )];
    for line in sb.read_world("k3s-config.d.list").lines() {
        let (name, _) = line.split_once(' ').expect("NAME MODE");
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            files.push((
                format!("config.yaml.d/{name}"),
                sb.read_world(&format!("k3s-config.d/{name}")),
            ));
        }
    }
    files
}

/// The config K3s would run with, merged from what the install script found.
pub fn merged_k3s_config(sb: &Sandbox) -> BTreeMap<String, Value> {
    merge_k3s_config(&k3s_config_files(sb))
}

/// The K3s config as the install script found it. config.yaml: as delivered, 0600, left
/// alone, holding exactly the row's keys known at build time (servers: the tls-san names
/// too). config.yaml.d: meshboot's one drop-in, 0600, nothing else there (no temporary
/// file), adding only keys config.yaml lacks or appending (`key+:`). Merged as K3s merges
/// them: the node's address, on servers advertise-address and tls-san (names, then
/// addresses), the join target, and exactly the row's keys besides.
pub fn assert_k3s_config(sb: &Sandbox, expect: &Expect) {
    let seen = sb.read_world("k3s-config.seen");
    assert_eq!(
        sb.read_world("k3s-config.mode").trim(),
        "600",
        "config.yaml mode when K3s was installed"
    );
    let delivered = crate::support::delivered_files(&sb.node.artifact)
        .into_iter()
        .find(|(path, _, _)| path == plan::K3S_CONFIG_PATH)
        .map(|(_, _, contents)| contents)
        .expect("config.yaml is delivered");
    assert_eq!(seen, delivered, "config.yaml is not the delivered one");
    let on_disk = fs::read_to_string(sb.host(plan::K3S_CONFIG_PATH)).expect("config.yaml");
    assert_eq!(seen, on_disk, "config.yaml changed after the K3s install");
    assert_eq!(
        sb.read_world("k3s-config.d.list"),
        format!("{} 600\n", boot_config_name()),
        "config.yaml.d when K3s was installed\n{}",
        sb.report()
    );
    let drop_in = sb.read_world(&format!("k3s-config.d/{}", boot_config_name()));
    let on_disk = fs::read_to_string(sb.host(plan::K3S_BOOT_CONFIG_PATH)).expect("the drop-in");
    assert_eq!(
        drop_in, on_disk,
        "the drop-in changed after the K3s install"
    );
    let ctx = || format!("K3s config of {}:\n{seen}---\n{drop_in}", sb.server());

    // config.yaml holds what is known at build time, exactly.
    let mut static_want = expect.row.k3s_config();
    let mut names = Vec::new();
    if expect.is_server() {
        names.push(sb.server().to_string());
        names.extend(expect.row.tls_san.iter().map(|n| n.to_string()));
        static_want.insert(
            "tls-san".into(),
            Value::Sequence(names.iter().cloned().map(Value::String).collect()),
        );
    }
    let base: BTreeMap<String, Value> = serde_yaml::from_str(&seen)
        .unwrap_or_else(|e| panic!("config.yaml does not parse: {e}\n{}", ctx()));
    assert_eq!(base, static_want, "config.yaml\n{}", ctx());

    // The drop-in never replaces a key of config.yaml: its plain keys are new ones.
    let added: BTreeMap<String, Value> = serde_yaml::from_str(&drop_in)
        .unwrap_or_else(|e| panic!("the drop-in does not parse: {e}\n{}", ctx()));
    for key in added.keys() {
        assert!(
            key.ends_with('+') || !base.contains_key(key),
            "the drop-in replaces config.yaml's {key}\n{}",
            ctx()
        );
    }

    // What K3s runs with: the boot adds the node's address, on servers advertise-address
    // and the addresses after the tls-san names, and the join target (FIELD.md "K3s flags
    // that matter over the mesh").
    let cfg = merged_k3s_config(sb);
    let get = |k: &str| cfg.get(k).and_then(yaml_str);
    let node_ip = if expect.row.dual_stack {
        format!("{OWN_IP},{OWN_IP6}")
    } else {
        OWN_IP.to_string()
    };
    assert_eq!(get("node-ip"), Some(node_ip.clone()), "{}", ctx());
    assert_eq!(get("node-name").as_deref(), Some(sb.server()), "{}", ctx());
    assert_eq!(
        get("token-file").as_deref(),
        Some(plan::TOKEN_PATH),
        "{}",
        ctx()
    );
    assert!(!cfg.contains_key("token"), "the token is inline\n{}", ctx());
    // flannel runs over the mesh: flannel-iface is tailscale0 wherever the row has flannel.
    let flannel = expect.row.k3s_config().contains_key("flannel-iface");
    assert_eq!(
        get("flannel-iface").as_deref(),
        flannel.then_some("tailscale0"),
        "{}",
        ctx()
    );
    let mut want = static_want;
    want.insert("node-ip".into(), Value::String(node_ip));
    // A pool node's name comes from its server, in the drop-in; so does its provider ID,
    // `hcloud://<server id>`, by which the cluster-autoscaler's Hetzner provider finds the
    // node's server (hetzner_manager.go `serverForNode`), appended to the kubelet's args.
    if expect.row.pool.is_some() {
        let mut kubelet_args = want.get("kubelet-arg").map(to_slice).unwrap_or_default();
        kubelet_args.push(format!("provider-id=hcloud://{}", sb.node.server_id).into());
        want.insert("kubelet-arg".into(), Value::Sequence(kubelet_args));
        want.insert("node-name".into(), sb.server().into());
        assert!(
            !base.contains_key("node-name"),
            "a pool's config.yaml names its nodes\n{}",
            ctx()
        );
    }
    if expect.is_server() {
        assert_eq!(
            get("advertise-address").as_deref(),
            Some(OWN_IP),
            "{}",
            ctx()
        );
        let tls_san: Vec<String> = cfg
            .get("tls-san")
            .and_then(|v| serde_yaml::from_value(v.clone()).ok())
            .unwrap_or_else(|| panic!("no tls-san list\n{}", ctx()));
        let mut san = names;
        san.push(OWN_IP.to_string());
        if expect.row.dual_stack {
            san.push(OWN_IP6.to_string());
        }
        assert_eq!(tls_san, san, "{}", ctx());
        want.insert("advertise-address".into(), OWN_IP.into());
        want.insert(
            "tls-san".into(),
            Value::Sequence(san.into_iter().map(Value::String).collect()),
        );
    } else {
        for k in [
            "advertise-address",
            "tls-san",
            "cluster-cidr",
            "cluster-init",
        ] {
            assert!(!cfg.contains_key(k), "an agent with {k}\n{}", ctx());
        }
    }
    match &expect.join {
        Some((_, ip)) => {
            assert_eq!(
                get("server"),
                Some(format!("https://{ip}:6443")),
                "{}",
                ctx()
            );
            assert!(!cfg.contains_key("cluster-init"), "{}", ctx());
            want.insert("server".into(), format!("https://{ip}:6443").into());
        }
        None => {
            assert_eq!(
                cfg.get("cluster-init"),
                Some(&Value::Bool(true)),
                "{}",
                ctx()
            );
            assert!(!cfg.contains_key("server"), "{}", ctx());
            want.insert("cluster-init".into(), Value::Bool(true));
        }
    }
    // Every key is the table's, with the table's value, and no other key is there.
    assert_eq!(cfg, want, "the merged K3s config\n{}", ctx());
}

#[test]
fn the_k3s_config_merge_follows_k3s() {
    // The documented example of docs.k3s.io "Multiple Config Files".
    let files = [
        (
            "config.yaml".to_string(),
            "token: boop\nnode-label:\n  - foo=bar\n  - bar=baz\n".to_string(),
        ),
        (
            "config.yaml.d/test1.yaml".to_string(),
            "write-kubeconfig-mode: 600\nnode-taint:\n  - alice=bob:NoExecute\n".to_string(),
        ),
        (
            "config.yaml.d/test2.yaml".to_string(),
            "write-kubeconfig-mode: 777\nnode-label:\n  - other=what\n  - foo=three\nnode-taint+:\n  - charlie=delta:NoSchedule\n".to_string(),
        ),
    ];
    let want: BTreeMap<String, Value> = serde_yaml::from_str(
        "write-kubeconfig-mode: 777\ntoken: boop\nnode-label:\n  - other=what\n  - foo=three\nnode-taint:\n  - alice=bob:NoExecute\n  - charlie=delta:NoSchedule\n",
    )
    .expect("yaml");
    assert_eq!(merge_k3s_config(&files), want);
}

/// The install script's environment: exactly the expected INSTALL_K3S_* variables, and no
/// K3S_* variable at all (those end up in the unit's .env file).
pub fn assert_install_env(sb: &Sandbox, expect: &Expect) {
    let env = sb.read_world("k3s-install.env");
    let vars: BTreeMap<String, String> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let install: BTreeMap<String, String> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("INSTALL_K3S_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let want: BTreeMap<String, String> = expect
        .row
        .install_env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(install, want, "INSTALL_K3S_* of {}\n{env}", sb.server());
    let k3s: Vec<&String> = vars.keys().filter(|k| k.starts_with("K3S_")).collect();
    assert!(
        k3s.is_empty(),
        "K3S_* variables reach the installer: {k3s:?}"
    );
    if let Some(bin_dir) = want.get("INSTALL_K3S_BIN_DIR") {
        assert!(
            sb.exists(&format!("{bin_dir}/k3s")),
            "k3s not installed in {bin_dir}"
        );
    }
}

/// Modes of what the node holds after its first boot, and the auth key gone.
pub fn assert_files_and_modes(sb: &Sandbox) {
    let want = [
        (plan::BOOTSTRAP_PATH, 0o700),
        (plan::TOKEN_PATH, 0o600),
        (plan::K3S_CONFIG_PATH, 0o600),
        (plan::K3S_BOOT_CONFIG_PATH, 0o600),
        (plan::K3S_INSTALLER_PATH, 0o700),
        (plan::STATE_DIR, 0o700),
        (plan::LOG_PATH, 0o600),
        // meshboot's table: every fixture node has one (ufw nodes: the forward chain).
        (plan::NFTABLES_PATH, 0o600),
    ];
    for (path, mode) in want {
        assert_eq!(
            sb.mode(path),
            mode,
            "{path} on {} is {:04o}, not {mode:04o}",
            sb.server(),
            sb.mode(path)
        );
    }
    assert!(
        !sb.exists(plan::AUTH_KEY_PATH),
        "the auth key is still on disk after the node joined\n{}",
        sb.report()
    );
    assert_eq!(
        sb.read_world("k3s-install.authkey").trim(),
        "absent",
        "the auth key was still on disk when K3s was installed"
    );
    assert!(!sb.exists(&format!("{}.tmp", plan::K3S_BOOT_CONFIG_PATH)));
    // The K3s config was never readable beyond root, not even before its chmod.
    let chmods = fs::read_to_string(sb.world("chmod.log")).unwrap_or_default();
    for line in chmods.lines().filter(|l| l.starts_with("/etc/rancher/")) {
        let before = line.split(' ').nth(1).expect("old mode");
        let before = u32::from_str_radix(before, 8).expect("octal mode");
        assert_eq!(before & 0o077, 0, "written group/other-readable: {line}");
    }
    assert_eq!(
        fs::read_to_string(sb.host(plan::K3S_INSTALLER_PATH)).expect("installer"),
        K3S_INSTALLER,
        "the K3s install script on disk is not the one served"
    );
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let ty = entry.file_type().expect("file type");
        if ty.is_dir() {
            out.extend(files_under(&path));
        } else if ty.is_file() {
            out.push(path);
        }
    }
    out
}

/// No secret value in the log, the recorded argv, the installer's environment, the run's
/// output, or any file the node holds besides the token and key files themselves.
/// (Which token a node holds is checked in the `hygiene` tests.)
pub fn assert_no_secrets(sb: &Sandbox) {
    let allowed = [
        sb.host(plan::TOKEN_PATH),
        sb.host(plan::AGENT_TOKEN_PATH),
        sb.host(plan::AUTH_KEY_PATH),
    ];
    let pool = sb.world("pool");
    let files = files_under(sb.dir.path())
        .into_iter()
        .filter(|p| !allowed.contains(p) && !p.starts_with(&pool));
    for file in files {
        let text = String::from_utf8_lossy(&fs::read(&file).expect("read")).into_owned();
        for secret in all_fake_secret_values() {
            assert!(
                !text.contains(&secret),
                "a secret ({}...) is in {}",
                &secret[..12],
                file.display()
            );
        }
    }
}

/// A second boot of a bootstrapped node changes nothing and calls nothing.
pub fn assert_rerun_is_a_noop(sb: &mut Sandbox) {
    let calls = sb.calls();
    let config = |sb: &Sandbox| {
        [plan::K3S_CONFIG_PATH, plan::K3S_BOOT_CONFIG_PATH]
            .map(|p| fs::read_to_string(sb.host(p)).expect("K3s config"))
    };
    let before = config(sb);
    let run = sb.run();
    assert!(run.success(), "the second run failed\n{}", sb.report());
    assert_eq!(
        sb.calls(),
        calls,
        "the second run called something\n{}",
        sb.report()
    );
    assert!(
        sb.log()
            .lines()
            .last()
            .is_some_and(|l| l.contains("is already bootstrapped; nothing to do")),
        "{}",
        sb.report()
    );
    assert_eq!(
        config(sb),
        before,
        "the K3s config changed on a second boot"
    );
}

pub fn assert_failed_at(sb: &Sandbox, run: &Run, step: &str) {
    assert!(!run.success(), "the bootstrap succeeded\n{}", sb.report());
    assert!(
        sb.log()
            .contains(&format!("meshboot[{step}]: FAILED at step {step} (exit")),
        "the log does not name step {step}\n{}",
        sb.report()
    );
    assert!(!sb.exists(&format!("{}/done", plan::STATE_DIR)));
}
