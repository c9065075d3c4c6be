//! The bootstrap's own overhead: the time from its start to the K3s installer's call, per
//! role and OS, with every stand-in answering at once (no network, no package index, no
//! real ufw). It is reported, never asserted (a timed assertion would fail on a loaded
//! machine): run `cargo test --test testsuite firstboot::overhead -- --nocapture`.
//! The README's "Performance" section lists the figures.
//!
//! What it measures: the script's own work (its shell, the stand-ins' process starts, the
//! files it writes) from the moment the unit's command starts. What it does not: the real
//! tools' time (a real `ufw` invocation starts Python and runs iptables-restore, about
//! 0.2 s each on a small server; apt and the downloads depend on the network), which is why
//! it also prints how many times each tool ran.

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
            calls = format!(
                "ufw {}, nft {}, apt-get {}, curl {}, tailscale {}, sleep {}",
                count("ufw"),
                count("nft"),
                count("apt-get"),
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
