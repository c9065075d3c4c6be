//! The bootstrap's own overhead: the time from its start to the K3s installer's call, per
//! role and OS, with every stand-in answering at once (no network, no package index, no
//! real ufw). It is reported, never asserted (a timed assertion would fail on a loaded
//! machine): run `cargo test --test testsuite firstboot::overhead -- --nocapture`.
//! The README's "Performance" section lists the figures.
//!
//! What it measures: the script's own work (its shell, the stand-ins' process starts, the
//! files it writes) from the moment the unit's command starts. What it does not: the real
//! tools' time (ufw's own: the real ufw applying a node's list took 4.7 s as one `ufw` per
//! command and 1.4 s as the bootstrap's one batch on the machine of the README's figures,
//! `consumers::ufw_batch_leaves_what_one_ufw_per_command_leaves`; apt and the downloads
//! depend on the network), which is why it also prints how many times each tool ran (ufw:
//! the processes that ran it and the commands they applied), and which package indexes apt refreshed (the
//! stand-ins' image holds every package the bootstrap checks for).

use super::checks::assert_bootstrapped;
use super::expect::Expect;
use super::sandbox::{Sandbox, node};
use super::world::INIT_IP;
use std::time::Duration;

/// One node of each role and OS family: (what, fixture, node, the server it joins).
const NODES: &[(&str, &str, &str, Option<&str>)] = &[
    ("init server, Ubuntu, ufw", "cluster.yaml", "cp-1", None),
    (
        "joining server, Ubuntu, ufw",
        "cluster.yaml",
        "cp-2",
        Some("cp-1"),
    ),
    ("agent, Ubuntu, ufw", "init.yaml", "worker-1", Some("cp-1")),
    (
        "pool agent, Ubuntu, ufw",
        "pools.yaml",
        "burst",
        Some("cp-1"),
    ),
    (
        "init server, Debian, nftables",
        "nftables.yaml",
        "nft-server-1",
        None,
    ),
    (
        "agent, Flatcar, nftables",
        "cluster.yaml",
        "worker-1",
        Some("cp-1"),
    ),
    (
        "agent, Fedora CoreOS, nftables",
        "flatcar.yaml",
        "fcos-1",
        Some("core-1"),
    ),
];

const RUNS: usize = 3;

#[test]
fn bootstrap_overhead_per_role_is_reported() {
    let mut report = String::from(
        "\nfirst-boot overhead, start to the K3s installer's call (stand-ins answer at once), median of 3 boots\n",
    );
    for (what, fixture, name, via) in NODES {
        let mut times: Vec<Duration> = Vec::new();
        let mut calls = String::new();
        for _ in 0..RUNS {
            let mut sb = Sandbox::new(node(fixture, name));
            sb.timed = true;
            if let Some(server) = via {
                sb.peer(server, INIT_IP);
            }
            let run = sb.run();
            assert_bootstrapped(&sb, &run, &Expect::of(fixture, name));
            times.push(sb.overhead());
            let all = sb.calls();
            let count = |tool: &str| all.iter().filter(|c| c.tool == tool).count();
            // Index refreshes: of every repository, or of Tailscale's alone.
            let updates = |whole: bool| {
                all.iter()
                    .filter(|c| c.tool == "apt-get" && c.args.iter().any(|a| a == "update"))
                    .filter(|c| whole != c.args.iter().any(|a| a.starts_with("Dir::Etc::")))
                    .count()
            };
            // Every process that ran ufw: the python3 of the firewall step's batch, which
            // imports ufw's package, and any `ufw` command (its stand-in records those as
            // unexpected).
            let ufw_processes = all
                .iter()
                .filter(|c| c.is("python3", &["import", "ufw"]))
                .count()
                + std::fs::read_to_string(sb.world("unexpected"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("ufw "))
                    .count();
            calls = format!(
                "ufw processes {} (commands {}), nft {}, dpkg-query {}, apt-get {} (index refreshes: whole {}, Tailscale's only {}), curl {}, tailscale {}, sleep {}",
                ufw_processes,
                count("ufw"),
                count("nft"),
                count("dpkg-query"),
                count("apt-get"),
                updates(true),
                updates(false),
                count("curl"),
                count("tailscale"),
                count("sleep")
            );
        }
        times.sort();
        report.push_str(&format!(
            "  {what:<32} {:>6.0} ms   calls: {calls}\n",
            times[RUNS / 2].as_secs_f64() * 1000.0
        ));
    }
    println!("{report}");
}
