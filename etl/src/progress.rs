//! Progress for long work: a bar on a terminal, a log line every few seconds otherwise (so a
//! CronJob's log shows that the job is alive and how far it got).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Progress {
    what: &'static str,
    bar: Option<ProgressBar>,
    total: Option<u64>,
    unit: &'static str,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// Progress over a count of rows.
    pub fn rows(what: &'static str, total: u64) -> Self {
        Self::new(
            what,
            Some(total),
            "rows",
            "{msg} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
        )
    }

    /// Progress over rows whose total is not known in advance (a database query's).
    pub fn rows_unbounded(what: &'static str) -> Self {
        Self::new(what, None, "rows", "{msg} {human_pos} rows ({per_sec})")
    }

    /// Progress over bytes, of a known or unknown total.
    pub fn bytes(what: &'static str, total: Option<u64>) -> Self {
        let template = if total.is_some() {
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
        } else {
            "{msg} {bytes} ({bytes_per_sec})"
        };
        Self::new(what, total, "bytes", template)
    }

    fn new(what: &'static str, total: Option<u64>, unit: &'static str, template: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.unwrap_or(0));
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        Progress {
            what,
            bar,
            total,
            unit,
            last_log: Mutex::new(Instant::now()),
        }
    }

    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        let Ok(mut last) = self.last_log.lock() else {
            return;
        };
        if last.elapsed() >= LOG_EVERY {
            *last = Instant::now();
            match self.total {
                Some(total) if total > 0 => log::info!(
                    "{}: {done}/{total} {} ({:.0}%)",
                    self.what,
                    self.unit,
                    done as f64 * 100.0 / total as f64
                ),
                _ => log::info!("{}: {done} {}", self.what, self.unit),
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
