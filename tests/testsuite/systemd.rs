//! A node's later boots under the real systemd (252, Debian's): the unit files and drop-ins
//! meshboot delivers, read by the real dependency engine, with stand-ins for tailscaled and
//! K3s that record their starts.
//!
//! How: [`machine`] boots `/lib/systemd/systemd` as PID 1 of a new PID, mount and network
//! namespace over a unit directory holding the node's delivered units and drop-ins (taken
//! from its real artifact) and what the node's installers would have written: the K3s
//! unit as k3s-io/k3s install.sh `create_systemd_service_file` writes it (Type=notify,
//! Restart=always, After=network-online.target only), and on Ubuntu/Debian the tailscaled
//! unit Tailscale's package ships (tailscale/tailscale cmd/tailscaled/tailscaled.service,
//! with its /etc/default/tailscaled), or meshboot's own unit for the static build. The
//! host firewall is real: the real `nft` loads the node's ruleset in the namespace, and on
//! ufw nodes the real ufw applies the node's commands and Debian's own ufw.service (the
//! host's, which the ufw package installs) loads them at boot, with iptables in the
//! namespace, next to meshboot's forward table, which meshboot's unit loads. The stand-ins (`systemd/*.py`): tailscaled makes tailscale0 a real tun device,
//! which the kernel removes when the process ends, reports ready at once and gets its
//! address a moment later, as the real one does; K3s records whether tailscale0 had its
//! address when it started and creates a real VXLAN device flannel.1 on tailscale0, which
//! the kernel deletes with tailscale0 (k3s-io/k3s#12436).
//!
//! What this proves: at boot K3s starts after tailscaled and only once the mesh address is
//! there; a restart of tailscaled, and a crash that `Restart=on-failure` recovers, restart
//! K3s, which makes flannel.1 again; a firewall that fails to load (a broken nft table,
//! broken ufw rules, ufw disabled, a ufw node's broken forward table) keeps both tailscaled
//! and K3s from starting; a start, restart, reload or stop of nftables.service (each
//! flushes the whole ruleset) leaves the node's rules loaded again, with tailscaled and K3s
//! running on. Each check
//! is run without meshboot's drop-ins too, and fails there, so it can fail. What it does not
//! prove: the real tailscaled or K3s (a real K3s release with the flannel fix may recover
//! flannel.1 by itself), other systemd releases than this host's, or a real machine's boot
//! (targets are empty stand-ins; the first boot is the `firstboot` tests' part).
//!
//! Needs root (as CI is), util-linux (unshare, nsenter), systemd, iproute2, nftables, ufw,
//! iptables and python3. Each boot takes a few seconds; `cargo test --test testsuite
//! systemd::` runs them.

mod machine;

use crate::firstboot::expect::{Firewall, Row, TailscaleFrom};
use crate::support::{compile, delivered_files, fixtures_dir};
use machine::{K3S_STAND_IN, Layout, Machine, TAILSCALED_STAND_IN};
use meshboot::Options;
use meshboot::plan::{FIREWALL_UNIT, NFTABLES_PATH};

/// The Flatcar agent behind nftables, with meshboot's own tailscaled unit.
const NFT_NODE: (&str, &str) = ("cluster.yaml", "worker-1");
/// The Ubuntu server behind ufw, with the tailscaled unit of Tailscale's package.
const UFW_NODE: (&str, &str) = ("cluster.yaml", "cp-2");

/// Seconds between tailscaled reporting ready and its address: long enough that K3s,
/// started at once, would see no address.
const ADDRESS_DELAY: f64 = 2.0;

/// Which of the node's files to lay down.
#[derive(Clone, Copy, PartialEq)]
enum Units {
    /// Everything the artifact delivers.
    Meshboot,
    /// Without meshboot's drop-ins for K3s and tailscaled and the ufw guard: what the units
    /// do on their own (the control that shows a check can fail).
    Without,
    /// Everything but meshboot's drop-in for nftables.service (the control for following
    /// its flushes).
    Unpropagated,
}

