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
/// The Debian packages a stock Ubuntu or Debian image holds of those the bootstrap checks
/// for (the dpkg-query stand-in's database): all of them, as on Ubuntu's cloud images. A test
/// takes one away to boot an image that lacks it (Debian's has no ufw).
pub const IMAGE_PACKAGES: &[&str] = &["ca-certificates", "curl", "nftables", "ufw"];

pub const LIB_SH: &str = include_str!("lib.sh");
pub const TOOL_STAND_INS: &[(&str, &str)] = &[
    ("apt-get", include_str!("bin/apt-get")),
    ("chmod", include_str!("bin/chmod")),
    ("curl", include_str!("bin/curl")),
    ("dpkg-query", include_str!("bin/dpkg-query")),
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
