//! The versions of a tables directory as an operator sees them: each with its state and gate
//! outcome, the checks that make a version fit to serve, and promotion (approval of a held
//! version, or roll-back to an earlier one).
//!
//! A version's state follows from `CURRENT`, the publish log and its manifest:
//!
//! - `live`: `CURRENT` names it;
//! - `canary`: `CANARY` names it: it answers a share of customers ([`crate::canary`]);
//! - `previous`: it was live before (the log made it live; or, written before the gate, it is
//!   older than the live version and so was published in its turn);
//! - `held`: the gate held it and it was never made live;
//! - `unpublished`: complete, never live, not held: its run died before moving `CURRENT`, or a
//!   newer version was live when it finished;
//! - `junk`: named like a version but not one ([`crate::publish::Junk`]): listed, left alone.
//!
//! The API serves `CURRENT`, which only a publish that passed the gate (or `--no-gate`) or a
//! promotion moves, and the canary, which only `voucher-etl canary` sets: a held version is
//! never served unless someone promotes it or makes it the canary.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use serde::Serialize;

use crate::manifest::{GateOutcome, GateRecord, Manifest};
use crate::publish::{
    Because, CHECKSUMS_FILE, Direction, MANIFEST_FILE, Moved, PublishError, Scan, TABLE_FILE,
    TablesDir, Version,
};
use crate::publish_log::{self, Action, LogEntry};
use crate::table::{TableError, VoucherTable};

/// A version's place in the publishing history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Live,
    Canary,
    Held,
    Previous,
    Unpublished,
    Junk,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Live => "live",
            State::Canary => "canary",
            State::Held => "held",
            State::Previous => "previous",
            State::Unpublished => "unpublished",
            State::Junk => "junk",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a version cannot be read, listed or promoted.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("version {version} does not exist in {}; versions there: {known}", dir.display())]
    Unknown {
        version: Version,
        dir: PathBuf,
        known: String,
    },
    #[error("version {version} is incomplete: {} is missing or unreadable", path.display())]
    Incomplete {
        version: Version,
        path: PathBuf,
        source: io::Error,
    },
    #[error("version {version}: {} is not a valid manifest", path.display())]
    BadManifest {
        version: Version,
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("version {version}: {} is not a valid voucher table", path.display())]
    BadTable {
        version: Version,
        path: PathBuf,
        source: TableError,
    },
    #[error(
        "version {version} was changed after it was written ({what}); it will not be made live"
    )]
    Tampered { version: Version, what: String },
    #[error("version {version} is already live")]
    AlreadyLive { version: Version },
    #[error("version {version} is live: a canary tries a version that is not live yet")]
    CanaryIsLive { version: Version },
    #[error("nothing is live in {}, and no version was named", dir.display())]
    NothingLive { dir: PathBuf },
    #[error("{} holds no version", dir.display())]
    NoVersions { dir: PathBuf },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// A version's manifest, or why it has none.
pub fn read_manifest(tables: &TablesDir, version: Version) -> Result<Manifest, VersionError> {
    let path = tables.manifest_path(version);
    let bytes =
        std::fs::read(&path).map_err(|source| missing(tables, version, path.clone(), source))?;
    serde_json::from_slice(&bytes).map_err(|source| VersionError::BadManifest {
        version,
        path,
        source,
    })
}

/// A version's table, or why it cannot be read.
pub fn read_table(tables: &TablesDir, version: Version) -> Result<VoucherTable, VersionError> {
    read_table_bytes(tables, version).map(|(table, _)| table)
}

fn read_table_bytes(
    tables: &TablesDir,
    version: Version,
) -> Result<(VoucherTable, Bytes), VersionError> {
    let path = tables.table_path(version);
    let bytes = Bytes::from(
        std::fs::read(&path).map_err(|source| missing(tables, version, path.clone(), source))?,
    );
    let table = VoucherTable::read(bytes.clone()).map_err(|source| VersionError::BadTable {
        version,
        path,
        source,
    })?;
    Ok((table, bytes))
}

