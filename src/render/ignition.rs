//! The Ignition envelope: Ignition 3.x built from typed structs and serialized with serde_json.
//!
//! Files travel as `data:` URLs with their modes and root ownership; systemd units go under
//! `systemd.units`, and the bootstrap unit is enabled so it runs once on first boot. Like
//! butane and afterburn, the builder refuses duplicate paths and units.

use super::{RenderError, RenderedFile};
use crate::plan::IgnitionVersion;
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Serialize)]
pub struct Config {
    pub ignition: Ignition,
    pub storage: Storage,
    pub systemd: Systemd,
}

#[derive(Serialize)]
pub struct Ignition {
    pub version: &'static str,
}

#[derive(Serialize)]
pub struct Storage {
    pub files: Vec<File>,
}

#[derive(Serialize)]
pub struct File {
    pub path: String,
    /// Decimal in JSON, as Ignition expects (0o600 -> 384).
    pub mode: u32,
    pub overwrite: bool,
    pub user: Owner,
    pub group: Owner,
    pub contents: Resource,
}

#[derive(Serialize)]
pub struct Owner {
    pub name: &'static str,
}

#[derive(Serialize)]
pub struct Resource {
    pub source: String,
}

#[derive(Serialize)]
pub struct Systemd {
    pub units: Vec<Unit>,
}

#[derive(Serialize)]
pub struct Unit {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    pub contents: String,
}

/// `data:;base64,...` for `bytes`.
pub fn data_url(bytes: &[u8]) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub fn document(files: &[RenderedFile], version: IgnitionVersion) -> Result<String, RenderError> {
    let mut paths = BTreeSet::new();
    let mut config = Config {
        ignition: Ignition {
            version: version.as_str(),
        },
        storage: Storage { files: Vec::new() },
        systemd: Systemd { units: Vec::new() },
    };
    for f in files {
        if !paths.insert(f.path.as_str()) {
            return Err(RenderError(format!("two files at {}", f.path)));
        }
        match &f.unit {
            Some(name) => config.systemd.units.push(Unit {
                name: name.clone(),
                enabled: f.enable.then_some(true),
                contents: f.contents.clone(),
            }),
            None => config.storage.files.push(File {
                path: f.path.clone(),
                mode: f.mode,
                overwrite: true,
                user: Owner { name: "root" },
                group: Owner { name: "root" },
                contents: Resource {
                    source: data_url(f.contents.as_bytes()),
                },
            }),
        }
    }
    // Compact, as butane emits Ignition unless asked for --pretty (coreos/butane
    // internal/main.go): indentation would only spend the 32 KiB of user data.
    let mut out = serde_json::to_string(&config).map_err(|e| RenderError(e.to_string()))?;
    out.push('\n');
    Ok(out)
}