/// The state the host firewall is in at this boot.
#[derive(Clone, Copy, PartialEq)]
enum Wall {
    Intact,
    /// nftables: a line nft cannot parse appended to the ruleset; ufw: to its user rules.
    Broken,
    /// ufw only: `ENABLED=no` in /etc/ufw/ufw.conf (what `ufw disable` leaves).
    Disabled,
    /// ufw only: a line nft cannot parse appended to the forward table the unit loads.
    BrokenTable,
}

/// The unit k3s-io/k3s install.sh writes for `exec` (`server` or `agent`), with the binary
/// in `bin_dir` (install.sh `create_systemd_service_file`, SYSTEMD_TYPE=notify; the
/// K3S_* environment file it names is absent here, as meshboot passes no K3S_* variable).
fn installed_k3s_unit(name: &str, bin_dir: &str, exec: &str) -> String {
    format!(
        "[Unit]\nDescription=Lightweight Kubernetes\nDocumentation=https://k3s.io\nWants=network-online.target\nAfter=network-online.target\n\n[Install]\nWantedBy=multi-user.target\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/%N\nEnvironmentFile=-/etc/sysconfig/%N\nEnvironmentFile=-/etc/systemd/system/{name}.env\nKillMode=process\nDelegate=yes\nUser=root\n# Having non-zero Limit*s causes performance problems due to accounting overhead\n# in the kernel. We recommend using cgroups to do container-local accounting.\nLimitNOFILE=1048576\nLimitNPROC=infinity\nLimitCORE=infinity\nTasksMax=infinity\nTimeoutStartSec=0\nRestart=always\nRestartSec=5s\nExecStartPre=-/sbin/modprobe br_netfilter\nExecStartPre=-/sbin/modprobe overlay\nExecStart={bin_dir}/k3s \\\n    {exec} \\\n\n"
    )
}

/// tailscale/tailscale cmd/tailscaled/tailscaled.service, as the apt package installs it.
const TAILSCALED_PACKAGE_UNIT: &str = "[Unit]\nDescription=Tailscale node agent\nDocumentation=https://tailscale.com/docs/\nWants=network-pre.target\nAfter=network-pre.target NetworkManager.service systemd-resolved.service\n\n[Service]\nEnvironmentFile=/etc/default/tailscaled\nExecStart=/usr/sbin/tailscaled --state=/var/lib/tailscale/tailscaled.state --socket=/run/tailscale/tailscaled.sock --port=${PORT} $FLAGS\nExecStopPost=/usr/sbin/tailscaled --cleanup\n\nRestart=on-failure\n\nRuntimeDirectory=tailscale\nRuntimeDirectoryMode=0755\nStateDirectory=tailscale\nStateDirectoryMode=0700\nCacheDirectory=tailscale\nCacheDirectoryMode=0750\nType=notify\n\n[Install]\nWantedBy=multi-user.target\n";

/// tailscale/tailscale cmd/tailscaled/tailscaled.defaults, installed as
/// /etc/default/tailscaled.
const TAILSCALED_DEFAULTS: &str = "# Set the port to listen on for incoming VPN packets.\n# Remote nodes will automatically be informed about the new port number,\n# but you might want to configure this in order to set external firewall\n# settings.\nPORT=\"41641\"\n\n# Extra flags you might want to pass to tailscaled.\nFLAGS=\"\"\n";

/// A node of a fixture, laid out for a later boot.
struct Node {
    k3s_unit: String,
    layout: Layout,
    /// Shell run in the namespace before systemd (ufw's commands).
    prelude: String,
}

