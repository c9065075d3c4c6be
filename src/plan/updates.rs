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
//! Agents get windows on Saturday, two hours apart, twelve slots round-robin. A pool is
//! one file for all its servers, so a window written into it would reboot the whole pool
//! at once: a pool node gets agent windows instead, one per server the pool may have, at
//! most the twelve ([`WindowChoice`]), and its bootstrap writes the one the checksum of
//! the server's name picks (POSIX `cksum`), then restarts the service that reads it
//! (locksmithd and Zincati read their configuration when they start). The pool's servers
//! spread over the windows; two of them may still draw the same one. Ubuntu and Debian do
//! not reboot by themselves (unattended-upgrades' Automatic-Reboot is off).

use super::{NodeRole, PoolPlan};
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
    /// A pool's window (the file says so instead of claiming the window is the node's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub of_pool: Option<PoolWindow>,
}

/// Which of a pool's windows a window is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolWindow {
    pub pool: String,
    /// From 1.
    pub number: usize,
    pub of: usize,
}

/// The windows a pool node picks its own from at boot, by its server's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowChoice {
    /// The file the bootstrap writes (the envelope delivers the first window there).
    pub path: &'static str,
    /// The service that reads it when it starts: the bootstrap restarts it after writing
    /// (`systemctl try-restart`: only if it runs). Flatcar's reboot manager is
    /// `locksmithd.service` (flatcar.org "Update and reboot strategies"), Fedora CoreOS's
    /// `zincati.service` (coreos/zincati docs "Updates strategy").
    pub unit: &'static str,
    pub windows: Vec<RebootWindow>,
}

/// The windows of a pool of at most `max` servers on an OS that reboots for updates by
/// itself: the first of the agents' twelve, one per server the pool may have (more would
/// only lengthen the file every server boots, which counts against Hetzner's 32 KiB);
/// `None` on the others.
pub fn pool_windows(os: Os, pool: &PoolPlan) -> Option<WindowChoice> {
    let unit = match os {
        Os::Flatcar => "locksmithd.service",
        Os::FedoraCoreos => "zincati.service",
        _ => return None,
    };
    let slots = pool.max.clamp(1, AGENT_SLOTS) as usize;
    let pool = pool.name.as_str();
    let windows: Vec<RebootWindow> = (0..slots)
        .filter_map(|i| {
            let mut w = reboot_window(os, NodeRole::Agent, i)?;
            w.of_pool = Some(PoolWindow {
                pool: pool.to_string(),
                number: i + 1,
                of: slots,
            });
            Some(w)
        })
        .collect();
    Some(WindowChoice {
        path: windows.first()?.path,
        unit,
        windows,
    })
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
        of_pool: None,
    })
}

const HEADER: &str = "Written by meshboot: this node reboots for OS updates only in its own weekly window (UTC),\n# so that no two servers reboot at once and etcd keeps its quorum. See the README, \"Upgrades\".";

/// The comment at the top of a window's file.
fn header(w: &RebootWindow) -> String {
    match &w.of_pool {
        None => HEADER.to_string(),
        Some(p) => format!(
            "Written by meshboot: pool {}, window {} of {}.",
            p.pool, p.number, p.of
        ),
    }
}

/// Flatcar's `update.conf` (an environment file).
pub fn flatcar_update_conf(w: &RebootWindow) -> String {
    format!(
        "# {}\nREBOOT_STRATEGY=reboot\nLOCKSMITHD_REBOOT_WINDOW_START=\"{} {}\"\nLOCKSMITHD_REBOOT_WINDOW_LENGTH={}m\n",
        header(w),
        w.day,
        w.start,
        w.length_minutes
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
    Ok(format!("# {}\n{body}", header(w)))
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

    #[test]
    fn a_pool_chooses_among_the_agents_windows() {
        let pool = |max| PoolPlan {
            name: "flock".into(),
            min: 0,
            max,
            name_source: super::super::NameSource::Hostname,
        };
        let choice = pool_windows(Os::Flatcar, &pool(30)).expect("flatcar");
        assert_eq!(choice.unit, "locksmithd.service");
        assert_eq!(choice.windows.len(), AGENT_SLOTS as usize);
        let starts: std::collections::BTreeSet<&str> =
            choice.windows.iter().map(|w| w.start.as_str()).collect();
        assert_eq!(starts.len(), choice.windows.len(), "{starts:?}");
        assert_eq!(
            flatcar_update_conf(&choice.windows[2]).lines().next(),
            Some("# Written by meshboot: pool flock, window 3 of 12.")
        );
        // One window per server the pool may have, at least one.
        let five = pool_windows(Os::Flatcar, &pool(5)).expect("flatcar");
        assert_eq!(five.windows.len(), 5);
        assert_eq!(five.windows[4].start, "08:00");
        assert_eq!(
            pool_windows(Os::Flatcar, &pool(0))
                .expect("flatcar")
                .windows
                .len(),
            1
        );
        assert!(pool_windows(Os::Debian12, &pool(5)).is_none());
        assert_eq!(
            pool_windows(Os::FedoraCoreos, &pool(5)).expect("fcos").unit,
            "zincati.service"
        );
    }
}
