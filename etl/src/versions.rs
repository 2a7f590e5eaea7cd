//! `voucher-etl versions`, `diff`, `promote` and `canary`: what is in a tables directory, what
//! would change between two versions, making a version live, and trying one on a share of
//! customers. The logic is in `voucher_shared`
//! (so that the API shows the same); this module renders it for a terminal.

use std::fmt::{self, Write as _};
use std::path::Path;

use voucher_shared::canary::{CanaryStart, Ended, Percent};
use voucher_shared::diff::{self, Answers, Diff, SegmentDiff};
use voucher_shared::gate;
use voucher_shared::manifest::GateRecord;
use voucher_shared::publish::{Because, TablesDir, Version};
use voucher_shared::publish_log::LogEntry;
use voucher_shared::versions::{self, Listing, Promotion, State, VersionError, VersionInfo};

/// Why `versions`, `diff` or `promote` failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error("cannot encode the answer as JSON")]
    Json(#[from] serde_json::Error),
}

/// `voucher-etl versions`: the listing as a table (with held versions' reports) or JSON.
/// Problems of the directory (an unreadable `CANARY`) are logged and listed: in JSON, on the
/// live version's `problem`.
pub fn list_command(tables_dir: &Path, json: bool) -> Result<String, CommandError> {
    let tables = TablesDir::new(tables_dir);
    let mut listing = versions::list(&tables)?;
    for problem in &listing.problems {
        log::warn!("{}: {problem}", tables_dir.display());
    }
    if json {
        let problems = listing.problems.join("; ");
        if let Some(live) = listing
            .versions
            .iter_mut()
            .find(|v| !problems.is_empty() && v.state == State::Live)
        {
            live.problem = Some(match live.problem.take() {
                Some(own) => format!("{own}; {problems}"),
                None => problems,
            });
        }
        return Ok(serde_json::to_string_pretty(&listing.versions)? + "\n");
    }
    Ok(format!(
        "{}{}",
        ListingTable(&listing),
        held_reports(&tables, &listing)
    ))
}

/// `voucher-etl diff`: from the live version (or `from`) to the newest (or `to`).
pub fn diff_command(
    tables_dir: &Path,
    from: Option<Version>,
    to: Option<Version>,
    json: bool,
) -> Result<String, CommandError> {
    let tables = TablesDir::new(tables_dir);
    let (from, to) = diff::resolve(&tables, from, to)?;
    let diff = diff::between(&tables, from, to)?;
    if json {
        return Ok(serde_json::to_string_pretty(&diff)? + "\n");
    }
    Ok(DiffTable(&diff).to_string())
}

/// `voucher-etl promote`: makes `version` live and says what that was.
pub fn promote_command(
    tables_dir: &Path,
    version: Version,
    because: &Because,
) -> Result<String, CommandError> {
    let tables = TablesDir::new(tables_dir);
    let held = versions::list(&tables)?
        .versions
        .iter()
        .any(|v| v.version == version && v.state == State::Held);
    let promotion = tables.promote(version, because)?;
    log::info!(
        "promoted {version} (was {}) by {}: {}",
        promotion
            .from
            .map_or("nothing".to_owned(), |v| v.to_string()),
        because.by,
        because.reason
    );
    Ok(PromotionLine {
        promotion: &promotion,
        held,
    }
    .to_string())
}

/// What `voucher-etl canary` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canary {
    Start { version: Version, percent: Percent },
    Off,
}

