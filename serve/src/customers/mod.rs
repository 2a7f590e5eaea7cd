//! The customer store: the stored profiles that id-only requests are scored with, from a
//! PostgreSQL table, shared by every door of one process.
//!
//! A door hands [`Customers::resolve`] the ids of one request, batch, stream window or
//! consumer batch and gets one [`Profiles`] back for scoring them. Ids in the cache are
//! answered at once; the others go to the store's own thread, which sends every id waiting
//! when a connection frees up in one query (`WHERE customer_id = ANY($1)`), never one query
//! per customer. A lookup that fails, or takes longer than the timeout, leaves its ids
//! unavailable: those requests are refused as worth retrying, every other request goes on, and
//! readiness reports the store as degraded without turning not ready.
//!
//! The cache (optional, bounded) holds, per id looked up, the profile or the fact that the
//! table has no such customer, for the TTL: a profile changed in the table is answered with its
//! new values once its entry expires.
//!
//! - [`CustomerArgs`]: the flags, shared by the serving binaries;
//! - [`store`]: the thread, its pool of connections and the merged queries.

mod metrics;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use voucher_postgres::customers::DEFAULT_TABLE;
use voucher_postgres::{ConnectOptions, DbUrl, PgError};
use voucher_shared::score::{Profile, Profiles};

pub use self::metrics::StoreMetrics;
use self::store::StoreThread;
use crate::health::{Check, CheckState};

/// The name of the store's check in readiness.
pub const CHECK_NAME: &str = "customers";

/// `Retry-After` of a request refused because the store could not answer: lookups are tried
/// again on every request, so a short wait is enough.
pub const RETRY_AFTER_SECS: u64 = 1;

/// How often the store is checked when no lookup told its state (and while it is failing).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The customer store's flags, the same in every serving binary.
#[derive(Debug, Clone, clap::Args)]
pub struct CustomerArgs {
    /// PostgreSQL database holding the customer profiles, for requests that send only
    /// `customer_id` and `segment_name`: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=...]
    /// (the password may come from PGPASSWORD). Without it, such requests are refused as
    /// missing their fields.
    #[arg(long, env = "VOUCHER_CUSTOMERS_DB", hide_env_values = true, value_parser = DbUrl::from_arg)]
    pub customers_db: Option<DbUrl>,

    /// The table of customer profiles (`NAME` or `SCHEMA.NAME`), with the columns customer_id
    /// (an integer type, indexed), country_code, last_order_ts, first_order_ts, total_orders.
    #[arg(long, env = "VOUCHER_CUSTOMERS_TABLE", default_value = DEFAULT_TABLE)]
    pub customers_table: String,

    /// How long a lookup may take (a free connection and the query) before the requests
    /// waiting for it are refused as unavailable (503, retried), e.g. `500ms`.
    #[arg(long, env = "VOUCHER_CUSTOMERS_TIMEOUT", default_value = "500ms",
        value_parser = humantime::parse_duration)]
    pub customers_timeout: Duration,

    /// Time limit for connecting to the customer store and logging in, e.g. `5s`.
    #[arg(long, env = "VOUCHER_CUSTOMERS_CONNECT_TIMEOUT", default_value = "5s",
        value_parser = humantime::parse_duration)]
    pub customers_connect_timeout: Duration,

    /// Connections to the customer store at most; each runs one lookup at a time.
    #[arg(long, env = "VOUCHER_CUSTOMERS_POOL_SIZE", default_value_t = 4,
        value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub customers_pool_size: u16,

    /// Customers kept in the cache at most (the profile, or that there is no such customer);
    /// 0 turns the cache off.
    #[arg(long, env = "VOUCHER_CUSTOMERS_CACHE_SIZE", default_value_t = 100_000)]
    pub customers_cache_size: u64,

    /// How long a cached customer is answered from the cache: a profile changed in the table
    /// is answered with its new values within this time, e.g. `60s`.
    #[arg(long, env = "VOUCHER_CUSTOMERS_CACHE_TTL", default_value = "60s",
        value_parser = humantime::parse_duration)]
    pub customers_cache_ttl: Duration,
}

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the customer store's metrics")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot start the customer store's thread")]
    Thread(#[source] std::io::Error),
    #[error("cannot create the customer store's connection pool: {0}")]
    Pool(String),
}

