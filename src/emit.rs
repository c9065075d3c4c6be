//! Stage 5, emitting: the size budget ([`check_size`], the one place that knows the limit
//! and says when an output is over it), then the files on disk with `SHA256SUMS`.
//!
//! Every artifact holds secrets, so files are written 0600 into an output directory created
//! 0700. [`Staging`] writes them as they are rendered, each to a temporary file beside its
//! final name, and replaces the final files only once every one of them is written and on
//! disk (one `syncfs`, not one `fsync` per file): the directory never holds a half-written
//! file or a mix of two builds' files under their final names.

use crate::error::Error;
use crate::render::Artifact;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::sync::Mutex;

/// What emitting keeps of an artifact once it is written: enough for the size budget,
/// `SHA256SUMS` and the report, not its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub node: String,
    pub file_name: String,
    pub len: usize,
    /// Its large files are gzipped (`--compress`).
    pub compressed: bool,
    /// The sha256 of its contents, hex (when asked for: `build` writes it to SHA256SUMS).
    pub sha256: Option<String>,
}

impl Summary {
    /// `a`'s summary, with its sha256 when `hash`.
    pub fn of(a: &Artifact, hash: bool) -> Summary {
        Summary {
            node: a.node.clone(),
            file_name: a.file_name.clone(),
            len: a.contents.len(),
            compressed: a.compressed,
            sha256: hash.then(|| sha256_hex(a.contents.as_bytes())),
        }
    }
}

/// Hetzner Cloud's user-data limit, in bytes (API: length 0..32768).
pub const USER_DATA_LIMIT: usize = 32 * 1024;

const SHRINK: &str = "drop what the node does not need (extra args, labels, public ports) or deliver the config another way (a Packer image)";

