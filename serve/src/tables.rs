//! Loading table versions and replacing the live one.
//!
//! One reloader thread per process reads `<tables-dir>/CURRENT` every interval. A new version
//! is memory-mapped, decoded and validated completely off the request workers, then swapped in
//! with one atomic store; requests already holding the old version finish on it. Each change is
//! then published to the subscribers ([`Tables::subscribe`]: gRPC health, the Kafka consumer),
//! which wait for it instead of polling. A version that fails to load is logged and counted
//! once, and the old version stays live. Published versions never change, so a version refused
//! for its contents is not retried; a later version still loads.
//!
//! The same poll reads `<tables-dir>/CANARY` and loads the version it names beside the live one
//! ([`crate::canary`]). A canary that cannot be served (its record unreadable, its version
//! missing, deleted or invalid) is logged and counted once and serves nothing: the live version
//! answers everyone, and no request fails because of it.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

use crate::canary::Canary;
use crate::live::{LiveTable, Served};
use crate::metrics::{Metrics, ReloadResult};
use voucher_shared::canary::CanaryRecord;

/// Why a version could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot find the live version")]
    Current(#[from] PublishError),
    #[error("cannot read the canary record")]
    Canary(#[source] PublishError),
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
            LoadError::Current(_)
                | LoadError::Canary(_)
                | LoadError::Open { .. }
                | LoadError::Map { .. }
        )
    }
}

/// The tables directory and the live version.
#[derive(Debug)]
pub struct Tables {
    dir: TablesDir,
    /// Read by every request: a lock-free load.
    live: ArcSwapOption<LiveTable>,
    /// The canary served beside the live version, if any.
    canary: ArcSwapOption<Canary>,
    /// The live version, published after each change to those who wait for one.
    changes: watch::Sender<Option<Version>>,
    /// Which `Tables` this is, for [`Tables::with_served`]'s per-thread copy.
    id: u64,
    /// Bumped after every change of `live` or `canary`.
    generation: AtomicU64,
}

/// Tells apart the `Tables` of one process (tests run several).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of what a `Tables` serves: its id, its generation then, and the copy.
    static SERVED: RefCell<Option<(u64, u64, Served)>> = const { RefCell::new(None) };
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
    /// The last canary refused for its contents: not retried until `CANARY` changes.
    canary_refused: Option<CanaryRecord>,
    /// The last error about the canary, so that a lasting one is logged and counted once.
    canary_error: Option<String>,
}

impl Tables {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Tables {
            dir: TablesDir::new(dir),
            live: ArcSwapOption::empty(),
            canary: ArcSwapOption::empty(),
            changes: watch::Sender::new(None),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &TablesDir {
        &self.dir
    }

    /// What is served, for scoring one request, batch or stream; `None` before a table loads.
    pub fn served(&self) -> Option<Served> {
        let live = self.live.load_full()?;
        Some(Served::with_canary(live, self.canary.load_full()))
    }

    /// The canary served beside the live version, if any (to describe it).
    pub fn canary(&self) -> Option<Arc<Canary>> {
        self.canary.load_full()
    }

    /// The live table, to describe it (not to score: see [`Tables::served`]). Hold the guard
    /// only for the synchronous part of a request.
    pub fn live(&self) -> Guard<Option<Arc<LiveTable>>> {
        self.live.load()
    }

    /// Calls `score` with what is served, for a door that scores synchronously (the single
    /// route); `None` before a table loads.
    ///
    /// Each thread keeps a copy of what it was last served and takes a new one only after a
    /// change: a request then touches no reference count that another core's requests touch
    /// too (taking a [`Served`] costs two atomic increments and decrements of counts every
    /// worker shares, which the single route's throughput showed; bench/RESULTS.md). A thread
    /// therefore holds a replaced version until its next request.
    pub fn with_served<R>(&self, score: impl FnOnce(&Served) -> R) -> Option<R> {
        // Read before the tables: a change after this read bumps it again, so the copy taken
        // below is replaced at the next call.
        let generation = self.generation.load(Ordering::Acquire);
        SERVED.with(|cell| {
            let Ok(mut copy) = cell.try_borrow_mut() else {
                // Called from within `score`: no copy to lend.
                return self.served().map(|served| score(&served));
            };
            let fresh = matches!(&*copy, Some((id, at, _)) if *id == self.id && *at == generation);
            if !fresh {
                *copy = Some((self.id, generation, self.served()?));
            }
            copy.as_ref().map(|(_, _, served)| score(served))
        })
    }

