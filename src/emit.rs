//! Stage 5, emitting: the size budget ([`check_size`], the one place that knows the limit
//! and says when an output is over it), then the files on disk with `SHA256SUMS`.
//!
//! Every artifact holds secrets, so files are written 0600 into an output directory created
//! 0700. [`Staging`] writes them as they are rendered, each to a temporary file beside its
//! final name, and replaces the final files only once every one of them is written and on
//! disk (one `syncfs`, not one `fsync` per file): the directory never holds a half-written
//! file or a mix of two builds' files under their final names. Once the new files are in
//! place it removes the files of the previous build that this one does not write (nodes
//! that left the spec, see [`Leftovers`]), so no node's secrets outlive its place in the
//! spec.

use crate::error::Error;
use crate::plan::Envelope;
use crate::problem::IoReason;
use crate::render::Artifact;
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::io::Write as _;
use std::sync::Mutex;

/// The checksum file `build` writes beside the nodes' files. It lists the files of the
/// build that wrote it, which is how the next build knows which files are meshboot's.
pub const SHA256SUMS: &str = "SHA256SUMS";

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
/// `commit` then reads the previous build's `SHA256SUMS`, syncs the file system once
/// (`syncfs` on the directory: the temporary files' data and metadata are on disk), renames
/// each node's temporary file over its final name, removes the previous build's
/// [`Leftovers`] (and syncs the directory when it removed one), renames `SHA256SUMS` last,
/// and syncs the directory (the renames are on disk). The data is on disk before any
/// rename, so a crash at any point leaves each final name holding either its old file or
/// its new one, complete; a crash before the renames leaves only `.*.tmp` files, which the
/// next build overwrites. A crash half-way through the renames can leave some files of the
/// old build: `sha256sum -c SHA256SUMS` then fails on them (SHA256SUMS is renamed last);
/// build again. The removals are on disk before the new `SHA256SUMS` replaces the old one,
/// so a crash never leaves a leftover that no `SHA256SUMS` lists: until the new one is in
/// place, the old one names it, and the next build removes it.
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

    /// Stages `SHA256SUMS` (`sums`), puts every staged file in place and removes the
    /// previous build's [`Leftovers`], crash-safely (see [`Staging`]); says what became of
    /// the leftovers. An `Err` is an I/O error that stopped the commit.
    pub fn commit(self, sums: &str) -> std::io::Result<Leftovers> {
        // Read before anything is renamed: until `SHA256SUMS` is replaced below, the one
        // in the directory is the previous build's.
        let previous = previous_listing(&self.dir);
        self.stage(SHA256SUMS, sums.as_bytes())?;
        let staged = self.staged.lock().map(|s| s.clone()).unwrap_or_default();
        let dir = std::fs::File::open(&self.dir)?;
        sync_file_system(&dir, &self.dir, &staged)?;
        let files: Vec<String> = staged.into_iter().filter(|n| n != SHA256SUMS).collect();
        for name in &files {
            std::fs::rename(self.dir.join(temporary(name)), self.dir.join(name))?;
        }
        let leftovers = match previous {
            Ok(listed) => Leftovers {
                files: remove_leftovers(&self.dir, &listed, &files),
                unusable: None,
            },
            Err(why) => Leftovers {
                files: Vec::new(),
                unusable: Some(why),
            },
        };
        if leftovers.files.iter().any(|f| f.fate == Fate::Removed) {
            // The removals on disk before the `SHA256SUMS` that no longer lists them.
            dir.sync_all()?;
        }
        std::fs::rename(
            self.dir.join(temporary(SHA256SUMS)),
            self.dir.join(SHA256SUMS),
        )?;
        dir.sync_all()?;
        Ok(leftovers)
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

/// Whether `name` is a name `build` writes a node's file under: `<node>.yaml` or
/// `<node>.ign`, where `<node>` is a name validation accepts (a DNS label:
/// [`crate::validate::is_dns_label`]). So never a path (`/`, `..`), a dot file,
/// `SHA256SUMS`, or a file such as `notes.txt`: only such names are ever removed.
pub fn is_node_file_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(node, extension)| {
        Envelope::ALL.iter().any(|e| e.extension() == extension)
            && crate::validate::is_dns_label(node)
    })
}

