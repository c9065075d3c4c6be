//! Faults: the node converges, or fails loudly at the named step.

use super::calls::{Call, backoff, exit_codes, sleeps};
use super::checks::*;
use super::expect::*;
use super::sandbox::{Online, Sandbox, node};
use super::world::{INIT_IP, SECOND_SERVER_IP};
use meshboot::plan;
use std::fs;

/// The sandbox of `cluster.yaml`'s cp-2, a server that joins cp-1 (on the mesh at
/// [`INIT_IP`]), with the stand-ins' fault `name` set to `value` (see `Sandbox::fault`).
fn joiner_of_cp_1(name: &str, value: impl std::fmt::Display) -> Sandbox {
    let sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    sb.fault(name, value);
    sb
}

// ---------------------------------------------------------------------------------------
// The init server that is re-created into a running cluster

#[test]
fn recreated_init_server_rejoins_a_running_server_instead_of_forking() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.peer("cp-2", SECOND_SERVER_IP);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-1").joining("cp-2", SECOND_SERVER_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log().contains("a cluster is already running at cp-2"),
        "{}",
        sb.report()
    );
}

#[test]
fn init_server_initialises_when_the_other_server_on_the_mesh_has_no_supervisor_yet() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.peer("cp-2", SECOND_SERVER_IP);
    sb.fault("cacerts-refuse", "always");
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-1");
    assert_bootstrapped(&sb, &run, &expect);
    let cacerts = format!("https://{SECOND_SERVER_IP}:6443/cacerts");
    assert!(
        sb.calls()
            .iter()
            .any(|c| c.url() == Some(cacerts.as_str()) && !c.ok()),
        "cp-2's supervisor was never asked\n{}",
        sb.report()
    );
}

// ---------------------------------------------------------------------------------------
// Replaced machines in the tailnet: a stale machine keeps the old one's name

/// Where the machine a re-created server replaced is still in the tailnet, offline.
const STALE_IP: &str = "100.64.0.9";

/// On an Ubuntu node (the tailnet read with python3) and a Flatcar node (with jq).
#[test]
fn joiner_picks_the_online_server_over_a_stale_offline_machine_holding_its_name() {
    for name in ["cp-2", "worker-1"] {
        let mut sb = Sandbox::new(node("cluster.yaml", name));
        // The old cp-1 is listed first: a lookup by name would find it.
        sb.machine("cp-1", STALE_IP, Online::No, "cp-1");
        sb.machine("cp-1", INIT_IP, Online::Yes, "cp-1-1");
        let run = sb.run();
        let expect = Expect::of("cluster.yaml", name);
        assert_bootstrapped(&sb, &run, &expect);
        assert!(
            sb.log().contains(&format!(
                "server cp-1 is online; stale offline machines also hold its name: cp-1 ({STALE_IP}, offline). Delete them"
            )),
            "{}",
            sb.report()
        );
        assert!(
            !sb.calls()
                .iter()
                .any(|c| c.url().is_some_and(|u| u.contains(STALE_IP))),
            "the stale machine was contacted\n{}",
            sb.report()
        );
    }
}

#[test]
fn joiner_joins_another_server_while_only_a_stale_machine_holds_the_init_servers_name() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.machine("cp-1", STALE_IP, Online::No, "cp-1");
    sb.peer("cp-3", SECOND_SERVER_IP);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2").joining("cp-3", SECOND_SERVER_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log().contains(&format!(
            "server cp-1 is not online on the mesh; only offline machines hold its name: cp-1 ({STALE_IP}, offline). If cp-1 was re-created, delete the stale one"
        )),
        "{}",
        sb.report()
    );
}

#[test]
fn joiner_does_not_join_through_a_name_two_online_machines_claim() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.machine("cp-1", STALE_IP, Online::Yes, "cp-1");
    sb.machine("cp-1", INIT_IP, Online::Yes, "cp-1-1");
    sb.peer("cp-3", SECOND_SERVER_IP);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2").joining("cp-3", SECOND_SERVER_IP);
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log().contains(&format!(
            "several online machines registered as cp-1: cp-1 ({STALE_IP}, online), cp-1-1 ({INIT_IP}, online); not joining through cp-1"
        )),
        "{}",
        sb.report()
    );
}

