//! The store's thread: a tokio runtime of its own (the doors run on several: actix's workers,
//! gRPC's, the consumer's), a pool of connections (deadpool, each connection made with
//! voucher-postgres's connect and holding the prepared lookup), and the dispatcher.
//!
//! The dispatcher sends the ids asked in one query as soon as no query is in flight, with every
//! other ask waiting by then. While queries are in flight it does not listen for asks (each
//! would wake its thread): it takes them all when a query ends, or [`GATHER_WAIT`] after it
//! began to wait, whichever comes first; then it waits for a free connection, takes what came
//! meanwhile and sends all their ids in one query. Under load, queries thus grow with the
//! traffic instead of multiplying: the asks of many single requests, or of many stream
//! windows, share one query.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use deadpool::Runtime;
use deadpool::managed::{self, Object, PoolError, RecycleError, RecycleResult, TimeoutType};
use tokio::sync::{Notify, mpsc, oneshot};
use voucher_postgres::customers::CustomerLookup;
use voucher_postgres::{ConnectOptions, DbUrl, Failure, PgError, Session};
use voucher_shared::score::Profile;

use super::{CHECK_INTERVAL, StartError, StoreError, StoreMetrics, StoreState};

/// Ids of several asks merged into one query at most (one larger ask is sent alone).
const MAX_MERGED_IDS: usize = 16_384;

/// The longest asks wait for a query in flight to end before they take another connection, so
/// that a slow query delays the others by this at most. Each query costs the server a fixed
/// amount besides its ids, and on a busy server many small queries in parallel answered fewer
/// ids per second than fewer larger ones (9 ids per query and 52,000 requests by id per second
/// with four connections, 19 and 57,000 so; bench/RESULTS.md).
const GATHER_WAIT: Duration = Duration::from_millis(2);

/// What the store thread needs.
pub(crate) struct Settings {
    pub(crate) url: DbUrl,
    pub(crate) options: ConnectOptions,
    pub(crate) table: String,
    pub(crate) pool_size: usize,
    pub(crate) timeout: Duration,
    pub(crate) state: Arc<StoreState>,
    pub(crate) metrics: StoreMetrics,
}

/// The profiles found of the ids asked, sorted by id; or why the store could not answer.
pub(crate) type Answer = Result<Vec<(i64, Arc<Profile>)>, Arc<StoreError>>;

/// Ids to look up (sorted, distinct), and where the answer goes.
pub(crate) struct Ask {
    ids: Vec<i64>,
    reply: oneshot::Sender<Answer>,
}

/// The running thread; stopped when dropped.
#[derive(Debug)]
pub(crate) struct StoreThread {
    asks: mpsc::UnboundedSender<Ask>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Pool = managed::Pool<Manager>;

impl StoreThread {
    pub(crate) fn spawn(settings: Settings) -> Result<StoreThread, StartError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Thread)?;
        let manager = Manager {
            url: settings.url.clone(),
            options: settings.options.clone(),
            table: settings.table.clone(),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.options.connect_timeout))
            .recycle_timeout(Some(settings.timeout))
            .build()
            .map_err(|e| StartError::Pool(e.to_string()))?;
        let (asks, asked) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("customers".into())
            .spawn(move || runtime.block_on(dispatch(pool, asked, stopped, Arc::new(settings))))
            .map_err(StartError::Thread)?;
        Ok(StoreThread {
            asks,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Sends `ids` (sorted, distinct) to be looked up; `None` once the thread has stopped.
    pub(crate) fn ask(&self, ids: Vec<i64>) -> Option<oneshot::Receiver<Answer>> {
        let (reply, answer) = oneshot::channel();
        self.asks.send(Ask { ids, reply }).ok()?;
        Some(answer)
    }
}

impl Drop for StoreThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Takes asks until stopped: each query answers every ask waiting when a connection freed.
async fn dispatch(
    pool: Pool,
    mut asked: mpsc::UnboundedReceiver<Ask>,
    mut stopped: oneshot::Receiver<()>,
    settings: Arc<Settings>,
) {
    let in_flight = Arc::new(InFlight::default());
    let mut check = tokio::time::interval(CHECK_INTERVAL);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut asked_since_check = false;
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = check.tick() => {
                // The first tick is at once: the state is known before the first request.
                if !asked_since_check || !settings.state.is_ok() {
                    tokio::spawn(check_store(pool.clone(), Arc::clone(&settings)));
                }
                asked_since_check = false;
            }
            first = asked.recv(), if !in_flight.busy() => {
                let Some(first) = first else { break };
                asked_since_check = true;
                let mut batch = Batch::of(first);
                batch.take_waiting(&mut asked);
                send(batch, &pool, &mut asked, &in_flight, &settings).await;
            }
            // Not listening for asks meanwhile: they wait in the channel without waking anyone.
            // (A query that runs longer wakes this every GATHER_WAIT, asks or not.)
            () = in_flight.settled(GATHER_WAIT), if in_flight.busy() => {
                let mut batch = Batch::default();
                batch.take_waiting(&mut asked);
                if !batch.asks.is_empty() {
                    asked_since_check = true;
                    send(batch, &pool, &mut asked, &in_flight, &settings).await;
                }
            }
        }
    }
    pool.close();
}

