//! The cloud-init envelope: `#cloud-config` built as data and serialized with serde_yaml.
//!
//! `write_files` delivers every file, owned by root, with its mode (with `--compress`,
//! every file that gets smaller as base64 of gzip, `encoding: gz+b64`), and `runcmd` enables
//! and starts the bootstrap unit. No `packages`: cloud-init refreshes the whole package index
//! whenever that list is not empty (22.4 `cc_package_update_upgrade_install.handle`: a
//! non-empty `packages` calls `update_package_sources()` whatever `package_update` says;
//! today's `Apt.install_packages`, cloudinit/distros/package_management/apt.py, still calls it
//! first), so the bootstrap installs what the image lacks itself, and refreshes only then.
//! Without `packages`, `package_update` and `package_upgrade` cloud-init touches no package
//! (both default to false).

use super::{RenderError, RenderedFile};
use crate::plan;
use base64::Engine as _;
use serde::Serialize;
use std::borrow::Cow;

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
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
    content: Cow<'a, str>,
}

/// cloud-init's name for base64 of gzip in `write_files` (cc_write_files.py,
/// `canonicalize_extraction`: "gz+b64", "gzip+b64", "gz+base64" and "gzip+base64" all mean
/// application/base64 then application/x-gzip; the schema lists gz+b64 since 22.x).
pub const GZIP_BASE64: &str = "gz+b64";

/// A file's `encoding` and `content`: plain, or with `compress`, base64 of its gzip when
/// that is shorter (a one-line key file is not).
fn content(text: &str, compress: bool) -> (Option<&'static str>, Cow<'_, str>) {
    if compress {
        let packed = base64::engine::general_purpose::STANDARD.encode(super::gzip(text.as_bytes()));
        if packed.len() < text.len() {
            return (Some(GZIP_BASE64), Cow::Owned(packed));
        }
    }
    (None, Cow::Borrowed(text))
}

pub fn document(files: &[RenderedFile], compress: bool) -> Result<String, RenderError> {
    let doc = CloudConfig {
        write_files: files
            .iter()
            .map(|f| {
                let (encoding, content) = content(&f.contents, compress);
                WriteFile {
                    path: &f.path,
                    permissions: (f.mode != super::DEFAULT_MODE).then(|| format!("{:04o}", f.mode)),
                    encoding,
                    content,
                }
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
