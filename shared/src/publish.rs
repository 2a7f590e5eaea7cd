//! The tables directory: versioned tables published atomically behind a `CURRENT` pointer.
//!
//! ```text
//! <tables-dir>/
//!   CURRENT                 one line: the live version's directory name
//!   <version>/              YYYYMMDDTHHMMSSZ, never changed once complete
//!     vouchers.parquet
//!     manifest.json
//!     SHA256SUMS            the SHA-256 of every other file, as `sha256sum` writes them
//! ```
//!
//! Only a directory (not a symlink) with a manifest naming it is a version: anything else
//! with a version's name is [`Junk`], which is listed, never counted as a version, never used
//! to name the next one and never deleted.
//!
//! A writer stages a version in a hidden directory, fsyncs it, renames it into place and only
//! then points `CURRENT` at it (write to a temporary name, fsync, rename). A reader that finds a
//! version in `CURRENT` therefore always finds it complete, and a crash at any moment leaves the
//! previous version live. Writers take an exclusive lock on `<tables-dir>/.lock` while they
//! reserve a version name and while they move `CURRENT`, so concurrent runs never share a
//! directory and a publish only ever moves `CURRENT` forward; only a promotion
//! ([`crate::versions`]) may move it back. A version the gate held is renamed into place the
//! same way but `CURRENT` stays. Each move of `CURRENT`, and each hold, is appended to the
//! publish log ([`crate::publish_log`]) under the same lock; a move is announced in a pending
//! file first, so that a crash between the move and its log entry is settled by the next
//! command (see [`crate::publish_log`]).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::publish_log::{self, Action, After, LogEntry, Pending};

pub const CURRENT: &str = "CURRENT";
pub const TABLE_FILE: &str = "vouchers.parquet";
pub const MANIFEST_FILE: &str = "manifest.json";
/// In a version: the SHA-256 of each of its other files, one `<hex>  <name>` line each.
pub const CHECKSUMS_FILE: &str = "SHA256SUMS";
const LOCK_FILE: &str = ".lock";
const CURRENT_TMP: &str = ".CURRENT.tmp";
const STAGING_PREFIX: &str = ".staging-";
const VERSION_FORMAT: &str = "%Y%m%dT%H%M%SZ";
/// Inside a staging directory: locked by the run writing it for as long as it lives, so that a
/// later run can tell a directory a killed run left behind from one still being written.
const OWNER_FILE: &str = ".owner";
/// Staging directories without an owner file (a run killed between creating the directory and
/// locking its owner file) count as abandoned once this old.
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);

/// A version name: the UTC time of its run, `YYYYMMDDTHHMMSSZ`. Names sort by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(NaiveDateTime);

impl Version {
    /// Parses a version name; anything else (including paths) is refused.
    pub fn parse(name: &str) -> Option<Version> {
        if name.len() != 16 {
            return None;
        }
        NaiveDateTime::parse_from_str(name, VERSION_FORMAT)
            .ok()
            .map(Version)
    }

    fn at(time: DateTime<Utc>) -> Version {
        let t = time.naive_utc();
        Version(t - TimeDelta::nanoseconds(i64::from(t.and_utc().timestamp_subsec_nanos())))
    }

    fn next(self) -> Version {
        Version(self.0 + TimeDelta::seconds(1))
    }

    /// When the version was made.
    pub fn time(self) -> DateTime<Utc> {
        self.0.and_utc()
    }
}

impl std::str::FromStr for Version {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Version::parse(name).ok_or_else(|| {
            format!(
                "{:?} is not a version name: expected YYYYMMDDTHHMMSSZ, e.g. 20261123T101000Z",
                name.chars().take(64).collect::<String>()
            )
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format(VERSION_FORMAT))
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Version::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{:?} is not a version name (YYYYMMDDTHHMMSSZ)",
                name.chars().take(64).collect::<String>()
            ))
        })
    }
}