/// Waits for a free connection, adds the asks that came meanwhile, and sends the batch's ids in
/// one query answered on a task of its own.
async fn send(
    mut batch: Batch,
    pool: &Pool,
    asked: &mut mpsc::UnboundedReceiver<Ask>,
    in_flight: &Arc<InFlight>,
    settings: &Arc<Settings>,
) {
    let connection = pool.get().await;
    batch.take_waiting(asked);
    // Those who gave up waiting need no answer.
    let mut asks = batch.asks;
    asks.retain(|ask| !ask.reply.is_closed());
    if !asks.is_empty() {
        let query = in_flight.start();
        let (pool, settings) = (pool.clone(), Arc::clone(settings));
        tokio::spawn(async move {
            answer(pool, connection, asks, settings).await;
            drop(query);
        });
    }
}

/// The asks one query will answer.
#[derive(Default)]
struct Batch {
    asks: Vec<Ask>,
    /// Their ids, counted with repeats.
    ids: usize,
}

impl Batch {
    fn of(first: Ask) -> Batch {
        Batch {
            ids: first.ids.len(),
            asks: vec![first],
        }
    }

    fn add(&mut self, ask: Ask) {
        self.ids += ask.ids.len();
        self.asks.push(ask);
    }

    /// Adds the asks already waiting, up to [`MAX_MERGED_IDS`].
    fn take_waiting(&mut self, asked: &mut mpsc::UnboundedReceiver<Ask>) {
        while self.ids < MAX_MERGED_IDS {
            let Ok(ask) = asked.try_recv() else { break };
            self.add(ask);
        }
    }
}

/// The queries in flight, and a signal each time one ends.
#[derive(Default)]
struct InFlight {
    queries: AtomicUsize,
    ended: Notify,
}

impl InFlight {
    fn busy(&self) -> bool {
        self.queries.load(Ordering::Acquire) > 0
    }

    /// Returns when a query ends or after `wait`.
    async fn settled(&self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.ended.notified() => {}
        }
    }

    /// Counts a query until the guard is dropped (also if its task panics).
    fn start(self: &Arc<Self>) -> QueryGuard {
        self.queries.fetch_add(1, Ordering::AcqRel);
        QueryGuard(Arc::clone(self))
    }
}

struct QueryGuard(Arc<InFlight>);

impl Drop for QueryGuard {
    fn drop(&mut self) {
        self.0.queries.fetch_sub(1, Ordering::AcqRel);
        // A permit if nobody waits yet: the dispatcher's next wait ends at once, which costs at
        // most one smaller query.
        self.0.ended.notify_one();
    }
}

