//! The plan's systemd part: how K3s, tailscaled and the host firewall are tied together at
//! every boot, not only the first. The envelopes deliver these files; systemd applies them.
//!
//! - **Boot order.** The K3s unit the install script writes waits only for
//!   network-online.target (k3s-io/k3s install.sh `create_systemd_service_file`), while K3s
//!   binds its node-ip to tailscale0 and flannel needs that interface
//!   (pkg/agent/config: "unable to find interface tailscale0"). tailscaled reports ready
//!   as soon as its local API runs (tailscale/tailscale ipn/ipnserver `Server.Run`), before
//!   the mesh address is on tailscale0. So a drop-in orders K3s after tailscaled and makes
//!   it wait, bounded, for that address.
//! - **tailscaled restarts.** Every start of tailscaled recreates tailscale0, and the kernel
//!   deletes flannel's VXLAN device, whose link it is; pod traffic across nodes stays dead
//!   until K3s restarts (k3s-io/k3s#12436, #14142; flannel-io/flannel#2247). tailscaled's
//!   drop-in restarts K3s after every start of tailscaled: `ExecStartPost=` runs after each
//!   successful start, however it came, an explicit restart, a package upgrade or
//!   `Restart=on-failure` after a crash (systemd.service(5)). Dependencies on the K3s unit
//!   would not do: `PartOf=` propagates only the stops and restarts systemd is asked for,
//!   not an automatic restart; `BindsTo=` stops K3s when tailscaled stops and never starts
//!   it again when tailscaled comes back; and whether an automatic restart passes through
//!   the inactive state at all changed between systemd releases (`RestartMode=`, v254)
//!   (systemd.unit(5)). So K3s only `Wants=` tailscaled: a stopped tailscaled leaves K3s
//!   running, and starting tailscaled again restarts it.
//! - **Fail closed.** tailscaled and K3s `Requires=` and are ordered `After=` the firewall
//!   unit: "If one of the other units fails to activate, and an ordering dependency After=
//!   on the failing unit is set, this unit will not be started" (systemd.unit(5)). With
//!   nftables that unit loads the table; with ufw it checks that ufw is active, since
//!   ufw.service succeeds even when ufw is disabled (`ufw-init start quiet` exits 0 with
//!   `ENABLED=no`).
//! - **Flushes by nftables.service.** The distribution's nftables.service flushes the whole
//!   ruleset when it starts, reloads or stops (Debian's runs /etc/nftables.conf, which begins
//!   with `flush ruleset`, and `ExecStop=nft flush ruleset`), taking meshboot's table and on
//!   ufw nodes ufw's chains with it. A drop-in for it reloads the firewall unit after each
//!   (`ExecStartPost=`, `ExecReload=`, `ExecStopPost=`: `systemctl
//!   --job-mode=ignore-dependencies try-reload-or-restart`, which reloads it at once and
//!   waits for it, inside nftables.service's own job). Dependencies would not do: `PartOf=` follows only stops and
//!   restarts, not a start (an admin's first `systemctl start nftables`), and restarting the
//!   firewall unit would restart tailscaled and K3s, etcd included, at every nftables
//!   upgrade; its reload re-applies the rules and leaves them running.

use super::{FIREWALL_UNIT, TAILSCALED_UNIT};
use crate::firewall::MESH_INTERFACE;
use crate::spec::{FirewallBackend, FlannelBackend};
use serde::Serialize;

/// The name of meshboot's drop-ins in `<unit>.d/`.
pub const DROP_IN: &str = "50-meshboot.conf";
/// The K3s unit's `ExecStartPre=`: waits for tailscale0's address.
pub const MESH_WAIT_PATH: &str = "/opt/meshboot/wait-for-mesh.sh";
/// How long the K3s unit waits for the mesh address before its start fails (and systemd's
/// `Restart=always` of the K3s unit tries again).
pub const MESH_WAIT_S: u32 = 120;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Services {
    /// The unit the K3s install script writes, which meshboot's drop-in extends.
    pub k3s_unit: String,
    pub tailscaled_unit: &'static str,
    /// The unit tailscaled and K3s require: it loads the nftables table or checks that ufw
    /// is active. None without a host firewall.
    pub firewall_unit: Option<&'static str>,
    /// Restart K3s whenever tailscaled starts: flannel runs over tailscale0.
    pub restart_k3s_with_tailscaled: bool,
    /// The K3s unit starts only once this interface has an IPv4 address...
    pub mesh_interface: &'static str,
    /// ...waiting at most this many seconds, with this script.
    pub mesh_wait_s: u32,
    pub mesh_wait: &'static str,
}

impl Services {
    /// tailscaled needs a drop-in of meshboot's: it requires the firewall or restarts K3s.
    pub fn tailscaled_drop_in(&self) -> bool {
        self.firewall_unit.is_some() || self.restart_k3s_with_tailscaled
    }
}

pub(super) fn plan_services(
    k3s_unit: &str,
    backend: FirewallBackend,
    flannel: FlannelBackend,
) -> Services {
    Services {
        k3s_unit: format!("{k3s_unit}.service"),
        tailscaled_unit: TAILSCALED_UNIT,
        firewall_unit: (backend != FirewallBackend::None).then_some(FIREWALL_UNIT),
        restart_k3s_with_tailscaled: flannel != FlannelBackend::None,
        mesh_interface: MESH_INTERFACE,
        mesh_wait_s: MESH_WAIT_S,
        mesh_wait: MESH_WAIT_PATH,
    }
}
