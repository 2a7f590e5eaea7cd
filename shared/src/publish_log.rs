//! The publish log: `<tables-dir>/publish-log.jsonl`, one JSON object per line, appended each
//! time `CURRENT` moves (a publish or a promotion) and each time a run is held.
//!
//! Lines are only ever appended, under the tables directory's writer lock, and fsynced before
//! the lock is released. A line cut short by a crash is skipped (with a warning) when read, and
//! the next append starts on a line of its own.
//!
//! A change of `CURRENT` or `CANARY` and its log entries cannot be made at once, so the
//! change is announced first: `.publish-log.pending` (written atomically) holds the entries
//! and what the file will hold after the change; then the file is changed, the entries
//! appended and the pending file removed. Whatever moment a crash comes at, the pending file
//! settles it: if the file holds what was announced, the change was made and its entries
//! belong in the log (those not yet there are appended by the next command that takes the
//! writer lock, and shown by [`read`] until then); if not, it was never made and the pending
//! file is dropped. So the log's chain of moves always ends at `CURRENT`, and its last canary
//! is the one `CANARY` holds.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::canary::{CANARY, CanaryRecord, Percent};
use crate::publish::{PublishError, TablesDir, Version};

pub const LOG_FILE: &str = "publish-log.jsonl";
const PENDING_FILE: &str = ".publish-log.pending";
const PENDING_TMP: &str = ".publish-log.pending.tmp";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A run published a version: `CURRENT` moved to it.
    Publish,
    /// A run's version was held by the gate: `CURRENT` stayed at `from`.
    Hold,
    /// `voucher-etl promote` moved `CURRENT` (an approval or a roll-back).
    Promote,
    /// `voucher-etl canary` made `to` answer `percent` of customers beside the live `from`.
    Canary,
    /// The canary of `to` ended: `canary --off`, its promotion, or a new canary replacing it.
    #[serde(rename = "canary_end")]
    CanaryEnd,
    /// An action this program does not know (written by a newer one).
    #[serde(other)]
    Other,
}

impl Action {
    /// Whether the action made `to` live.
    pub fn made_live(self) -> bool {
        matches!(self, Action::Publish | Action::Promote)
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Hold => "hold",
            Action::Promote => "promote",
            Action::Canary => "canary",
            Action::CanaryEnd => "canary_end",
            Action::Other => "other",
        }
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When, RFC 3339 UTC.
    pub time: String,
    pub action: Action,
    /// The live version before (absent when nothing was live).
    pub from: Option<Version>,
    /// The version published, held or promoted.
    pub to: Version,
    pub reason: String,
    /// Who: `$USER` or `--by` for a promotion, the user (or `voucher-etl`) for a run.
    pub by: String,
    /// The share of customers of a canary (only on `canary` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<Percent>,
}

impl LogEntry {
    pub fn new(
        now: DateTime<Utc>,
        action: Action,
        from: Option<Version>,
        to: Version,
        reason: impl Into<String>,
        by: impl Into<String>,
    ) -> LogEntry {
        LogEntry {
            time: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            action,
            from,
            to,
            reason: reason.into(),
            by: by.into(),
            percent: None,
        }
    }

    /// The entry with a canary's share of customers.
    pub fn with_percent(self, percent: Percent) -> LogEntry {
        LogEntry {
            percent: Some(percent),
            ..self
        }
    }
}

/// What a pointer file holds once a change is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "file", rename_all = "snake_case")]
pub(crate) enum After {
    /// `CURRENT` names this version.
    Current { version: Version },
    /// `CANARY` holds this record.
    Canary { record: CanaryRecord },
    /// There is no `CANARY`.
    NoCanary,
}

/// A change announced before it is made, with the entries that record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub after: After,
    pub entries: Vec<LogEntry>,
}

