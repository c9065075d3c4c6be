//! The plan's Tailscale part: how a node installs Tailscale and the `tailscale up` it runs.

use super::{AUTH_KEY_PATH, Retries};
use crate::spec::{Os, Role, Spec};
use serde::Serialize;

/// Where Flatcar gets the static build: /usr is read-only there, /opt is not.
pub const TAILSCALE_STATIC_DIR: &str = "/opt/tailscale";
/// Where Fedora CoreOS gets it: /usr/local/bin, as K3s installs there too. With SELinux
/// enforcing, systemd may not execute a program under /opt (/var/opt): files there are not
/// labelled as executables (k0sproject/k0sctl#440: "Failed at step EXEC spawning
/// /var/opt/bin/k0s: Permission denied" on FCOS; the fix discussed in #448 is /usr/local/bin,
/// "the most standard way in FCOS"); files created under /usr/local/bin get its bin_t label.
pub const TAILSCALE_FCOS_DIR: &str = "/usr/local/bin";
/// Tailscale's stable package server: apt repositories, static tarballs and their index.
pub const TAILSCALE_PKGS: &str = "https://pkgs.tailscale.com/stable/";
/// Where the apt repository's signing key goes: the `signed-by=` path that Tailscale's own
/// source list (`<codename>.tailscale-keyring.list`) names, as Tailscale's Linux install
/// docs show (`curl .../noble.noarmor.gpg | tee /usr/share/keyrings/tailscale-archive-keyring.gpg`).
pub const TAILSCALE_KEYRING: &str = "/usr/share/keyrings/tailscale-archive-keyring.gpg";
pub const TAILSCALE_APT_LIST: &str = "/etc/apt/sources.list.d/tailscale.list";

/// How a node gets Tailscale, with every URL and path resolved: the bootstrap holds only
/// its own method's code.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum TailscaleInstall {
    /// Tailscale's apt repository (Ubuntu, Debian).
    Apt {
        distro: &'static str,
        codename: &'static str,
        version: Option<String>,
        /// The repository's signing key, fetched to `keyring`.
        key_url: String,
        keyring: &'static str,
        /// The repository's source list, fetched to `list`.
        list_url: String,
        list: &'static str,
        /// What `apt-get install` gets: `tailscale`, or `tailscale=VERSION` when pinned.
        package: String,
        /// Pinned: `apt-get install --allow-downgrades`, since the installed package (a
        /// baked image's) may be newer than the pin, and apt-get -y refuses a downgrade
        /// without it.
        allow_downgrades: bool,
    },
    /// The static build's `tailscale` and `tailscaled` in `dir` (with `tailscale` linked into
    /// `link_dir` when `dir` is not on PATH), run by meshboot's own tailscaled unit (Flatcar,
    /// Fedora CoreOS). The bootstrap checks for these very files, not for any `tailscale` on
    /// PATH: the unit it delivers runs `dir/tailscaled`, so a Tailscale from elsewhere (a
    /// Flatcar sysext under /usr) would leave that unit without its program.
    Static {
        dir: &'static str,
        link_dir: Option<&'static str>,
        build: StaticBuild,
    },
}

/// Which static build a node fetches.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaticBuild {
    /// `tailscale.version` is set: that version's tarball, per CPU architecture.
    Pinned {
        version: String,
        tarballs: Vec<Tarball>,
    },
    /// No version: the newest stable one, read at boot from the package index
    /// (`TarballsVersion` of `?mode=json`); its tarball is `base_url` +
    /// `tailscale_<version>_<arch>.tgz`.
    Latest {
        index_url: String,
        base_url: &'static str,
        arches: Vec<Arch>,
    },
}

/// A CPU architecture Tailscale builds for, as `uname -m` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arch {
    /// `uname -m` values of this architecture.
    pub machines: Vec<&'static str>,
    /// Tailscale's name for it in tarball names.
    pub arch: &'static str,
}

/// A pinned tarball for one architecture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tarball {
    pub machines: Vec<&'static str>,
    pub url: String,
    /// The directory the tarball unpacks into.
    pub dir: String,
}

fn arches() -> Vec<Arch> {
    vec![
        Arch {
            machines: vec!["x86_64"],
            arch: "amd64",
        },
        Arch {
            machines: vec!["aarch64", "arm64"],
            arch: "arm64",
        },
    ]
}

