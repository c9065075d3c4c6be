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
/// The stand-in for ufw's Python package, which the bootstrap's firewall step imports (see
/// its `__init__.py`), mounted at [`python_ufw_dir`].
pub const PYTHON_UFW_STAND_IN: &[(&str, &str)] = &[
    ("__init__.py", include_str!("py/ufw/__init__.py")),
    ("common.py", include_str!("py/ufw/common.py")),
    ("frontend.py", include_str!("py/ufw/frontend.py")),
    ("util.py", include_str!("py/ufw/util.py")),
];

/// Where the stand-in ufw package is mounted: `ufw` in the first directory of Debian's
/// /usr/bin/python3 search path (with `-I`, as the bootstrap runs it) under
/// /usr/local/lib/python3.X/, which comes before /usr/lib/python3/dist-packages, the real
/// ufw's: so the bootstrap imports the stand-in.
pub fn python_ufw_dir() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let python = crate::support::require("/usr/bin/python3", "python3");
        let o = std::process::Command::new(python)
            .args(["-I", "-c", "import sys; print([p for p in sys.path if p.startswith('/usr/local/lib/python3')][0])"])
            .output()
            .expect("running /usr/bin/python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        format!("{}/ufw", String::from_utf8_lossy(&o.stdout).trim())
    })
}

pub const POOL: &[(&str, &str)] = &[
    ("tailscale", include_str!("pool/tailscale")),
    ("tailscaled", include_str!("pool/tailscaled")),
    ("k3s-install.sh", K3S_INSTALLER),
];
pub const K3S_INSTALLER: &str = include_str!("pool/k3s-install.sh");