/// `voucher-etl canary`: starts (or changes) the canary, or ends it, and says what that was.
pub fn canary_command(
    tables_dir: &Path,
    change: Canary,
    because: &Because,
) -> Result<String, CommandError> {
    let tables = TablesDir::new(tables_dir);
    match change {
        Canary::Start { version, percent } => {
            let start = tables.start_canary(version, percent, because)?;
            log::info!(
                "canary {version} answers {percent} of customers beside {} (by {}: {})",
                start.live,
                because.by,
                because.reason
            );
            Ok(CanaryLine(&start).to_string())
        }
        Canary::Off => {
            let ended = tables.end_canary(because).map_err(VersionError::from)?;
            Ok(match ended {
                Some(Ended::Unreadable { version, problem }) => {
                    log::info!(
                        "removed the unreadable canary record (by {}: {}): {problem}",
                        because.by,
                        because.reason
                    );
                    let which = version.map_or(String::new(), |v| {
                        format!(" (the publish log's canary: {v})")
                    });
                    format!(
                        "removed the unreadable CANARY{which}: the live version answers everyone\n"
                    )
                }
                Some(Ended::Record(record)) => {
                    log::info!(
                        "canary {} ended (by {}: {})",
                        record.version,
                        because.by,
                        because.reason
                    );
                    format!(
                        "ended the canary of {} ({} of customers since {}): the live version answers everyone\n",
                        record.version, record.percent, record.since
                    )
                }
                None => "no canary was set: nothing to end\n".to_owned(),
            })
        }
    }
}

/// What `canary` prints when it starts one.
pub struct CanaryLine<'a>(pub &'a CanaryStart);

impl fmt::Display for CanaryLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if let Some(old) = s.replaced.as_ref() {
            if old.version == s.record.version {
                writeln!(
                    f,
                    "canary {}: share {} -> {}",
                    old.version, old.percent, s.record.percent
                )?;
            } else {
                writeln!(f, "ended the canary of {} ({})", old.version, old.percent)?;
            }
        }
        writeln!(
            f,
            "canary {} answers {} of customers (by customer_id bucket); {} answers the rest",
            s.record.version, s.record.percent, s.live
        )?;
        if !s.hash_checked {
            writeln!(
                f,
                "note: {} was written before content hashes; its table was checked to parse and match its manifest's row count",
                s.record.version
            )?;
        }
        Ok(())
    }
}

/// Log entries `versions` shows under the table.
const LOG_SHOWN: usize = 10;

/// The listing as a table, newest first, then the latest entries of the publish log.
pub struct ListingTable<'a>(pub &'a Listing);

impl fmt::Display for ListingTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listing = self.0;
        if listing.versions.is_empty() {
            writeln!(f, "no versions")?;
            return listing
                .problems
                .iter()
                .try_for_each(|p| writeln!(f, "problem: {p}"));
        }
        writeln!(
            f,
            "{:<16}  {:<11}  {:<20}  {:>10}  gate",
            "version", "state", "created", "rows kept"
        )?;
        for v in &listing.versions {
            writeln!(
                f,
                "{:<16}  {:<11}  {:<20}  {:>10}  {}{}",
                v.version,
                v.state.name(),
                v.created_at.as_deref().unwrap_or("?"),
                v.rows_kept.map_or("?".to_owned(), |n| n.to_string()),
                gate_cell(v),
                if v.rollback_target {
                    "  (a roll-back returns here)"
                } else {
                    ""
                }
            )?;
            if let Some(problem) = &v.problem {
                writeln!(f, "{:<16}  ! {problem}", "")?;
            }
        }
        let skipped = listing.log.len().saturating_sub(LOG_SHOWN);
        if !listing.log.is_empty() {
            writeln!(
                f,
                "\npublish log ({}{} entries, oldest first):",
                if skipped > 0 { "last " } else { "" },
                listing.log.len() - skipped
            )?;
        }
        for entry in listing.log.iter().skip(skipped) {
            writeln!(f, "  {}", LogLine(entry))?;
        }
        for problem in &listing.problems {
            writeln!(f, "\nproblem: {problem}")?;
        }
        Ok(())
    }
}

fn gate_cell(v: &VersionInfo) -> String {
    match &v.gate {
        None => "-".to_owned(),
        Some(GateRecord {
            outcome, failed, ..
        }) if *failed > 0 => format!("{outcome} ({failed} failed)"),
        Some(g) => g.outcome.to_string(),
    }
}

/// One log entry on a line.
pub struct LogLine<'a>(pub &'a LogEntry);

