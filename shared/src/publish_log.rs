//! The publish log: `<tables-dir>/publish-log.jsonl`, one JSON object per line, appended each
//! time `CURRENT` moves (a publish or a promotion) and each time a run is held.
//!
//! Lines are only ever appended, under the tables directory's writer lock, and fsynced before
//! the lock is released. A line cut short by a crash is skipped (with a warning) when read, and
//! the next append starts on a line of its own.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::canary::Percent;
use crate::publish::{PublishError, Version};

pub const LOG_FILE: &str = "publish-log.jsonl";

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

/// Every readable entry of the log in `root`, oldest first; none when there is no log yet.
pub fn read(root: &Path) -> Result<Vec<LogEntry>, PublishError> {
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

/// Appends `entry` and fsyncs the log. The caller holds the directory's writer lock.
pub(crate) fn append(root: &Path, entry: &LogEntry) -> Result<(), PublishError> {
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
    let mut line = serde_json::to_string(entry).map_err(|e| io_err("cannot encode")(e.into()))?;
    line.push('\n');
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
        append(dir.path(), &a).expect("append");
        append(dir.path(), &b).expect("append");
        assert_eq!(read(dir.path()).expect("read"), vec![a, b]);
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_next_starts_on_its_own_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = entry("20261123T101000Z", Action::Publish);
        append(dir.path(), &a).expect("append");
        let path = dir.path().join(LOG_FILE);
        let mut text = fs::read_to_string(&path).expect("read");
        text.push_str(r#"{"time":"2026-11-24T10:1"#);
        fs::write(&path, text).expect("write");
        let b = entry("20261125T101000Z", Action::Promote);
        append(dir.path(), &b).expect("append");
        assert_eq!(read(dir.path()).expect("read"), vec![a, b]);
    }

    #[test]
    fn an_unknown_action_still_reads() {
        let line = r#"{"time":"t","action":"freeze","from":null,"to":"20261123T101000Z","reason":"r","by":"b"}"#;
        let e: LogEntry = serde_json::from_str(line).expect("parse");
        assert_eq!(e.action, Action::Other);
        assert!(!e.action.made_live());
    }
}