/// A failure to read or change a tables directory.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{action} {path}", path = path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{path} holds {found:?}, which is not a version name (YYYYMMDDTHHMMSSZ)")]
    BadCurrent { path: PathBuf, found: String },
    #[error("{} is not a valid canary record", path.display())]
    BadCanary {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PublishError + 'a {
    move |source| PublishError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// An entry of a tables directory named like a version that is not one: a file, a symlink,
/// or a directory without a valid manifest naming it. voucher-etl did not make it (or it was
/// damaged since), so it is listed and left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Junk {
    pub name: Version,
    /// What it is instead, in words.
    pub why: String,
}

/// The entries of a tables directory named like versions.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// The versions, oldest first.
    pub versions: Vec<Version>,
    /// The rest, oldest name first.
    pub junk: Vec<Junk>,
}

/// A tables directory.
#[derive(Debug, Clone)]
pub struct TablesDir {
    root: PathBuf,
}

/// What [`Staged::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub version: Version,
    /// False when a newer version was already live (a concurrent run finished first).
    pub live: bool,
}

/// Why a version was published or held, and by whom, for the publish log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Because {
    pub reason: String,
    pub by: String,
}

impl Because {
    pub fn new(reason: impl Into<String>, by: impl Into<String>) -> Because {
        Because {
            reason: reason.into(),
            by: by.into(),
        }
    }
}

/// What [`TablesDir::move_current`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// `CURRENT` names the version now; `from` was live before.
    To { from: Option<Version> },
    /// A publish found this newer version live and left it.
    NewerLive(Version),
}

/// How `CURRENT` may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// A publish: never to a version older than the live one.
    Forward,
    /// A promotion: to any complete version.
    Any,
}

