//! The plan's OS-update part: when Flatcar and Fedora CoreOS may reboot for an update.
//!
//! Both reboot on their own once an update is staged, uncoordinated by default
//! (locksmithd's `reboot` strategy when no etcd of its own runs, Zincati's `immediate`),
//! so three servers could reboot at once and embedded etcd would lose quorum. meshboot
//! gives every node a weekly reboot window of its own instead, the servers' one apart
//! from each other on Sunday (UTC), so that at most one server reboots at a time:
//! - Flatcar (locksmithd): `/etc/flatcar/update.conf` with `REBOOT_STRATEGY=reboot` and
//!   `LOCKSMITHD_REBOOT_WINDOW_START`/`_LENGTH` (flatcar.org/docs "Update and reboot
//!   strategies"; flatcar/locksmith README: the strategy runs "during the next available
//!   reboot window if one has been configured").
//! - Fedora CoreOS (Zincati): a `config.d` TOML with `strategy = "periodic"` and one
//!   `[[updates.periodic.window]]` of `days`, `start_time`, `length_minutes`, and
//!   `[updates.periodic] time_zone` (coreos/zincati `docs/usage/updates-strategy.md`).
//!
//! Agents get windows on Saturday, two hours apart, twelve slots round-robin. Ubuntu and
//! Debian do not reboot by themselves (unattended-upgrades' Automatic-Reboot is off).

use super::NodeRole;
use crate::spec::Os;
use serde::Serialize;

pub const FLATCAR_UPDATE_CONF: &str = "/etc/flatcar/update.conf";
pub const ZINCATI_CONFIG: &str = "/etc/zincati/config.d/55-meshboot-updates-strategy.toml";

/// Length of every reboot window, and the gap between one server's and the next's.
pub const WINDOW_MINUTES: u32 = 60;
const SLOT_HOURS: u32 = 2;
/// Agents share twelve two-hour slots on Saturday.
const AGENT_SLOTS: u32 = 12;

/// A node's weekly reboot window (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebootWindow {
    /// Which file holds it: Flatcar's or Zincati's.
    pub path: &'static str,
    /// Three-letter English day, as both locksmith and Zincati take it.
    pub day: &'static str,
    /// `HH:MM`, UTC.
    pub start: String,
    pub length_minutes: u32,
}

/// The window of the `index`th server or agent (in spec order), on an OS that reboots
/// for updates by itself; `None` on the others.
pub fn reboot_window(os: Os, role: NodeRole, index: usize) -> Option<RebootWindow> {
    let path = match os {
        Os::Flatcar => FLATCAR_UPDATE_CONF,
        Os::FedoraCoreos => ZINCATI_CONFIG,
        _ => return None,
    };
    let index = u32::try_from(index).unwrap_or(0);
    let (day, hour) = if role.is_server() {
        // At most 7 servers (validate::MAX_SERVERS): 01:00 .. 13:00.
        ("Sun", 1 + SLOT_HOURS * index)
    } else {
        ("Sat", SLOT_HOURS * (index % AGENT_SLOTS))
    };
    Some(RebootWindow {
        path,
        day,
        start: format!("{hour:02}:00"),
        length_minutes: WINDOW_MINUTES,
    })
}

const HEADER: &str = "Written by meshboot: this node reboots for OS updates only in its own weekly window (UTC),\n# so that no two servers reboot at once and etcd keeps its quorum. See the README, \"Upgrades\".";

/// Flatcar's `update.conf` (an environment file).
pub fn flatcar_update_conf(w: &RebootWindow) -> String {
    format!(
        "# {HEADER}\nREBOOT_STRATEGY=reboot\nLOCKSMITHD_REBOOT_WINDOW_START=\"{} {}\"\nLOCKSMITHD_REBOOT_WINDOW_LENGTH={}m\n",
        w.day, w.start, w.length_minutes
    )
}

#[derive(Serialize)]
struct Zincati {
    updates: Updates,
}

#[derive(Serialize)]
struct Updates {
    strategy: &'static str,
    periodic: Periodic,
}

#[derive(Serialize)]
struct Periodic {
    time_zone: &'static str,
    window: Vec<Window>,
}

#[derive(Serialize)]
struct Window {
    days: Vec<&'static str>,
    start_time: String,
    length_minutes: u32,
}

/// Zincati's `config.d` snippet, serialized as TOML.
pub fn zincati_config(w: &RebootWindow) -> Result<String, String> {
    let doc = Zincati {
        updates: Updates {
            strategy: "periodic",
            periodic: Periodic {
                time_zone: "UTC",
                window: vec![Window {
                    days: vec![w.day],
                    start_time: w.start.clone(),
                    length_minutes: w.length_minutes,
                }],
            },
        },
    };
    let body = toml::to_string(&doc).map_err(|e| e.to_string())?;
    Ok(format!("# {HEADER}\n{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_never_share_a_window() {
        let starts: Vec<String> = (0..7)
            .map(|i| {
                reboot_window(Os::Flatcar, NodeRole::JoinServer, i)
                    .expect("flatcar")
                    .start
            })
            .collect();
        let mut unique = starts.clone();
        unique.dedup();
        assert_eq!(unique.len(), 7, "{starts:?}");
        assert_eq!(starts[6], "13:00");
        assert!(reboot_window(Os::Ubuntu2404, NodeRole::Agent, 0).is_none());
        let a = reboot_window(Os::FedoraCoreos, NodeRole::Agent, 13).expect("fcos");
        assert_eq!(
            (a.day, a.start.as_str(), a.path),
            ("Sat", "02:00", ZINCATI_CONFIG)
        );
    }
}