/// What [`Staging::commit`] did with the files of the previous build that this one does
/// not write: the names the previous `SHA256SUMS` lists that are node file names
/// ([`is_node_file_name`]) and that this build does not write. Each is removed when it is
/// a regular file that is a node's file as `build` writes it ([`ours`]); a file the
/// previous `SHA256SUMS` does not list is never touched. When
/// that `SHA256SUMS` cannot be used, nothing is removed and `unusable` says why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// In name order.
    pub files: Vec<Leftover>,
    pub unusable: Option<Unusable>,
}

/// A file of the previous build that this one does not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub name: String,
    /// The file this build writes for the same node instead, when the node is still in
    /// the spec under another envelope (`cp-3.ign` for `cp-3.yaml`: it moved to Flatcar).
    pub successor: Option<String>,
    pub fate: Fate,
}

/// What became of a [`Leftover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Removed,
    /// Kept: a symlink, which `build` never writes (and removing it would not remove what
    /// it points at).
    Symlink,
    /// Kept: a directory, FIFO, socket or device, which `build` never writes.
    NotAFile,
    /// Kept: a regular file that is not a node's file as `build` writes it ([`ours`]): a
    /// `SHA256SUMS` another tool wrote may list files of the user's own.
    NotOurs,
    /// Kept: removing it (or looking at it) failed.
    Failed(IoReason),
}

/// Why the previous `SHA256SUMS` was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// A symlink, a directory, ...: not the file `build` writes.
    NotAFile,
    Unreadable(IoReason),
    /// This line (from 1) is not `<sha256>  <name>` as `build` writes it.
    Malformed {
        line: usize,
    },
}

impl Leftover {
    /// Why this build does not write the file.
    fn why(&self) -> String {
        match &self.successor {
            None => "node no longer in the spec".into(),
            Some(now) => format!("the node's file is now {now}"),
        }
    }
}

impl Leftovers {
    /// `removed DIR/NAME (why)`, a line per removed file: what `build` prints after its
    /// `wrote` lines.
    pub fn removed_lines(&self, dir: &Utf8Path) -> String {
        self.files
            .iter()
            .filter(|f| f.fate == Fate::Removed)
            .map(|f| format!("removed {} ({})\n", dir.join(&f.name), f.why()))
            .collect()
    }

    /// A warning for each leftover that was kept, and for a previous `SHA256SUMS` that was
    /// not used: what happened, and what to do about it.
    pub fn warnings(&self, dir: &Utf8Path) -> String {
        let mut out = String::new();
        if let Some(unusable) = &self.unusable {
            let sums = dir.join(SHA256SUMS);
            let why = match unusable {
                Unusable::NotAFile => "it is not a regular file".to_string(),
                Unusable::Unreadable(reason) => format!("cannot read it: {reason}"),
                Unusable::Malformed { line } => {
                    format!("line {line} is not `<sha256 in hex>  <file name>`")
                }
            };
            let _ = write!(
                out,
                "warning: the previous {sums} was not used: {why}; no file of the previous build was removed\n  = help: files of nodes no longer in the spec may still be in {dir}, with their secrets: remove the .yaml and .ign files the new SHA256SUMS does not list, if they are not yours\n"
            );
        }
        for f in &self.files {
            let path = dir.join(&f.name);
            let why = f.why();
            let (what, help) = match &f.fate {
                Fate::Removed => continue,
                Fate::Symlink => (
                    "it is a symlink, not the file meshboot wrote".to_string(),
                    "meshboot removes only regular files; remove it yourself if nothing needs it",
                ),
                Fate::NotAFile => (
                    "it is not a regular file, not the file meshboot wrote".to_string(),
                    "meshboot removes only regular files; remove it yourself if nothing needs it",
                ),
                Fate::NotOurs => (
                    format!(
                        "it is not a node's file as meshboot writes it (it does not name {})",
                        crate::plan::BOOTSTRAP_PATH
                    ),
                    "meshboot removes only the node files it wrote; remove it yourself if nothing needs it",
                ),
                Fate::Failed(reason) => (
                    format!("cannot remove it: {reason}"),
                    "it may hold the node's secrets: remove it yourself (the new SHA256SUMS does not list it, so the next build will not try again)",
                ),
            };
            let _ = write!(
                out,
                "warning: kept {path} ({why}): {what}\n  = help: {help}\n"
            );
        }
        out
    }
}

