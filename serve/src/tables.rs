//! Loading table versions and replacing the live one.
//!
//! One reloader thread per process reads `<tables-dir>/CURRENT` every interval. A new version
//! is memory-mapped, decoded and validated completely off the request workers, then swapped in
//! with one atomic store; requests already holding the old version finish on it. Each change is
//! then published to the subscribers ([`Tables::subscribe`]: gRPC health, the Kafka consumer),
//! which wait for it instead of polling. A version that fails to load is logged and counted
//! once, and the old version stays live. Published versions never change, so a version refused
//! for its contents is not retried; a later version still loads.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwapOption, Guard};
use bytes::Bytes;
use memmap2::Mmap;
use tokio::sync::watch;
use voucher_shared::errors::Chain;
use voucher_shared::publish::{PublishError, TablesDir, Version};
use voucher_shared::table::{TableError, VoucherTable};

use crate::live::{LiveTable, Served};
use crate::metrics::{Metrics, ReloadResult};

/// Why a version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot find the live version")]
    Current(#[from] PublishError),
    #[error("cannot open {}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot map {}", path.display())]
    Map { path: PathBuf, source: io::Error },
    #[error("{} is not a valid voucher table", path.display())]
    Table {
        path: PathBuf,
        // Boxed: `TableError` is large and loads are rare.
        source: Box<TableError>,
    },
}

impl LoadError {
    /// Whether trying the same version again could succeed (files are immutable once
    /// published, so only I/O trouble is worth retrying).
    fn is_transient(&self) -> bool {
        matches!(
            self,
            LoadError::Current(_) | LoadError::Open { .. } | LoadError::Map { .. }
        )
    }
}

/// The tables directory and the live version.
#[derive(Debug)]
pub struct Tables {
    dir: TablesDir,
    /// Read by every request: a lock-free load.
    live: ArcSwapOption<LiveTable>,
    /// The live version, published after each change to those who wait for one.
    changes: watch::Sender<Option<Version>>,
}

/// What the reloader remembers between polls.
#[derive(Debug, Default)]
pub struct PollState {
    /// The last version refused for its contents: not retried until `CURRENT` moves on.
    refused: Option<Version>,
    /// The last transient error, so that a lasting one is logged and counted once.
    last_error: Option<String>,
    /// Whether "waiting for the first version" was logged.
    waiting_logged: bool,
}

impl Tables {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Tables {
            dir: TablesDir::new(dir),
            live: ArcSwapOption::empty(),
            changes: watch::Sender::new(None),
        }
    }

    pub fn dir(&self) -> &TablesDir {
        &self.dir
    }

    /// What is served, for scoring one request, batch or stream; `None` before a table loads.
    pub fn served(&self) -> Option<Served> {
        self.live.load_full().map(Served::new)
    }

    /// The live table, to describe it (not to score: see [`Tables::served`]). Hold the guard
    /// only for the synchronous part of a request.
    pub fn live(&self) -> Guard<Option<Arc<LiveTable>>> {
        self.live.load()
    }

    pub fn is_loaded(&self) -> bool {
        self.live.load().is_some()
    }

    /// The live version now and after every change, for those who wait for a table or follow
    /// the changes (a receiver sees the latest value; versions in between may be skipped).
    pub fn subscribe(&self) -> watch::Receiver<Option<Version>> {
        self.changes.subscribe()
    }

    /// Maps, decodes and validates one version.
    pub fn load(&self, version: Version) -> Result<LiveTable, LoadError> {
        let path = self.dir.table_path(version);
        let file = File::open(&path).map_err(|source| LoadError::Open {
            path: path.clone(),
            source,
        })?;
        // SAFETY: a published version's files are never modified or truncated (the ETL writes
        // new files and renames them into place), so the mapping stays valid while it is read.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| LoadError::Map {
            path: path.clone(),
            source,
        })?;
        let table =
            VoucherTable::read(Bytes::from_owner(map)).map_err(|source| LoadError::Table {
                path,
                source: Box::new(source),
            })?;
        Ok(LiveTable::new(version, table, self.dir.manifest(version)))
    }

    /// Checks `CURRENT` once and loads the version it names if it is new. Returns whether the
    /// live table changed.
    pub fn poll(&self, state: &mut PollState, metrics: &Metrics) -> bool {
        metrics.checked();
        let live = self.live.load_full();
        let live_version = live.as_ref().map(|t| t.version());
        let wanted = match self.dir.current() {
            Ok(Some(version)) => version,
            Ok(None) => {
                if !state.waiting_logged {
                    log::warn!(
                        "no table published yet in {}; serving 503 until one appears",
                        self.dir.root().display()
                    );
                    state.waiting_logged = true;
                }
                return false;
            }
            Err(e) => {
                self.refuse(state, metrics, None, live_version, LoadError::Current(e));
                return false;
            }
        };
        if Some(wanted) == live_version || Some(wanted) == state.refused {
            return false;
        }
        let started = Instant::now();
        match self.load(wanted) {
            Ok(table) => {
                log::info!(
                    "table version {wanted} is live: {} rows, {} countries, segment types [{}], loaded from {} in {} ms (was {})",
                    table.rows(),
                    table.countries().len(),
                    table
                        .snapshot()
                        .segment_types()
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.dir.table_path(wanted).display(),
                    started.elapsed().as_millis(),
                    describe(live_version),
                );
                metrics.table_loaded(&table);
                metrics.reload(ReloadResult::Success);
                self.live.store(Some(Arc::new(table)));
                self.changes.send_replace(Some(wanted));
                *state = PollState {
                    waiting_logged: true,
                    ..PollState::default()
                };
                true
            }
            Err(e) => {
                self.refuse(state, metrics, Some(wanted), live_version, e);
                false
            }
        }
    }

    fn refuse(
        &self,
        state: &mut PollState,
        metrics: &Metrics,
        version: Option<Version>,
        live: Option<Version>,
        error: LoadError,
    ) {
        let message = Chain(&error).to_string();
        if error.is_transient() {
            if state.last_error.as_deref() == Some(message.as_str()) {
                return;
            }
            state.last_error = Some(message.clone());
        } else {
            state.refused = version;
        }
        metrics.reload(ReloadResult::Failure);
        let version = version.map_or_else(|| "?".to_owned(), |v| v.to_string());
        log::error!(
            "table version {version} in {} refused: {message}; still serving {}",
            self.dir.root().display(),
            describe(live)
        );
    }
}

