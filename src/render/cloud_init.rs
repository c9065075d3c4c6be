//! The cloud-init envelope: `#cloud-config` built as data and serialized with serde_yaml.
//!
//! `write_files` delivers every file with its mode and root ownership, `packages` installs
//! only what the node needs (no upgrade), and `runcmd` enables and starts the bootstrap
//! unit.

use super::{RenderError, RenderedFile};
use crate::plan::{self, NodePlan};
use serde::Serialize;

#[derive(Serialize)]
struct CloudConfig<'a> {
    package_update: bool,
    package_upgrade: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    packages: &'a [String],
    write_files: Vec<WriteFile<'a>>,
    runcmd: Vec<Vec<&'a str>>,
}

#[derive(Serialize)]
struct WriteFile<'a> {
    path: &'a str,
    owner: &'static str,
    permissions: String,
    content: &'a str,
}

pub fn document(node: &NodePlan, files: &[RenderedFile]) -> Result<String, RenderError> {
    let doc = CloudConfig {
        package_update: !node.packages.is_empty(),
        package_upgrade: false,
        packages: &node.packages,
        write_files: files
            .iter()
            .map(|f| WriteFile {
                path: &f.path,
                owner: "root:root",
                permissions: format!("{:04o}", f.mode),
                content: &f.contents,
            })
            .collect(),
        // Through systemd, like Ignition: the unit re-runs the bootstrap at every boot until
        // it has finished, and `systemctl` fails this runcmd when the bootstrap fails.
        runcmd: vec![
            vec!["systemctl", "daemon-reload"],
            vec!["systemctl", "enable", "--now", plan::BOOTSTRAP_UNIT],
        ],
    };
    let body = serde_yaml::to_string(&doc).map_err(|e| RenderError(e.to_string()))?;
    Ok(format!("#cloud-config\n{body}"))
}
