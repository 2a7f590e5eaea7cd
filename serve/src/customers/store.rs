//! The store's thread: a tokio runtime of its own (the doors run on several: actix's workers,
//! gRPC's, the consumer's), a pool of connections (deadpool, each connection made with
//! voucher-postgres's connect and holding the prepared lookup), and the dispatcher.
//!
//! The dispatcher takes the first ids asked, waits for a free connection, then takes every
//! other ask already waiting and sends all their ids in one query. Under load, queries thus
//! grow with the traffic instead of multiplying: the asks of many single requests, or of many
//! stream windows, share one query.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use deadpool::Runtime;
use deadpool::managed::{self, Object, PoolError, RecycleError, RecycleResult, TimeoutType};
use tokio::sync::{mpsc, oneshot};
use voucher_postgres::customers::CustomerLookup;
use voucher_postgres::{ConnectOptions, DbUrl, Failure, PgError, Session};
use voucher_shared::score::Profile;

use super::{CHECK_INTERVAL, StartError, StoreError, StoreMetrics, StoreState};

/// Ids of several asks merged into one query at most (one larger ask is sent alone).
const MAX_MERGED_IDS: usize = 16_384;

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
            first = asked.recv() => {
                let Some(first) = first else { break };
                asked_since_check = true;
                let connection = pool.get().await;
                let mut asks = vec![first];
                let mut ids = asks[0].ids.len();
                while ids < MAX_MERGED_IDS {
                    let Ok(ask) = asked.try_recv() else { break };
                    ids += ask.ids.len();
                    asks.push(ask);
                }
                // Those who gave up waiting need no answer.
                asks.retain(|ask| !ask.reply.is_closed());
                if !asks.is_empty() {
                    tokio::spawn(answer(pool.clone(), connection, asks, Arc::clone(&settings)));
                }
            }
        }
    }
    pool.close();
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