/// Every readable entry of the log in `root`, oldest first; none when there is no log yet.
/// The entries of a change made but not yet logged (its command was killed) are included.
pub fn read(root: &Path) -> Result<Vec<LogEntry>, PublishError> {
    // The pending file first: once it is gone, its entries are in the log.
    let pending = read_pending(root).unwrap_or_else(|e| {
        log::warn!("{}", crate::errors::Chain(&e));
        None
    });
    let mut entries = read_written(root)?;
    if let Some(p) = pending
        && TablesDir::new(root).holds(&p.after)
    {
        let missing = not_logged(&entries, &p.entries).to_vec();
        entries.extend(missing);
    }
    Ok(entries)
}

/// The entries of `pending` that are not at the end of `log` yet: a crash may have cut the
/// append after some of them.
fn not_logged<'a>(log: &[LogEntry], pending: &'a [LogEntry]) -> &'a [LogEntry] {
    let logged = (0..=pending.len())
        .rev()
        .find(|&k| log.ends_with(&pending[..k]))
        .unwrap_or(0);
    &pending[logged..]
}

fn read_pending(root: &Path) -> Result<Option<Pending>, PublishError> {
    let path = root.join(PENDING_FILE);
    let Some(bytes) = crate::publish::read_if_any(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| PublishError::Io {
            action: "cannot parse",
            path,
            source: e.into(),
        })
}

fn write_pending(root: &Path, pending: &Pending) -> Result<(), PublishError> {
    let (tmp, path) = (root.join(PENDING_TMP), root.join(PENDING_FILE));
    let io_err = |action, path: &Path| {
        let path = path.to_owned();
        move |source| PublishError::Io {
            action,
            path,
            source,
        }
    };
    let json = serde_json::to_vec(pending).map_err(|e| io_err("cannot encode", &tmp)(e.into()))?;
    File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(&json)?;
            f.sync_all()
        })
        .map_err(io_err("cannot write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("cannot rename into place", &path))?;
    crate::publish::fsync_dir(root).map_err(io_err("cannot fsync the directory of", &path))
}

fn remove_pending(root: &Path) -> Result<(), PublishError> {
    let path = root.join(PENDING_FILE);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(PublishError::Io {
                action: "cannot delete",
                path,
                source,
            });
        }
    }
    crate::publish::fsync_dir(root).map_err(|source| PublishError::Io {
        action: "cannot fsync the directory of",
        path,
        source,
    })
}