/// An unreadable file: the version is unknown when its directory is missing, else incomplete.
fn missing(tables: &TablesDir, version: Version, path: PathBuf, source: io::Error) -> VersionError {
    if tables.version_dir(version).is_dir() {
        return VersionError::Incomplete {
            version,
            path,
            source,
        };
    }
    let known = match tables.versions() {
        Ok(list) if list.is_empty() => "none".to_owned(),
        Ok(list) => list
            .iter()
            .rev()
            .take(10)
            .map(Version::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("cannot list them: {}", crate::errors::Chain(&e)),
    };
    VersionError::Unknown {
        version,
        dir: tables.root().to_owned(),
        known,
    }
}

/// The SHA-256 of `bytes`, in lower-case hex (as `manifest.profile.table_sha256`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A version fit to serve: complete, readable, and as it was written.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub table: VoucherTable,
    /// False for a version written before content hashes: its table was only checked to parse
    /// and match its manifest's row count.
    pub hash_checked: bool,
}

/// Checks that `version` is complete, that its table parses, and that its files are the ones
/// written: each file against its [`CHECKSUMS_FILE`] (the manifest included, so an edited
/// profile is caught), the table against its manifest's hash, row count and version name.
/// Versions written before [`CHECKSUMS_FILE`] are checked against the manifest only.
pub fn verify(tables: &TablesDir, version: Version) -> Result<Verified, VersionError> {
    let manifest = read_manifest(tables, version)?;
    let (table, bytes) = read_table_bytes(tables, version)?;
    let tampered = |what: String| VersionError::Tampered { version, what };
    let sums_checked = check_sums(tables, version, &bytes)?;
    if manifest.version != version.to_string() {
        return Err(tampered(format!(
            "its manifest names version {:?}",
            manifest.version.chars().take(32).collect::<String>()
        )));
    }
    let hash_checked = match &manifest.profile.table_sha256 {
        Some(expected) => {
            let found = sha256_hex(&bytes);
            if &found != expected {
                return Err(tampered(format!(
                    "{TABLE_FILE} has SHA-256 {found}, its manifest recorded {expected}"
                )));
            }
            true
        }
        None => sums_checked,
    };
    if table.rows().len() as u64 != manifest.table_rows {
        return Err(tampered(format!(
            "{TABLE_FILE} has {} rows, its manifest recorded {}",
            table.rows().len(),
            manifest.table_rows
        )));
    }
    Ok(Verified {
        manifest,
        table,
        hash_checked,
    })
}

/// Checks each file [`CHECKSUMS_FILE`] lists (which must include the table and the manifest)
/// against its recorded SHA-256. False when the version has no such file (written before it).
fn check_sums(tables: &TablesDir, version: Version, table: &[u8]) -> Result<bool, VersionError> {
    let dir = tables.version_dir(version);
    let path = dir.join(CHECKSUMS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(VersionError::Incomplete {
                version,
                path,
                source,
            });
        }
    };
    let tampered = |what: String| VersionError::Tampered { version, what };
    let mut listed = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let Some((expected, name)) = line.split_once("  ").filter(|(h, n)| {
            h.len() == 64 && !n.contains('/') && !n.is_empty() && *n != ".." && *n != "."
        }) else {
            return Err(tampered(format!(
                "{CHECKSUMS_FILE} line {} is not `<sha256>  <file>`: {:?}",
                n + 1,
                line.chars().take(100).collect::<String>()
            )));
        };
        let found = if name == TABLE_FILE {
            sha256_hex(table)
        } else {
            let file = dir.join(name);
            let bytes = std::fs::read(&file).map_err(|source| VersionError::Incomplete {
                version,
                path: file,
                source,
            })?;
            sha256_hex(&bytes)
        };
        if found != expected {
            return Err(tampered(format!(
                "{name} has SHA-256 {found}, {CHECKSUMS_FILE} recorded {expected}"
            )));
        }
        listed.insert(name);
    }
    for required in [TABLE_FILE, MANIFEST_FILE] {
        if !listed.contains(required) {
            return Err(tampered(format!(
                "{CHECKSUMS_FILE} does not list {required}"
            )));
        }
    }
    Ok(true)
}

/// One version as `versions` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionInfo {
    pub version: Version,
    pub state: State,
    /// From the manifest (absent when it cannot be read).
    pub created_at: Option<String>,
    pub rows_kept: Option<u64>,
    pub table_rows: Option<u64>,
    /// The gate's decision when the version was written (absent before the gate existed).
    pub gate: Option<GateRecord>,
    /// Whether a roll-back from the live version would return to this one.
    pub rollback_target: bool,
    /// Why it is not a version (state `junk`, or a live or canary one that is not): what
    /// is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The publish log's entries about this version, oldest first.
    pub events: Vec<LogEntry>,
}