#[test]
fn node_whose_magicdns_name_came_back_suffixed_warns_naming_the_stale_machine() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.own_dns_label("cp-1-1");
    sb.machine("cp-1", STALE_IP, Online::No, "cp-1");
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        sb.log().contains(&format!(
            "meshboot[tailscale-name]: warning: the tailnet calls this node cp-1-1, not cp-1: another machine holds that name: cp-1 ({STALE_IP}, offline). If it is the machine this node replaces, delete it"
        )),
        "{}",
        sb.report()
    );
}

// ---------------------------------------------------------------------------------------
// Re-created under a registered name: K3s refuses the node's password

/// The calls after the K3s install, as "tool args".
fn after_install(sb: &Sandbox) -> Vec<String> {
    let calls = sb.calls_of_last_run();
    let install = calls
        .iter()
        .position(|c| c.tool == "k3s-install")
        .unwrap_or(0);
    calls[install + 1..]
        .iter()
        .map(|c| format!("{} {}", c.tool, c.args.join(" ")))
        .collect()
}

#[test]
fn agent_recreated_under_its_old_name_fails_at_k3s_start_with_the_exact_fix() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("k3s-password-rejected", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "k3s-start");
    let log = sb.log();
    for fix in [
        "K3s refused this node: the cluster already has a node named worker-1, registered by another machine (Node password rejected)",
        "on a server run kubectl delete node worker-1, and kubectl -n kube-system delete secret worker-1.node-password.k3s if the node is gone",
        "K3s keeps retrying and joins once they are deleted; then run /opt/meshboot/bootstrap.sh again",
    ] {
        assert!(log.contains(fix), "{fix}\n{}", sb.report());
    }
    // At once: the first check that found the unit not active read the refusal.
    let after = after_install(&sb);
    assert_eq!(after.len(), 3, "{after:?}\n{}", sb.report());
    assert_eq!(after[1], "systemctl is-active --quiet k3s-agent");
    assert!(
        after[2].starts_with("journalctl -u k3s-agent --since @"),
        "{after:?}"
    );
    // The operator deleted the old node: K3s joins, and a second run finishes the boot
    // without installing K3s again.
    sb.clear_fault("k3s-password-rejected");
    let run = sb.run();
    assert_converged(&sb, &run);
    let installs = sb
        .calls()
        .iter()
        .filter(|c| c.tool == "k3s-install")
        .count();
    assert_eq!(installs, 1, "{}", sb.report());
}

#[test]
fn server_recreated_under_its_old_name_fails_naming_the_etcd_cleanup() {
    let mut sb = joiner_of_cp_1("k3s-password-rejected", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "k3s-start");
    let log = sb.log();
    for fix in [
        "(Node password rejected). If that machine is gone: stop K3s here (systemctl stop k3s); on another server run kubectl delete node cp-2 (K3s also removes the etcd member that node names)",
        "kubectl -n kube-system delete secret cp-2.node-password.k3s",
        "then remove this machine's etcd data, which a removed member cannot rejoin with (rm -rf /var/lib/rancher/k3s/server/db), and run /opt/meshboot/bootstrap.sh again",
    ] {
        assert!(log.contains(fix), "{fix}\n{}", sb.report());
    }
}

/// A server's unit is active once etcd and the API server are up; the node has joined
/// only once K3s holds its kubelet certificate, which the bootstrap waits for.
#[test]
fn a_server_active_before_its_kubelet_certificate_is_waited_for() {
    let mut sb = joiner_of_cp_1("k3s-cert-late", 2);
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &Expect::of("cluster.yaml", "cp-2"));
    let checks = exit_codes(&sb.calls(), |c| {
        c.is("systemctl", &["is-active", "--quiet", "k3s"])
    });
    assert_eq!(checks, ["0", "0", "0"], "{}", sb.report());
    let journal = sb.calls().iter().filter(|c| c.tool == "journalctl").count();
    assert_eq!(journal, 2, "{}", sb.report());
}

// ---------------------------------------------------------------------------------------
// Faults: the node converges, or fails loudly at the named step

