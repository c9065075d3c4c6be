//! The Ignition envelope: Ignition 3.x built from typed structs and serialized with serde_json.
//!
//! Files travel as `data:` URLs with their modes (root owns them), URL-escaped or base64
//! as butane would pick (with `--compress`, gzipped where that is smaller,
//! `compression: gzip`); units, which Ignition takes as
//! plain text only, stay as they are; systemd units go under
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

/// A file of `storage.files`. Ignition's defaults are left out, as butane leaves them: the
/// owner (`overwrite: true` removes what was there, `removePathOnOverwrite` in
/// internal/exec/stages/files/filesystemEntries.go; the file Ignition then creates as root
/// is root's, and `SetPermissions` keeps its uid and gid when `user` and `group` name none,
/// internal/exec/util/file.go) and the mode 0644 (`PerformFetch` gives the new file
/// `DefaultFilePermissions`; spec 3.3.0: "the permission mode for files defaults to 0644").
#[derive(Serialize)]
pub struct File {
    pub path: String,
    /// Decimal in JSON, as Ignition expects (0o600 -> 384).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    pub overwrite: bool,
    pub contents: Resource,
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

/// A file's contents as a `data:` URL, the shortest of the encodings butane chooses from
/// (coreos/butane `base/util/url.go`, `MakeDataURL`): URL-escaped, base64, and with
/// `compress`, base64 of its gzip (counting the `gzip` the `compression` field spends).
fn resource(bytes: &[u8], compress: bool) -> Resource {
    let source = data_url(bytes);
    if compress {
        let packed = base64_data_url(&super::gzip(bytes));
        if packed.len() + "gzip".len() < source.len() {
            return Resource {
                source: packed,
                compression: Some("gzip"),
            };
        }
    }
    Resource {
        source,
        compression: None,
    }
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

/// `bytes` as a `data:` URL: URL-escaped (`data:,...`) or base64 (`data:;base64,...`),
/// whichever is shorter, as butane picks. A script mostly of letters escapes to nearly its
/// own length, where base64 always adds a third; one full of spaces and symbols is shorter
/// in base64.
pub fn data_url(bytes: &[u8]) -> String {
    // Only the shorter encoding is made: both lengths are known first (three bytes per
    // escaped byte; four per three in base64). Making both for every file of 10,000
    // nodes doubled `plan`'s time.
    if escaping_is_shorter(escaped_len(bytes), bytes.len()) {
        format!("data:,{}", escape(bytes))
    } else {
        base64_data_url(bytes)
    }
}

/// How long `bytes` is URL-escaped.
fn escaped_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| if unreserved(b) { 1 } else { 3 })
        .sum()
}

/// [`data_url`]'s choice, from the escaped length and the raw length (base64 takes four
/// bytes per three): URL-escaping, unless base64 is strictly shorter.
fn escaping_is_shorter(escaped_len: usize, raw_len: usize) -> bool {
    "data:;base64,".len() + raw_len.div_ceil(3) * 4 >= "data:,".len() + escaped_len
}

/// True when [`data_url`] URL-escapes `bytes` whatever name of 1 to 253 characters of
/// RFC 2396's unreserved set (a DNS name) stands in for each `placeholder` it holds: such
/// a name escapes to itself, so the URL is then the placeholder's with the name put in,
/// and renaming the data URL is renaming the text. Each name length is tried, since the
/// choice depends on the length alone: a name adds one byte per character to the escaped
/// form and four per three to base64.
pub fn escapes_for_any_name(bytes: &[u8], placeholder: &str) -> bool {
    debug_assert!(placeholder.bytes().all(unreserved));
    let holders = bytes
        .windows(placeholder.len())
        .filter(|w| *w == placeholder.as_bytes())
        .count();
    if holders == 0 {
        return true;
    }
    let (escaped, raw) = (escaped_len(bytes), bytes.len());
    let without = holders * placeholder.len();
    (1..=253).all(|name| {
        let with = holders * name;
        escaping_is_shorter(escaped - without + with, raw - without + with)
    })
}

/// RFC 2396's unreserved bytes, which dataurl's `Escape` leaves as they are.
fn unreserved(b: u8) -> bool {
    UNRESERVED[usize::from(b)]
}

/// [`unreserved`] as a table: it is asked for every byte of every Ignition file, where a
/// search of the marks per byte was a quarter of `plan`'s time on 10,000 nodes.
static UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        b += 1;
    }
    table
};

fn base64_data_url(bytes: &[u8]) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// RFC 2397 escaping as Ignition's and butane's data URL library does it
/// (vincent-petithory/dataurl `Escape`): RFC 2396's unreserved characters stay, every
/// other byte becomes `%XX`.
fn escape(bytes: &[u8]) -> String {
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
                mode: (f.mode != super::DEFAULT_MODE).then_some(f.mode),
                overwrite: true,
                contents: resource(f.contents.as_bytes(), compress),
            }),
        }
    }
    // Compact, as butane emits Ignition unless asked for --pretty (coreos/butane
    // internal/main.go): indentation would only spend the 32 KiB of user data.
    let mut out = serde_json::to_string(&config).map_err(|e| RenderError(e.to_string()))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_escapes_the_same_at_every_length_or_the_shape_is_not_shared() {
        let placeholder = "meshboot-name-placeholder-a";
        // Text: escaped at every name length.
        let text = format!("NODE_NAME={placeholder}\nset -eu\n");
        assert!(escapes_for_any_name(text.as_bytes(), placeholder));
        // No placeholder: nothing depends on the name.
        assert!(escapes_for_any_name(b"  \n\n  ", placeholder));
        // Symbols all around a long placeholder: escaped for a long name (the placeholder's),
        // base64 for a short one. Sharing would then be wrong, and is refused.
        let close = format!("{placeholder}{}", "%".repeat(8));
        assert!(data_url(close.as_bytes()).starts_with("data:,"));
        assert!(data_url(format!("a{}", "%".repeat(8)).as_bytes()).starts_with("data:;base64,"));
        assert!(!escapes_for_any_name(close.as_bytes(), placeholder));
    }

    #[test]
    fn the_unreserved_table_is_rfc_2396s_set() {
        let set: Vec<u8> = (0..=255u8).filter(|&b| unreserved(b)).collect();
        let mut want: Vec<u8> = (b'0'..=b'9')
            .chain(b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .collect();
        want.extend(b"-_.!~*'()");
        want.sort_unstable();
        assert_eq!(set, want);
    }

    #[test]
    fn data_urls_take_the_shorter_encoding() {
        // Letters and unreserved marks stay as they are: shorter than base64.
        assert_eq!(data_url(b"xxxxxxxx-x.y"), "data:,xxxxxxxx-x.y");
        // Spaces cost three bytes each escaped: base64 is shorter.
        assert_eq!(data_url(b"        "), "data:;base64,ICAgICAgICA=");
        // Shorter escaped, if only by a byte.
        assert_eq!(data_url(b"a b\nc d\n"), "data:,a%20b%0Ac%20d%0A");
        // Every byte outside RFC 2396's unreserved set is escaped, UTF-8 bytes included.
        assert_eq!(escape("a b/ü'()*!~".as_bytes()), "a%20b%2F%C3%BC'()*!~");
    }
}