/// Checks every artifact against [`USER_DATA_LIMIT`]: one that is over it makes the spec
/// invalid, and the report names each such file and what `--compress` would do for it:
/// `compressed_len` renders an uncompressed artifact compressed and says how long that is
/// (computed, never estimated). Call it before anything is written or printed.
pub fn check_size(
    artifacts: &[Summary],
    compressed_len: &dyn Fn(&Summary) -> Option<usize>,
) -> Result<(), Error> {
    let report: String = artifacts
        .iter()
        .filter(|a| a.len > USER_DATA_LIMIT)
        .map(|a| {
            let len = a.len;
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
pub fn sha256sums(artifacts: &[Summary]) -> String {
    let mut lines: Vec<String> = artifacts
        .iter()
        .map(|a| {
            let sum = a.sha256.clone().unwrap_or_default();
            format!("{sum}  {}\n", a.file_name)
        })
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

/// The name of the temporary file that becomes `name`.
fn temporary(name: &str) -> String {
    format!(".{name}.tmp")
}

/// An output directory being written: files go to temporary names until [`Staging::commit`]
/// puts them all in place, or [`Staging::abort`] removes them.
///
/// Crash safety, in order: every file's bytes go to `.<name>.tmp` (0600, no sync each);
/// `commit` then syncs the file system once (`syncfs` on the directory: the temporary
/// files' data and metadata are on disk), renames each temporary file over its final name
/// (`SHA256SUMS` last), and syncs the directory (the renames are on disk). The data is on
/// disk before any rename, so a crash at any point leaves each final name holding either
/// its old file or its new one, complete; a crash before the renames leaves only
/// `.*.tmp` files, which the next build overwrites. A crash half-way through the renames
/// can leave some files of the old build: `sha256sum -c SHA256SUMS` then fails on them
/// (SHA256SUMS is renamed last); build again.
pub struct Staging {
    dir: Utf8PathBuf,
    /// The directory did not exist before: `abort` removes it again.
    created: bool,
    /// The final names staged so far.
    staged: Mutex<Vec<String>>,
}

impl Staging {
    /// Opens `dir` for writing, creating it 0700 when it does not exist.
    pub fn open(dir: &Utf8Path) -> std::io::Result<Staging> {
        let created = !dir.is_dir();
        if created {
            create_private_dir(dir)?;
        }
        Ok(Staging {
            dir: dir.to_path_buf(),
            created,
            staged: Mutex::new(Vec::new()),
        })
    }

    /// Writes `bytes` to the temporary file of `name` (0600). Safe to call from several
    /// threads at once.
    pub fn stage(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        if let Ok(mut staged) = self.staged.lock() {
            staged.push(name.to_string());
        }
        write_private(&self.dir.join(temporary(name)), bytes)
    }

    /// Stages `SHA256SUMS` (`sums`), then puts every staged file in place, crash-safely
    /// (see [`Staging`]).
    pub fn commit(self, sums: &str) -> std::io::Result<()> {
        self.stage("SHA256SUMS", sums.as_bytes())?;
        let staged = self.staged.lock().map(|s| s.clone()).unwrap_or_default();
        let dir = std::fs::File::open(&self.dir)?;
        sync_file_system(&dir, &self.dir, &staged)?;
        for name in &staged {
            std::fs::rename(self.dir.join(temporary(name)), self.dir.join(name))?;
        }
        dir.sync_all()
    }

    /// Removes every staged file, and the directory when [`Staging::open`] created it:
    /// nothing is left of this build.
    pub fn abort(self) {
        let staged = self.staged.lock().map(|s| s.clone()).unwrap_or_default();
        for name in staged {
            let _ = std::fs::remove_file(self.dir.join(temporary(&name)));
        }
        if self.created {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Puts the data and metadata of the files `staged` (temporary names, in `path`) on disk:
/// one `syncfs(2)` of the file system holding `dir` on Linux, an `fsync` per file elsewhere.
fn sync_file_system(
    dir: &std::fs::File,
    path: &Utf8Path,
    staged: &[String],
) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = (path, staged);
        use std::os::fd::AsRawFd as _;
        // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        for name in staged {
            std::fs::File::open(path.join(temporary(name)))?.sync_all()?;
        }
        Ok(())
    }
}

fn create_private_dir(dir: &Utf8Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes `bytes` to `path`, mode 0600 (also when the file was there with another mode).
fn write_private(path: &Utf8Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(name: &str, len: usize) -> Summary {
        Summary {
            node: name.into(),
            file_name: format!("{name}.yaml"),
            len,
            compressed: false,
            sha256: None,
        }
    }

    /// Compression that halves a file.
    fn halved(a: &Summary) -> Option<usize> {
        Some(a.len / 2)
    }

    /// The names in `dir`, sorted, with their modes.
    fn listing(dir: &Utf8Path) -> Vec<(String, u32)> {
        use std::os::unix::fs::PermissionsExt as _;
        let mut v: Vec<(String, u32)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let mode = e.metadata().unwrap().permissions().mode() & 0o777;
                (e.file_name().into_string().unwrap(), mode)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn staged_files_appear_only_on_commit_and_abort_leaves_the_old_ones() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap().join("out");
        // A first build into a new directory: 0700, files 0600, SHA256SUMS last.
        let s = Staging::open(&dir).unwrap();
        s.stage("a.yaml", b"one").unwrap();
        s.stage("b.ign", b"two").unwrap();
        assert_eq!(
            listing(&dir),
            [(".a.yaml.tmp".into(), 0o600), (".b.ign.tmp".into(), 0o600)]
        );
        s.commit("sums\n").unwrap();
        assert_eq!(
            listing(&dir),
            [
                ("SHA256SUMS".into(), 0o600),
                ("a.yaml".into(), 0o600),
                ("b.ign".into(), 0o600)
            ]
        );
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A file made world-readable by hand is replaced 0600.
        std::fs::set_permissions(dir.join("a.yaml"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let s = Staging::open(&dir).unwrap();
        s.stage("a.yaml", b"three").unwrap();
        s.commit("sums2\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("a.yaml")).unwrap(),
            "three"
        );
        assert_eq!(listing(&dir)[1], ("a.yaml".into(), 0o600));
        // An aborted build leaves the last one as it was, and no temporary file.
        let before = listing(&dir);
        let s = Staging::open(&dir).unwrap();
        s.stage("a.yaml", b"four").unwrap();
        s.abort();
        assert_eq!(listing(&dir), before);
        assert_eq!(
            std::fs::read_to_string(dir.join("a.yaml")).unwrap(),
            "three"
        );
        // ... and removes the directory it created.
        let fresh = dir.join("fresh");
        let s = Staging::open(&fresh).unwrap();
        s.stage("a.yaml", b"x").unwrap();
        s.abort();
        assert!(!fresh.exists());
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
                Summary {
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