    pub fn is_loaded(&self) -> bool {
        self.with_served(|_| ()).is_some()
    }

    /// Marks a change of what is served, for [`Tables::with_served`].
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Release);
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

    /// Checks `CURRENT` and `CANARY` once and loads the versions they name if they are new.
    /// Returns whether the live table changed.
    pub fn poll(&self, state: &mut PollState, metrics: &Metrics) -> bool {
        let changed = self.poll_live(state, metrics);
        self.poll_canary(state, metrics);
        changed
    }

    fn poll_live(&self, state: &mut PollState, metrics: &Metrics) -> bool {
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
                metrics.table_loaded(&table);
                metrics.reload(ReloadResult::Success);
                let table = Arc::new(table);
                self.live.store(Some(Arc::clone(&table)));
                self.changed();
                self.changes.send_replace(Some(wanted));
                // Logged once served: readers of the log (operators, tests) may rely on it.
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
                state.refused = None;
                state.last_error = None;
                state.waiting_logged = true;
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

impl Tables {
    /// Follows `CANARY`: loads a new canary, changes its share, or drops one that ended or can
    /// no longer be served.
    fn poll_canary(&self, state: &mut PollState, metrics: &Metrics) {
        let live = self.live.load_full().map(|t| t.version());
        let current = self.canary.load_full();
        let record = match self.dir.canary() {
            Ok(Some(record)) if Some(record.version) != live => record,
            Ok(_) => {
                // None, or the live version's (promoted): the live version answers everyone.
                state.canary_refused = None;
                if let Some(old) = current {
                    log::info!(
                        "canary {} ended: {} answers every customer",
                        old.record().version,
                        describe(live)
                    );
                    self.set_canary(None, metrics);
                }
                return;
            }
            Err(e) => {
                let e = LoadError::Canary(e);
                self.refuse_canary(state, metrics, None, live, &e);
                return;
            }
        };
        if let Some(canary) = current.filter(|c| c.record().version == record.version)
            && self.dir.table_path(record.version).exists()
        {
            if *canary.record() != record {
                log::info!(
                    "canary {}: now {} of customers (was {}), by {}: {}",
                    record.version,
                    record.percent,
                    canary.record().percent,
                    record.by,
                    record.reason
                );
                let table = Arc::clone(canary.table());
                self.set_canary(
                    Some(Canary::new(table, record, metrics.canary().clone())),
                    metrics,
                );
            }
            return;
        }
        if state.canary_refused.as_ref() == Some(&record) {
            return;
        }
        match self.load(record.version) {
            Ok(table) => {
                log::info!(
                    "canary {} loaded: it answers {} of customers (by customer_id bucket) beside {}, since {} by {}: {}",
                    record.version,
                    record.percent,
                    describe(live),
                    record.since,
                    record.by,
                    record.reason
                );
                state.canary_error = None;
                let canary = Canary::new(Arc::new(table), record, metrics.canary().clone());
                self.set_canary(Some(canary), metrics);
            }
            Err(e) => self.refuse_canary(state, metrics, Some(record), live, &e),
        }
    }

    fn set_canary(&self, canary: Option<Canary>, metrics: &Metrics) {
        metrics.canary().set(canary.as_ref().map(Canary::record));
        self.canary.store(canary.map(Arc::new));
        self.changed();
    }

    /// Serves no canary, and logs and counts why (once for a lasting error).
    fn refuse_canary(
        &self,
        state: &mut PollState,
        metrics: &Metrics,
        record: Option<CanaryRecord>,
        live: Option<Version>,
        error: &LoadError,
    ) {
        self.set_canary(None, metrics);
        let message = Chain(error).to_string();
        if error.is_transient() {
            if state.canary_error.as_deref() == Some(message.as_str()) {
                return;
            }
            state.canary_error = Some(message.clone());
        } else {
            state.canary_refused = record.clone();
        }
        metrics.canary().failed();
        let version = record.map_or_else(|| "?".to_owned(), |r| r.version.to_string());
        log::error!(
            "canary {version} in {} cannot be served: {message}; {} answers every customer",
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
    use crate::metrics::Binary;
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
        let metrics = Metrics::new(Binary::Api).expect("metrics");
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
    fn a_threads_copy_of_what_is_served_follows_every_change() {
        let version_of = |tables: &Tables| tables.with_served(|s| s.live().version());
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        let (one, two) = (
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        );
        let (first, second) = (Tables::new(one.path()), Tables::new(two.path()));
        let (mut state_one, mut state_two) = (PollState::default(), PollState::default());
        assert_eq!(version_of(&first), None);
        assert!(!first.is_loaded());

        let old = publish(first.dir(), 0, &good_bytes());
        assert!(first.poll(&mut state_one, &metrics));
        assert_eq!(version_of(&first), Some(old));
        let other = publish(second.dir(), 5, &good_bytes());
        assert!(second.poll(&mut state_two, &metrics));
        // This thread now asks two `Tables` in turn: each answers with its own version.
        assert_eq!(version_of(&second), Some(other));
        assert_eq!(version_of(&first), Some(old));

        let new = publish(first.dir(), 1, &good_bytes());
        assert!(first.poll(&mut state_one, &metrics));
        assert_eq!(version_of(&first), Some(new), "a reload replaces the copy");
        assert_eq!(version_of(&second), Some(other));
        // Called from within a call: answered from a fresh copy.
        assert_eq!(first.with_served(|_| version_of(&first)), Some(Some(new)));
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
        let metrics = Metrics::new(Binary::Api).expect("metrics");
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

#[cfg(test)]
mod canary_tests {
    use std::borrow::Cow;

    use super::*;
    use crate::metrics::Binary;
    use chrono::{TimeZone, Utc};
    use voucher_shared::canary::Percent;
    use voucher_shared::fixtures::{contract_rows, write_version};
    use voucher_shared::manifest::GateOutcome;
    use voucher_shared::publish::Because;
    use voucher_shared::score::{Json, VoucherRequest};

    /// 2026-11-23T12:00:00Z.
    const NOW: i64 = 1_795_435_200;

    fn version(dir: &TablesDir, minute: u32, base: i64, outcome: GateOutcome) -> Version {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 10, minute, 0)
            .single()
            .expect("time");
        write_version(dir.stage(now).expect("stage"), contract_rows(base), outcome)
    }

    /// Customer `id`: Latvia's `0-4` pays 1000 in every contract table, Peru's `14-37` pays
    /// the table's base; so the live (2640) and canary (3000) answers differ exactly for Peru.
    fn request(id: i64, peru: bool) -> VoucherRequest<'static> {
        let text = |s: &'static str| Json::Str(Cow::Borrowed(s));
        VoucherRequest {
            customer_id: Json::Int(id),
            country_code: text(if peru { "Peru" } else { "Latvia" }),
            last_order_ts: text("2026-10-01"),
            first_order_ts: text("2021-10-26 00:00:00"),
            total_orders: Json::Int(if peru { 14 } else { 2 }),
            segment_name: text("frequent_segment"),
        }
    }

    fn metrics_text(metrics: &Metrics) -> String {
        String::from_utf8(metrics.render(None, 0).expect("render")).expect("utf-8")
    }

    /// The value of the one series of `name` whose labels include every pair of `labels`.
    fn series(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .find(|l| labels.iter().all(|pair| l.contains(pair)))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// A tables directory with a live version (2640) and a held one (3000), nothing loaded yet.
    fn setup() -> (
        tempfile::TempDir,
        Tables,
        Metrics,
        PollState,
        Version,
        Version,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tables = Tables::new(tmp.path());
        let live = version(tables.dir(), 0, 2640, GateOutcome::Passed);
        let candidate = version(tables.dir(), 1, 3000, GateOutcome::Held);
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        (tmp, tables, metrics, PollState::default(), live, candidate)
    }

    fn start(dir: &TablesDir, version: Version, percent: &str) {
        let percent: Percent = percent.parse().expect("percent");
        dir.start_canary(version, percent, &Because::new("test", "tester"))
            .expect("start the canary");
    }

    #[test]
    fn a_canary_answers_its_share_by_bucket_and_counts_what_its_shadow_changes() {
        let (_tmp, tables, metrics, mut state, live, candidate) = setup();
        tables.poll(&mut state, &metrics);
        start(tables.dir(), candidate, "20");
        tables.poll(&mut state, &metrics);
        let served = tables.served().expect("served");
        assert_eq!(
            served.canary().map(|c| c.table().version()),
            Some(candidate)
        );

        let (mut from_candidate, mut peru) = (0, 0);
        for id in 0..100_000 {
            let is_peru = id % 3 != 0;
            peru += u64::from(is_peru);
            let answer = served.score(&request(id, is_peru), NOW);
            let voucher = answer.scored.as_ref().expect("answered").voucher;
            if answer.version == candidate.to_string() {
                from_candidate += 1;
                assert_eq!(voucher, if is_peru { 3000 } else { 1000 });
            } else {
                assert_eq!(answer.version, live.to_string());
                assert_eq!(voucher, if is_peru { 2640 } else { 1000 });
            }
        }
        assert!(
            (19_000..=21_000).contains(&from_candidate),
            "{from_candidate}"
        );

        let counts = served.canary().expect("canary").counts();
        assert_eq!(
            (counts.canary_answers, counts.live_answers),
            (from_candidate, 100_000 - from_candidate)
        );
        let frequent = &counts.by_segment_type[0];
        assert_eq!((frequent.compared, frequent.different), (100_000, peru));
        let text = metrics_text(&metrics);
        let shadow = |country: &str, outcome: &str| {
            series(
                &text,
                "voucher_api_shadow_total",
                &[
                    &format!("country=\"{country}\""),
                    &format!("outcome=\"{outcome}\""),
                ],
            )
        };
        assert_eq!(shadow("Peru", "different"), Some(peru as f64));
        assert_eq!(shadow("Latvia", "same"), Some((100_000 - peru) as f64));
        assert_eq!(shadow("Latvia", "different"), None);
        assert_eq!(
            series(
                &text,
                "voucher_api_canary_percent_hundredths",
                &[&candidate.to_string()]
            ),
            Some(2000.0)
        );

        // Sticky: another hold of what is served (as another door takes) answers alike.
        let again = tables.served().expect("served");
        for id in (0..100_000).step_by(997) {
            let r = request(id, true);
            assert_eq!(served.score(&r, NOW).version, again.score(&r, NOW).version);
        }
    }

    #[test]
    fn ending_or_promoting_the_canary_moves_everyone_at_the_next_poll() {
        let (_tmp, tables, metrics, mut state, live, candidate) = setup();
        let versions_of = |tables: &Tables| {
            let served = tables.served().expect("served");
            (0..2000)
                .map(|id| served.score(&request(id, true), NOW).version.to_owned())
                .collect::<std::collections::BTreeSet<_>>()
        };
        start(tables.dir(), candidate, "50");
        tables.poll(&mut state, &metrics);
        assert_eq!(versions_of(&tables).len(), 2);

        tables
            .dir()
            .end_canary(&Because::new("done", "tester"))
            .expect("end");
        tables.poll(&mut state, &metrics);
        assert_eq!(versions_of(&tables), [live.to_string()].into());

        start(tables.dir(), candidate, "50");
        tables.poll(&mut state, &metrics);
        tables
            .dir()
            .promote(candidate, &Because::new("good", "tester"))
            .expect("promote");
        tables.poll(&mut state, &metrics);
        assert_eq!(versions_of(&tables), [candidate.to_string()].into());
        assert!(tables.canary().is_none());
    }

    #[test]
    fn a_canary_that_cannot_be_served_is_counted_once_and_nothing_fails() {
        let (tmp, tables, metrics, mut state, live, candidate) = setup();
        start(tables.dir(), candidate, "99");
        tables.poll(&mut state, &metrics);
        assert!(tables.canary().is_some());

        // Deleted under it: dropped at the next poll, counted once however long it lasts.
        std::fs::remove_dir_all(tables.dir().version_dir(candidate)).expect("delete");
        for _ in 0..3 {
            tables.poll(&mut state, &metrics);
            assert!(tables.canary().is_none());
        }
        let text = metrics_text(&metrics);
        let count = text
            .lines()
            .find(|l| l.starts_with("voucher_api_canary_failures_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        assert_eq!(count, Some(1.0), "{text}");
        let served = tables.served().expect("served");
        for id in 0..1000 {
            let answer = served.score(&request(id, true), NOW);
            assert_eq!(answer.version, live.to_string());
            assert!(answer.scored.is_ok());
        }

        // An unreadable record serves no canary either.
        std::fs::write(
            tmp.path().join(voucher_shared::canary::CANARY),
            b"{not json",
        )
        .expect("write");
        tables.poll(&mut state, &metrics);
        assert!(tables.canary().is_none());
        assert!(tables.served().is_some());
    }
}
