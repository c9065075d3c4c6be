//! Happy paths, one per role and OS, and every node of every fixture.

use super::calls::Call;
use super::checks::*;
use super::expect::*;
use super::sandbox::{
    Sandbox, artifacts_of, compressed_node, node, random_server_name, write_file,
};
use super::world::{INIT_IP, OWN_IP, OWN_IP6};
use crate::support::good_fixtures;
use meshboot::plan;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;

#[test]
fn init_server_initialises_the_cluster_behind_its_firewall() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-1"));
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-1");
    assert_bootstrapped(&sb, &run, &expect);
    // It looked for a running server of the cluster before initialising a new one.
    for peer in ["cp-2", "cp-3"] {
        assert!(
            sb.log()
                .contains(&format!("server {peer} is not on the mesh yet")),
            "{}",
            sb.report()
        );
    }
    assert!(sb.log().contains("initialising the cluster (cluster-init)"));
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn joining_server_joins_the_init_server_over_the_mesh() {
    let mut sb = Sandbox::new(node("cluster.yaml", "cp-2"));
    sb.peer("cp-1", INIT_IP);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "cp-2");
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        sb.log()
            .contains(&format!("joining through cp-1 at {INIT_IP}"))
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn flatcar_agent_installs_static_tailscale_and_joins_behind_nftables() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "worker-1");
    assert_bootstrapped(&sb, &run, &expect);
    // No pinned version: it asked pkgs.tailscale.com for the latest.
    assert!(
        sb.calls()
            .iter()
            .any(|c| c.url() == Some("https://pkgs.tailscale.com/stable/?mode=json")),
        "{}",
        sb.report()
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn flatcar_init_server_installs_its_pinned_tailscale() {
    let mut sb = Sandbox::new(node("flatcar.yaml", "core-1"));
    let run = sb.run();
    let expect = Expect::of("flatcar.yaml", "core-1");
    assert_bootstrapped(&sb, &run, &expect);
    assert!(
        !sb.calls()
            .iter()
            .any(|c| c.url().is_some_and(|u| u.contains("mode=json"))),
        "a pinned version needs no index lookup\n{}",
        sb.report()
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn fedora_coreos_agent_installs_tailscale_into_usr_local_bin() {
    let mut sb = Sandbox::new(node("flatcar.yaml", "fcos-1"));
    sb.peer("core-1", INIT_IP);
    let run = sb.run();
    let expect = Expect::of("flatcar.yaml", "fcos-1");
    assert_bootstrapped(&sb, &run, &expect);
    // Nothing that systemd executes lives under /opt (SELinux may refuse it there).
    for path in ["/opt/tailscale", "/opt/bin"] {
        assert!(!sb.exists(path), "{path}\n{}", sb.report());
    }
    assert_rerun_is_a_noop(&mut sb);
}

/// The envelope starts the bootstrap as `/bin/sh SCRIPT`, so the script is read, never
/// executed: here it is not executable at all (as SELinux may refuse to execute a file
/// under /opt on Fedora CoreOS), and the node still boots.
#[test]
fn the_bootstrap_runs_through_bin_sh_even_when_it_may_not_be_executed() {
    let mut sb = Sandbox::new(node("flatcar.yaml", "fcos-1"));
    sb.peer("core-1", INIT_IP);
    let script = sb.host(plan::BOOTSTRAP_PATH);
    fs::set_permissions(&script, fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = sb.run();
    assert_converged(&sb, &run);
}

/// An image that already holds meshboot's static Tailscale (baked with Packer) but no
/// /opt/bin: the download is skipped, and K3s's installer still finds its directory.
#[test]
fn flatcar_image_with_tailscale_already_installed_still_gets_opt_bin_for_k3s() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    for bin in ["tailscale", "tailscaled"] {
        let text = sb.read_world(&format!("pool/{bin}"));
        write_file(&sb.host(&format!("/opt/tailscale/{bin}")), &text, 0o755);
    }
    assert!(!sb.exists("/opt/bin"));
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        !sb.calls()
            .iter()
            .any(|c| c.url().is_some_and(|u| u.ends_with(".tgz"))),
        "the static build was downloaded again\n{}",
        sb.report()
    );
    assert!(
        sb.log().contains("tailscale is already installed"),
        "{}",
        sb.report()
    );
    assert!(sb.exists("/opt/bin/k3s"), "{}", sb.report());
    let expect = Expect::of("cluster.yaml", "worker-1");
    assert_install_env(&sb, &expect);
    assert_k3s_config(&sb, &expect);
}

/// A `tailscale` elsewhere on PATH (an image's own, a Flatcar system extension's) is not the
/// build meshboot's tailscaled unit runs: the bootstrap installs that build anyway, instead
/// of skipping it and starting a unit whose program is missing.
#[test]
fn a_tailscale_elsewhere_on_path_does_not_replace_the_build_the_unit_runs() {
    let mut sb = Sandbox::new(node("cluster.yaml", "worker-1"));
    sb.peer("cp-1", INIT_IP);
    let text = sb.read_world("pool/tailscale");
    write_file(&sb.host("/usr/local/bin/tailscale"), &text, 0o755);
    let run = sb.run();
    let expect = Expect::of("cluster.yaml", "worker-1");
    assert_bootstrapped(&sb, &run, &expect);
}

#[test]
fn nftables_init_server_on_debian_loads_its_own_table() {
    let mut sb = Sandbox::new(node("nftables.yaml", "nft-server-1"));
    let run = sb.run();
    let expect = Expect::of("nftables.yaml", "nft-server-1");
    assert_bootstrapped(&sb, &run, &expect);
    assert_eq!(
        sb.read_world("nft-loaded.1"),
        fs::read_to_string(sb.host(plan::NFTABLES_PATH)).expect("ruleset"),
        "nft loaded something else than the delivered ruleset"
    );
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn nftables_agent_on_ubuntu_2204_joins() {
    let mut sb = Sandbox::new(node("nftables.yaml", "nft-agent"));
    sb.peer("nft-server-1", INIT_IP);
    let run = sb.run();
    let expect = Expect::of("nftables.yaml", "nft-agent");
    assert_bootstrapped(&sb, &run, &expect);
    assert_rerun_is_a_noop(&mut sb);
}

#[test]
fn single_server_initialises_with_no_other_server_to_look_for() {
    let mut sb = Sandbox::new(node("single-server.yaml", "solo-1"));
    let run = sb.run();
    let expect = Expect::of("single-server.yaml", "solo-1");
    assert_bootstrapped(&sb, &run, &expect);
    for port in ["80/tcp", "443/tcp"] {
        assert!(
            sb.calls().iter().any(|c| c.is("ufw", &["allow", port])),
            "{port} not opened\n{}",
            sb.report()
        );
    }
    // Nothing to probe: the tailnet is read once, for the node's check of its own name.
    let reads = sb
        .calls()
        .iter()
        .filter(|c| c.is("tailscale", &["status", "--json"]))
        .count();
    assert_eq!(reads, 1, "{}", sb.report());
    assert!(!sb.log().contains("server solo-1"), "{}", sb.report());
}

#[test]
fn headscale_server_passes_its_login_server_and_keeps_the_key_out_of_argv() {
    let mut sb = Sandbox::new(node("headscale.yaml", "hs-server"));
    let run = sb.run();
    let expect = Expect::of("headscale.yaml", "hs-server");
    assert_bootstrapped(&sb, &run, &expect);
    let up = sb
        .calls()
        .into_iter()
        .find(Call::is_tailscale_up)
        .expect("tailscale up");
    for arg in [
        "--login-server=https://headscale.example.com",
        "--advertise-tags=tag:k3s-server,tag:lab",
    ] {
        assert!(up.args.iter().any(|a| a == arg), "{arg} missing: {up}");
    }
}

#[test]
fn an_oauth_secret_reaches_tailscale_up_through_its_file_with_its_parameters() {
    let mut sb = Sandbox::new(node("mesh.yaml", "mesh-cp"));
    let key = fs::read_to_string(sb.host(plan::AUTH_KEY_PATH)).expect("key");
    assert!(
        key.ends_with("?ephemeral=false&preauthorized=true\n"),
        "{key}"
    );
    let run = sb.run();
    assert_bootstrapped(&sb, &run, &Expect::of("mesh.yaml", "mesh-cp"));
}

/// The table covers every node of every fixture, and every node boots as its row says.
#[test]
fn every_node_of_every_fixture_bootstraps() {
    let mut booted = 0;
    for path in good_fixtures() {
        let fixture = path.file_name().expect("file name");
        let rendered: Vec<String> = artifacts_of(fixture).into_iter().map(|a| a.node).collect();
        let rows: Vec<&str> = rows_of(fixture).iter().map(|r| r.node).collect();
        assert_eq!(
            rows, rendered,
            "{fixture}: the table's rows and the nodes it renders"
        );
        for row in rows_of(fixture) {
            let expect = Expect::of(fixture, row.node);
            let mut sb = Sandbox::new(node(fixture, row.node));
            if let Some((server, ip)) = &expect.join {
                sb.peer(server, ip);
            }
            let run = sb.run();
            assert_bootstrapped(&sb, &run, &expect);
            booted += 1;
        }
    }
    assert!(booted >= 25, "only {booted} nodes booted");
}

/// The IP families (false: IPv4, true: IPv6) of a comma-separated address or CIDR list.
fn ip_families(list: &str) -> BTreeSet<bool> {
    list.split(',').map(|a| a.contains(':')).collect()
}

#[test]
fn dual_stack_cluster_gets_a_dual_stack_node_ip() {
    let mut sb = Sandbox::new(node("dual-stack.yaml", "ds-server"));
    let run = sb.run();
    assert_converged(&sb, &run);
    // config.yaml's cluster-cidr, the drop-in's node-ip: as K3s merges them.
    let cfg = merged_k3s_config(&sb);
    let cluster_cidr = cfg["cluster-cidr"].as_str().expect("cluster-cidr");
    let node_ip = cfg["node-ip"].as_str().expect("node-ip");
    assert_eq!(
        ip_families(node_ip),
        ip_families(cluster_cidr),
        "node-ip {node_ip} for cluster-cidr {cluster_cidr}"
    );
    assert_eq!(node_ip, format!("{OWN_IP},{OWN_IP6}"));
}

// ---------------------------------------------------------------------------------------
// Pools: one file, any number of servers, each named by the autoscaler

/// A pool node boots under its server's random `<pool>-<hex>` name: tailscale's
/// `--hostname` and K3s's `node-name` are that name, read from where its OS has it (the
/// hostname cloud-init set, or the metadata service), and the drop-in carries it.
#[test]
fn pool_nodes_take_their_servers_random_names() {
    for (fixture, pool) in [("pools.yaml", "burst"), ("pools-flatcar.yaml", "flock")] {
        let expect = Expect::of(fixture, pool);
        let mut sb = Sandbox::new(node(fixture, pool));
        let server = sb.server().to_string();
        assert!(
            server.starts_with(&format!("{pool}-")) && server != format!("{pool}-"),
            "{server}"
        );
        sb.peer(&expect.join.as_ref().expect("an agent").0, INIT_IP);
        let run = sb.run();
        assert_bootstrapped(&sb, &run, &expect);
        let calls = sb.calls();
        let up = calls
            .iter()
            .find(|c| c.is_tailscale_up())
            .expect("tailscale up");
        assert!(
            up.args.contains(&format!("--hostname={server}")),
            "{up}\n{}",
            sb.report()
        );
        assert_eq!(
            merged_k3s_config(&sb)["node-name"].as_str(),
            Some(server.as_str())
        );
        let asked_metadata = calls.iter().any(|c| {
            c.url() == Some(plan::HETZNER_HOSTNAME_URL)
                || c.args.iter().any(|a| a == plan::HETZNER_HOSTNAME_URL)
        });
        assert_eq!(
            asked_metadata,
            expect.row.pool == Some(NamedBy::Metadata),
            "{}",
            sb.report()
        );
        assert!(
            sb.log()
                .contains(&format!("is named {server}, after its server")),
            "{}",
            sb.report()
        );
        assert_rerun_is_a_noop(&mut sb);
    }
}

/// POSIX `cksum` (the CRC of the bytes and then of their length, complemented: POSIX.1
/// "cksum", whose algorithm coreutils implements), written out here so that the test does
/// not take the window from the tool the bootstrap uses.
fn posix_cksum(data: &[u8]) -> u32 {
    fn feed(crc: u32, byte: u8) -> u32 {
        let mut crc = crc ^ (u32::from(byte) << 24);
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
        crc
    }
    let mut crc = data.iter().fold(0, |crc, b| feed(crc, *b));
    let mut len = data.len();
    while len > 0 {
        crc = feed(crc, (len & 0xff) as u8);
        len >>= 8;
    }
    !crc
}

/// A Flatcar pool's servers share one file, so no window in it can be a server's own: each
/// writes the window its name picks (cksum of the name, modulo the pool's windows: one per
/// server it may have, here `max: 5`, the first of the agents' two-hour slots on Saturday:
/// README "Upgrades"), 0644 as the envelope delivers it, restarts locksmithd to read it,
/// and keeps it on a second run.
#[test]
fn a_pool_node_takes_the_reboot_window_its_name_picks() {
    // What coreutils' cksum answers (checked once against it by hand, and by the boots
    // below, which run the real one).
    assert_eq!(posix_cksum(b""), 4_294_967_295);
    assert_eq!(posix_cksum(b"123456789"), 930_766_865);
    let mut windows = BTreeSet::new();
    for server in ["flock-0", "flock-1a2b3c4d5e6f7a8b", "flock-5"] {
        let slot = posix_cksum(server.as_bytes()) % 5;
        let mut sb = Sandbox::new(node("pools-flatcar.yaml", "flock").on_server(server));
        sb.peer("core-1", INIT_IP);
        let run = sb.run();
        assert_bootstrapped(&sb, &run, &Expect::of("pools-flatcar.yaml", "flock"));
        let conf = fs::read_to_string(sb.host("/etc/flatcar/update.conf")).expect("update.conf");
        let get = |k: &str| {
            conf.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k}: {conf}"))
                .trim_matches('"')
                .to_string()
        };
        assert_eq!(get("REBOOT_STRATEGY"), "reboot");
        assert_eq!(get("LOCKSMITHD_REBOOT_WINDOW_LENGTH"), "60m");
        assert_eq!(
            get("LOCKSMITHD_REBOOT_WINDOW_START"),
            format!("Sat {:02}:00", 2 * slot),
            "{server}: slot {slot}\n{}",
            sb.report()
        );
        assert_eq!(sb.mode("/etc/flatcar/update.conf"), 0o644);
        assert!(!sb.exists("/etc/flatcar/update.conf.tmp"));
        let calls = sb.calls();
        assert!(
            calls
                .iter()
                .any(|c| c.is("systemctl", &["try-restart", "locksmithd.service"])),
            "{}",
            sb.report()
        );
        windows.insert(conf.clone());
        assert_rerun_is_a_noop(&mut sb);
        assert_eq!(
            fs::read_to_string(sb.host("/etc/flatcar/update.conf")).expect("update.conf"),
            conf
        );
    }
    assert_eq!(windows.len(), 3, "three names, three windows: {windows:#?}");
}

/// Two servers of one pool boot from the same file under their own names.
#[test]
fn one_pool_file_boots_two_differently_named_servers() {
    let mut names = Vec::new();
    for _ in 0..2 {
        let n = node("pools.yaml", "arm");
        let server = random_server_name("arm");
        let mut sb = Sandbox::new(n.on_server(&server));
        sb.peer("cp-1", INIT_IP);
        let run = sb.run();
        assert_bootstrapped(&sb, &run, &Expect::of("pools.yaml", "arm"));
        names.push(
            merged_k3s_config(&sb)["node-name"]
                .as_str()
                .map(String::from),
        );
    }
    assert_ne!(names[0], names[1]);
}

/// A server whose name is not `<pool>-...` as a DNS label stops at the node-name step,
/// right after the firewall, with nothing installed: no Tailscale, no K3s.
#[test]
fn a_bad_server_name_stops_the_pool_node_before_anything_is_installed() {
    for (fixture, pool, bad) in [
        ("pools.yaml", "burst", "other-1a2b"),
        ("pools.yaml", "burst", "burst-"),
        ("pools.yaml", "arm", "arm-Upper"),
        ("pools-flatcar.yaml", "flock", "flock-1;touch${IFS}x"),
        ("pools-flatcar.yaml", "flock", "flock"),
    ] {
        let mut sb = Sandbox::new(node(fixture, pool).on_server(bad));
        sb.peer("cp-1", INIT_IP);
        sb.peer("core-1", INIT_IP);
        let run = sb.run();
        assert_failed_at(&sb, &run, "node-name");
        let calls = sb.calls();
        assert_firewall_first(&sb, &calls, Row::of(fixture, pool).firewall);
        assert_nothing_installed(&sb, &calls, &format!("{bad}: a bad name"), |u| {
            u == plan::HETZNER_HOSTNAME_URL
        });
        assert!(
            sb.log().contains("is not ") && sb.log().contains(&format!("one of pool {pool}")),
            "{}",
            sb.report()
        );
    }
}

/// A pool node registers with the provider ID the cluster-autoscaler's Hetzner provider
/// finds its server by, `hcloud://<server id>` (hetzner_node_group.go `toProviderID`), the ID
/// read from the metadata service (`/hetzner/v1/metadata/instance-id`, a number as plain
/// text: docs.hetzner.cloud "Server Metadata"), as a kubelet arg appended in the drop-in
/// (K3s's own cloud controller keeps a provider ID the kubelet set: k3s-io/k3s
/// pkg/cloudprovider/instances.go `InstanceMetadata`). Fixed nodes ask for no ID. What this
/// does not prove: a real kubelet, K3s or autoscaler reading it (none runs here).
#[test]
fn pool_nodes_register_with_their_servers_hetzner_provider_id() {
    for (fixture, pool, id) in [
        ("pools.yaml", "burst", "12345678"),
        ("pools-flatcar.yaml", "flock", "9223372036854775807"),
    ] {
        let mut sb = Sandbox::new(node(fixture, pool).with_server_id(id));
        sb.peer("cp-1", INIT_IP);
        sb.peer("core-1", INIT_IP);
        sb.fault("metadata-id-fail", 2);
        let run = sb.run();
        assert_bootstrapped(&sb, &run, &Expect::of(fixture, pool));
        let want = format!("provider-id=hcloud://{id}");
        let merged = merged_k3s_config(&sb);
        assert_eq!(
            merged["kubelet-arg"],
            serde_yaml::Value::Sequence(vec![want.clone().into()]),
            "{}",
            sb.report()
        );
        // Asked before anything was installed, retried when the service did not answer.
        let calls = sb.calls();
        let asks: Vec<(usize, &str)> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| c.url() == Some(plan::HETZNER_INSTANCE_ID_URL))
            .map(|(i, c)| (i, c.rc.as_str()))
            .collect();
        assert_eq!(
            asks.iter().map(|(_, rc)| *rc).collect::<Vec<_>>(),
            ["28", "28", "0"],
            "{}",
            sb.report()
        );
        let installs = calls
            .iter()
            .position(|c| c.tool == "apt-get" || c.url().is_some_and(|u| u.ends_with(".tgz")))
            .expect("an install");
        assert!(asks.iter().all(|(i, _)| *i < installs), "{}", sb.report());
        assert!(
            sb.log().contains(&format!(
                "this server's ID is {id}: its node registers as hcloud://{id}"
            )),
            "{}",
            sb.report()
        );
    }
    // Fixed nodes never ask.
    let mut sb = Sandbox::new(node("pools.yaml", "steady"));
    sb.peer("cp-1", INIT_IP);
    let run = sb.run();
    assert_converged(&sb, &run);
    assert!(
        !sb.calls()
            .iter()
            .any(|c| c.url() == Some(plan::HETZNER_INSTANCE_ID_URL)),
        "{}",
        sb.report()
    );
    assert!(!merged_k3s_config(&sb).contains_key("kubelet-arg"));
}

/// A server ID that is not a number (empty, letters, shell syntax, a negative, longer than an
/// int64), or none at all, stops the pool node at the `server-id` step, right after its
/// name, with nothing installed.
#[test]
fn a_bad_server_id_stops_the_pool_node_before_anything_is_installed() {
    let too_long = "1".repeat(20);
    for (fixture, pool, bad) in [
        ("pools.yaml", "burst", ""),
        ("pools.yaml", "arm", "12a4"),
        ("pools-flatcar.yaml", "flock", "1;touch${IFS}x"),
        ("pools-flatcar.yaml", "flock", "-5"),
        ("pools.yaml", "burst", too_long.as_str()),
        ("pools.yaml", "burst", "unanswered"),
    ] {
        let mut sb = Sandbox::new(node(fixture, pool).with_server_id(bad));
        if bad == "unanswered" {
            sb.fault("metadata-id-fail", "always");
        }
        let run = sb.run();
        assert_failed_at(&sb, &run, "server-id");
        let calls = sb.calls();
        assert_firewall_first(&sb, &calls, Row::of(fixture, pool).firewall);
        assert_nothing_installed(&sb, &calls, &format!("{bad}: a bad server ID"), |u| {
            u.starts_with("http://169.254.169.254/")
        });
        let said = if bad == "unanswered" {
            "the metadata service did not say the server's ID".to_string()
        } else {
            "is not a number: is this a Hetzner Cloud server?".to_string()
        };
        assert!(sb.log().contains(&said), "{bad}\n{}", sb.report());
    }
}

/// A node built with `--compress` boots exactly like the same node built without: the same
/// calls with the same arguments and exit codes, the same log (without its time stamps),
/// the same K3s config, for one node of each envelope and role.
#[test]
fn a_compressed_node_boots_exactly_like_an_uncompressed_one() {
    for (fixture, name) in [
        ("cluster.yaml", "cp-1"),
        ("cluster.yaml", "worker-1"),
        ("pools.yaml", "burst"),
        ("pools-flatcar.yaml", "flock"),
    ] {
        let plain = node(fixture, name);
        let server = plain.server.clone();
        let packed = compressed_node(fixture, name).on_server(&server);
        assert_ne!(plain.artifact.contents, packed.artifact.contents);
        assert!(packed.artifact.contents.len() < plain.artifact.contents.len());
        let boot = |n| {
            let mut sb = Sandbox::new(n);
            sb.peer("cp-1", INIT_IP);
            sb.peer("core-1", INIT_IP);
            let run = sb.run();
            assert_bootstrapped(&sb, &run, &Expect::of(fixture, name));
            let log: Vec<String> = sb
                .log()
                .lines()
                .map(|l| {
                    l.split_once(' ')
                        .map(|(_, rest)| rest.to_string())
                        .unwrap_or_default()
                })
                .collect();
            // mktemp's directory is random in each run: /tmp/tmp.XXXXXXXXXX/...
            let calls: Vec<Call> = sb
                .calls()
                .into_iter()
                .map(|mut c| {
                    for a in &mut c.args {
                        if let Some(rest) = a.strip_prefix("/tmp/tmp.") {
                            let tail = rest.split_once('/').map(|(_, t)| t).unwrap_or("");
                            *a = format!("/tmp/<mktemp>/{tail}");
                        }
                    }
                    c
                })
                .collect();
            (calls, log, merged_k3s_config(&sb))
        };
        let (a, b) = (boot(plain), boot(packed));
        assert_eq!(a.0, b.0, "{fixture} {name}: the calls differ");
        assert_eq!(a.1, b.1, "{fixture} {name}: the logs differ");
        assert_eq!(a.2, b.2, "{fixture} {name}: the K3s configs differ");
    }
}

/// After a pool node's identity check failed (`what`), the run made only the package
/// step's status queries (dpkg-query), the firewall's calls and the metadata reads
/// `metadata_url` allows; it touched no other URL and no tailscaled, and installed neither
/// Tailscale nor K3s's boot config.
fn assert_nothing_installed(
    sb: &Sandbox,
    calls: &[Call],
    what: &str,
    metadata_url: impl Fn(&str) -> bool,
) {
    for c in calls {
        assert!(
            matches!(
                c.tool.as_str(),
                "dpkg-query" | "python3" | "ufw" | "nft" | "systemctl" | "curl" | "sleep"
            ) && c.url().is_none_or(&metadata_url)
                && !c.args.iter().any(|a| a == "tailscaled"),
            "{c} ran after {what}\n{}",
            sb.report()
        );
    }
    for path in [
        "/opt/tailscale",
        "/opt/bin/tailscale",
        plan::K3S_BOOT_CONFIG_PATH,
    ] {
        assert!(!sb.exists(path), "{what}: {path}\n{}", sb.report());
    }
}