fn describe(entries: &[LogEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            let from = e.from.map_or("(none)".to_owned(), |v| v.to_string());
            format!("{} {from} -> {}", e.action.name(), e.to)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl TablesDir {
    /// Whether the pointer file holds what `after` says.
    pub(crate) fn holds(&self, after: &After) -> bool {
        match after {
            After::Current { version } => matches!(self.current(), Ok(Some(v)) if v == *version),
            After::Canary { record } => matches!(self.canary(), Ok(Some(r)) if r == *record),
            After::NoCanary => matches!(
                fs::symlink_metadata(self.root().join(CANARY)),
                Err(e) if e.kind() == io::ErrorKind::NotFound
            ),
        }
    }

    /// Announces `pending`, makes the change, logs it. The caller holds the writer lock. An
    /// error from `change` is returned once the change is settled (logged if it was made
    /// after all); a failure to log a change made is logged, and left to the next command.
    pub(crate) fn change_and_log(
        &self,
        pending: &Pending,
        change: impl FnOnce() -> Result<(), PublishError>,
    ) -> Result<(), PublishError> {
        write_pending(self.root(), pending)?;
        if let Err(e) = change() {
            if let Err(r) = self.reconcile() {
                log::error!("{}", crate::errors::Chain(&r));
            }
            return Err(e);
        }
        if let Err(e) = append(self.root(), &pending.entries) {
            log::error!(
                "done, but not yet in the publish log ({}): {}; the next command records it",
                describe(&pending.entries),
                crate::errors::Chain(&e)
            );
            return Ok(());
        }
        if let Err(e) = remove_pending(self.root()) {
            log::warn!("{}", crate::errors::Chain(&e));
        }
        Ok(())
    }

    /// Settles a change a killed command left announced: appends its entries if the change
    /// was made, drops it if not. The caller holds the writer lock.
    pub(crate) fn reconcile(&self) -> Result<(), PublishError> {
        let pending = match read_pending(self.root()) {
            Ok(Some(pending)) => pending,
            Ok(None) => return Ok(()),
            Err(e) => {
                // Not one this program wrote whole (they are renamed into place).
                log::warn!("{}; removed it", crate::errors::Chain(&e));
                return remove_pending(self.root());
            }
        };
        if self.holds(&pending.after) {
            let log = read_written(self.root())?;
            let missing = not_logged(&log, &pending.entries);
            if !missing.is_empty() {
                append(self.root(), missing)?;
                log::warn!(
                    "recorded in the publish log what an interrupted command did: {}",
                    describe(missing)
                );
            }
        } else {
            log::warn!(
                "an interrupted command did not make its change ({}); nothing to record",
                describe(&pending.entries)
            );
        }
        remove_pending(self.root())
    }
}

/// The entries written in the log file, oldest first.
fn read_written(root: &Path) -> Result<Vec<LogEntry>, PublishError> {
    let path = root.join(LOG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PublishError::Io {
                action: "cannot read",
                path,
                source,
            });
        }
    };
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(entry) => entries.push(entry),
            Err(e) => log::warn!(
                "{} line {}: skipped, not a log entry ({e}): {:?}",
                path.display(),
                n + 1,
                line.chars().take(80).collect::<String>()
            ),
        }
    }
    Ok(entries)
}

/// Appends `entries` (in one write) and fsyncs the log. The caller holds the directory's
/// writer lock.
pub(crate) fn append(root: &Path, entries: &[LogEntry]) -> Result<(), PublishError> {
    let path = root.join(LOG_FILE);
    let io_err = |action| {
        let path = path.clone();
        move |source| PublishError::Io {
            action,
            path,
            source,
        }
    };
    let created = !path.exists();
    let mut file = File::options()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(io_err("cannot open"))?;
    let mut line = String::new();
    for entry in entries {
        line.push_str(
            &serde_json::to_string(entry).map_err(|e| io_err("cannot encode")(e.into()))?,
        );
        line.push('\n');
    }
    if ends_without_newline(&path).map_err(io_err("cannot read"))? {
        // A crash cut the last line short: keep it apart from this one.
        line.insert(0, '\n');
    }
    file.write_all(line.as_bytes())
        .map_err(io_err("cannot append to"))?;
    file.sync_all().map_err(io_err("cannot fsync"))?;
    if created {
        crate::publish::fsync_dir(root).map_err(io_err("cannot fsync the directory of"))?;
    }
    Ok(())
}