impl TablesDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TablesDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn version_dir(&self, version: Version) -> PathBuf {
        self.root.join(version.to_string())
    }

    pub fn table_path(&self, version: Version) -> PathBuf {
        self.version_dir(version).join(TABLE_FILE)
    }

    pub fn manifest_path(&self, version: Version) -> PathBuf {
        self.version_dir(version).join(MANIFEST_FILE)
    }

    /// A version's manifest. It only describes the table, so a version without a readable one
    /// can still be used: that is logged as a warning and `None` returned.
    pub fn manifest(&self, version: Version) -> Option<crate::manifest::Manifest> {
        let path = self.manifest_path(version);
        let result = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()));
        match result {
            Ok(manifest) => Some(manifest),
            Err(e) => {
                log::warn!(
                    "table version {version}: no usable manifest at {}: {e}; using the table without it",
                    path.display()
                );
                None
            }
        }
    }

    /// The live version, or `None` when nothing has been published yet.
    pub fn current(&self) -> Result<Option<Version>, PublishError> {
        let path = self.root.join(CURRENT);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        let name = text.trim();
        Version::parse(name)
            .map(Some)
            .ok_or_else(|| PublishError::BadCurrent {
                path,
                found: name.chars().take(64).collect(),
            })
    }

    /// Every version, oldest first: the directories with a valid manifest naming them.
    pub fn versions(&self) -> Result<Vec<Version>, PublishError> {
        Ok(self.scan()?.versions)
    }

    /// The versions, and the junk named like versions.
    pub fn scan(&self) -> Result<Scan, PublishError> {
        let mut scan = Scan::default();
        for name in self.entries()? {
            let Some(version) = Version::parse(&name) else {
                continue;
            };
            match self.not_a_version(version) {
                None => scan.versions.push(version),
                Some(why) => scan.junk.push(Junk { name: version, why }),
            }
        }
        scan.versions.sort();
        scan.junk.sort_by_key(|j| j.name);
        Ok(scan)
    }

    /// Why the entry named `version` is not a version, if it is not one.
    fn not_a_version(&self, version: Version) -> Option<String> {
        let path = self.version_dir(version);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) => return Some(format!("cannot be read: {e}")),
        };
        if meta.file_type().is_symlink() {
            return Some("a symbolic link, not a directory voucher-etl wrote".to_owned());
        }
        if !meta.is_dir() {
            return Some("a file, not a directory".to_owned());
        }
        let manifest = path.join(MANIFEST_FILE);
        let bytes = match fs::read(&manifest) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Some(format!("a directory without {MANIFEST_FILE}"));
            }
            Err(e) => return Some(format!("{MANIFEST_FILE} cannot be read: {e}")),
        };
        match serde_json::from_slice::<crate::manifest::Manifest>(&bytes) {
            Ok(m) if m.version == version.to_string() => None,
            Ok(m) => Some(format!(
                "its {MANIFEST_FILE} names version {:?}",
                m.version.chars().take(32).collect::<String>()
            )),
            Err(e) => Some(format!("{MANIFEST_FILE} is not a valid manifest: {e}")),
        }
    }

    fn entries(&self) -> Result<Vec<String>, PublishError> {
        let dir = fs::read_dir(&self.root).map_err(io_err("cannot list", &self.root))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(io_err("cannot list", &self.root))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Takes the directory's writer lock, then settles a change a killed command left half
    /// logged ([`TablesDir::reconcile`]); the lock is released when the returned file is
    /// dropped (or the process dies).
    pub(crate) fn lock(&self) -> Result<File, PublishError> {
        let path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("cannot open lock file", &path))?;
        file.lock().map_err(io_err("cannot lock", &path))?;
        self.reconcile()?;
        Ok(file)
    }

    /// Reserves a new version, newer than every version and reservation present, and creates
    /// its staging directory.
    pub fn stage(&self, now: DateTime<Utc>) -> Result<Staged, PublishError> {
        fs::create_dir_all(&self.root).map_err(io_err("cannot create", &self.root))?;
        let _lock = self.lock()?;
        self.remove_abandoned_staging()?;
        let entries = self.entries()?;
        // Junk does not count: a stray `20301231T000000Z` must not push names into 2030.
        let reserved = entries
            .iter()
            .filter_map(|name| Version::parse(name.strip_prefix(STAGING_PREFIX)?));
        let newest = self
            .versions()?
            .into_iter()
            .chain(reserved)
            .chain(self.current()?)
            .max();
        let mut version = Version::at(now);
        if let Some(newest) = newest
            && version <= newest
        {
            version = newest.next();
        }
        // Nor is a name junk holds taken over.
        while entries.contains(&version.to_string()) {
            version = version.next();
        }
        let dir = self.root.join(format!("{STAGING_PREFIX}{version}"));
        fs::create_dir(&dir).map_err(io_err("cannot create", &dir))?;
        let owner_path = dir.join(OWNER_FILE);
        let owner = File::create(&owner_path)
            .and_then(|f| f.try_lock().map_err(io::Error::from).map(|()| f))
            .map_err(io_err("cannot lock", &owner_path))?;
        Ok(Staged {
            tables: self.clone(),
            version,
            dir,
            owner: Some(owner),
            committed: false,
        })
    }

    /// Deletes the staging directories of runs that died before committing: those whose owner
    /// file no live run holds locked (or, without one, that are older than a day). A run still
    /// writing holds its lock, so its directory is never touched. Call with the writer lock held.
    fn remove_abandoned_staging(&self) -> Result<(), PublishError> {
        for name in self.entries()? {
            if !name.starts_with(STAGING_PREFIX) {
                continue;
            }
            let path = self.root.join(&name);
            if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                log::warn!(
                    "left {} alone: named like a staging directory, but not a directory voucher-etl made",
                    path.display()
                );
                continue;
            }
            let reason = match File::open(path.join(OWNER_FILE)) {
                Ok(owner) => match owner.try_lock() {
                    Ok(()) => "its run is gone (its owner lock was free)",
                    Err(_) => continue, // a live run is writing it
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let old = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > STALE_STAGING);
                    if !old {
                        continue;
                    }
                    "it has no owner file and is over a day old"
                }
                Err(e) => return Err(io_err("cannot open", &path.join(OWNER_FILE))(e)),
            };
            fs::remove_dir_all(&path).map_err(io_err("cannot delete", &path))?;
            log::info!(
                "removed abandoned staging directory {}: {reason}",
                path.display()
            );
        }
        Ok(())
    }

    /// Deletes the oldest versions so that at most `keep` remain, and staging directories
    /// that crashed runs left behind. Never deleted, even beyond `keep` (each is logged): the
    /// live version, the canary's, a held version newer than the live one, and the version a
    /// roll-back would return to (see [`crate::versions::Protected`]); nor junk, which is
    /// logged as left alone. Returns the versions deleted.
    pub fn prune(&self, keep: usize) -> Result<Vec<Version>, PublishError> {
        let _lock = self.lock()?;
        let Scan { versions, junk } = self.scan()?;
        for j in &junk {
            log::warn!(
                "left {} alone: not a version ({}); retention deletes only versions voucher-etl wrote",
                self.version_dir(j.name).display(),
                j.why
            );
        }
        let protected = crate::versions::Protected::find(self)?;
        let excess = versions.len().saturating_sub(keep.max(1));
        let mut removed = Vec::new();
        for version in versions.into_iter().take(excess) {
            if let Some(why) = protected.why(version) {
                log::info!("keeping version {version} beyond --keep {keep}: {why}");
                continue;
            }
            let dir = self.version_dir(version);
            fs::remove_dir_all(&dir).map_err(io_err("cannot delete", &dir))?;
            removed.push(version);
        }
        self.remove_abandoned_staging()?;
        Ok(removed)
    }

    /// Points `CURRENT` at `version` and logs the move; the caller holds the writer lock.
    /// With [`Direction::Forward`], a newer live version stays. Once `CURRENT` is renamed
    /// into place the move is done: nothing after it is returned as an error.
    pub(crate) fn move_current(
        &self,
        version: Version,
        direction: Direction,
        action: Action,
        because: &Because,
    ) -> Result<Moved, PublishError> {
        let live = self.current()?;
        if let Some(live) = live
            && direction == Direction::Forward
            && live > version
        {
            return Ok(Moved::NewerLive(live));
        }
        let entry = LogEntry::new(
            Utc::now(),
            action,
            live,
            version,
            &because.reason,
            &because.by,
        );
        let pending = Pending {
            after: After::Current { version },
            entries: vec![entry],
        };
        self.change_and_log(&pending, || self.write_current(version))?;
        Ok(Moved::To { from: live })
    }

    /// Replaces `CURRENT` atomically: a temporary file, fsync, rename, fsync of the directory.
    fn write_current(&self, version: Version) -> Result<(), PublishError> {
        let tmp = self.root.join(CURRENT_TMP);
        let mut file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        writeln!(file, "{version}").map_err(io_err("cannot write", &tmp))?;
        file.sync_all().map_err(io_err("cannot fsync", &tmp))?;
        let current = self.root.join(CURRENT);
        fs::rename(&tmp, &current).map_err(io_err("cannot rename into place", &current))?;
        if let Err(e) = sync_dir(&self.root) {
            log::warn!(
                "CURRENT names {version} now, but {}: a power cut may undo the move",
                crate::errors::Chain(&e)
            );
        }
        Ok(())
    }

    /// Logs that `version` was held: written complete, `CURRENT` left where it is.
    fn log_hold(&self, version: Version, because: &Because) -> Result<(), PublishError> {
        let _lock = self.lock()?;
        let entry = LogEntry::new(
            Utc::now(),
            Action::Hold,
            self.current()?,
            version,
            &because.reason,
            &because.by,
        );
        publish_log::append(&self.root, std::slice::from_ref(&entry))
    }
}