fn lay_out((fixture, name): (&str, &str), units: Units, wall: Wall) -> Node {
    let row = Row::of(fixture, name);
    let (_, artifacts) = compile(&fixtures_dir().join(fixture), &Options::default());
    let artifact = artifacts
        .into_iter()
        .find(|a| a.node == name)
        .unwrap_or_else(|| panic!("{fixture} renders no {name}"));
    let files = delivered_files(&artifact);
    let layout = Layout::new();
    layout.address_delay(ADDRESS_DELAY);

    // What the K3s installer writes, from the row's installer environment.
    let env = |var: &str| {
        row.install_env
            .iter()
            .find(|(k, _)| *k == var)
            .map(|(_, v)| *v)
    };
    let exec = env("INSTALL_K3S_EXEC").expect("INSTALL_K3S_EXEC");
    let bin_dir = env("INSTALL_K3S_BIN_DIR").unwrap_or("/usr/local/bin");
    let k3s_unit = if exec == "server" {
        "k3s.service".to_string()
    } else {
        format!("k3s-{exec}.service")
    };
    layout.unit(&k3s_unit, &installed_k3s_unit(&k3s_unit, bin_dir, exec));
    layout.enable(&k3s_unit);
    layout.file(&format!("{bin_dir}/k3s"), K3S_STAND_IN, 0o755);

    // tailscaled: the package's unit, or meshboot's (delivered) for the static build.
    match row.tailscale {
        TailscaleFrom::Apt(_) => {
            layout.unit("tailscaled.service", TAILSCALED_PACKAGE_UNIT);
            layout.file("/etc/default/tailscaled", TAILSCALED_DEFAULTS, 0o644);
            layout.file("/usr/sbin/tailscaled", TAILSCALED_STAND_IN, 0o755);
        }
        TailscaleFrom::Static { dir, .. } => {
            layout.file(&format!("{dir}/tailscaled"), TAILSCALED_STAND_IN, 0o755);
        }
    }
    layout.enable("tailscaled.service");

    // The node's own files: units and drop-ins, the ruleset, the K3s unit's wait.
    let meshboot_only = |path: &str| {
        path.ends_with(".d/50-meshboot.conf")
            || (path.ends_with(FIREWALL_UNIT) && matches!(row.firewall, Firewall::Ufw(_)))
    };
    for (path, mode, contents) in &files {
        let wanted = path.starts_with("/etc/systemd/system/")
            || path == NFTABLES_PATH
            || path.starts_with("/opt/meshboot/wait");
        if !wanted
            || path.ends_with("meshboot-bootstrap.service")
            || (units == Units::Without && meshboot_only(path))
        {
            continue;
        }
        if units == Units::Unpropagated && path.contains("/nftables.service.d/") {
            continue;
        }
        layout.file(path, contents, *mode);
    }
    // The nftables package's unit (meshboot's package step installs nftables on Debian and
    // Ubuntu; Fedora's is alike), not enabled, as Debian ships it, with the host's
    // /etc/nftables.conf (Debian's default, which starts with `flush ruleset`).
    let nftables = std::fs::read_to_string("/lib/systemd/system/nftables.service")
        .expect("nftables.service: install the Debian package `nftables`");
    layout.unit("nftables.service", &nftables);

    let mut prelude = String::new();
    match row.firewall {
        Firewall::Nftables(_) => {
            layout.enable(FIREWALL_UNIT);
            if wall == Wall::Broken {
                layout.append(NFTABLES_PATH, "chain input { this is not nft }\n");
            }
            assert!(
                wall == Wall::Intact || wall == Wall::Broken,
                "nftables has no off switch and one table to break"
            );
        }
        Firewall::Ufw(_) => {
            // Debian's own ufw.service (the ufw package's, as on Ubuntu), enabled.
            let unit = std::fs::read_to_string("/lib/systemd/system/ufw.service")
                .expect("ufw.service: install the Debian package `ufw`");
            layout.unit("ufw.service", &unit);
            layout.enable("ufw.service");
            // meshboot's unit (loads the forward table, checks ufw), enabled by the bootstrap.
            if units == Units::Meshboot {
                layout.enable(FIREWALL_UNIT);
            }
            // The first boot ran the node's firewall step (ufw's frontend over its commands,
            // the last `--force enable`); this boot loads what it saved.
            let script = files
                .iter()
                .find(|(p, _, _)| p == meshboot::plan::BOOTSTRAP_PATH)
                .map(|(_, _, c)| c.clone())
                .expect("bootstrap");
            prelude.push_str(&crate::support::ufw_batch(&script));
            // A reboot: the kernel's rules are gone, ufw's files stay.
            prelude.push_str("/lib/ufw/ufw-init stop >/dev/null\n");
            match wall {
                Wall::Intact => {}
                Wall::Broken => {
                    prelude.push_str("echo 'this is not a rule' >>/etc/ufw/user.rules\n")
                }
                Wall::Disabled => {
                    prelude.push_str("sed -i 's/^ENABLED=yes/ENABLED=no/' /etc/ufw/ufw.conf\n")
                }
                Wall::BrokenTable => {
                    layout.append(NFTABLES_PATH, "chain forward { this is not nft }\n")
                }
            }
        }
    }
    Node {
        k3s_unit,
        layout,
        prelude,
    }
}

