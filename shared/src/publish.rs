//! The tables directory: versioned tables published atomically behind a `CURRENT` pointer.
//!
//! ```text
//! <tables-dir>/
//!   CURRENT                 one line: the live version's directory name
//!   <version>/              YYYYMMDDTHHMMSSZ, never changed once complete
//!     vouchers.parquet
//!     manifest.json
//! ```
//!
//! A writer stages a version in a hidden directory, fsyncs it, renames it into place and only
//! then points `CURRENT` at it (write to a temporary name, fsync, rename). A reader that finds a
//! version in `CURRENT` therefore always finds it complete, and a crash at any moment leaves the
//! previous version live. Writers take an exclusive lock on `<tables-dir>/.lock` while they
//! reserve a version name and while they move `CURRENT`, so concurrent runs never share a
//! directory and a publish only ever moves `CURRENT` forward; only a promotion
//! ([`crate::versions`]) may move it back. A version the gate held is renamed into place the
//! same way but `CURRENT` stays. Each move of `CURRENT`, and each hold, is appended to the
//! publish log ([`crate::publish_log`]) under the same lock.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::publish_log::{self, Action, LogEntry};

pub const CURRENT: &str = "CURRENT";
pub const TABLE_FILE: &str = "vouchers.parquet";
pub const MANIFEST_FILE: &str = "manifest.json";
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

    /// Every complete version directory, oldest first.
    pub fn versions(&self) -> Result<Vec<Version>, PublishError> {
        let mut versions: Vec<Version> = self
            .entries()?
            .into_iter()
            .filter_map(|name| Version::parse(&name))
            .collect();
        versions.sort();
        Ok(versions)
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

    /// Takes the directory's writer lock; it is released when the returned file is dropped
    /// (or the process dies).
    pub(crate) fn lock(&self) -> Result<File, PublishError> {
        let path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("cannot open lock file", &path))?;
        file.lock().map_err(io_err("cannot lock", &path))?;
        Ok(file)
    }

    /// Reserves a new version, newer than every version and reservation present, and creates
    /// its staging directory.
    pub fn stage(&self, now: DateTime<Utc>) -> Result<Staged, PublishError> {
        fs::create_dir_all(&self.root).map_err(io_err("cannot create", &self.root))?;
        let _lock = self.lock()?;
        self.remove_abandoned_staging()?;
        let newest = self
            .entries()?
            .iter()
            .filter_map(|name| Version::parse(name.strip_prefix(STAGING_PREFIX).unwrap_or(name)))
            .chain(self.current()?)
            .max();
        let mut version = Version::at(now);
        if let Some(newest) = newest
            && version <= newest
        {
            version = newest.next();
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
    /// roll-back would return to (see [`crate::versions::Protected`]). Returns the versions deleted.
    pub fn prune(&self, keep: usize) -> Result<Vec<Version>, PublishError> {
        let _lock = self.lock()?;
        let versions = self.versions()?;
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
    /// With [`Direction::Forward`], a newer live version stays.
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
        let tmp = self.root.join(CURRENT_TMP);
        let mut file = File::create(&tmp).map_err(io_err("cannot create", &tmp))?;
        writeln!(file, "{version}").map_err(io_err("cannot write", &tmp))?;
        file.sync_all().map_err(io_err("cannot fsync", &tmp))?;
        let current = self.root.join(CURRENT);
        fs::rename(&tmp, &current).map_err(io_err("cannot rename into place", &current))?;
        sync_dir(&self.root)?;
        let entry = LogEntry::new(
            Utc::now(),
            action,
            live,
            version,
            &because.reason,
            &because.by,
        );
        self.record(&entry);
        Ok(Moved::To { from: live })
    }

    /// Appends to the publish log. `CURRENT` has moved (or the version is sealed) by then, so
    /// a failure is logged rather than returned: the change itself succeeded.
    pub(crate) fn record(&self, entry: &LogEntry) {
        if let Err(e) = publish_log::append(&self.root, entry) {
            log::error!(
                "{} {}: done, but not recorded in the publish log: {}",
                entry.action.name(),
                entry.to,
                crate::errors::Chain(&e)
            );
        }
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
        self.record(&entry);
        Ok(())
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
    /// version is already live, and logs the move.
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
    /// logs the hold. A promotion can make it live later.
    pub fn hold(self, because: &Because) -> Result<Version, PublishError> {
        let (tables, version) = self.seal()?;
        tables.log_hold(version, because)?;
        Ok(version)
    }

    /// fsyncs every file of the version and renames its directory into place.
    fn seal(mut self) -> Result<(TablesDir, Version), PublishError> {
        // The owner file is not part of the version. Without it, the directory is only
        // removed by others once it is a day old, and it is renamed well before that.
        let owner_path = self.dir.join(OWNER_FILE);
        fs::remove_file(&owner_path).map_err(io_err("cannot delete", &owner_path))?;
        self.owner = None;
        let entries = fs::read_dir(&self.dir).map_err(io_err("cannot list", &self.dir))?;
        for entry in entries {
            let path = entry.map_err(io_err("cannot list", &self.dir))?.path();
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io_err("cannot fsync", &path))?;
        }
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

    fn publish(tables: &TablesDir, now: DateTime<Utc>) -> Published {
        let staged = tables.stage(now).expect("stage");
        fs::write(staged.path(TABLE_FILE), b"table").expect("write");
        staged.commit().expect("commit")
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
        let version = live.commit().expect("commit").version;
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
        let older = tables.stage(at(10, 0, 0)).expect("stage");
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
}
