//! Stage 5, emitting: the size budget, then the files on disk with `SHA256SUMS`.
//!
//! Every artifact holds secrets, so files are written 0600 (atomically, through a temporary
//! file in the same directory) into an output directory created 0700.

use crate::render::Artifact;
use camino::Utf8Path;
use sha2::{Digest, Sha256};
use std::io::Write as _;

/// Hetzner Cloud's user-data limit, in bytes (API: length 0..32768).
pub const USER_DATA_LIMIT: usize = 32 * 1024;

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