/// Why a lookup found nothing out.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] PgError),
    #[error("every connection to the customer store stayed busy for {0:?}")]
    Busy(Duration),
    #[error("connecting to the customer store took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("the customer store gave no answer within {0:?}")]
    Timeout(Duration),
    #[error("the customer store is stopping")]
    Closed,
}

/// The store's doors-facing handle: none when no database is configured.
#[derive(Debug, Clone, Default)]
pub struct Customers(Option<Arc<CustomerStore>>);

impl Customers {
    /// Without a customer store: id-only requests are partial requests.
    pub fn none() -> Customers {
        Customers(None)
    }

    /// The store of `args`, started, or none when `args` names no database.
    pub fn start(
        args: &CustomerArgs,
        application_name: &str,
        registry: &prometheus::Registry,
    ) -> Result<Customers, StartError> {
        let Some(url) = &args.customers_db else {
            return Ok(Customers::none());
        };
        let store = CustomerStore::start(url, args, application_name, registry)?;
        Ok(Customers(Some(Arc::new(store))))
    }

    pub fn is_configured(&self) -> bool {
        self.0.is_some()
    }

    /// The store's readiness check, when there is a store.
    pub fn check(&self) -> Option<Arc<dyn Check>> {
        self.0
            .as_ref()
            .map(|store| Arc::clone(&store.state) as Arc<dyn Check>)
    }

    /// The profiles of `ids` (the ids of the id-only requests of one request, batch, stream
    /// window or consumer batch), from the cache and one lookup for the rest.
    pub async fn resolve(&self, ids: Vec<i64>) -> Profiles {
        match &self.0 {
            None => Profiles::no_store(),
            // What the store answers for no ids, without its lookup's state: that would make the
            // future of every caller, most of which have nothing to look up, hundreds of bytes
            // larger (allocated and copied per request by actix).
            Some(_) if ids.is_empty() => Profiles::with_store(0),
            Some(store) => Box::pin(store.resolve(ids)).await,
        }
    }
}

/// The store: its cache, its metrics, its state, and the thread that queries.
#[derive(Debug)]
pub struct CustomerStore {
    cache: Option<moka::sync::Cache<i64, Option<Arc<Profile>>>>,
    thread: StoreThread,
    state: Arc<StoreState>,
    metrics: StoreMetrics,
    timeout: Duration,
}