fn boot(node: Node) -> (Machine, String) {
    let unit = node.k3s_unit;
    (node.layout.boot(&node.prelude), unit)
}

/// The stand-ins' events up to the first start of K3s: tailscaled started and had its
/// address before K3s started, and K3s saw the address.
fn assert_k3s_started_after_the_mesh_address(m: &Machine) {
    let events = m.events();
    let k3s = events
        .iter()
        .position(|e| e.starts_with("k3s start"))
        .unwrap_or_else(|| panic!("K3s never started\n{}", m.report()));
    let address = events
        .iter()
        .position(|e| e == "tailscaled address")
        .unwrap_or_else(|| panic!("tailscaled never had its address\n{}", m.report()));
    assert!(
        address < k3s,
        "K3s started before the mesh address\n{}",
        m.report()
    );
    assert!(
        events[k3s].ends_with(" mesh=yes"),
        "K3s started without the mesh address\n{}",
        m.report()
    );
}

/// After the `n`th start of tailscaled, K3s started again (its `n`th start), once the mesh
/// address was back, and made flannel.1 again.
fn assert_k3s_restarted_with_tailscaled(m: &Machine, n: usize) {
    m.wait_for(&format!("start {n} of K3s, with flannel.1"), |m| {
        m.count("k3s start") >= n && m.links().iter().any(|l| l == "flannel.1")
    });
    assert_eq!(m.count("tailscaled start"), n, "{}", m.report());
    assert_eq!(m.count("k3s start"), n, "{}", m.report());
    let events = m.events();
    let last_k3s = events
        .iter()
        .rposition(|e| e.starts_with("k3s start"))
        .expect("k3s");
    let last_address = events
        .iter()
        .rposition(|e| e == "tailscaled address")
        .expect("address");
    assert!(
        last_address < last_k3s && events[last_k3s].ends_with(" mesh=yes"),
        "K3s restarted before the mesh address was back\n{}",
        m.report()
    );
}

fn restart_and_crash_tailscaled(m: &Machine) {
    // An explicit restart (a package upgrade, `tailscale update`): tailscale0 goes, and
    // flannel.1 with it.
    systemctl_ok(m, &["restart", "tailscaled"]);
    assert_k3s_restarted_with_tailscaled(m, 2);
    // A crash: systemd's Restart=on-failure brings tailscaled back on its own.
    let pid = m.main_pid("tailscaled");
    let o = m.nsenter(&["kill", "-KILL", &pid]);
    assert!(o.status.success(), "kill {pid}\n{}", m.report());
    assert_k3s_restarted_with_tailscaled(m, 3);
}

