//! Stage 5, emitting: the size budget ([`check_size`], the one place that knows the limit
//! and says when an output is over it), then the files on disk with `SHA256SUMS`.
//!
//! Every artifact holds secrets, so files are written 0600 (atomically, through a temporary
//! file in the same directory) into an output directory created 0700.

use crate::error::Error;
use crate::render::Artifact;
use camino::Utf8Path;
use sha2::{Digest, Sha256};
use std::io::Write as _;

/// Hetzner Cloud's user-data limit, in bytes (API: length 0..32768).
pub const USER_DATA_LIMIT: usize = 32 * 1024;

const SHRINK: &str = "drop what the node does not need (extra args, labels, public ports) or deliver the config another way (a Packer image)";

/// Checks every artifact against [`USER_DATA_LIMIT`]: one that is over it makes the spec
/// invalid, and the report names each such file and what `--compress` would do for it:
/// `compressed_len` renders an uncompressed artifact compressed and says how long that is
/// (computed, never estimated). Call it before anything is written or printed.
pub fn check_size(
    artifacts: &[Artifact],
    compressed_len: &dyn Fn(&Artifact) -> Option<usize>,
) -> Result<(), Error> {
    let report: String = artifacts
        .iter()
        .filter(|a| a.contents.len() > USER_DATA_LIMIT)
        .map(|a| {
            let len = a.contents.len();
            let help = match (a.compressed, compressed_len(a)) {
                (true, _) => format!(
                    "it is compressed already, and {} bytes over; {SHRINK}",
                    len - USER_DATA_LIMIT
                ),
                (false, Some(c)) if c <= USER_DATA_LIMIT => format!(
                    "`--compress` would fit it: {c} bytes compressed ({})",
                    share_of_limit(c)
                ),
                (false, Some(c)) => format!(
                    "even with `--compress` it would be {c} bytes, {} over; {SHRINK}",
                    c - USER_DATA_LIMIT
                ),
                (false, None) => SHRINK.to_string(),
            };
            format!(
                "error: {}: {len} bytes, over Hetzner's {USER_DATA_LIMIT}-byte user-data limit; nothing was written\n  = help: {help}\n",
                a.file_name,
            )
        })
        .collect();
    if report.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidSpec(report))
    }
}

/// How much of the user-data limit `bytes` take: `41% of the 32 KiB user-data limit`.
pub fn share_of_limit(bytes: usize) -> String {
    format!(
        "{:.0}% of the {} KiB user-data limit",
        bytes as f64 * 100.0 / USER_DATA_LIMIT as f64,
        USER_DATA_LIMIT / 1024
    )
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sha256sum -c` compatible lines, sorted by file name.
pub fn sha256sums(artifacts: &[Artifact]) -> String {
    let mut lines: Vec<String> = artifacts
        .iter()
        .map(|a| format!("{}  {}\n", sha256_hex(a.contents.as_bytes()), a.file_name))
        .collect();
    lines.sort();
    lines.concat()
}

/// Human size: `14.2 KiB`.
pub fn human_size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Writes every artifact and `SHA256SUMS` into `dir`. Returns the paths written.
pub fn write_all(dir: &Utf8Path, artifacts: &[Artifact]) -> std::io::Result<Vec<String>> {
    create_private_dir(dir)?;
    let mut written = Vec::new();
    for a in artifacts {
        let path = dir.join(&a.file_name);
        write_private(&path, a.contents.as_bytes())?;
        written.push(path.to_string());
    }
    let sums = dir.join("SHA256SUMS");
    write_private(&sums, sha256sums(artifacts).as_bytes())?;
    written.push(sums.to_string());
    Ok(written)
}

fn create_private_dir(dir: &Utf8Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

fn write_private(path: &Utf8Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().unwrap_or("out")));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Envelope;

    fn artifact(name: &str, len: usize) -> Artifact {
        Artifact {
            node: name.into(),
            file_name: format!("{name}.yaml"),
            envelope: Envelope::CloudInit,
            contents: "x".repeat(len),
            compressed: false,
        }
    }

    /// Compression that halves a file.
    fn halved(a: &Artifact) -> Option<usize> {
        Some(a.contents.len() / 2)
    }

    #[test]
    fn the_size_budget_names_every_file_over_it() {
        assert_eq!(
            check_size(&[artifact("a", USER_DATA_LIMIT)], &halved),
            Ok(())
        );
        let err = check_size(
            &[
                artifact("a", USER_DATA_LIMIT + 1),
                artifact("b", 10),
                artifact("c", USER_DATA_LIMIT * 3),
                Artifact {
                    compressed: true,
                    ..artifact("d", USER_DATA_LIMIT + 7)
                },
            ],
            &halved,
        )
        .expect_err("over the limit");
        let m = err.message();
        assert!(
            m.contains("a.yaml: 32769 bytes, over Hetzner's 32768-byte user-data limit; nothing was written\n  = help: `--compress` would fit it: 16384 bytes compressed (50% of the 32 KiB user-data limit)"),
            "{m}"
        );
        assert!(
            m.contains("c.yaml: 98304 bytes, over Hetzner's 32768-byte user-data limit; nothing was written\n  = help: even with `--compress` it would be 49152 bytes, 16384 over;"),
            "{m}"
        );
        assert!(
            m.contains("d.yaml: 32775 bytes, over Hetzner's 32768-byte user-data limit; nothing was written\n  = help: it is compressed already, and 7 bytes over;"),
            "{m}"
        );
        assert_eq!(err.exit_code(), crate::error::exit::INVALID_SPEC);
        assert!(
            err.message()
                .contains("error: a.yaml: 32769 bytes, over Hetzner's 32768-byte user-data limit"),
            "{}",
            err.message()
        );
        assert!(err.message().contains("c.yaml") && !err.message().contains("b.yaml"));
        assert_eq!(share_of_limit(8192), "25% of the 32 KiB user-data limit");
    }
}
