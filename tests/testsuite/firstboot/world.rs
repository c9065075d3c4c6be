//! The stand-ins' world: the addresses and versions it hands out, and the stand-in scripts
//! themselves (`bin/` what the image provides, `pool/` what the outside world serves).

/// The stand-ins' world inside the sandbox: calls log, control files, state, served files.
pub const WORLD: &str = "/run/meshboot-fake";
/// Where the tool stand-ins are mounted: on the bootstrap's PATH right after /opt/bin.
pub const STUB_DIR: &str = "/usr/local/sbin";

/// The node's own Tailscale addresses, and the servers' in the netmap.
pub const OWN_IP: &str = "100.64.0.50";
pub const OWN_IP6: &str = "fd7a:115c:a1e0::50";
pub const INIT_IP: &str = "100.64.0.1";
pub const SECOND_SERVER_IP: &str = "100.64.0.2";
/// The server's ID the metadata stand-in hands out (`/hetzner/v1/metadata/instance-id`),
/// unless a test gives the node another.
pub const SERVER_ID: &str = "58238301";
/// The version the curl stand-in's pkgs.tailscale.com index calls the latest.
pub const LATEST_TAILSCALE: &str = "1.90.8";

pub const LIB_SH: &str = include_str!("lib.sh");
pub const TOOL_STAND_INS: &[(&str, &str)] = &[
    ("apt-get", include_str!("bin/apt-get")),
    ("chmod", include_str!("bin/chmod")),
    ("curl", include_str!("bin/curl")),
    ("journalctl", include_str!("bin/journalctl")),
    ("nft", include_str!("bin/nft")),
    ("sleep", include_str!("bin/sleep")),
    ("systemctl", include_str!("bin/systemctl")),
    ("ufw", include_str!("bin/ufw")),
];
pub const POOL: &[(&str, &str)] = &[
    ("tailscale", include_str!("pool/tailscale")),
    ("tailscaled", include_str!("pool/tailscaled")),
    ("k3s-install.sh", K3S_INSTALLER),
];
pub const K3S_INSTALLER: &str = include_str!("pool/k3s-install.sh");