/// A version being written. Dropping it without [`Staged::commit`] deletes it.
#[derive(Debug)]
pub struct Staged {
    tables: TablesDir,
    version: Version,
    dir: PathBuf,
    /// The locked owner file: released when this is dropped or the process dies.
    owner: Option<File>,
    committed: bool,
}

impl Staged {
    pub fn version(&self) -> Version {
        self.version
    }

    /// The path of a file of this version, to be written before [`Staged::commit`].
    pub fn path(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    /// [`Staged::publish`] for a run with nothing more to say.
    pub fn commit(self) -> Result<Published, PublishError> {
        self.publish(&Because::new("published", "voucher-etl"))
    }

    /// Makes the version durable and complete, then points `CURRENT` at it unless a newer
    /// version is already live, and logs the move. An error means `CURRENT` did not move.
    pub fn publish(self, because: &Because) -> Result<Published, PublishError> {
        let (tables, version) = self.seal()?;
        let _lock = tables.lock()?;
        let moved = tables.move_current(version, Direction::Forward, Action::Publish, because)?;
        Ok(Published {
            version,
            live: matches!(moved, Moved::To { .. }),
        })
    }

    /// Makes the version durable and complete without making it live (the gate held it), and
    /// logs the hold. A promotion can make it live later. Once the version is in place it is
    /// held: a failure to log that is a warning, not an error.
    pub fn hold(self, because: &Because) -> Result<Version, PublishError> {
        let (tables, version) = self.seal()?;
        if let Err(e) = tables.log_hold(version, because) {
            log::warn!(
                "version {version} is held, but not recorded in the publish log: {}",
                crate::errors::Chain(&e)
            );
        }
        Ok(version)
    }

    /// Writes the checksums of the version's files, fsyncs them all and renames the directory
    /// into place.
    fn seal(mut self) -> Result<(TablesDir, Version), PublishError> {
        // The owner file is not part of the version. Without it, the directory is only
        // removed by others once it is a day old, and it is renamed well before that.
        let owner_path = self.dir.join(OWNER_FILE);
        fs::remove_file(&owner_path).map_err(io_err("cannot delete", &owner_path))?;
        self.owner = None;
        let mut sums = Vec::new(); // (name, line), to write them in name order
        let entries = fs::read_dir(&self.dir).map_err(io_err("cannot list", &self.dir))?;
        for entry in entries {
            let path = entry.map_err(io_err("cannot list", &self.dir))?.path();
            let bytes = fs::read(&path).map_err(io_err("cannot read", &path))?;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let line = format!("{}  {name}\n", crate::versions::sha256_hex(&bytes));
            sums.push((name.into_owned(), line));
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err("cannot fsync", &path))?;
        }
        sums.sort();
        let sums_path = self.dir.join(CHECKSUMS_FILE);
        File::create(&sums_path)
            .and_then(|mut f| {
                f.write_all(
                    sums.iter()
                        .map(|(_, l)| l.as_str())
                        .collect::<String>()
                        .as_bytes(),
                )?;
                f.sync_all()
            })
            .map_err(io_err("cannot write", &sums_path))?;
        sync_dir(&self.dir)?;
        let target = self.tables.version_dir(self.version);
        fs::rename(&self.dir, &target).map_err(io_err("cannot rename into place", &target))?;
        self.committed = true;
        sync_dir(self.tables.root())?;
        Ok((self.tables.clone(), self.version))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A file's bytes, or `None` when it does not exist.
pub(crate) fn read_if_any(path: &Path) -> Result<Option<Vec<u8>>, PublishError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

/// Makes a directory's entries (new names, renames) durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    fsync_dir(dir).map_err(io_err("cannot fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s)
            .single()
            .expect("valid time")
    }