#[test]
fn tailscale_up_failing_twice_is_retried_with_backoff() {
    let mut sb = joiner_of_cp_1("tailscale-up-fail", 2);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2");
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let ups = exit_codes(&calls, |c| c.is_tailscale_up());
    assert_eq!(ups, ["1", "1", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2"], "{}", sb.report());
    assert!(
        sb.log()
            .contains("tailscale up: attempt 2 of 6 failed; next try in 2s")
    );
}

#[test]
fn own_address_appearing_late_is_waited_for() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("own-ip-missing", 2);
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &Expect::of("cluster.yaml", "cp-1"));
    let calls = sb.calls();
    // The first lookup is the "already on the mesh?" check before up.
    let lookups = exit_codes(&calls, Call::is_own_ip_lookup);
    assert_eq!(lookups, ["1", "1", "1", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2"], "{}", sb.report());
}

#[test]
fn tailscale_up_never_succeeding_fails_at_tailscale_up_after_the_planned_attempts() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("tailscale-up-fail", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "tailscale-up");
    let calls = sb.calls();
    let ups = calls.iter().filter(|c| c.is_tailscale_up()).count();
    assert_eq!(ups, TAILSCALE_UP_ATTEMPTS as usize, "{}", sb.report());
    assert!(ups > 1, "no retry at all");
    assert_eq!(
        sleeps(&calls),
        backoff(TAILSCALE_UP_ATTEMPTS, MAX_BACKOFF_S),
        "{}",
        sb.report()
    );
    assert_eq!(
        calls.last().map(Call::is_tailscale_up),
        Some(true),
        "{}",
        sb.report()
    );
    // The key stays for the next attempt; once the cause is fixed, a rerun converges.
    assert_eq!(sb.mode(plan::AUTH_KEY_PATH), 0o600);
    assert_no_secrets(&sb);
    sb.clear_fault("tailscale-up-fail");
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(!sb.exists(plan::AUTH_KEY_PATH));
}

#[test]
fn joiner_waits_for_the_init_server_to_appear_on_the_mesh() {
    // Four reads of the tailnet without cp-1: the node's check of its own name, then three
    // rounds of the join.
    let mut sb = joiner_of_cp_1("peer-absent.cp-1", 4);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2");
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let reads = exit_codes(&calls, |c| c.is("tailscale", &["status", "--json"]));
    assert_eq!(reads, ["0"; 5], "{}", sb.report());
    // Each failed round also tried the other server, cp-3, which is not on the mesh.
    let log = sb.log();
    for server in ["cp-1", "cp-3"] {
        let missed = format!("server {server} is not on the mesh yet");
        assert_eq!(log.matches(&missed).count(), 3, "{}", sb.report());
    }
    assert_eq!(sleeps(&calls), ["1", "2", "4"], "{}", sb.report());
    assert!(
        sb.log()
            .contains("waiting for a server: attempt 3 of 240 failed")
    );
}

#[test]
fn agent_waits_for_the_supervisor_to_answer_on_cacerts() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("cacerts-refuse", 3);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "worker-1");
    assert_bootstrapped(&sb, &run, &expect);
    let cacerts = format!("https://{INIT_IP}:6443/cacerts");
    let calls = sb.calls();
    let answers = exit_codes(&calls, |c| c.url() == Some(cacerts.as_str()));
    assert_eq!(answers, ["7", "7", "7", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1", "2", "4"], "{}", sb.report());
    assert!(
        sb.log()
            .contains(&format!("but {cacerts} does not answer yet")),
        "{}",
        sb.report()
    );
}

#[test]
fn k3s_install_script_download_failing_once_is_retried() {
    let mut sb = Sandbox::new(node("nftables.yaml", "nft-server-2"));
    sb.peer("nft-server-1", INIT_IP);
    sb.fault("k3s-download-fail", 1);
    let run = sb.run();
    let expect = Expect::of("nftables.yaml", "nft-server-2");
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let downloads = exit_codes(&calls, |c| c.url() == Some(plan::K3S_INSTALL_URL));
    assert_eq!(downloads, ["56", "0"], "{}", sb.report());
    assert_eq!(sleeps(&calls), ["1"], "{}", sb.report());
}

#[test]
fn crash_after_the_ufw_firewall_converges_on_the_next_boot() {
    let mut sb = joiner_of_cp_1("crash-on", "apt-get");
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    let first = sb.calls_of_last_run();
    assert_firewall_first(&sb, &first, Row::of("cluster.yaml", "cp-2").firewall);
    let last = first.last().expect("calls");
    assert!(
        last.tool == "apt-get" && last.rc == "killed",
        "the crash did not stop the run at apt-get\n{}",
        sb.report()
    );
    assert!(!first.iter().any(Call::is_tailscale_up), "{}", sb.report());
    assert!(
        sb.log().contains("meshboot[firewall]: ufw is enabled"),
        "{}",
        sb.report()
    );

    sb.clear_fault("crash-on");
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2");
    assert_bootstrapped(&sb, &run, &expect);
    // The second boot applied the same rules again: ufw skips rules it already has and
    // `ufw --force enable` on an enabled firewall changes nothing.
    let fw = |calls: &[Call]| -> Vec<Call> {
        calls.iter().filter(|c| c.tool == "ufw").cloned().collect()
    };
    assert_eq!(fw(&first), fw(&sb.calls_of_last_run()));
    assert_rerun_is_a_noop(&mut sb);
}

/// A ufw whose Python frontend lacks a call the batch makes (a future ufw: py/ufw's fault
/// removes `parse_command`) makes the batch exit 3, and the bootstrap then runs the ufw
/// command once per command: the same commands, in the table's order, all successful, and
/// the node bootstraps. What it proves: the fallback's wiring (exit code, order, words);
/// that the ufw command and the frontend leave the same rules is proved with the real ufw
/// in tests/testsuite/consumers.rs.
#[test]
fn a_ufw_frontend_the_batch_does_not_know_falls_back_to_one_ufw_per_command() {
    let mut sb = joiner_of_cp_1("ufw-frontend-unknown", "always");
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &Expect::of("cluster.yaml", "cp-2"));
    assert!(
        sb.log().contains(
            "ufw's Python frontend is not the one meshboot knows: one ufw run per command"
        ),
        "{}",
        sb.report()
    );
}

