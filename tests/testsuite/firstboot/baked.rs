//! Nodes booted from a baked image (`meshboot packer`): Tailscale and K3s are already on the
//! disk, where bake.sh leaves them. With the pinned versions the bootstrap downloads
//! neither; with other versions it installs the pinned ones, as on a stock image.
//!
//! The "image" is laid down here by hand, as bake.sh leaves it (the stand-ins at the
//! versions given, the install script it ran under /opt/meshboot/baked): what this proves
//! is the bootstrap's side of the contract (what it looks for, what it skips, what it runs
//! instead), not that bake.sh produces that state on a real image.

use super::calls::Call;
use super::checks::*;
use super::expect::*;
use super::sandbox::{Run, Sandbox, node, write_file};
use super::world::{K3S_INSTALLER, POOL};
use meshboot::plan;
use std::fs;
use std::os::unix::fs::symlink;

/// A stand-in from the pool as installed at `version` (lib.sh `standin_install`).
fn standin(name: &str, version: &str) -> String {
    let (_, text) = POOL.iter().find(|(n, _)| *n == name).expect("stand-in");
    text.replace(
        "STANDIN_VERSION=0.0.0",
        &format!("STANDIN_VERSION={version}"),
    )
}

/// The fake k3s binary of `version`, as the fake installer writes it.
fn k3s_binary(version: &str) -> String {
    format!(
        "#!/bin/sh\ncase \"$*\" in --version) echo \"k3s version {version} (fakecommit)\"; echo \"go version go1.0\" ;; *) echo \"fake k3s $*\" ;; esac\n"
    )
}

/// Where Tailscale was baked: from the apt package, or as the static build.
enum Baked {
    Apt,
    /// The static build in `dir`, its CLI linked as `link` where `dir` is not on PATH.
    Static {
        dir: &'static str,
        link: Option<&'static str>,
    },
}

/// Lays down what bake.sh leaves on an image: Tailscale `ts` and K3s `k3s` (at `k3s_bin`),
/// and the K3s install script it ran.
fn bake(sb: &Sandbox, how: Baked, ts: &str, k3s_bin: &str, k3s: &str) {
    match how {
        Baked::Apt => {
            for bin in ["tailscale", "tailscaled"] {
                write_file(
                    &sb.host(&format!("/usr/local/bin/{bin}")),
                    &standin(bin, ts),
                    0o755,
                );
            }
            // The package's unit, as the apt-get stand-in registers it.
            write_file(&sb.world("state/pkg-units/tailscaled.service"), "", 0o644);
        }
        Baked::Static { dir, link } => {
            for bin in ["tailscale", "tailscaled"] {
                write_file(&sb.host(&format!("{dir}/{bin}")), &standin(bin, ts), 0o755);
            }
            if let Some(link) = link {
                let link = sb.host(link);
                fs::create_dir_all(link.parent().expect("parent")).expect("link dir");
                symlink(format!("{dir}/tailscale"), link).expect("link");
            }
        }
    }
    write_file(&sb.host(k3s_bin), &k3s_binary(k3s), 0o755);
    write_file(&sb.host(plan::BAKED_K3S_INSTALLER), K3S_INSTALLER, 0o755);
}

const FLATCAR: Baked = Baked::Static {
    dir: "/opt/tailscale",
    link: Some("/opt/bin/tailscale"),
};

/// Fedora CoreOS: the static build in /usr/local/bin, on PATH (plan `TAILSCALE_FCOS_DIR`).
const FCOS: Baked = Baked::Static {
    dir: "/usr/local/bin",
    link: None,
};

/// URLs fetched from where Tailscale and K3s are downloaded.
fn downloads(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(Call::url)
        .filter(|u| {
            u.starts_with("https://pkgs.tailscale.com/") || u.starts_with("https://get.k3s.io")
        })
        .map(String::from)
        .collect()
}

fn install_env(sb: &Sandbox) -> Vec<String> {
    sb.read_world("k3s-install.env")
        .lines()
        .filter(|l| l.starts_with("INSTALL_K3S_"))
        .map(String::from)
        .collect()
}

