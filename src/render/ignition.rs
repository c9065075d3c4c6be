//! The Ignition envelope: Ignition 3.x built from typed structs and serialized with serde_json.
//!
//! Files travel as `data:` URLs, each in the shortest encoding as Butane picks it
//! ([`resource`]: percent-escaped or base64, and with `--compress` gzipped, `compression:
//! gzip`), with their modes and root ownership; units, which Ignition takes as plain text
//! only, stay as they are; systemd units go under
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
    /// `gzip` when `source` holds the gzipped contents (Ignition spec 3.3.0,
    /// `storage.files[].contents.compression`: "the type of compression used on the
    /// contents (null or gzip)").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'static str>,
}

/// A file's contents as a `data:` URL, the shortest of the encodings Butane tries
/// (coreos/butane `base/util/url.go`, `MakeDataURL`): percent-escaped (`data:,...`, as
/// vincent-petithory/dataurl's `Escape` writes it, the package Ignition decodes data URLs
/// with: RFC 2396's unreserved bytes as they are, every other byte as `%XX`), base64
/// (`data:;base64,...`), and, with `compress`, base64 of the gzip (`compression: gzip`),
/// taken when it is shorter even with the word `gzip` counted, as Butane counts it. Ties
/// go to the earlier encoding, as in Butane. Text with many spaces and line breaks is
/// usually shorter in base64.
fn resource(bytes: &[u8], compress: bool) -> Resource {
    // Only the shorter of the two plain encodings is made: their lengths are known first.
    let escaped_len = "data:,".len()
        + bytes
            .iter()
            .map(|&b| if unreserved(b) { 1 } else { 3 })
            .sum::<usize>();
    let base64_len = "data:;base64,".len() + bytes.len().div_ceil(3) * 4;
    let best = if base64_len < escaped_len {
        data_url(bytes)
    } else {
        format!("data:,{}", escape(bytes))
    };
    if compress {
        let gzipped = data_url(&super::gzip(bytes));
        if gzipped.len() + "gzip".len() < best.len() {
            return Resource {
                source: gzipped,
                compression: Some("gzip"),
            };
        }
    }
    Resource {
        source: best,
        compression: None,
    }
}

/// RFC 2396's unreserved bytes, which dataurl's `Escape` leaves as they are.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// RFC 2396 escaping as dataurl's `Escape` does it (vincent-petithory/dataurl `rfc2396.go`):
/// `a-z A-Z 0-9 - _ . ! ~ * ' ( )` stay, every other byte becomes `%XX` (upper-case hex).
pub fn escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3 / 2);
    for &b in bytes {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
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

pub fn document(
    files: &[RenderedFile],
    version: IgnitionVersion,
    compress: bool,
) -> Result<String, RenderError> {
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
                contents: resource(f.contents.as_bytes(), compress),
            }),
        }
    }
    // Compact, as Butane writes it (`butane --pretty` indents): user data is counted in bytes.
    let mut out = serde_json::to_string(&config).map_err(|e| RenderError(e.to_string()))?;
    out.push('\n');
    Ok(out)
}