/// Looks up the ids of `asks` in one query and answers each ask with its own.
async fn answer(
    pool: Pool,
    connection: Result<Object<Manager>, PoolError<PgError>>,
    asks: Vec<Ask>,
    settings: Arc<Settings>,
) {
    let mut ids: Vec<i64> = asks.iter().flat_map(|a| a.ids.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let started = Instant::now();
    let mut result = fetch(connection, &ids, &settings).await;
    // A connection the server closed since its last use (a restart) is noticed only now: one
    // more try on a fresh one, if time is left.
    if let Err(StoreError::Db(e)) = &result
        && e.failure() == Some(&Failure::ConnectionLost)
        && started.elapsed() < settings.timeout
    {
        result = fetch(pool.get().await, &ids, &settings).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    settings.metrics.query(result.is_ok(), ids.len(), seconds);
    settings.metrics.up(result.is_ok());
    match result {
        Ok(found) => {
            settings.state.succeeded();
            let mut found: Vec<(i64, Arc<Profile>)> =
                found.into_iter().map(|(id, p)| (id, Arc::new(p))).collect();
            found.sort_unstable_by_key(|(id, _)| *id);
            found.dedup_by_key(|(id, _)| *id);
            for ask in asks {
                let mine = ask
                    .ids
                    .iter()
                    .filter_map(|id| {
                        let at = found.binary_search_by_key(id, |(f, _)| *f).ok()?;
                        Some((*id, Arc::clone(&found[at].1)))
                    })
                    .collect();
                let _ = ask.reply.send(Ok(mine));
            }
        }
        Err(error) => {
            settings.state.failed(&error);
            let error = Arc::new(error);
            for ask in asks {
                let _ = ask.reply.send(Err(Arc::clone(&error)));
            }
        }
    }
}

async fn fetch(
    connection: Result<Object<Manager>, PoolError<PgError>>,
    ids: &[i64],
    settings: &Settings,
) -> Result<Vec<(i64, Profile)>, StoreError> {
    let connection = connection.map_err(|e| pool_error(e, settings))?;
    Ok(connection.lookup.fetch(&connection.session, ids).await?)
}

/// Checks that the store answers: a connection (made and its lookup prepared, or reused) and
/// a lookup of no ids.
async fn check_store(pool: Pool, settings: Arc<Settings>) {
    let result = fetch(pool.get().await, &[], &settings).await;
    settings.metrics.up(result.is_ok());
    match result {
        Ok(_) => settings.state.succeeded(),
        Err(error) => settings.state.failed(&error),
    }
}

fn pool_error(error: PoolError<PgError>, settings: &Settings) -> StoreError {
    match error {
        PoolError::Backend(e) => StoreError::Db(e),
        PoolError::Timeout(TimeoutType::Create) => {
            StoreError::ConnectTimeout(settings.options.connect_timeout)
        }
        PoolError::Timeout(TimeoutType::Wait | TimeoutType::Recycle) => {
            StoreError::Busy(settings.timeout)
        }
        PoolError::Closed | PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StoreError::Closed
        }
    }
}

/// Makes connections with voucher-postgres's connect (its URL rules, TLS and errors naming the
/// server), each with the lookup prepared; a connection the server closed is not reused.
struct Manager {
    url: DbUrl,
    options: ConnectOptions,
    table: String,
}

struct Connection {
    session: Session,
    lookup: CustomerLookup,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = PgError;

    async fn create(&self) -> Result<Connection, PgError> {
        let session = Session::connect(&self.url, &self.options).await?;
        let lookup = CustomerLookup::prepare(&session, &self.table).await?;
        Ok(Connection { session, lookup })
    }

    async fn recycle(
        &self,
        connection: &mut Connection,
        _: &managed::Metrics,
    ) -> RecycleResult<PgError> {
        if connection.session.client().is_closed() {
            return Err(RecycleError::message("the server closed the connection"));
        }
        Ok(())
    }
}