fn static_build(version: Option<&String>) -> StaticBuild {
    match version {
        Some(version) => StaticBuild::Pinned {
            version: version.clone(),
            tarballs: arches()
                .into_iter()
                .map(|a| {
                    let dir = format!("tailscale_{version}_{}", a.arch);
                    Tarball {
                        machines: a.machines,
                        url: format!("{TAILSCALE_PKGS}{dir}.tgz"),
                        dir,
                    }
                })
                .collect(),
        },
        None => StaticBuild::Latest {
            index_url: format!("{TAILSCALE_PKGS}?mode=json"),
            base_url: TAILSCALE_PKGS,
            arches: arches(),
        },
    }
}

/// When the bootstrap takes an installed Tailscale (a baked image's, or one already there)
/// instead of installing it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Installed {
    /// No version pinned: any `tailscale` on the PATH.
    Any,
    /// `tailscale.version` is pinned: only that version, as `tailscale version` prints it
    /// on its first line (tailscale/tailscale version/print.go: `Short()` first). Any other
    /// version is replaced by the pinned one.
    Version { version: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TailscalePlan {
    pub install: TailscaleInstall,
    /// The tags this node advertises: `tailscale.tags`, then its role's tags. A key minted
    /// for the node (`--mint-auth-key`) carries exactly these.
    pub tags: Vec<String>,
    /// Which installed Tailscale is kept instead of installing it.
    pub installed: Installed,
    /// `tailscale up`'s key argument: the key is passed as `file:`, never by value.
    pub auth_key_arg: String,
    /// `tailscale up`'s arguments after the key and `--hostname=<the node's name>` (which
    /// the bootstrap passes from `NODE_NAME`: a pool node learns its name at boot).
    pub up_args: Vec<String>,
    /// Which of the spec's keys the node's key file holds: `tailscale.auth_key`, or for a
    /// pool node `tailscale.pool_auth_key` when the spec has one (a key minted with
    /// `--mint-auth-key` replaces `auth_key`).
    #[serde(skip_serializing_if = "KeySource::is_auth_key")]
    pub key: KeySource,
    /// Parameters appended to an OAuth client secret in the key file (`None` for a pre-auth
    /// key, whose properties are its own). Such secrets default to ephemeral nodes that need
    /// approval (Tailscale KB 1215, "Registering new nodes using OAuth credentials"): fixed
    /// nodes get `?ephemeral=false&preauthorized=true`, pool nodes `?ephemeral=true&...`, so
    /// that servers the autoscaler deletes leave the tailnet by themselves.
    pub key_params: Option<&'static str>,
    /// The node joins as an ephemeral node: meshboot enforces it for an OAuth secret (the
    /// key parameters); for a pre-auth key, the key itself must be ephemeral (README).
    pub ephemeral: bool,
    /// What reads `tailscale status --json` on this node's OS (see [`JsonTool`]).
    pub json: JsonTool,
}

/// The JSON reader a node's OS ships, for `tailscale status --json` (tailscale/tailscale
/// ipn/ipnstate `Status`: `Self` and `Peer`, a map of `PeerStatus` with `HostName`,
/// `DNSName`, `TailscaleIPs` and `Online`). Joiners pick the online peer whose `HostName` is
/// the server's name from it: `tailscale ip -4 NAME` matches the MagicDNS base name only,
/// online or not (cmd/tailscale/cli/ping.go, `tailscaleIPFromArg`), so a stale offline
/// machine still holding `cp-1` would win over the re-created server, which joined as
/// `cp-1-1`. Each node's script holds the program of its own tool only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonTool {
    /// Ubuntu and Debian cloud images have python3: cloud-init, which delivers the node's
    /// config there, is a Python program.
    Python3,
    /// Flatcar ships jq in its base image (flatcar/scripts coreos-base/coreos ebuild:
    /// `app-misc/jq`, carried over from Container Linux, coreos/coreos-overlay#1291) and so
    /// does Fedora CoreOS (coreos/fedora-coreos-tracker#254, coreos/fedora-coreos-config#145),
    /// which has no python. Flatcar's jq is built without the oniguruma regex library
    /// (dcos/dcos-ansible#116: "jq was compiled without ONIGURUMA regex libary"), so the
    /// program uses no `test`, `match` or `sub`.
    Jq,
}

/// One of the spec's Tailscale keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    AuthKey,
    PoolAuthKey,
}

