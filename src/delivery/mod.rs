//! Stage 3b, delivery: what Hetzner Cloud needs to run the spec's nodes, decided in Rust
//! for [`crate::render`] to print. [`hcloud`] plans `meshboot hcloud` (cloud firewalls,
//! placement groups, one `hcloud server create` per node); [`packer`] plans
//! `meshboot packer` (one generic snapshot per OS and architecture, and the bake script).

pub mod hcloud;
pub mod packer;

use crate::spec::Os;

/// A Hetzner server architecture, as the API and `hcloud image list --architecture` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86,
    Arm,
}

impl Arch {
    /// The architecture of a server type: Hetzner's Arm types are the CAX line, every other
    /// line is x86 (flatcar.org "Running on Hetzner": "For x86 (cx, cpx & ccx Server
    /// Types)", "For Arm (cax Server Types)").
    pub fn of_server_type(server_type: &str) -> Arch {
        if server_type.starts_with("cax") {
            Arch::Arm
        } else {
            Arch::X86
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::Arm => "arm",
        }
    }

    /// Go's name of the architecture (GOARCH), which the rest of the world uses: Tailscale's
    /// tarballs, K3s's release assets, and the cluster-autoscaler's `imagesForArch` keys
    /// (hetzner_manager.go `ImageList{Arm64, Amd64}`).
    pub fn go_name(self) -> &'static str {
        match self {
            Arch::X86 => "amd64",
            Arch::Arm => "arm64",
        }
    }
}

/// Hetzner's stock image of `os`, where there is one (its name in `hcloud image list`).
pub fn stock_image(os: Os) -> Option<&'static str> {
    match os {
        Os::Ubuntu2204 => Some("ubuntu-22.04"),
        Os::Ubuntu2404 => Some("ubuntu-24.04"),
        Os::Debian12 => Some("debian-12"),
        Os::Flatcar | Os::FedoraCoreos => None,
    }
}

/// The labels meshboot puts on what it creates in Hetzner Cloud.
pub const CLUSTER_LABEL: &str = "meshboot.cluster";
pub const ROLE_LABEL: &str = "meshboot.role";