/// The names the `SHA256SUMS` in `dir` lists, read as `build` writes it: one
/// `<sha256 in hex>  <name>` per line. No `SHA256SUMS` there: no names (a first build).
fn previous_listing(dir: &Utf8Path) -> Result<Vec<String>, Unusable> {
    let path = dir.join(SHA256SUMS);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Unusable::Unreadable(IoReason::from_io(&e))),
        Ok(m) if !m.file_type().is_file() => return Err(Unusable::NotAFile),
        Ok(_) => {}
    }
    let bytes = std::fs::read(&path).map_err(|e| Unusable::Unreadable(IoReason::from_io(&e)))?;
    let text = String::from_utf8(bytes).map_err(|_| Unusable::Unreadable(IoReason::NotUtf8))?;
    listed_names(&text)
}

/// The names `text`, a `SHA256SUMS` as [`sha256sums`] writes it, lists; the first line that
/// is not `<64 lowercase hex digits><two spaces><name>` makes it [`Unusable::Malformed`].
fn listed_names(text: &str) -> Result<Vec<String>, Unusable> {
    text.split_terminator('\n')
        .enumerate()
        .map(|(i, line)| {
            let sum = line.get(..64);
            let name = line.get(64..).and_then(|rest| rest.strip_prefix("  "));
            match (sum, name) {
                (Some(sum), Some(name))
                    if !name.is_empty()
                        && sum.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
                {
                    Ok(name.to_string())
                }
                _ => Err(Unusable::Malformed { line: i + 1 }),
            }
        })
        .collect()
}

/// Whether the file at `path` is a node's file as `build` writes it: within twice Hetzner's
/// limit (`build` writes nothing over it) and naming the bootstrap's path, which every
/// node's envelope delivers and names in the clear (cloud-init's `write_files` path,
/// Ignition's `storage.files` path, compressed or not). A file of the user's own that a
/// foreign `SHA256SUMS` happens to list (a directory of cloud-configs another tool
/// checksums) is not removed. A file that cannot be read is not ours either.
fn ours(path: &Utf8Path) -> bool {
    use std::io::Read as _;
    let bound = 2 * USER_DATA_LIMIT;
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(bound as u64 + 1).read_to_end(&mut bytes));
    let marker = crate::plan::BOOTSTRAP_PATH.as_bytes();
    read.is_ok() && bytes.len() <= bound && bytes.windows(marker.len()).any(|w| w == marker)
}