fn systemctl_ok(m: &Machine, args: &[&str]) {
    let o = m.systemctl(args);
    if !o.status.success() {
        // What the unit said, which the machine's report does not hold (no journal here).
        let status = m.systemctl(&["status", "--no-pager", "-l", args.last().unwrap_or(&"")]);
        panic!(
            "systemctl {}: {}{}\n{}{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr),
            m.report()
        );
    }
}

#[test]
fn nftables_node_starts_k3s_after_the_mesh_and_restarts_it_with_tailscaled() {
    let (m, k3s) = boot(lay_out(NFT_NODE, Units::Meshboot, Wall::Intact));
    m.wait_for("K3s active", |m| m.state(&k3s) == "active/running");
    assert_eq!(m.state(FIREWALL_UNIT), "active/exited", "{}", m.report());
    let tables = m.nsenter(&["nft", "list", "tables"]);
    assert!(
        String::from_utf8_lossy(&tables.stdout).contains("table inet meshboot"),
        "{}",
        m.report()
    );
    assert_k3s_started_after_the_mesh_address(&m);
    assert!(m.links().iter().any(|l| l == "flannel.1"), "{}", m.report());
    restart_and_crash_tailscaled(&m);
}

#[test]
fn ufw_node_starts_k3s_after_the_firewall_guard_and_restarts_it_with_tailscaled() {
    let (m, k3s) = boot(lay_out(UFW_NODE, Units::Meshboot, Wall::Intact));
    m.wait_for("K3s active", |m| m.state(&k3s) == "active/running");
    for unit in ["ufw.service", FIREWALL_UNIT] {
        assert_eq!(m.state(unit), "active/exited", "{unit}\n{}", m.report());
    }
    let rules = m.nsenter(&["iptables", "-S", "ufw-user-input"]);
    assert!(
        String::from_utf8_lossy(&rules.stdout).contains("--dport 41641"),
        "ufw did not load the node's rules\n{}",
        m.report()
    );
    // The unit loaded meshboot's forward table next to ufw's rules.
    let table = m.nsenter(&["nft", "list", "table", "inet", "meshboot"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("chain forward") && !table.contains("chain input"),
        "{table}\n{}",
        m.report()
    );
    assert_k3s_started_after_the_mesh_address(&m);
    restart_and_crash_tailscaled(&m);
}

/// The control: the same node without meshboot's drop-ins. K3s starts before the mesh
/// address, and a restart of tailscaled leaves flannel.1 deleted and K3s running on.
#[test]
fn without_meshboots_drop_ins_k3s_races_the_mesh_and_loses_flannel() {
    let (m, k3s) = boot(lay_out(NFT_NODE, Units::Without, Wall::Intact));
    m.wait_for("K3s active", |m| m.state(&k3s) == "active/running");
    m.wait_for("tailscaled's address", |m| {
        m.count("tailscaled address") == 1
    });
    let first = m
        .events()
        .into_iter()
        .find(|e| e.starts_with("k3s start"))
        .expect("k3s started");
    assert!(first.ends_with(" mesh=no"), "{}", m.report());
    systemctl_ok(&m, &["restart", "tailscaled"]);
    m.wait_for("tailscaled's second address", |m| {
        m.count("tailscaled address") == 2
    });
    assert_eq!(m.count("k3s start"), 1, "{}", m.report());
    assert!(
        !m.links().iter().any(|l| l == "flannel.1"),
        "flannel.1 survived tailscale0's removal: the stand-ins do not model the bug\n{}",
        m.report()
    );
}

/// At a later boot the host firewall fails to load: tailscaled and K3s stay down.
fn assert_fails_closed(m: &Machine, k3s: &str) {
    for unit in ["tailscaled.service", k3s] {
        assert_eq!(m.state(unit), "inactive/dead", "{unit}\n{}", m.report());
    }
    assert_eq!(m.count("tailscaled start"), 0, "{}", m.report());
    assert_eq!(m.count("k3s start"), 0, "{}", m.report());
    assert!(
        !m.links().iter().any(|l| l == "tailscale0"),
        "{}",
        m.report()
    );
}

#[test]
fn a_broken_nftables_table_keeps_tailscaled_and_k3s_down() {
    let (m, k3s) = boot(lay_out(NFT_NODE, Units::Meshboot, Wall::Broken));
    assert_eq!(m.state(FIREWALL_UNIT), "failed/failed", "{}", m.report());
    let tables = m.nsenter(&["nft", "list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains("meshboot"),
        "{}",
        m.report()
    );
    assert_fails_closed(&m, &k3s);
    // Without meshboot's drop-ins, both start anyway: that is what this guards against.
    let (m, k3s) = boot(lay_out(NFT_NODE, Units::Without, Wall::Broken));
    m.wait_for("K3s active anyway", |m| m.state(&k3s) == "active/running");
    assert_eq!(m.state(FIREWALL_UNIT), "failed/failed", "{}", m.report());
    assert_eq!(m.count("tailscaled start"), 1, "{}", m.report());
}

#[test]
fn broken_or_disabled_ufw_keeps_tailscaled_and_k3s_down() {
    // Rules ufw cannot load: ufw.service itself fails.
    let (m, k3s) = boot(lay_out(UFW_NODE, Units::Meshboot, Wall::Broken));
    assert_eq!(m.state("ufw.service"), "failed/failed", "{}", m.report());
    assert_fails_closed(&m, &k3s);
    drop(m);
    // ufw disabled: ufw.service succeeds without loading anything; the guard does not.
    let (m, k3s) = boot(lay_out(UFW_NODE, Units::Meshboot, Wall::Disabled));
    assert_eq!(m.state("ufw.service"), "active/exited", "{}", m.report());
    assert_eq!(m.state(FIREWALL_UNIT), "failed/failed", "{}", m.report());
    assert_fails_closed(&m, &k3s);
    drop(m);
    // ufw fine, but the forward table does not load: the unit fails, and so do both.
    let (m, k3s) = boot(lay_out(UFW_NODE, Units::Meshboot, Wall::BrokenTable));
    assert_eq!(m.state("ufw.service"), "active/exited", "{}", m.report());
    assert_eq!(m.state(FIREWALL_UNIT), "failed/failed", "{}", m.report());
    assert_fails_closed(&m, &k3s);
    drop(m);
    // Without meshboot's units, a disabled ufw lets both start.
    let (m, k3s) = boot(lay_out(UFW_NODE, Units::Without, Wall::Disabled));
    m.wait_for("K3s active anyway", |m| m.state(&k3s) == "active/running");
    assert_eq!(m.count("tailscaled start"), 1, "{}", m.report());
}

/// Whether the node's firewall is in the kernel: meshboot's table, and on ufw nodes ufw's
/// own chain (`ufw-user-input`, which /lib/ufw/ufw-init status checks).
fn firewall_loaded(m: &Machine, ufw: bool) -> bool {
    let tables = probe(m, &["nft", "list", "tables"]);
    let table = String::from_utf8_lossy(&tables.stdout).contains("table inet meshboot");
    table
        && (!ufw
            || probe(m, &["iptables", "-w", "-n", "-L", "ufw-user-input"])
                .status
                .success())
}

/// `args` run in the machine; a run that fails for want of the tool (nsenter's or the
/// kernel's error, exit 1 with nothing on stdout but a message on stderr other than a
/// missing chain) is tried again, a few times: a probe that did not run says nothing about
/// the firewall.
fn probe(m: &Machine, args: &[&str]) -> std::process::Output {
    let mut last = m.nsenter(args);
    for _ in 0..5 {
        let err = String::from_utf8_lossy(&last.stderr);
        let ran = last.status.success() || err.contains("No chain/target/match by that name");
        if ran {
            break;
        }
        eprintln!("probe {}: {:?} {err}", args.join(" "), last.status);
        std::thread::sleep(std::time::Duration::from_millis(200));
        last = m.nsenter(args);
    }
    last
}

/// Debian's nftables.service flushes the whole ruleset when it starts (/etc/nftables.conf
/// begins with `flush ruleset`), restarts, reloads (the same file) or stops (`ExecStop=nft
/// flush ruleset`): meshboot's table, and on ufw nodes ufw's iptables-nft chains, while
/// ufw.service stays active. meshboot's drop-in for it reloads the firewall unit after each
/// (systemd.service(5): `ExecStartPost=`, `ExecReload=` lines in order, `ExecStopPost=`;
/// systemctl(1) `--job-mode=ignore-dependencies`: the reload runs at once, and systemctl
/// waits for it): once `systemctl` returns for each of the four, the node's firewall is
/// loaded again (checked at once, not waited for), and tailscaled and K3s were neither
/// restarted nor stopped. Without the drop-in (the control) each leaves the node open. What this does
/// not prove: other distributions' nftables.service (Fedora's also flushes in each), the
/// rules of tailscaled, kube-proxy and flannel, which the flush takes too (their daemons
/// restore them in their own time; nothing public depends on them), or a flush by hand
/// (`nft flush ruleset`), which no unit sees.
#[test]
fn the_firewall_is_loaded_again_after_nftables_service_flushes_it() {
    for (node, ufw) in [(NFT_NODE, false), (UFW_NODE, true)] {
        let (m, k3s) = boot(lay_out(node, Units::Meshboot, Wall::Intact));
        m.wait_for("K3s active", |m| m.state(&k3s) == "active/running");
        assert!(firewall_loaded(&m, ufw), "{}", m.report());
        for how in ["start", "restart", "reload", "stop"] {
            systemctl_ok(&m, &[how, "nftables"]);
            if !firewall_loaded(&m, ufw) {
                let status =
                    m.systemctl(&["status", "--no-pager", "-l", "nftables", FIREWALL_UNIT]);
                let tables = m.nsenter(&["nft", "list", "tables"]);
                panic!(
                    "after {how}: the firewall is not loaded\n{}\nnft list tables: {:?}\n{}{}\n{}",
                    String::from_utf8_lossy(&status.stdout),
                    tables.status,
                    String::from_utf8_lossy(&tables.stdout),
                    String::from_utf8_lossy(&tables.stderr),
                    m.report()
                );
            }
            assert_eq!(
                m.state(FIREWALL_UNIT),
                "active/exited",
                "{how}\n{}",
                m.report()
            );
            assert_eq!(m.state(&k3s), "active/running", "{how}\n{}", m.report());
            assert_eq!(
                m.state("tailscaled.service"),
                "active/running",
                "{how}\n{}",
                m.report()
            );
        }
        assert_eq!(m.count("tailscaled start"), 1, "{}", m.report());
        assert_eq!(m.count("k3s start"), 1, "{}", m.report());
        drop(m);

        // The control: without the drop-in, each leaves the node open (a machine of its own
        // for each, a reload and a stop after the start that makes nftables.service active).
        for how in ["start", "restart", "reload", "stop"] {
            let (m, k3s) = boot(lay_out(node, Units::Unpropagated, Wall::Intact));
            m.wait_for("K3s active", |m| m.state(&k3s) == "active/running");
            assert!(firewall_loaded(&m, ufw), "{}", m.report());
            if how != "start" && how != "restart" {
                systemctl_ok(&m, &["start", "nftables"]);
                systemctl_ok(&m, &["restart", FIREWALL_UNIT]);
                m.wait_for("the firewall loaded again by hand", |m| {
                    firewall_loaded(m, ufw)
                });
            }
            systemctl_ok(&m, &[how, "nftables"]);
            std::thread::sleep(std::time::Duration::from_secs(2));
            assert!(!firewall_loaded(&m, ufw), "after {how}\n{}", m.report());
        }
    }
}
