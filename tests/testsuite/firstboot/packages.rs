//! The package step: what apt does at first boot on Ubuntu and Debian images.
//!
//! The dpkg-query stand-in answers from the image's package database and the apt-get stand-in
//! models stale package indexes (a package installs only after an update that read its
//! repository), so these prove which apt commands the bootstrap runs, in which order, and
//! that a missing tool is installed before its first use. They do not prove that the real
//! apt resolves and installs the packages (no network here), nor what a real image holds:
//! cloud-init's own refresh for `packages:` is cloud-init 22.4's code
//! (`cc_package_update_upgrade_install.handle`), which the cloud-config no longer triggers
//! ([`assert_packages_checked`] checks its keys on every node of every fixture).

use super::calls::Call;
use super::checks::*;
use super::expect::*;
use super::sandbox::{Sandbox, node};
use super::world::INIT_IP;

/// `apt-get update` of every repository.
const FULL_UPDATE: &[&str] = &["-o", "DPkg::Lock::Timeout=300", "update"];

/// `apt-get install` of `packages` as the package step runs it.
fn install(packages: &[&str]) -> Vec<String> {
    [
        "-o",
        "DPkg::Lock::Timeout=300",
        "install",
        "-y",
        "--no-install-recommends",
    ]
    .iter()
    .chain(packages)
    .map(|a| a.to_string())
    .collect()
}

fn apt_calls(calls: &[Call]) -> Vec<Vec<String>> {
    calls
        .iter()
        .filter(|c| c.tool == "apt-get")
        .map(|c| c.args.clone())
        .collect()
}

/// An image that holds every package: no package index is refreshed but Tailscale's own
/// repository's, and only Tailscale is installed; one node of each apt OS and firewall
/// (every node of every fixture is checked the same way by the happy paths).
#[test]
fn a_stock_image_refreshes_only_tailscales_index_and_installs_only_tailscale() {
    for (fixture, name, via) in [
        ("cluster.yaml", "cp-1", None),
        ("hetzner.yaml", "hz-debian", Some("hz-server")),
        ("nftables.yaml", "nft-agent", Some("nft-server-1")),
    ] {
        let mut sb = Sandbox::new(node(fixture, name));
        if let Some(server) = via {
            sb.peer(server, INIT_IP);
        }
        let run = sb.run();
        let expect = Expect::of(fixture, name);
        assert_bootstrapped(&sb, &run, &expect);
        let apt = apt_calls(&sb.calls());
        assert_eq!(apt.len(), 2, "{name}\n{}", sb.report());
        assert_eq!(apt[0], TAILSCALE_INDEX_ONLY, "{name}\n{}", sb.report());
        assert_eq!(apt[1][2], "install", "{name}\n{}", sb.report());
        assert!(
            apt[1][5..]
                .iter()
                .all(|a| a == "--allow-downgrades" || a.starts_with("tailscale")),
            "{name} installs more than Tailscale\n{}",
            sb.report()
        );
    }
}

/// An image without the firewall's tool (Debian 12's has no ufw) installs it, once, after a
/// full index refresh, before the firewall step, and nothing else; the firewall then runs as
/// on any image.
#[test]
fn an_image_without_the_firewall_tool_installs_it_once_before_the_firewall() {
    for (fixture, name, via, package) in [
        ("hetzner.yaml", "hz-debian", "hz-server", "ufw"),
        ("nftables.yaml", "nft-agent", "nft-server-1", "nftables"),
    ] {
        let mut sb = Sandbox::new(node(fixture, name));
        sb.peer(via, INIT_IP);
        sb.without_package(package);
        let run = sb.run();
        assert_converged(&sb, &run);
        let calls = sb.calls();
        let expect = Expect::of(fixture, name);
        let packages = packages_of(&expect);
        let start = firewall_start(&calls);
        // The status of each package, then one refresh and one install of the missing one.
        assert_eq!(start, packages.len() + 2, "{name}\n{}", sb.report());
        for (c, p) in calls.iter().zip(&packages) {
            assert!(is_status_query(c, p), "{name}: {c}\n{}", sb.report());
            assert_eq!(c.ok(), *p != package, "{name}: {c}\n{}", sb.report());
        }
        let apt = apt_calls(&calls);
        assert_eq!(apt[0], FULL_UPDATE, "{name}\n{}", sb.report());
        assert_eq!(apt[1], install(&[package]), "{name}\n{}", sb.report());
        assert!(
            calls[packages.len()..start].iter().all(Call::ok),
            "{}",
            sb.report()
        );
        assert_firewall_first(&sb, &calls, expect.row.firewall);
        // Tailscale's own: its index alone (the full refresh came before its list existed).
        assert_eq!(apt.len(), 4, "{name}\n{}", sb.report());
        assert_eq!(apt[2], TAILSCALE_INDEX_ONLY, "{name}\n{}", sb.report());
        assert!(
            sb.log()
                .contains(&format!("meshboot[packages]: installed {package}")),
            "{}",
            sb.report()
        );
    }
}

/// Installing a missing tool that never succeeds stops the boot at the package step, after
/// its bound, before any firewall call, with nothing of Tailscale or K3s installed.
#[test]
fn a_missing_tool_that_cannot_be_installed_stops_before_the_firewall() {
    let mut sb = Sandbox::new(node("hetzner.yaml", "hz-debian"));
    sb.without_package("ufw");
    sb.fault("apt-get-fail", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "packages");
    let calls = sb.calls();
    assert!(
        calls
            .iter()
            .all(|c| matches!(c.tool.as_str(), "dpkg-query" | "apt-get" | "sleep")),
        "{}",
        sb.report()
    );
    assert_eq!(
        apt_calls(&calls).len(),
        5,
        "five attempts, each failing at the update\n{}",
        sb.report()
    );
    assert!(
        sb.log().contains("could not install ufw"),
        "{}",
        sb.report()
    );
}

/// When Tailscale's package does not install from its own index alone (a dependency the
/// image lacks and its stale indexes cannot provide), every index is refreshed and the
/// install tried again, within the same attempt.
#[test]
fn tailscale_falls_back_to_a_full_refresh_when_its_own_index_is_not_enough() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("tailscale-deps-missing", "always");
    let run = sb.run();
    assert_converged(&sb, &run);
    let apt = apt_calls(&sb.calls_of_last_run());
    assert_eq!(apt.len(), 4, "{}", sb.report());
    assert_eq!(apt[0], TAILSCALE_INDEX_ONLY, "{}", sb.report());
    assert_eq!(apt[1], install(&["tailscale"]), "{}", sb.report());
    assert_eq!(apt[2], FULL_UPDATE, "{}", sb.report());
    assert_eq!(apt[3], install(&["tailscale"]), "{}", sb.report());
    assert!(
        sb.log()
            .contains("Tailscale does not install from its own index alone"),
        "{}",
        sb.report()
    );
    assert!(
        !sb.calls().iter().any(|c| c.tool == "sleep"),
        "the fallback waited for a retry\n{}",
        sb.report()
    );
}