/// Everything `versions` shows.
#[derive(Debug, Clone)]
pub struct Listing {
    pub live: Option<Version>,
    /// Newest first.
    pub versions: Vec<VersionInfo>,
    /// The whole publish log, oldest first.
    pub log: Vec<LogEntry>,
    /// What is wrong with the directory beyond its versions (an unreadable `CANARY`), in words.
    pub problems: Vec<String>,
}

/// What decides states: `CURRENT`, the log, and each version's gate outcome.
struct History {
    live: Option<Version>,
    canary: Option<Version>,
    /// Why `CANARY` cannot be read (then no canary is served).
    canary_problem: Option<String>,
    log: Vec<LogEntry>,
    made_live: BTreeSet<Version>,
}

impl History {
    fn read(tables: &TablesDir) -> Result<History, PublishError> {
        let log = publish_log::read(tables.root())?;
        let made_live = log
            .iter()
            .filter(|e| e.action.made_live())
            .map(|e| e.to)
            .collect();
        let (canary, canary_problem) = match tables.canary() {
            Ok(canary) => (canary.map(|c| c.version), None),
            Err(e) => (
                None,
                Some(format!(
                    "{}: no canary is served; `voucher-etl canary --off` removes it",
                    crate::errors::Chain(&e)
                )),
            ),
        };
        Ok(History {
            live: tables.current()?,
            canary,
            canary_problem,
            log,
            made_live,
        })
    }

    fn state(&self, version: Version, gate: Option<&GateRecord>) -> State {
        if Some(version) == self.live {
            State::Live
        } else if Some(version) == self.canary {
            State::Canary
        } else if self.made_live.contains(&version) {
            State::Previous
        } else if gate.is_some_and(|g| g.outcome == GateOutcome::Held) {
            State::Held
        } else if gate.is_none() && self.live.is_some_and(|live| version < live) {
            // Written before the gate and the log: every run was published in its turn.
            State::Previous
        } else {
            State::Unpublished
        }
    }

    /// The version a roll-back from the live one returns to: the one it replaced, if still
    /// there, else the newest earlier version that was live.
    fn rollback_target(&self, versions: &BTreeMap<Version, State>) -> Option<Version> {
        let live = self.live?;
        let replaced = self
            .log
            .iter()
            .rev()
            .find(|e| e.action.made_live() && e.to == live)
            .and_then(|e| e.from);
        if let Some(v) = replaced.filter(|v| versions.contains_key(v)) {
            return Some(v);
        }
        versions
            .range(..live)
            .rev()
            .find(|(_, state)| **state == State::Previous)
            .map(|(v, _)| *v)
    }
}

/// Every version (and junk) with its state, newest first, and the publish log. An unreadable
/// `CANARY` is a problem listed, not a failure.
pub fn list(tables: &TablesDir) -> Result<Listing, VersionError> {
    let history = History::read(tables)?;
    let Scan { versions, junk } = tables.scan()?;
    let events = |version: Version| -> Vec<LogEntry> {
        history
            .log
            .iter()
            .filter(|e| e.to == version)
            .cloned()
            .collect()
    };
    let mut infos = Vec::new();
    for version in versions {
        let manifest = read_manifest(tables, version).ok();
        let gate = manifest.as_ref().and_then(|m| m.gate.clone());
        infos.push(VersionInfo {
            version,
            state: history.state(version, gate.as_ref()),
            created_at: manifest.as_ref().map(|m| m.created_at.clone()),
            rows_kept: manifest.as_ref().map(|m| m.rows_kept),
            table_rows: manifest.as_ref().map(|m| m.table_rows),
            gate,
            rollback_target: false,
            problem: None,
            events: events(version),
        });
    }
    let states = infos.iter().map(|i| (i.version, i.state)).collect();
    let target = history.rollback_target(&states);
    for info in &mut infos {
        info.rollback_target = Some(info.version) == target;
    }
    for j in junk {
        // CURRENT or CANARY may still name it: then it is served, whatever it is.
        let state = match history.state(j.name, None) {
            s @ (State::Live | State::Canary) => s,
            _ => State::Junk,
        };
        let problem = match state {
            State::Junk => format!("not a version: {}; left alone", j.why),
            _ => j.why,
        };
        infos.push(VersionInfo {
            version: j.name,
            state,
            created_at: None,
            rows_kept: None,
            table_rows: None,
            gate: None,
            rollback_target: false,
            problem: Some(problem),
            events: events(j.name),
        });
    }
    infos.sort_by_key(|i| std::cmp::Reverse(i.version));
    Ok(Listing {
        live: history.live,
        versions: infos,
        log: history.log,
        problems: history.canary_problem.into_iter().collect(),
    })
}