fn ends_without_newline(path: &Path) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(to: &str, action: Action) -> LogEntry {
        LogEntry::new(
            Utc::now(),
            action,
            None,
            Version::parse(to).expect("version"),
            "test",
            "tester",
        )
    }

    #[test]
    fn entries_append_and_read_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), vec![]);
        let a = entry("20261123T101000Z", Action::Publish);
        let b = entry("20261124T101000Z", Action::Hold);
        append(dir.path(), std::slice::from_ref(&a)).expect("append");
        append(dir.path(), std::slice::from_ref(&b)).expect("append");
        assert_eq!(read(dir.path()).expect("read"), vec![a, b]);
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_next_starts_on_its_own_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = entry("20261123T101000Z", Action::Publish);
        append(dir.path(), std::slice::from_ref(&a)).expect("append");
        let path = dir.path().join(LOG_FILE);
        let mut text = fs::read_to_string(&path).expect("read");
        text.push_str(r#"{"time":"2026-11-24T10:1"#);
        fs::write(&path, text).expect("write");
        let b = entry("20261125T101000Z", Action::Promote);
        append(dir.path(), std::slice::from_ref(&b)).expect("append");
        assert_eq!(read(dir.path()).expect("read"), vec![a, b]);
    }

    #[test]
    fn an_unknown_action_still_reads() {
        let line = r#"{"time":"t","action":"freeze","from":null,"to":"20261123T101000Z","reason":"r","by":"b"}"#;
        let e: LogEntry = serde_json::from_str(line).expect("parse");
        assert_eq!(e.action, Action::Other);
        assert!(!e.action.made_live());
    }

    fn version(name: &str) -> Version {
        Version::parse(name).expect("version")
    }

    #[test]
    fn a_change_made_but_not_logged_is_read_then_recorded_and_one_never_made_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, tables) = (dir.path(), TablesDir::new(dir.path()));
        let (v1, v2) = (version("20261123T101000Z"), version("20261124T101000Z"));
        let promote =
            |from, to| LogEntry::new(Utc::now(), Action::Promote, Some(from), to, "r", "b");
        // A command killed after it moved CURRENT, before it logged the move.
        let moved = promote(v1, v2);
        let pending = Pending {
            after: After::Current { version: v2 },
            entries: vec![moved.clone()],
        };
        write_pending(root, &pending).expect("announce");
        fs::write(root.join(crate::publish::CURRENT), format!("{v2}\n")).expect("move");
        assert_eq!(
            read(root).expect("read"),
            vec![moved.clone()],
            "readers see it"
        );
        assert_eq!(read_written(root).expect("read"), vec![]);
        tables.reconcile().expect("reconcile");
        assert_eq!(read_written(root).expect("read"), vec![moved.clone()]);
        assert!(!root.join(PENDING_FILE).exists());
        // Settled once: reconciling again (or a pending file announced again) adds nothing.
        write_pending(root, &pending).expect("announce");
        tables.reconcile().expect("reconcile");
        assert_eq!(read_written(root).expect("read"), vec![moved.clone()]);

        // A command killed before it moved CURRENT: its entry is never shown nor written.
        let back = Pending {
            after: After::Current { version: v1 },
            entries: vec![promote(v2, v1)],
        };
        write_pending(root, &back).expect("announce");
        assert_eq!(read(root).expect("read"), vec![moved.clone()]);
        tables.reconcile().expect("reconcile");
        assert_eq!(read_written(root).expect("read"), vec![moved.clone()]);
        assert!(!root.join(PENDING_FILE).exists());
    }

    #[test]
    fn a_canary_change_cut_in_the_middle_of_its_entries_gets_only_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (root, tables) = (dir.path(), TablesDir::new(dir.path()));
        let (live, old, new) = (
            version("20261123T101000Z"),
            version("20261122T101000Z"),
            version("20261124T101000Z"),
        );
        let record = CanaryRecord {
            version: new,
            percent: "7".parse().expect("percent"),
            since: "2026-11-24T10:10:00Z".into(),
            reason: "try".into(),
            by: "eve".into(),
        };
        let end = LogEntry::new(
            Utc::now(),
            Action::CanaryEnd,
            Some(live),
            old,
            "replaced",
            "eve",
        );
        let start = LogEntry::new(Utc::now(), Action::Canary, Some(live), new, "try", "eve")
            .with_percent(record.percent);
        let pending = Pending {
            after: After::Canary {
                record: record.clone(),
            },
            entries: vec![end.clone(), start.clone()],
        };
        write_pending(root, &pending).expect("announce");
        fs::write(
            root.join(CANARY),
            serde_json::to_vec(&record).expect("json"),
        )
        .expect("write");
        append(root, std::slice::from_ref(&end)).expect("append");
        assert_eq!(read(root).expect("read"), vec![end.clone(), start.clone()]);
        tables.reconcile().expect("reconcile");
        assert_eq!(read_written(root).expect("read"), vec![end, start]);
    }
}