/// A baked node with the pinned versions: nothing is downloaded or installed, the baked
/// install script writes the role's unit around the baked binary, and the node joins.
fn boots_without_downloads(fixture: &str, name: &str, how: Baked, k3s_bin: &str) {
    let mut sb = Sandbox::new(node(fixture, name));
    bake(&sb, how, "1.90.6", k3s_bin, "v1.33.13+k3s1");
    let expect = Expect::of(fixture, name);
    if let Some((server, ip)) = &expect.join {
        sb.peer(server, ip);
    }
    let run = sb.run();
    assert_converged(&sb, &run);
    let calls = sb.calls_of_last_run();
    assert_eq!(downloads(&calls), Vec::<String>::new(), "{}", sb.report());
    assert!(
        !calls.iter().any(|c| c.tool == "apt-get"),
        "apt-get ran on a baked node\n{}",
        sb.report()
    );
    for line in [
        "Tailscale 1.90.6 is already installed; not downloading it",
        "K3s v1.33.13+k3s1 is already installed; not downloading it",
    ] {
        assert!(
            sb.log().contains(line),
            "the log lacks {line:?}\n{}",
            sb.report()
        );
    }
    // The baked install script ran, told not to download (get.k3s.io: with
    // INSTALL_K3S_SKIP_DOWNLOAD=true it only checks the binary is there), with the node's
    // own environment otherwise.
    let mut want: Vec<String> = expect
        .row
        .install_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    want.push("INSTALL_K3S_SKIP_DOWNLOAD=true".into());
    want.sort();
    assert_eq!(install_env(&sb), want, "{}", sb.report());
    assert_eq!(
        fs::read_to_string(sb.host(k3s_bin)).expect("k3s"),
        k3s_binary("v1.33.13+k3s1"),
        "the baked k3s binary was replaced"
    );
    assert_firewall_first(&sb, &calls, expect.row.firewall);
    assert_up_args(&sb, &calls, &expect);
    assert_k3s_config(&sb, &expect);
    assert_files_and_modes(&sb);
    assert_no_secrets(&sb);
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn a_baked_ubuntu_server_downloads_neither_tailscale_nor_k3s() {
    boots_without_downloads(
        "hetzner.yaml",
        "hz-server",
        Baked::Apt,
        "/usr/local/bin/k3s",
    );
}

#[test]
fn a_baked_flatcar_agent_downloads_neither_tailscale_nor_k3s() {
    boots_without_downloads("hetzner.yaml", "hz-core", FLATCAR, "/opt/bin/k3s");
}

/// A node whose image holds other versions boots like a stock one: it installs the pinned
/// Tailscale (apt: a downgrade from a newer baked package, which apt-get -y refuses without
/// --allow-downgrades) and downloads the pinned K3s.
fn installs_the_pinned_versions(
    fixture: &str,
    name: &str,
    how: Baked,
    k3s_bin: &str,
    ts: &str,
    ts_bin: &str,
) {
    let mut sb = Sandbox::new(node(fixture, name));
    bake(&sb, how, ts, k3s_bin, "v1.32.0+k3s1");
    let expect = Expect::of(fixture, name);
    if let Some((server, ip)) = &expect.join {
        sb.peer(server, ip);
    }
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &expect);
    for line in [
        format!("tailscale {ts} is installed, not 1.90.6: installing 1.90.6"),
        format!(
            "k3s version v1.32.0+k3s1 (fakecommit) is installed at {k3s_bin}, not v1.33.13+k3s1: downloading v1.33.13+k3s1"
        ),
    ] {
        assert!(
            sb.log().contains(&line),
            "the log lacks {line:?}\n{}",
            sb.report()
        );
    }
    assert!(
        fs::read_to_string(sb.host(ts_bin))
            .expect("tailscale")
            .contains("STANDIN_VERSION=1.90.6\n"),
        "{ts_bin} is not Tailscale 1.90.6\n{}",
        sb.report()
    );
    assert_eq!(
        fs::read_to_string(sb.host(k3s_bin)).expect("k3s"),
        k3s_binary("v1.33.13+k3s1")
    );
    assert!(
        !install_env(&sb)
            .iter()
            .any(|l| l.starts_with("INSTALL_K3S_SKIP_DOWNLOAD"))
    );
}

#[test]
fn a_baked_ubuntu_server_with_other_versions_installs_the_pinned_ones() {
    installs_the_pinned_versions(
        "hetzner.yaml",
        "hz-server",
        Baked::Apt,
        "/usr/local/bin/k3s",
        "1.92.0",
        "/usr/local/bin/tailscale",
    );
}

#[test]
fn a_baked_flatcar_agent_with_other_versions_installs_the_pinned_ones() {
    installs_the_pinned_versions(
        "hetzner.yaml",
        "hz-core",
        FLATCAR,
        "/opt/bin/k3s",
        "1.88.0",
        "/opt/tailscale/tailscale",
    );
}

/// Fedora CoreOS keeps its static Tailscale in /usr/local/bin (no link): a baked build of
/// the pinned version there is used, another version is replaced. flatcar.yaml pins
/// Tailscale but not K3s, so K3s is installed as on a stock image either way.
fn fcos_with_baked_tailscale(ts: &str) -> (Sandbox, Expect, Run) {
    let mut sb = Sandbox::new(node("flatcar.yaml", "fcos-1"));
    bake(&sb, FCOS, ts, "/usr/local/bin/k3s", "v1.32.0+k3s1");
    let expect = Expect::of("flatcar.yaml", "fcos-1");
    if let Some((server, ip)) = &expect.join {
        sb.peer(server, ip);
    }
    let run = sb.run();
    (sb, expect, run)
}

#[test]
fn a_baked_fcos_agent_keeps_its_pinned_tailscale_in_usr_local_bin() {
    let (mut sb, expect, run) = fcos_with_baked_tailscale("1.90.6");
    assert_converged(&sb, &run);
    let tailscale: Vec<String> = downloads(&sb.calls_of_last_run())
        .into_iter()
        .filter(|u| u.starts_with("https://pkgs.tailscale.com/"))
        .collect();
    assert_eq!(tailscale, Vec::<String>::new(), "{}", sb.report());
    assert!(
        sb.log()
            .contains("Tailscale 1.90.6 is already installed; not downloading it"),
        "{}",
        sb.report()
    );
    assert_up_args(&sb, &sb.calls_of_last_run(), &expect);
    assert_files_and_modes(&sb);
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn a_baked_fcos_agent_with_another_tailscale_installs_the_pinned_one() {
    let (sb, expect, run) = fcos_with_baked_tailscale("1.88.0");
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log()
            .contains("tailscale 1.88.0 is installed, not 1.90.6: installing 1.90.6"),
        "{}",
        sb.report()
    );
    assert!(
        fs::read_to_string(sb.host("/usr/local/bin/tailscale"))
            .expect("tailscale")
            .contains("STANDIN_VERSION=1.90.6\n"),
        "{}",
        sb.report()
    );
}
