//! The plan of `meshboot packer`: one generic Hetzner snapshot per OS and architecture the
//! spec's nodes use, built by Packer's `hcloud` builder (hetznercloud/packer-plugin-hcloud,
//! docs/builders/hcloud.mdx: token, image, location, server_type, rescue, snapshot_name,
//! snapshot_labels, ssh_username) running `bake.sh`.
//!
//! The image holds the spec's Tailscale and K3s, pinned, and nothing of any node: no user
//! data, no key, no token, no machine identity. Every node still boots from its own
//! first-boot file; its bootstrap finds these versions on the disk and downloads neither
//! (crate::plan `Installed`, `BakedK3s`).
//!
//! Ubuntu and Debian boot their stock image and bake in place. Flatcar and Fedora CoreOS
//! have none on Hetzner: the builder boots the rescue system (`rescue = "linux64"`),
//! installs the OS to the disk (flatcar.org "Running on Hetzner": `flatcar-install -s -o
//! hetzner -C <channel>`; Fedora CoreOS: `coreos-installer install` with the `hetzner`
//! platform, its docs' "Provisioning Fedora CoreOS on Hetzner"), then writes the binaries
//! into the installed root before it has ever booted.

use super::{Arch, CLUSTER_LABEL, stock_image};
use crate::plan::{
    BAKED_K3S_INSTALLER, ClusterPlan, K3S_INSTALL_URL, TAILSCALE_STATIC_DIR, TailscaleInstall,
};
use crate::spec::{Choice, Os, Spec};
use serde::Serialize;
use std::collections::BTreeMap;

/// The stock image the builder boots into rescue mode to install Flatcar or Fedora CoreOS
/// (the Flatcar docs' template uses ubuntu-24.04; rescue mode ignores it).
const RESCUE_BASE_IMAGE: &str = "ubuntu-24.04";

#[derive(Debug, Clone, Serialize)]
pub struct PackerPlan {
    pub cluster: String,
    pub tailscale_version: String,
    pub k3s_version: String,
    /// Where the builder runs (snapshots can be used in every location).
    pub location: String,
    pub images: Vec<Bake>,
    /// What bake.sh fetches and where it puts things.
    pub k3s_install_url: &'static str,
    pub baked_installer: &'static str,
    pub tailscale_static_dir: &'static str,
    pub tailscale_pkgs: &'static str,
}

/// One snapshot: an OS on an architecture.
#[derive(Debug, Clone, Serialize)]
pub struct Bake {
    /// The Packer source name, also bake.sh's argument: `<os>-<arch>`.
    pub name: String,
    pub os: Os,
    pub arch: &'static str,
    /// Tailscale's and K3s's name for the architecture (tarballs, release assets).
    pub arch_pkg: &'static str,
    pub method: Method,
    /// The builder's server type: the first node's of this OS and architecture. A
    /// snapshot fits server types with at least its disk (build on the smallest one).
    pub server_type: String,
    /// The stock image the builder starts from.
    pub base_image: &'static str,
    pub rescue: bool,
    /// The snapshot's description (Hetzner shows it as the image's name).
    pub snapshot_name: String,
    pub labels: BTreeMap<String, String>,
    /// The label selector that picks this snapshot: what `hcloud.image` should say.
    pub selector: String,
    /// The nodes that boot from it; a pool as `<pool>-*`.
    pub nodes: Vec<String>,
    /// Where the files go: on the node, and where bake.sh writes them.
    pub paths: BakePaths,
}

/// The places bake.sh fills, as the node's bootstrap looks for them (`node`), and where
/// bake.sh writes them (`disk`): the same path on a running stock image, the installed
/// root mounted at /mnt from the rescue system.
#[derive(Debug, Clone, Serialize)]
pub struct BakePaths {
    /// K3s's binary on the node (plan `BakedK3s::bin`) and on the disk.
    pub k3s_bin: String,
    pub k3s_bin_disk: String,
    /// The install script the node runs with INSTALL_K3S_SKIP_DOWNLOAD.
    pub installer_disk: String,
    /// The static Tailscale build (rescue route) and the link to its CLI: empty where the
    /// build's own directory is on PATH (Fedora CoreOS, plan `TailscaleInstall::Static`).
    pub tailscale_dir_disk: String,
    pub tailscale_link_disk: String,
    /// The CLI on the node (the link's target).
    pub tailscale_bin: String,
}

/// How bake.sh installs an OS's image.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Method {
    /// On the running stock image: Tailscale's apt repository, then the K3s install
    /// script; then the machine's identity is cleared.
    Apt {
        distro: &'static str,
        codename: &'static str,
    },
    /// From the rescue system: install Flatcar to the disk, then write into its ROOT
    /// partition (`/opt` lives there; /usr is read-only).
    Flatcar,
    /// From the rescue system: install Fedora CoreOS to the disk, then write into its
    /// ostree deployment's /var (`/opt` and `/usr/local` point there).
    FedoraCoreos,
}

/// A label value from a version: Hetzner label values are `[a-zA-Z0-9-_.]`, so K3s's `+`
/// becomes `-` (`v1.33.5+k3s1` -> `v1.33.5-k3s1`).
pub fn label_value(version: &str) -> String {
    version.replace('+', "-")
}