impl KeySource {
    pub fn is_auth_key(&self) -> bool {
        *self == KeySource::AuthKey
    }
}

/// Which keys are OAuth client secrets that reach the nodes as they are (not exchanged for
/// minted keys): their key files then carry [`OAUTH_FIXED`] or [`OAUTH_POOL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShippedOauth {
    pub auth_key: bool,
    pub pool_auth_key: bool,
}

/// The tags a node in `role` advertises: the cluster's, then the role's, each once.
pub fn node_tags(ts: &crate::spec::Tailscale, role: Role) -> Vec<String> {
    let role_tags = match role {
        Role::Server => &ts.server_tags,
        Role::Agent => &ts.agent_tags,
    };
    let mut tags: Vec<String> = Vec::new();
    for t in ts.tags.iter().chain(role_tags) {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags
}

/// The key file's parameters for an OAuth client secret on a fixed node and on a pool node.
pub const OAUTH_FIXED: &str = "?ephemeral=false&preauthorized=true";
pub const OAUTH_POOL: &str = "?ephemeral=true&preauthorized=true";

pub(super) fn plan_tailscale(
    spec: &Spec,
    role: Role,
    os: Os,
    oauth: ShippedOauth,
    pool: bool,
) -> TailscalePlan {
    let ts = &spec.tailscale;
    let tags = node_tags(ts, role);
    let install = match os {
        Os::Ubuntu2204 => apt("ubuntu", "jammy", ts),
        Os::Ubuntu2404 => apt("ubuntu", "noble", ts),
        Os::Debian12 => apt("debian", "bookworm", ts),
        Os::Flatcar => TailscaleInstall::Static {
            dir: TAILSCALE_STATIC_DIR,
            link_dir: Some("/opt/bin"),
            build: static_build(ts.version.as_ref()),
        },
        Os::FedoraCoreos => TailscaleInstall::Static {
            dir: TAILSCALE_FCOS_DIR,
            link_dir: None,
            build: static_build(ts.version.as_ref()),
        },
    };
    let json = match os {
        Os::Ubuntu2204 | Os::Ubuntu2404 | Os::Debian12 => JsonTool::Python3,
        Os::Flatcar | Os::FedoraCoreos => JsonTool::Jq,
    };
    let mut up_args = Vec::new();
    if !tags.is_empty() {
        up_args.push(format!("--advertise-tags={}", tags.join(",")));
    }
    up_args.push(format!("--ssh={}", ts.ssh));
    up_args.push(format!("--accept-dns={}", ts.accept_dns));
    // Always said: `up` with flags is the complete set of settings, and the mode decides
    // whether the host firewall sees tailscale0 traffic (README, "The host firewall").
    up_args.push(format!("--netfilter-mode={}", ts.netfilter_mode.name()));
    if let Some(url) = &ts.login_server {
        up_args.push(format!("--login-server={url}"));
    }
    up_args.push(format!(
        "--timeout={}s",
        Retries::default().tailscale_up_timeout_s
    ));
    let installed = match &ts.version {
        Some(version) => Installed::Version {
            version: version.clone(),
        },
        None => Installed::Any,
    };
    let (key, shipped_oauth) = if pool && ts.pool_auth_key.is_some() {
        (KeySource::PoolAuthKey, oauth.pool_auth_key)
    } else {
        (KeySource::AuthKey, oauth.auth_key)
    };
    TailscalePlan {
        install,
        tags,
        installed,
        auth_key_arg: format!("--auth-key=file:{AUTH_KEY_PATH}"),
        up_args,
        key,
        key_params: shipped_oauth.then_some(if pool { OAUTH_POOL } else { OAUTH_FIXED }),
        ephemeral: pool,
        json,
    }
}

fn apt(
    distro: &'static str,
    codename: &'static str,
    ts: &crate::spec::Tailscale,
) -> TailscaleInstall {
    let repo = format!("{TAILSCALE_PKGS}{distro}/{codename}");
    TailscaleInstall::Apt {
        distro,
        codename,
        version: ts.version.clone(),
        key_url: format!("{repo}.noarmor.gpg"),
        keyring: TAILSCALE_KEYRING,
        list_url: format!("{repo}.tailscale-keyring.list"),
        list: TAILSCALE_APT_LIST,
        package: match &ts.version {
            Some(v) => format!("tailscale={v}"),
            None => "tailscale".into(),
        },
        allow_downgrades: ts.version.is_some(),
    }
}