#[test]
fn crash_after_the_nftables_firewall_converges_on_the_next_boot() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("crash-on", "pkgs.tailscale.com");
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    let first = sb.calls_of_last_run();
    assert_firewall_first(&sb, &first, Row::of("cluster.yaml", "worker-1").firewall);
    assert!(
        first.last().is_some_and(|c| c.rc == "killed"),
        "the crash did not stop the run\n{}",
        sb.report()
    );
    assert!(
        !first.iter().any(|c| c.tool == "tailscale"),
        "{}",
        sb.report()
    );

    sb.clear_fault("crash-on");
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "worker-1");
    assert_bootstrapped(&sb, &run, &expect);
    // Both boots loaded the same ruleset, which replaces its own table each time.
    assert_eq!(sb.read_world("nft-loaded.1"), sb.read_world("nft-loaded.2"));
    assert_replaces_only_its_own_table(&sb.read_world("nft-loaded.2"));
}

#[test]
fn crash_after_joining_the_mesh_resumes_without_the_auth_key() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("crash-on", plan::K3S_INSTALL_URL);
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    assert!(sb.calls().iter().any(|c| c.is_tailscale_up() && c.ok()));
    assert!(
        !sb.exists(plan::AUTH_KEY_PATH),
        "the key outlived the join\n{}",
        sb.report()
    );

    sb.clear_fault("crash-on");
    let run = sb.run();
    assert_converged(&sb, &run);
    let second = sb.calls_of_last_run();
    assert_firewall_first(&sb, &second, Row::of("cluster.yaml", "cp-1").firewall);
    assert!(
        !second.iter().any(Call::is_tailscale_up),
        "tailscale up ran again on a node already on the mesh\n{}",
        sb.report()
    );
    assert!(
        sb.log()
            .contains("meshboot[tailscale-up]: already on the mesh")
    );
    let expect = Expect::of("cluster.yaml", "cp-1");
    assert_k3s_config(&sb, &expect);
    assert_install_env(&sb, &expect);
    assert_files_and_modes(&sb);
    assert_no_secrets(&sb);
}