/// The versions retention keeps whatever `--keep` says.
#[derive(Debug, Clone, Default)]
pub struct Protected {
    live: Option<Version>,
    canary: Option<Version>,
    held: BTreeSet<Version>,
    rollback: Option<Version>,
}

impl Protected {
    /// Reads what protects versions. The caller may hold the writer lock (this takes none).
    /// Fails when `CANARY` cannot be read: the version it meant to protect is unknown.
    pub fn find(tables: &TablesDir) -> Result<Protected, PublishError> {
        tables.canary()?;
        let history = History::read(tables)?;
        let mut states = BTreeMap::new();
        let mut held = BTreeSet::new();
        for version in tables.versions()? {
            // An unreadable manifest leaves the version unprotected unless live or a target.
            let gate = read_manifest(tables, version).ok().and_then(|m| m.gate);
            let state = history.state(version, gate.as_ref());
            if state == State::Held && history.live.is_none_or(|live| version > live) {
                held.insert(version);
            }
            states.insert(version, state);
        }
        Ok(Protected {
            rollback: history.rollback_target(&states),
            live: history.live,
            canary: history.canary,
            held,
        })
    }

    /// Why `version` must be kept, if it must.
    pub fn why(&self, version: Version) -> Option<&'static str> {
        if Some(version) == self.live {
            Some("it is live")
        } else if Some(version) == self.canary {
            Some("it is the canary (end it with `voucher-etl canary --off` or promote it)")
        } else if self.held.contains(&version) {
            Some("it is held and newer than the live version (promote it or let a newer run pass)")
        } else if Some(version) == self.rollback {
            Some("a roll-back from the live version would return to it")
        } else {
            None
        }
    }
}

/// What [`TablesDir::promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    pub from: Option<Version>,
    pub to: Version,
    /// False for a version written before content hashes (see [`Verified::hash_checked`]).
    pub hash_checked: bool,
}

impl Promotion {
    /// Whether the promotion went back to an older version than the one live before.
    pub fn is_rollback(&self) -> bool {
        self.from.is_some_and(|from| self.to < from)
    }
}