/// Removes from `dir` the node files `listed` (by the previous `SHA256SUMS`) that this
/// build does not write (`written`): each regular file that is [`ours`] is unlinked; a
/// file that is not, a symlink or anything else is kept (`unlink` would never follow a link, but a link is not meshboot's). A name
/// that is already gone is no leftover.
fn remove_leftovers(dir: &Utf8Path, listed: &[String], written: &[String]) -> Vec<Leftover> {
    let node_of = |name: &str| name.rsplit_once('.').map(|(node, _)| node.to_string());
    let written_by_node: BTreeMap<String, &String> = written
        .iter()
        .filter_map(|w| Some((node_of(w)?, w)))
        .collect();
    let written: BTreeSet<&String> = written.iter().collect();
    let gone: BTreeSet<&String> = listed
        .iter()
        .filter(|n| is_node_file_name(n) && !written.contains(n))
        .collect();
    gone.into_iter()
        .filter_map(|name| {
            let path = dir.join(name);
            let fate = match std::fs::symlink_metadata(&path) {
                Err(e) if e.kind() == ErrorKind::NotFound => return None,
                Err(e) => Fate::Failed(IoReason::from_io(&e)),
                Ok(m) if m.file_type().is_symlink() => Fate::Symlink,
                Ok(m) if !m.file_type().is_file() => Fate::NotAFile,
                Ok(_) if !ours(&path) => Fate::NotOurs,
                Ok(_) => match std::fs::remove_file(&path) {
                    Ok(()) => Fate::Removed,
                    Err(e) if e.kind() == ErrorKind::NotFound => return None,
                    Err(e) => Fate::Failed(IoReason::from_io(&e)),
                },
            };
            Some(Leftover {
                name: name.clone(),
                successor: node_of(name)
                    .and_then(|node| written_by_node.get(&node))
                    .map(|w| (*w).clone()),
                fate,
            })
        })
        .collect()
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

    /// A `SHA256SUMS` as [`sha256sums`] writes it for `files` (name, contents).
    fn sums_of(files: &[(&str, &str)]) -> String {
        let summaries: Vec<Summary> = files
            .iter()
            .map(|(name, contents)| Summary {
                file_name: (*name).into(),
                sha256: Some(sha256_hex(contents.as_bytes())),
                ..artifact(name, contents.len())
            })
            .collect();
        sha256sums(&summaries)
    }

    /// Stages `files` into `dir` and commits them with their `SHA256SUMS`.
    fn build(dir: &Utf8Path, files: &[(&str, &str)]) -> Leftovers {
        let s = Staging::open(dir).unwrap();
        for (name, contents) in files {
            s.stage(name, contents.as_bytes()).unwrap();
        }
        s.commit(&sums_of(files)).unwrap()
    }

    fn names(dir: &Utf8Path) -> Vec<String> {
        listing(dir).into_iter().map(|(name, _)| name).collect()
    }

    #[test]
    fn commit_removes_the_files_of_the_previous_build_that_it_does_not_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap().join("out");
        // Node files as build writes them name the bootstrap's path (`ours`).
        let first = build(
            &dir,
            &[
                ("a.yaml", "/opt/meshboot/bootstrap.sh 1"),
                ("b.yaml", "/opt/meshboot/bootstrap.sh 2"),
                ("c.yaml", "/opt/meshboot/bootstrap.sh 3"),
            ],
        );
        assert_eq!(
            first,
            Leftovers::default(),
            "a first build has no leftovers"
        );
        // The user's own files beside them: never listed, never touched.
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        std::fs::write(dir.join("extra.yaml"), "mine too").unwrap();
        // b left the spec; c moved to an Ignition OS.
        let second = build(&dir, &[("a.yaml", "4"), ("c.ign", "5")]);
        let removed = |name: &str, successor: Option<&str>| Leftover {
            name: name.into(),
            successor: successor.map(String::from),
            fate: Fate::Removed,
        };
        assert_eq!(
            second,
            Leftovers {
                files: vec![removed("b.yaml", None), removed("c.yaml", Some("c.ign"))],
                unusable: None,
            }
        );
        assert_eq!(
            names(&dir),
            ["SHA256SUMS", "a.yaml", "c.ign", "extra.yaml", "notes.txt"]
        );
        assert_eq!(
            second.removed_lines(&dir),
            format!(
                "removed {dir}/b.yaml (node no longer in the spec)\nremoved {dir}/c.yaml (the node's file is now c.ign)\n"
            )
        );
        assert_eq!(second.warnings(&dir), "");
        // The same build again: nothing is left over.
        assert_eq!(
            build(&dir, &[("a.yaml", "4"), ("c.ign", "5")]),
            Leftovers::default()
        );
        // A build that is aborted (refused) removes nothing, though it does not write c.ign.
        let s = Staging::open(&dir).unwrap();
        s.stage("a.yaml", b"6").unwrap();
        s.abort();
        assert_eq!(
            names(&dir),
            ["SHA256SUMS", "a.yaml", "c.ign", "extra.yaml", "notes.txt"]
        );
    }

    #[test]
    fn commit_removes_only_regular_files_under_node_file_names_in_the_directory() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        let dir = root.join("out");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(root.join("outside.yaml"), "not in the directory").unwrap();
        std::fs::write(root.join("target.yaml"), "a link's target").unwrap();
        for name in [
            "sub/x.yaml",
            ".hidden.yaml",
            "notes.txt",
            "UPPER.yaml",
            "kept.yaml",
            "old.ign",
            "foreign.yaml",
        ] {
            // Each a node's file as build writes it, but for foreign.yaml: a file of the
            // user's own that a SHA256SUMS of another tool lists.
            let contents = match name {
                "foreign.yaml" => "#cloud-config\nhostname: bastion\n".to_string(),
                _ => format!("{} {name}", crate::plan::BOOTSTRAP_PATH),
            };
            std::fs::write(dir.join(name), contents).unwrap();
        }
        // As large as no node's file is, naming the bootstrap's path: not ours either.
        let big = format!(
            "{}{}",
            crate::plan::BOOTSTRAP_PATH,
            "x".repeat(2 * USER_DATA_LIMIT)
        );
        std::fs::write(dir.join("big.yaml"), big).unwrap();
        symlink(root.join("target.yaml"), dir.join("link.yaml")).unwrap();
        std::fs::create_dir(dir.join("dir.yaml")).unwrap();
        // A previous SHA256SUMS that lists all of them, and paths out of the directory.
        let listed = [
            "../outside.yaml",
            "sub/x.yaml",
            ".hidden.yaml",
            "notes.txt",
            "UPPER.yaml",
            "SHA256SUMS",
            "link.yaml",
            "dir.yaml",
            "gone.yaml",
            "kept.yaml",
            "old.ign",
            "foreign.yaml",
            "big.yaml",
        ];
        let previous: Vec<(&str, &str)> = listed.iter().map(|n| (*n, "x")).collect();
        std::fs::write(dir.join(SHA256SUMS), sums_of(&previous)).unwrap();

        let leftovers = build(&dir, &[("kept.yaml", "new")]);
        let kept = |name: &str, fate: Fate| Leftover {
            name: name.into(),
            successor: None,
            fate,
        };
        assert_eq!(
            leftovers.files,
            [
                kept("big.yaml", Fate::NotOurs),
                kept("dir.yaml", Fate::NotAFile),
                kept("foreign.yaml", Fate::NotOurs),
                kept("link.yaml", Fate::Symlink),
                kept("old.ign", Fate::Removed),
            ]
        );
        assert_eq!(
            names(&dir),
            [
                ".hidden.yaml",
                "SHA256SUMS",
                "UPPER.yaml",
                "big.yaml",
                "dir.yaml",
                "foreign.yaml",
                "kept.yaml",
                "link.yaml",
                "notes.txt",
                "sub"
            ]
        );
        assert!(dir.join("sub/x.yaml").is_file());
        assert!(root.join("outside.yaml").is_file());
        assert_eq!(
            std::fs::read_to_string(dir.join("link.yaml")).unwrap(),
            "a link's target"
        );
        assert_eq!(
            leftovers.warnings(&dir),
            format!(
                "warning: kept {dir}/big.yaml (node no longer in the spec): it is not a node's file as meshboot writes it (it does not name /opt/meshboot/bootstrap.sh)\n  = help: meshboot removes only the node files it wrote; remove it yourself if nothing needs it\n\
                 warning: kept {dir}/dir.yaml (node no longer in the spec): it is not a regular file, not the file meshboot wrote\n  = help: meshboot removes only regular files; remove it yourself if nothing needs it\n\
                 warning: kept {dir}/foreign.yaml (node no longer in the spec): it is not a node's file as meshboot writes it (it does not name /opt/meshboot/bootstrap.sh)\n  = help: meshboot removes only the node files it wrote; remove it yourself if nothing needs it\n\
                 warning: kept {dir}/link.yaml (node no longer in the spec): it is a symlink, not the file meshboot wrote\n  = help: meshboot removes only regular files; remove it yourself if nothing needs it\n"
            )
        );
        assert_eq!(
            leftovers.removed_lines(&dir),
            format!("removed {dir}/old.ign (node no longer in the spec)\n")
        );
    }

    #[test]
    fn an_unusable_previous_sha256sums_removes_nothing_and_says_why() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        let dir = root.join("out");
        let good = sums_of(&[("a.yaml", "1"), ("b.yaml", "2")]);
        /// What a case does to the previous build's SHA256SUMS (its path).
        type Spoil<'a> = &'a dyn Fn(&Utf8Path);
        let cases: [(&str, Spoil, Unusable); 5] = [
            (
                "a line that is no checksum line",
                &|sums| std::fs::write(sums, format!("{good}garbage\n")).unwrap(),
                Unusable::Malformed { line: 3 },
            ),
            (
                "one space between sum and name",
                &|sums| std::fs::write(sums, good.replacen("  ", " ", 1)).unwrap(),
                Unusable::Malformed { line: 1 },
            ),
            (
                "an upper-case sum",
                &|sums| std::fs::write(sums, good.to_uppercase()).unwrap(),
                Unusable::Malformed { line: 1 },
            ),
            (
                "not UTF-8",
                &|sums| std::fs::write(sums, b"\xff\xfe").unwrap(),
                Unusable::Unreadable(IoReason::NotUtf8),
            ),
            (
                "a symlink to a good one elsewhere",
                &|sums| {
                    std::fs::write(root.join("elsewhere"), &good).unwrap();
                    std::fs::remove_file(sums).unwrap();
                    symlink(root.join("elsewhere"), sums).unwrap();
                },
                Unusable::NotAFile,
            ),
        ];
        for (what, spoil, why) in cases {
            build(&dir, &[("a.yaml", "1"), ("b.yaml", "2")]);
            spoil(&dir.join(SHA256SUMS));
            let leftovers = build(&dir, &[("a.yaml", "1")]);
            assert_eq!(
                leftovers,
                Leftovers {
                    files: Vec::new(),
                    unusable: Some(why)
                },
                "{what}"
            );
            assert_eq!(names(&dir), ["SHA256SUMS", "a.yaml", "b.yaml"], "{what}");
            // The new SHA256SUMS is in place, a regular file: the next build can use it.
            assert_eq!(
                std::fs::read_to_string(dir.join(SHA256SUMS)).unwrap(),
                sums_of(&[("a.yaml", "1")]),
                "{what}"
            );
            assert!(!dir.join(SHA256SUMS).is_symlink(), "{what}");
            assert_eq!(leftovers.removed_lines(&dir), "", "{what}");
        }
        let malformed = Leftovers {
            files: Vec::new(),
            unusable: Some(Unusable::Malformed { line: 3 }),
        };
        assert_eq!(
            malformed.warnings(&dir),
            format!(
                "warning: the previous {dir}/SHA256SUMS was not used: line 3 is not `<sha256 in hex>  <file name>`; no file of the previous build was removed\n  = help: files of nodes no longer in the spec may still be in {dir}, with their secrets: remove the .yaml and .ign files the new SHA256SUMS does not list, if they are not yours\n"
            )
        );
    }

    #[test]
    fn sha256sums_reads_back_as_the_names_it_lists() {
        let sums = sums_of(&[("b.ign", "2"), ("a.yaml", "1")]);
        assert_eq!(
            listed_names(&sums),
            Ok(vec!["a.yaml".to_string(), "b.ign".to_string()])
        );
        assert_eq!(listed_names(""), Ok(Vec::new()));
    }

    #[test]
    fn node_file_names_are_plain_names_meshboot_writes() {
        for name in ["cp-1.yaml", "worker-12.ign", "a.yaml", "burst.ign"] {
            assert!(is_node_file_name(name), "{name}");
        }
        for name in [
            "SHA256SUMS",
            "notes.txt",
            "cp-1.yml",
            "cp-1.json",
            "cp-1.yaml.tmp",
            ".cp-1.yaml.tmp",
            ".yaml",
            "../cp-1.yaml",
            "sub/cp-1.yaml",
            "/etc/cp-1.yaml",
            "CP-1.yaml",
            "-cp.yaml",
            "cp-1.yaml\r",
            "cp 1.yaml",
        ] {
            assert!(!is_node_file_name(name), "{name}");
        }
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