#[test]
fn reboot_after_the_key_was_removed_waits_for_tailscaled_to_reconnect() {
    // The key goes once the node is on the mesh; a reboot before the bootstrap finished
    // finds no key, and tailscaled needs a moment to come back from its state.
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("crash-on", plan::K3S_INSTALL_URL);
    let run = sb.run();
    assert!(!run.success(), "{}", sb.report());
    assert!(!sb.exists(plan::AUTH_KEY_PATH));
    sb.clear_fault("crash-on");
    sb.fault("own-ip-missing", 2);
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        sb.log()
            .contains("waiting for tailscaled to reconnect: attempt 1 of"),
        "{}",
        sb.report()
    );
    assert!(!sb.calls_of_last_run().iter().any(Call::is_tailscale_up));
}

#[test]
fn a_node_with_no_key_and_no_mesh_fails_at_tailscale_up() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    fs::remove_file(sb.host(plan::AUTH_KEY_PATH)).expect("key delivered");
    let run = sb.run();
    assert_failed_at(&sb, &run, "tailscale-up");
    assert!(
        sb.log()
            .contains("is missing or empty and this node is not on the mesh")
    );
    assert!(!sb.calls().iter().any(Call::is_tailscale_up));
}

#[test]
fn firewall_failure_stops_the_bootstrap_before_anything_else() {
    for (fixture, name, fault) in [
        ("cluster.yaml", "cp-1", "ufw-fail"),
        ("cluster.yaml", "worker-1", "nft-fail"),
    ] {
        let mut sb = Sandbox::new(node(fixture, name));
        sb.fault(fault, "always");
        let run = sb.run();
        assert_failed_at(&sb, &run, "firewall");
        let calls = sb.calls();
        let start = firewall_start(&calls);
        // ufw: the frontend's process, then its first command, which fails.
        let last = match fault {
            "ufw-fail" => start + 1,
            _ => start,
        };
        assert_eq!(
            calls.len(),
            last + 1,
            "calls after the firewall failed\n{}",
            sb.report()
        );
        assert!(!calls[last].ok(), "{}", sb.report());
        assert_eq!(sb.mode(plan::AUTH_KEY_PATH), 0o600);
    }
}

#[test]
fn no_server_ever_answering_fails_at_join_target_after_the_planned_rounds() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    let run = sb.run();
    assert_failed_at(&sb, &run, "join-target");
    let calls = sb.calls();
    let rounds = sb
        .log()
        .matches("server cp-1 is not on the mesh yet")
        .count();
    assert_eq!(rounds, JOIN_ATTEMPTS as usize, "{}", sb.report());
    // One read of the tailnet per round, after the node's check of its own name.
    let reads = calls
        .iter()
        .filter(|c| c.is("tailscale", &["status", "--json"]))
        .count();
    assert_eq!(reads, JOIN_ATTEMPTS as usize + 1, "{}", sb.report());
    assert_eq!(sleeps(&calls), backoff(JOIN_ATTEMPTS, MAX_BACKOFF_S));
    assert!(!calls.iter().any(|c| c.tool == "k3s-install"));
    assert!(!sb.exists(plan::K3S_BOOT_CONFIG_PATH));
}

/// The K3s install script downloads K3s's hash and binary from GitHub itself (install.sh
/// `download_hash`, `download_binary`: `fatal 'Download failed'`): the bootstrap runs it under
/// retry, so a binary download failing once costs one backoff, not the node.
#[test]
fn k3s_binary_download_failing_once_is_retried() {
    let mut sb = joiner_of_cp_1("k3s-binary-fail", 1);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2");
    assert_bootstrapped(&sb, &run, &expect);
    let calls = sb.calls();
    let binary = "https://github.com/k3s-io/k3s/releases/download/v1.33.13+k3s1/k3s";
    let host_binary = match host_arch() {
        "amd64" => binary.to_string(),
        arch => format!("{binary}-{arch}"),
    };
    assert_eq!(
        exit_codes(&calls, |c| c.url() == Some(host_binary.as_str())),
        ["56", "0"],
        "{}",
        sb.report()
    );
    assert_eq!(
        exit_codes(&calls, |c| c.tool == "k3s-install"),
        ["1", "0"],
        "{}",
        sb.report()
    );
    assert!(
        sb.log()
            .contains("running the K3s install script: attempt 1 of 5 failed; next try in 1s"),
        "{}",
        sb.report()
    );
    // The install script itself was downloaded once: only the installer was run again.
    assert_eq!(
        exit_codes(&calls, |c| c.url() == Some(plan::K3S_INSTALL_URL)),
        ["0"]
    );
}