/// Plans the snapshots of `plan`'s nodes. The spec passed
/// [`crate::validate::for_target`] for Packer: versions are pinned, every node has a type.
pub fn plan_packer(spec: &Spec, plan: &ClusterPlan) -> PackerPlan {
    let tailscale_version = spec.tailscale.version.clone().unwrap_or_default();
    let k3s_version = spec.k3s.version.clone().unwrap_or_default();
    // Fixed nodes and pools alike: the autoscaler boots a pool's servers from its image.
    let mut groups: BTreeMap<(usize, Arch), Vec<(String, &str)>> = BTreeMap::new();
    let os_rank = |os: Os| Os::ALL.iter().position(|(_, o)| *o == os).unwrap_or(0);
    for n in &plan.nodes {
        let server_type = n.hcloud.server_type.as_deref().unwrap_or_default();
        let name = match n.pool {
            Some(_) => format!("{}-*", n.name),
            None => n.name.clone(),
        };
        groups
            .entry((os_rank(n.os), Arch::of_server_type(server_type)))
            .or_default()
            .push((name, server_type));
    }
    let images = groups
        .into_iter()
        .map(|((rank, arch), nodes)| {
            let os = Os::ALL[rank].1;
            let name = format!("{}-{}", os.name(), arch.name());
            let mut labels = BTreeMap::new();
            labels.insert(CLUSTER_LABEL.to_string(), plan.cluster.clone());
            labels.insert("meshboot.os".to_string(), os.name().to_string());
            labels.insert(
                "meshboot.tailscale".to_string(),
                label_value(&tailscale_version),
            );
            labels.insert("meshboot.k3s".to_string(), label_value(&k3s_version));
            let selector = labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let method = match os {
                Os::Ubuntu2204 => Method::Apt {
                    distro: "ubuntu",
                    codename: "jammy",
                },
                Os::Ubuntu2404 => Method::Apt {
                    distro: "ubuntu",
                    codename: "noble",
                },
                Os::Debian12 => Method::Apt {
                    distro: "debian",
                    codename: "bookworm",
                },
                Os::Flatcar => Method::Flatcar,
                Os::FedoraCoreos => Method::FedoraCoreos,
            };
            let rescue = stock_image(os).is_none();
            // Where /opt and /usr/local of the node are on the installed disk mounted at
            // /mnt: Flatcar keeps /opt on its ROOT partition; Fedora CoreOS points /opt
            // and /usr/local into its ostree deployment's /var.
            let (opt, usr_local, bin_dir) = match os {
                Os::Flatcar => ("/mnt/opt", "/mnt/usr/local", "/opt/bin"),
                Os::FedoraCoreos => (
                    "/mnt/ostree/deploy/fedora-coreos/var/opt",
                    "/mnt/ostree/deploy/fedora-coreos/var/usrlocal",
                    "/usr/local/bin",
                ),
                _ => ("/opt", "/usr/local", "/usr/local/bin"),
            };
            let disk = |node_path: &str| -> String {
                if let Some(rest) = node_path.strip_prefix("/opt") {
                    format!("{opt}{rest}")
                } else if let Some(rest) = node_path.strip_prefix("/usr/local") {
                    format!("{usr_local}{rest}")
                } else {
                    node_path.to_string()
                }
            };
            let k3s_bin = format!("{bin_dir}/k3s");
            // The static build goes where these nodes' bootstrap looks for it.
            let (ts_dir, ts_link_dir) = nodes
                .first()
                .and_then(|(name, _)| plan.nodes.iter().find(|n| n.name == *name))
                .and_then(|n| match &n.tailscale.install {
                    TailscaleInstall::Static { dir, link_dir, .. } => Some((*dir, *link_dir)),
                    TailscaleInstall::Apt { .. } => None,
                })
                .unwrap_or((TAILSCALE_STATIC_DIR, Some(bin_dir)));
            let paths = BakePaths {
                k3s_bin_disk: disk(&k3s_bin),
                k3s_bin,
                installer_disk: disk(BAKED_K3S_INSTALLER),
                tailscale_dir_disk: disk(ts_dir),
                tailscale_link_disk: ts_link_dir
                    .map(|l| disk(&format!("{l}/tailscale")))
                    .unwrap_or_default(),
                tailscale_bin: format!("{ts_dir}/tailscale"),
            };
            Bake {
                paths,
                snapshot_name: format!(
                    "meshboot {} {} {} tailscale {} k3s {}",
                    plan.cluster,
                    os.name(),
                    arch.name(),
                    tailscale_version,
                    k3s_version
                ),
                name,
                os,
                arch: arch.name(),
                arch_pkg: arch.go_name(),
                method,
                server_type: nodes[0].1.to_string(),
                base_image: stock_image(os).unwrap_or(RESCUE_BASE_IMAGE),
                rescue,
                labels,
                selector,
                nodes: nodes.iter().map(|(n, _)| n.clone()).collect(),
            }
        })
        .collect();
    let location = plan
        .nodes
        .iter()
        .find_map(|n| n.hcloud.location.clone())
        .unwrap_or_else(|| "fsn1".into());
    PackerPlan {
        cluster: plan.cluster.clone(),
        tailscale_version,
        k3s_version,
        location,
        images,
        k3s_install_url: K3S_INSTALL_URL,
        baked_installer: BAKED_K3S_INSTALLER,
        tailscale_static_dir: TAILSCALE_STATIC_DIR,
        tailscale_pkgs: crate::plan::TAILSCALE_PKGS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3s_versions_become_label_values() {
        assert_eq!(label_value("v1.33.5+k3s1"), "v1.33.5-k3s1");
        assert_eq!(label_value("1.90.6"), "1.90.6");
    }
}
