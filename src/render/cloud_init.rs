//! The cloud-init envelope: `#cloud-config` built as data and serialized with serde_yaml.
//!
//! `write_files` delivers every file, owned by root, with its mode, and `runcmd` enables and
//! starts the bootstrap unit. With `--compress` the whole cloud-config travels as one gzip
//! stream in a MIME multi-part message ([`compressed`]). No `packages`: cloud-init refreshes
//! the whole package index whenever that list is not empty (22.4
//! `cc_package_update_upgrade_install.handle`: a
//! non-empty `packages` calls `update_package_sources()` whatever `package_update` says;
//! today's `Apt.install_packages`, cloudinit/distros/package_management/apt.py, still calls it
//! first), so the bootstrap installs what the image lacks itself, and refreshes only then.
//! Without `packages`, `package_update` and `package_upgrade` cloud-init touches no package
//! (both default to false).

use super::{RenderError, RenderedFile};
use crate::plan;
use base64::Engine as _;
use serde::Serialize;

#[derive(Serialize)]
struct CloudConfig<'a> {
    write_files: Vec<WriteFile<'a>>,
    runcmd: Vec<Vec<&'a str>>,
}

/// A `write_files` entry. cloud-init's defaults are left out: the owner `root:root` (the
/// distro's `default_owner`, cloudinit/distros/__init__.py, which `handle` passes to
/// `write_files`) and the mode 0644 (cc_write_files.py `DEFAULT_PERMS`), in 22.4 as today.
#[derive(Serialize)]
struct WriteFile<'a> {
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<String>,
    content: &'a str,
}

/// The boundary of a compressed cloud-config's MIME message: no line of base64 starts with
/// `--`, so it cannot occur in the part.
const BOUNDARY: &str = "meshboot";

/// `cloud_config` as cloud-init takes compressed user data that must stay text: a MIME
/// multi-part message (RFC 2046) with one `application/gzip` part in base64 (RFC 2045,
/// lines of at most 76 characters). cloud-init parses user data holding `MIME-Version:` in
/// its first 4096 bytes as MIME (user_data.py `convert_string`), decodes each part's
/// transfer encoding, gunzips a part whose type is in `DECOMP_TYPES` and takes what it
/// holds by its first line, `#cloud-config` (22.4 as today; docs: explanation/format,
/// "Gzip compressed content"). One stream over the whole document compresses the files
/// together, where gzip per `write_files` entry (`encoding: gz+b64`) paid a header, a
/// dictionary of its own and YAML around each. Plain gzip is not an option: Hetzner's
/// user data is a JSON string.
fn compressed(cloud_config: &str) -> String {
    let packed =
        base64::engine::general_purpose::STANDARD.encode(super::gzip(cloud_config.as_bytes()));
    let mut out = format!(
        "Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\nMIME-Version: 1.0\n\n--{BOUNDARY}\nContent-Type: application/gzip\nContent-Transfer-Encoding: base64\n\n"
    );
    for line in packed.as_bytes().chunks(76) {
        // base64 is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("--{BOUNDARY}--\n"));
    out
}

/// The cloud-config a compressed document holds (what cloud-init reads from it), or `None`
/// when `document` is not one [`compressed`] makes.
pub fn unpack(document: &str) -> Option<String> {
    let part = document
        .split_once("Content-Transfer-Encoding: base64\n\n")?
        .1;
    let b64: String = part
        .split_once(&format!("--{BOUNDARY}--"))?
        .0
        .lines()
        .collect();
    super::gunzip_base64(&b64)
}

pub fn document(files: &[RenderedFile], compress: bool) -> Result<String, RenderError> {
    let doc = CloudConfig {
        write_files: files
            .iter()
            .map(|f| WriteFile {
                path: &f.path,
                permissions: (f.mode != super::DEFAULT_MODE).then(|| format!("{:04o}", f.mode)),
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
    let cloud_config = format!("#cloud-config\n{body}");
    Ok(if compress {
        compressed(&cloud_config)
    } else {
        cloud_config
    })
}