fn describe(version: Option<Version>) -> String {
    version.map_or_else(|| "no table".to_owned(), |v| format!("version {v}"))
}

/// The thread that polls for new versions. Stops when dropped or stopped.
pub struct Reloader {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reloader {
    /// Polls every `interval`, starting after one interval (the caller polls once at start).
    pub fn spawn(
        tables: Arc<Tables>,
        metrics: Metrics,
        interval: Duration,
        mut state: PollState,
    ) -> io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("table-reloader".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    tables.poll(&mut state, &metrics);
                }
            })?;
        Ok(Reloader {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Dropping the sender wakes the thread with `Disconnected`.
        self.stop.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("the table reloader thread panicked");
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use voucher_shared::fixtures::contract_table as sample_table;
    use voucher_shared::publish::TABLE_FILE;

    fn publish(dir: &TablesDir, minute: u32, bytes: &[u8]) -> Version {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 10, minute, 0)
            .single()
            .expect("time");
        let staged = dir.stage(now).expect("stage");
        std::fs::write(staged.path(TABLE_FILE), bytes).expect("write");
        staged.commit().expect("commit").version
    }

    fn good_bytes() -> Vec<u8> {
        let mut buf = Vec::new();
        sample_table().write(&mut buf).expect("write");
        buf
    }

    fn reloads(metrics: &Metrics, result: &str) -> bool {
        let text = String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8");
        text.lines()
            .any(|l| l == format!("voucher_api_table_reloads_total{{result=\"{result}\"}} 1"))
    }

    #[test]
    fn loads_new_versions_and_keeps_the_old_one_when_a_new_one_is_bad() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tables = Tables::new(tmp.path());
        let metrics = Metrics::new().expect("metrics");
        let mut state = PollState::default();
        assert!(!tables.poll(&mut state, &metrics));
        assert!(!tables.is_loaded());

        let good = publish(tables.dir(), 0, &good_bytes());
        assert!(tables.poll(&mut state, &metrics));
        assert_eq!(*tables.subscribe().borrow(), Some(good));
        assert_eq!(tables.live().as_ref().map(|t| t.version()), Some(good));
        assert!(
            !tables.poll(&mut state, &metrics),
            "an unchanged CURRENT is not reloaded"
        );

        let mut truncated = good_bytes();
        truncated.truncate(truncated.len() / 2);
        publish(tables.dir(), 1, &truncated);
        assert!(!tables.poll(&mut state, &metrics));
        assert!(
            !tables.poll(&mut state, &metrics),
            "a refused version is not retried"
        );
        assert_eq!(tables.live().as_ref().map(|t| t.version()), Some(good));
        assert!(reloads(&metrics, "failure"), "one failure counted");

        let newer = publish(tables.dir(), 2, &good_bytes());
        assert!(
            tables.poll(&mut state, &metrics),
            "a later good version still loads"
        );
        assert_eq!(tables.live().as_ref().map(|t| t.version()), Some(newer));
    }

    #[test]
    fn a_missing_table_file_is_an_open_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tables = Tables::new(tmp.path());
        let version = publish(tables.dir(), 0, &good_bytes());
        std::fs::remove_file(tables.dir().table_path(version)).expect("remove");
        let err = tables.load(version).unwrap_err();
        assert!(matches!(err, LoadError::Open { .. }), "{err}");
        assert!(err.is_transient());
    }

    #[test]
    fn the_reloader_thread_publishes_each_new_version_to_subscribers_and_stops() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tables = Arc::new(Tables::new(tmp.path()));
        let metrics = Metrics::new().expect("metrics");
        let mut changes = tables.subscribe();
        assert_eq!(*changes.borrow_and_update(), None);
        let reloader = Reloader::spawn(
            Arc::clone(&tables),
            metrics,
            Duration::from_millis(10),
            PollState::default(),
        )
        .expect("spawn");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        for minute in [0, 1] {
            let version = publish(tables.dir(), minute, &good_bytes());
            let published = runtime.block_on(async {
                let wanted = changes.wait_for(|v| *v == Some(version));
                tokio::time::timeout(Duration::from_secs(5), wanted)
                    .await
                    .map(|changed| changed.is_ok())
            });
            assert_eq!(published, Ok(true), "{version} not published in time");
            // Published only once it is live.
            assert_eq!(tables.served().map(|s| s.live().version()), Some(version));
        }
        reloader.stop();
    }
}
