//! The plan's Tailscale part: how a node installs Tailscale and the `tailscale up` it runs.

use super::{AUTH_KEY_PATH, Retries};
use crate::spec::{Os, Spec};
use serde::Serialize;

pub const TAILSCALE_STATIC_DIR: &str = "/opt/tailscale";

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum TailscaleInstall {
    /// Official apt repository.
    Apt {
        distro: &'static str,
        codename: &'static str,
        version: Option<String>,
    },
    /// Static build under /opt/tailscale with our own tailscaled unit.
    Static {
        version: Option<String>,
        dir: &'static str,
        link_dir: &'static str,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct TailscalePlan {
    pub install: TailscaleInstall,
    /// `tailscale up` arguments; the key is passed as `file:`, never by value.
    pub up_args: Vec<String>,
    /// True when the auth key is an OAuth client secret (the key file gets
    /// `?ephemeral=false&preauthorized=true`).
    pub oauth: bool,
}

pub(super) fn plan_tailscale(spec: &Spec, name: &str, os: Os, oauth: bool) -> TailscalePlan {
    let ts = &spec.tailscale;
    let install = match os {
        Os::Ubuntu2204 => apt("ubuntu", "jammy", ts),
        Os::Ubuntu2404 => apt("ubuntu", "noble", ts),
        Os::Debian12 => apt("debian", "bookworm", ts),
        Os::Flatcar => TailscaleInstall::Static {
            version: ts.version.clone(),
            dir: TAILSCALE_STATIC_DIR,
            link_dir: "/opt/bin",
        },
        Os::FedoraCoreos => TailscaleInstall::Static {
            version: ts.version.clone(),
            dir: TAILSCALE_STATIC_DIR,
            link_dir: "/usr/local/bin",
        },
    };
    let mut up_args = vec![
        "up".to_string(),
        format!("--auth-key=file:{AUTH_KEY_PATH}"),
        format!("--hostname={name}"),
    ];
    if !ts.tags.is_empty() {
        up_args.push(format!("--advertise-tags={}", ts.tags.join(",")));
    }
    up_args.push(format!("--ssh={}", ts.ssh));
    up_args.push(format!("--accept-dns={}", ts.accept_dns));
    if let Some(url) = &ts.login_server {
        up_args.push(format!("--login-server={url}"));
    }
    up_args.push(format!(
        "--timeout={}s",
        Retries::default().tailscale_up_timeout_s
    ));
    TailscalePlan {
        install,
        up_args,
        oauth,
    }
}

fn apt(
    distro: &'static str,
    codename: &'static str,
    ts: &crate::spec::Tailscale,
) -> TailscaleInstall {
    TailscaleInstall::Apt {
        distro,
        codename,
        version: ts.version.clone(),
    }
}