impl fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let from = e.from.map_or("(none)".to_owned(), |v| v.to_string());
        let share = e.percent.map_or(String::new(), |p| format!(" ({p})"));
        write!(
            f,
            "{}  {:<7}  {from} -> {}{share}  by {}: {}",
            e.time,
            e.action.name(),
            e.to,
            e.by,
            e.reason
        )
    }
}

/// For a held version: its gate report, printed below the listing.
pub fn held_reports(tables: &TablesDir, listing: &Listing) -> String {
    let mut out = String::new();
    for v in listing.versions.iter().filter(|v| v.state == State::Held) {
        if let Some(report) = gate::read_report(tables, v.version) {
            let _ = write!(out, "\n{report}");
        }
    }
    out
}

/// A diff as a table, then its summary.
pub struct DiffTable<'a>(pub &'a Diff);

fn amount(a: Option<i64>) -> String {
    a.map_or("-".to_owned(), |a| a.to_string())
}

/// How clearly an amount won: its share of the segment's rows, and the runner-up's.
fn won(share: Option<f64>, runner_up: Option<f64>) -> String {
    match (share, runner_up) {
        (None, _) => "-".to_owned(),
        (Some(s), None) => format!("{:.0}%", s * 100.0),
        (Some(s), Some(r)) => format!("{:.0}% vs {:.0}%", s * 100.0, r * 100.0),
    }
}

fn answers(a: &Answers) -> String {
    format!(
        "{:.1}% ({} of {})",
        a.changed_share * 100.0,
        a.changed_rows,
        a.rows
    )
}

impl fmt::Display for DiffTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        writeln!(f, "from {}  to {}", d.from, d.to)?;
        writeln!(
            f,
            "{:<12} {:<17} {:<9} {:<9} {:>8} {:>8}  {:>12} {:>12}",
            "country", "segment_name", "segment", "change", "from", "to", "from won", "to won"
        )?;
        for s in &d.segments {
            write_segment(f, s)?;
        }
        let sum = &d.summary;
        writeln!(
            f,
            "\n{} of {} segments changed ({} added, {} removed, {} changed amount)",
            sum.segments_changed, sum.segments, sum.added, sum.removed, sum.changed
        )?;
        writeln!(f, "kept rows of the history whose answer changes:")?;
        for (segment_type, a) in &sum.by_segment_type {
            writeln!(f, "  {:<17} {}", segment_type.name(), answers(a))?;
        }
        writeln!(
            f,
            "  {:<17} {}  (a row counts once per segment type it falls in)",
            "both",
            answers(&sum.answers)
        )?;
        writeln!(
            f,
            "(\"won\": the chosen amount's share of the segment's rows vs the runner-up's)"
        )
    }
}

fn write_segment(f: &mut fmt::Formatter<'_>, s: &SegmentDiff) -> fmt::Result {
    writeln!(
        f,
        "{:<12} {:<17} {:<9} {:<9} {:>8} {:>8}  {:>12} {:>12}",
        s.country_code,
        s.segment_name.name(),
        s.segment,
        s.change.name(),
        amount(s.from_amount),
        amount(s.to_amount),
        won(s.from_share, s.from_runner_up_share),
        won(s.to_share, s.to_runner_up_share),
    )
}

/// What `promote` prints.
pub struct PromotionLine<'a> {
    pub promotion: &'a Promotion,
    pub held: bool,
}

impl fmt::Display for PromotionLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.promotion;
        let what = if p.is_rollback() {
            "rolled back to"
        } else if self.held {
            "approved the held version"
        } else {
            "promoted"
        };
        let from = p.from.map_or("nothing".to_owned(), |v| v.to_string());
        writeln!(f, "{what} {}: it is live now (was {from})", p.to)?;
        if !p.hash_checked {
            writeln!(
                f,
                "note: {} was written before content hashes; its table was checked to parse and match its manifest's row count",
                p.to
            )?;
        }
        Ok(())
    }
}