/// Running the install script again is safe: a binary it already installed with the
/// release's hash is not downloaded again (install.sh `installed_hash_matches`), here after
/// the script failed later on, once the binary was in place.
#[test]
fn a_k3s_install_failing_after_the_binary_is_in_place_is_retried_without_downloading_it_again() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    sb.fault("k3s-install-late-fail", 1);
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &Expect::of("cluster.yaml", "worker-1"));
    let calls = sb.calls();
    let github = |what: &str| {
        exit_codes(&calls, |c| {
            c.url().is_some_and(|u| {
                u.starts_with("https://github.com/k3s-io/k3s/releases/download/")
                    && u.rsplit('/').next().is_some_and(|f| f.starts_with(what))
            })
        })
    };
    assert_eq!(github("sha256sum-"), ["0", "0"], "{}", sb.report());
    assert_eq!(github("k3s"), ["0"], "{}", sb.report());
    assert_eq!(
        exit_codes(&calls, |c| c.tool == "k3s-install"),
        ["1", "0"],
        "{}",
        sb.report()
    );
    assert!(
        sb.log()
            .contains("Skipping binary downloaded, installed k3s matches hash"),
        "{}",
        sb.report()
    );
}

/// An install script that keeps failing stops the bootstrap at k3s-install after its
/// attempts, named; the next boot (or a re-run) finishes once the cause is gone.
#[test]
fn k3s_install_failure_fails_at_k3s_install_and_a_rerun_finishes() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    sb.fault("k3s-install-fail", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "k3s-install");
    assert!(
        sb.log()
            .contains("running the K3s install script: giving up after 5 attempts"),
        "{}",
        sb.report()
    );
    assert_eq!(sleeps(&sb.calls()), backoff(5, MAX_BACKOFF_S));
    sb.clear_fault("k3s-install-fail");
    let run = sb.run();
    assert_converged(&sb, &run);
    let installs = exit_codes(&sb.calls(), |c| c.tool == "k3s-install");
    assert_eq!(installs, ["1", "1", "1", "1", "1", "0"], "{}", sb.report());
}

#[test]
fn k3s_slow_to_become_active_is_waited_for() {
    let mut sb = joiner_of_cp_1("k3s-start-slow", 3);
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &Expect::of("cluster.yaml", "cp-2"));
    let checks = exit_codes(&sb.calls(), |c| {
        c.is("systemctl", &["is-active", "--quiet", "k3s"])
    });
    assert_eq!(checks, ["3", "3", "3", "0"], "{}", sb.report());
}

#[test]
fn k3s_never_active_fails_at_k3s_start_after_the_planned_checks() {
    // A join that cannot complete (a tailnet policy blocking etcd, a wrong token) must end
    // the bootstrap, named, instead of holding it (and cloud-init) forever.
    let mut sb = joiner_of_cp_1("k3s-start-slow", "always");
    let run = sb.run();
    assert_failed_at(&sb, &run, "k3s-start");
    let calls = sb.calls();
    let checks = exit_codes(&calls, |c| {
        c.is("systemctl", &["is-active", "--quiet", "k3s"])
    });
    assert_eq!(checks.len(), JOIN_ATTEMPTS as usize, "{}", sb.report());
    assert!(!sb.exists(&format!("{}/done", plan::STATE_DIR)));
    // The next boot picks up where it stopped: no second install, K3s started again.
    sb.clear_fault("k3s-start-slow");
    let run = sb.run();
    assert_converged(&sb, &run);
    assert_eq!(calls.iter().filter(|c| c.tool == "k3s-install").count(), 1);
    assert_eq!(
        sb.calls()
            .iter()
            .filter(|c| c.tool == "k3s-install")
            .count(),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Bugs this harness found, each pinned by the test that showed it.

#[test]
fn joiner_logs_which_server_is_not_on_the_mesh_yet() {
    // The first read of the tailnet is the node's check of its own name.
    let mut sb = joiner_of_cp_1("peer-absent.cp-1", 2);
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        sb.log().contains("server cp-1 is not on the mesh yet"),
        "the wait does not say why\n{}",
        sb.report()
    );
}