impl TablesDir {
    /// Makes `version` live, whatever its age or gate outcome, once [`verify`] accepts it:
    /// `CURRENT` is replaced atomically (as by a publish) and the move logged, all under the
    /// writer lock. Promoting the canary's version ends the canary: it answers everyone now.
    pub fn promote(&self, version: Version, because: &Because) -> Result<Promotion, VersionError> {
        let _lock = self.lock()?;
        let verified = verify(self, version)?;
        if self.current()? == Some(version) {
            return Err(VersionError::AlreadyLive { version });
        }
        // An unreadable CANARY must not stand in the way of a roll-back: it serves nothing.
        let canary = self.canary().unwrap_or_else(|e| {
            log::warn!(
                "{}; left as it is (`voucher-etl canary --off` removes it)",
                crate::errors::Chain(&e)
            );
            None
        });
        match self.move_current(version, Direction::Any, Action::Promote, because)? {
            Moved::To { from } => {
                if canary.is_some_and(|c| c.version == version) {
                    let reason = format!("promoted: {}", because.reason);
                    self.end_canary_locked(&Because::new(reason, &because.by))?;
                }
                Ok(Promotion {
                    from,
                    to: version,
                    hash_checked: verified.hash_checked,
                })
            }
            // Direction::Any always moves.
            Moved::NewerLive(live) => Err(VersionError::AlreadyLive { version: live }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures::contract_rows;
    use chrono::{TimeZone, Utc};

    fn at(minute: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 3, minute, 0)
            .single()
            .expect("valid time")
    }

    /// Writes a version like a run does (table, hashed manifest with a gate record), then
    /// publishes or holds it.
    pub(crate) fn version(
        tables: &TablesDir,
        minute: u32,
        base: i64,
        outcome: GateOutcome,
    ) -> Version {
        write(tables.stage(at(minute)).expect("stage"), base, outcome)
    }

    fn write(staged: crate::publish::Staged, base: i64, outcome: GateOutcome) -> Version {
        crate::fixtures::write_version(staged, contract_rows(base), outcome)
    }

    fn states(tables: &TablesDir) -> Vec<(Version, State, bool)> {
        list(tables)
            .expect("list")
            .versions
            .iter()
            .map(|v| (v.version, v.state, v.rollback_target))
            .collect()
    }

    #[test]
    fn states_follow_current_the_log_and_the_gate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v1 = version(&tables, 0, 2640, GateOutcome::Passed);
        let v2 = version(&tables, 1, 2640, GateOutcome::Passed);
        let v3 = version(&tables, 2, 9000, GateOutcome::Held);
        assert_eq!(tables.current().expect("current"), Some(v2));
        assert_eq!(
            states(&tables),
            vec![
                (v3, State::Held, false),
                (v2, State::Live, false),
                (v1, State::Previous, true),
            ]
        );
        // Approving the held version: it is live, the one it replaced is the roll-back target.
        let p = tables
            .promote(v3, &Because::new("ok", "alice"))
            .expect("promote");
        assert_eq!(
            (p.from, p.to, p.hash_checked, p.is_rollback()),
            (Some(v2), v3, true, false)
        );
        assert_eq!(
            states(&tables),
            vec![
                (v3, State::Live, false),
                (v2, State::Previous, true),
                (v1, State::Previous, false),
            ]
        );
        // Rolling back two steps moves CURRENT backwards, which a publish never does.
        let p = tables
            .promote(v1, &Because::new("back", "bob"))
            .expect("promote");
        assert!(p.is_rollback());
        assert_eq!(tables.current().expect("current"), Some(v1));
        let log = publish_log::read(tables.root()).expect("log");
        let actions: Vec<_> = log.iter().map(|e| (e.action, e.from, e.to)).collect();
        assert_eq!(
            actions,
            vec![
                (Action::Publish, None, v1),
                (Action::Publish, Some(v1), v2),
                (Action::Hold, Some(v2), v3),
                (Action::Promote, Some(v2), v3),
                (Action::Promote, Some(v3), v1),
            ]
        );
    }

    #[test]
    fn a_version_that_never_went_live_and_was_not_held_is_unpublished() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        // A slow run reserves its name first; a quicker one publishes a newer version.
        let slow = tables.stage(at(0)).expect("stage");
        let quick = version(&tables, 0, 2640, GateOutcome::Passed);
        let lost = write(slow, 2640, GateOutcome::Passed);
        assert!(lost < quick);
        assert_eq!(
            states(&tables),
            vec![
                (quick, State::Live, false),
                (lost, State::Unpublished, false),
            ]
        );
        // Written before the gate (no gate record), an older version counts as previous.
        let mut m = read_manifest(&tables, lost).expect("manifest");
        m.gate = None;
        std::fs::write(
            tables.manifest_path(lost),
            serde_json::to_vec(&m).expect("json"),
        )
        .expect("write");
        assert_eq!(states(&tables)[1], (lost, State::Previous, true));
    }