impl CustomerStore {
    fn start(
        url: &DbUrl,
        args: &CustomerArgs,
        application_name: &str,
        registry: &prometheus::Registry,
    ) -> Result<CustomerStore, StartError> {
        let metrics = StoreMetrics::register(registry)?;
        let state = Arc::new(StoreState::new(url, &args.customers_table));
        let options = ConnectOptions {
            connect_timeout: args.customers_connect_timeout,
            // The server gives up on a lookup nobody waits for any more.
            statement_timeout: Some(args.customers_timeout),
            application_name: application_name.to_owned(),
        };
        let thread = StoreThread::spawn(store::Settings {
            url: url.clone(),
            options,
            table: args.customers_table.clone(),
            pool_size: usize::from(args.customers_pool_size),
            timeout: args.customers_timeout,
            state: Arc::clone(&state),
            metrics: metrics.clone(),
        })?;
        let cache = (args.customers_cache_size > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(args.customers_cache_size)
                .time_to_live(args.customers_cache_ttl)
                .build()
        });
        log::info!(
            "customer store: table {} in {url} (lookups within {:?}, {} connections at most, {})",
            args.customers_table,
            args.customers_timeout,
            args.customers_pool_size,
            if cache.is_some() {
                format!(
                    "{} customers cached for {:?}",
                    args.customers_cache_size, args.customers_cache_ttl
                )
            } else {
                "no cache".to_owned()
            }
        );
        Ok(CustomerStore {
            cache,
            thread,
            state,
            metrics,
            timeout: args.customers_timeout,
        })
    }

    async fn resolve(&self, mut ids: Vec<i64>) -> Profiles {
        let mut profiles = Profiles::with_store(ids.len());
        let mut counts = Counts::default();
        if let Some(cache) = &self.cache {
            let asked = ids.len();
            ids.retain(|id| match cache.get(id) {
                Some(entry) => {
                    counts.note(&entry);
                    profiles.insert(*id, entry);
                    false
                }
                None => true,
            });
            self.metrics.cache(asked - ids.len(), ids.len());
        }
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            match self.ask(ids.clone()).await {
                Ok(found) => {
                    let mut found = found.into_iter().peekable();
                    // Both are sorted by id: each id asked is found or unknown.
                    for id in ids {
                        while found.next_if(|(f, _)| *f < id).is_some() {}
                        let profile = found.next_if(|(f, _)| *f == id).map(|(_, p)| p);
                        counts.note(&profile);
                        if let Some(cache) = &self.cache {
                            cache.insert(id, profile.clone());
                        }
                        profiles.insert(id, profile);
                    }
                }
                Err(error) => {
                    self.state.failed(&error);
                    counts.unavailable += ids.len() as u64;
                    profiles.set_unavailable(error.to_string());
                }
            }
        }
        self.metrics.lookups(&counts);
        profiles
    }

    /// The profiles the table holds of `ids` (sorted, distinct), sorted by id, within the
    /// timeout.
    async fn ask(&self, ids: Vec<i64>) -> Result<Vec<(i64, Arc<Profile>)>, Arc<StoreError>> {
        let reply = self.thread.ask(ids).ok_or(StoreError::Closed)?;
        match tokio::time::timeout(self.timeout, reply).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Arc::new(StoreError::Closed)),
            Err(_) => Err(Arc::new(StoreError::Timeout(self.timeout))),
        }
    }
}

/// Ids answered, by how.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) found: u64,
    pub(crate) unknown: u64,
    pub(crate) unavailable: u64,
}

impl Counts {
    fn note(&mut self, profile: &Option<Arc<Profile>>) {
        match profile {
            Some(_) => self.found += 1,
            None => self.unknown += 1,
        }
    }
}

/// What readiness says of the store: `ok` after a lookup or check succeeded, `degraded` (still
/// ready: full requests are answered) with the last failure otherwise.
#[derive(Debug)]
pub(crate) struct StoreState {
    /// `host:port/database` and the table, for messages.
    place: String,
    last: Mutex<Result<(), String>>,
}

impl StoreState {
    fn new(url: &DbUrl, table: &str) -> StoreState {
        StoreState {
            place: format!("table {table} in {}", url.server()),
            last: Mutex::new(Err("not checked yet".into())),
        }
    }

    /// Records a success; logs only a change.
    pub(crate) fn succeeded(&self) {
        self.set(Ok(()));
    }

    /// Records a failure; logs only a change, so a lasting outage is one line.
    pub(crate) fn failed(&self, error: &StoreError) {
        self.set(Err(voucher_shared::errors::Chain(error).to_string()));
    }

    fn set(&self, result: Result<(), String>) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last != result {
            match &result {
                Ok(()) => log::info!("customer store: {} answers", self.place),
                Err(why) => log::warn!(
                    "customer store: {} cannot answer; id-only requests are refused until it does: {why}",
                    self.place
                ),
            }
            *last = result;
        }
    }

    pub(crate) fn is_ok(&self) -> bool {
        self.last.lock().is_ok_and(|l| l.is_ok())
    }
}

impl Check for StoreState {
    fn name(&self) -> &'static str {
        CHECK_NAME
    }

    fn state(&self) -> CheckState {
        match &*self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            Ok(()) => CheckState::Ok,
            Err(why) => CheckState::Degraded(format!("{}: {why}", self.place)),
        }
    }
}