    /// A version with a table (not Parquet: nothing here reads it) and a manifest naming it.
    fn publish(tables: &TablesDir, now: DateTime<Utc>) -> Published {
        write(tables.stage(now).expect("stage"))
            .commit()
            .expect("commit")
    }

    fn write(staged: Staged) -> Staged {
        fs::write(staged.path(TABLE_FILE), b"table").expect("write");
        let manifest = crate::manifest::Manifest {
            version: staged.version().to_string(),
            ..Default::default()
        };
        let json = serde_json::to_vec(&manifest).expect("json");
        fs::write(staged.path(MANIFEST_FILE), json).expect("write");
        staged
    }

    fn staging_dirs(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root)
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(STAGING_PREFIX))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_dead_runs_staging_is_removed_and_a_live_runs_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        // A live run: its Staged (and so its owner lock) is held.
        let live = tables.stage(at(10, 0, 0)).expect("stage");
        // A dead run: its directory and owner file are there, but nobody holds the lock, as
        // after a kill -9 (the kernel releases a dead process's locks).
        let dead = dir.path().join(format!("{STAGING_PREFIX}20261123T090000Z"));
        fs::create_dir(&dead).expect("mkdir");
        fs::write(dead.join(OWNER_FILE), b"").expect("owner");
        fs::write(dead.join(TABLE_FILE), b"half a table").expect("write");
        // Without an owner file and young: it may be a run that has not locked yet.
        let young = dir.path().join(format!("{STAGING_PREFIX}20261123T080000Z"));
        fs::create_dir(&young).expect("mkdir");

        let other = tables.stage(at(10, 0, 1)).expect("stage");
        let names = staging_dirs(dir.path());
        assert!(!names.iter().any(|n| n.ends_with("T090000Z")), "{names:?}");
        assert!(names.iter().any(|n| n.ends_with("T080000Z")), "{names:?}");
        assert!(live.dir.exists() && other.dir.exists());
        // Committed versions carry no owner file.
        let version = write(live).commit().expect("commit").version;
        assert!(!tables.version_dir(version).join(OWNER_FILE).exists());
        drop(other);
    }

    #[test]
    fn version_names_round_trip_and_refuse_paths() {
        let v = Version::at(at(10, 10, 0));
        assert_eq!(v.to_string(), "20261123T101000Z");
        assert_eq!(Version::parse("20261123T101000Z"), Some(v));
        for bad in [
            "../etc",
            "20261123T101000",
            "20261323T101000Z",
            "x20261123T10100Z",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn publishing_moves_current_and_keeps_names_increasing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path().join("tables"));
        assert_eq!(tables.current().expect("read"), None);
        let a = publish(&tables, at(10, 0, 0));
        assert!(a.live);
        assert_eq!(tables.current().expect("read"), Some(a.version));
        // A second run in the same second (or with a clock behind) still gets a newer name.
        let b = publish(&tables, at(9, 0, 0));
        assert_eq!(b.version.to_string(), "20261123T100001Z");
        assert_eq!(tables.current().expect("read"), Some(b.version));
        assert!(tables.table_path(b.version).exists());
        assert_eq!(tables.versions().expect("list"), vec![a.version, b.version]);
    }

    #[test]
    fn an_abandoned_stage_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let staged = tables.stage(at(10, 0, 0)).expect("stage");
        fs::write(staged.path(TABLE_FILE), b"half").expect("write");
        drop(staged);
        assert_eq!(tables.versions().expect("list"), vec![]);
        assert_eq!(tables.current().expect("read"), None);
        let names: Vec<_> = tables.entries().expect("list");
        assert!(
            names.iter().all(|n| !n.starts_with(STAGING_PREFIX)),
            "{names:?}"
        );
    }

    #[test]
    fn current_never_moves_backwards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let older = write(tables.stage(at(10, 0, 0)).expect("stage"));
        let newer = publish(&tables, at(10, 0, 0));
        let older = older.commit().expect("commit");
        assert!(!older.live);
        assert!(older.version < newer.version);
        assert_eq!(tables.current().expect("read"), Some(newer.version));
        assert!(tables.version_dir(older.version).exists());
    }

    #[test]
    fn prune_keeps_the_newest_and_never_the_live_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let versions: Vec<_> = (0..5)
            .map(|i| publish(&tables, at(10, i, 0)).version)
            .collect();
        // Make an old version live again, as an operator rolling back would.
        fs::write(dir.path().join(CURRENT), format!("{}\n", versions[0])).expect("write");
        let removed = tables.prune(2).expect("prune");
        assert_eq!(removed, versions[1..3].to_vec());
        assert_eq!(
            tables.versions().expect("list"),
            vec![versions[0], versions[3], versions[4]]
        );
        assert_eq!(tables.current().expect("read"), Some(versions[0]));
    }

    #[test]
    fn a_corrupt_current_is_an_error_not_a_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(CURRENT), "../../etc\n").expect("write");
        let err = TablesDir::new(dir.path()).current().unwrap_err();
        assert!(matches!(err, PublishError::BadCurrent { .. }), "{err}");
    }

    #[test]
    fn junk_named_like_versions_is_not_a_version_names_nothing_and_is_never_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let a = publish(&tables, at(10, 0, 0)).version;
        // Future names: an empty directory, a file, a symlink to a valid version elsewhere,
        // a directory whose manifest names another version; an old one without a manifest.
        let elsewhere = tempfile::tempdir().expect("tempdir");
        fs::copy(
            tables.manifest_path(a),
            elsewhere.path().join(MANIFEST_FILE),
        )
        .expect("copy");
        let root = dir.path();
        fs::create_dir(root.join("20301231T000000Z")).expect("mkdir");
        fs::write(root.join("20301230T000000Z"), b"notes").expect("write");
        std::os::unix::fs::symlink(elsewhere.path(), root.join("20301229T000000Z")).expect("ln");
        let copy = root.join("20301228T000000Z");
        fs::create_dir(&copy).expect("mkdir");
        fs::copy(tables.manifest_path(a), copy.join(MANIFEST_FILE)).expect("copy");
        fs::create_dir(root.join("20200101T000000Z")).expect("mkdir");
        // A symlink named like a version that would be deleted first, to a valid version.
        let old_link = root.join("20200102T000000Z");
        std::os::unix::fs::symlink(tables.version_dir(a), &old_link).expect("ln");

        let scan = tables.scan().expect("scan");
        assert_eq!(scan.versions, vec![a]);
        let junk: Vec<String> = scan.junk.iter().map(|j| j.name.to_string()).collect();
        assert_eq!(junk.len(), 6, "{:?}", scan.junk);
        let why = |name: &str| {
            let j = scan.junk.iter().find(|j| j.name.to_string() == name);
            j.map(|j| j.why.clone()).expect("listed")
        };
        assert!(why("20301229T000000Z").contains("symbolic link"));
        assert!(why("20301230T000000Z").contains("a file"));
        assert!(why("20301231T000000Z").contains("without manifest.json"));
        assert!(why("20301228T000000Z").contains("names version"));

        // The next version is named for its time, not after the junk.
        let b = publish(&tables, at(10, 0, 5)).version;
        assert_eq!(b.to_string(), "20261123T100005Z");
        let c = publish(&tables, at(10, 0, 6)).version;
        let removed = tables.prune(1).expect("prune");
        assert_eq!(removed, vec![a]);
        assert_eq!(tables.versions().expect("versions"), vec![b, c]);
        for name in junk {
            assert!(
                root.join(&name).symlink_metadata().is_ok(),
                "{name} deleted"
            );
        }
        assert!(elsewhere.path().join(MANIFEST_FILE).exists());
    }

    #[test]
    fn a_name_junk_holds_is_not_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        fs::write(dir.path().join("20261123T100000Z"), b"notes").expect("write");
        let v = publish(&tables, at(10, 0, 0)).version;
        assert_eq!(v.to_string(), "20261123T100001Z");
        assert_eq!(
            fs::read(dir.path().join("20261123T100000Z")).expect("read"),
            b"notes"
        );
    }

    #[test]
    fn sealing_writes_the_checksum_of_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v = publish(&tables, at(10, 0, 0)).version;
        let sums = fs::read_to_string(tables.version_dir(v).join(CHECKSUMS_FILE)).expect("sums");
        let manifest = fs::read(tables.manifest_path(v)).expect("manifest");
        let expected = format!(
            "{}  {MANIFEST_FILE}\n{}  {TABLE_FILE}\n",
            crate::versions::sha256_hex(&manifest),
            crate::versions::sha256_hex(b"table")
        );
        assert_eq!(sums, expected);
    }
}