    #[test]
    fn promote_refuses_what_cannot_be_served_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v1 = version(&tables, 0, 2640, GateOutcome::Passed);
        let v2 = version(&tables, 1, 3000, GateOutcome::Held);
        let because = Because::new("x", "y");
        let unknown = Version::parse("20200101T000000Z").expect("version");
        let err = tables.promote(unknown, &because).expect_err("unknown");
        assert!(matches!(err, VersionError::Unknown { .. }), "{err}");
        assert!(
            err.to_string().contains(&v2.to_string()),
            "lists the versions: {err}"
        );
        assert!(matches!(
            tables.promote(v1, &because),
            Err(VersionError::AlreadyLive { .. })
        ));
        // Another valid table in place of v2's: its hash no longer matches.
        std::fs::copy(tables.table_path(v1), tables.table_path(v2)).expect("copy");
        let err = tables.promote(v2, &because).expect_err("tampered");
        assert!(matches!(err, VersionError::Tampered { .. }), "{err}");
        std::fs::remove_file(tables.table_path(v2)).expect("rm");
        let err = tables.promote(v2, &because).expect_err("incomplete");
        assert!(matches!(err, VersionError::Incomplete { .. }), "{err}");
        assert_eq!(tables.current().expect("current"), Some(v1));
        let log = publish_log::read(tables.root()).expect("log");
        assert!(log.iter().all(|e| e.action != Action::Promote), "{log:?}");
    }

    #[test]
    fn retention_keeps_the_live_version_newer_held_ones_and_the_rollback_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v: Vec<Version> = (0..4)
            .map(|i| version(&tables, i, 2640, GateOutcome::Passed))
            .collect();
        // Roll back to v[1]: v[3] is then the roll-back target (the version it replaced).
        tables
            .promote(v[1], &Because::new("back", "ops"))
            .expect("promote");
        let held = version(&tables, 10, 9000, GateOutcome::Held);
        let removed = tables.prune(1).expect("prune");
        assert_eq!(removed, vec![v[0], v[2]]);
        assert_eq!(tables.versions().expect("versions"), vec![v[1], v[3], held]);
    }

    #[test]
    fn an_edited_manifest_is_refused_by_its_checksum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let _live = version(&tables, 0, 2640, GateOutcome::Passed);
        let held = version(&tables, 1, 3000, GateOutcome::Held);
        let path = tables.manifest_path(held);
        let original = std::fs::read(&path).expect("read");
        let mut m: Manifest = serde_json::from_slice(&original).expect("manifest");
        m.rows_kept += 1;
        std::fs::write(&path, serde_json::to_vec(&m).expect("json")).expect("edit");
        let err = tables
            .promote(held, &Because::new("x", "y"))
            .expect_err("edited");
        assert!(matches!(err, VersionError::Tampered { .. }), "{err}");
        assert!(
            err.to_string().contains("manifest.json has SHA-256"),
            "{err}"
        );
        // The checksums file itself must list the manifest.
        std::fs::write(&path, &original).expect("restore");
        let sums = tables.version_dir(held).join(CHECKSUMS_FILE);
        let text = std::fs::read_to_string(&sums).expect("sums");
        let kept: String = text
            .lines()
            .filter(|l| !l.ends_with(MANIFEST_FILE))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&sums, kept).expect("edit");
        let err = verify(&tables, held).expect_err("unlisted");
        assert!(
            err.to_string().contains("does not list manifest.json"),
            "{err}"
        );
        std::fs::write(&sums, text).expect("restore");
        assert!(verify(&tables, held).expect("verified").hash_checked);
    }

    #[test]
    fn a_corrupt_canary_is_a_problem_listed_and_never_blocks_promotion_or_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tables = TablesDir::new(dir.path());
        let v1 = version(&tables, 0, 2640, GateOutcome::Passed);
        let v2 = version(&tables, 1, 3000, GateOutcome::Passed);
        let because = Because::new("x", "y");
        tables
            .start_canary(v1, "5".parse().expect("percent"), &because)
            .expect("canary");
        std::fs::write(tables.root().join(crate::canary::CANARY), b"garbage\n").expect("break");

        let listing = list(&tables).expect("listed, not failed");
        assert_eq!(listing.problems.len(), 1, "{:?}", listing.problems);
        assert!(
            listing.problems[0].contains("canary --off"),
            "{:?}",
            listing.problems
        );
        assert!(listing.versions.iter().all(|v| v.state != State::Canary));
        // Retention cannot know which version the canary was: it deletes nothing, and says so.
        let err = tables.prune(1).expect_err("no retention blind");
        assert!(err.to_string().contains("CANARY"), "{err}");
        assert_eq!(tables.versions().expect("versions"), vec![v1, v2]);

        let p = tables.promote(v1, &because).expect("roll back");
        assert!(p.is_rollback());
        let ended = tables.end_canary(&because).expect("end").expect("ended");
        // The publish log says which canary it was, and records its end.
        assert_eq!(ended.version(), Some(v1));
        assert!(!tables.root().join(crate::canary::CANARY).exists());
        let last = publish_log::read(tables.root()).expect("log");
        let last = last.last().expect("an entry");
        assert_eq!((last.action, last.to), (Action::CanaryEnd, v1));
        assert!(list(&tables).expect("list").problems.is_empty());
    }
}
