//! The customer store of a campaign: the profiles of the rows that give only `customer_id` and
//! `segment_name`, looked up in PostgreSQL (the table the API's `--customers-db` reads, by the
//! same statement, [`CustomerLookup`]).
//!
//! A window's ids are looked up together, [`IDS_PER_QUERY`] at a time. A campaign is a batch:
//! a lookup that fails fails the run (and leaves no output), rather than writing rows the store
//! could have answered as refused.

use std::sync::Arc;

use voucher_postgres::customers::CustomerLookup;
use voucher_postgres::{ConnectOptions, DbUrl, PgError, Session};
use voucher_shared::score::Profiles;

use super::ScoreError;

/// Ids bound to one query: a window's ids are looked up in a few queries of this many, each a
/// bounded `bigint[]` parameter and answer.
pub const IDS_PER_QUERY: usize = 65_536;

/// Where the profiles of requests by id come from.
#[derive(Debug, Clone)]
pub struct CustomerSource {
    pub url: DbUrl,
    /// `NAME` or `SCHEMA.NAME`.
    pub table: String,
    pub options: ConnectOptions,
}

/// The customer store's table, prepared on one connection.
pub(super) struct CustomerStore {
    /// The connection's task runs on this runtime's one worker, whichever window's thread
    /// waits for a lookup.
    runtime: tokio::runtime::Runtime,
    session: Session,
    lookup: CustomerLookup,
    table: String,
}

impl CustomerStore {
    /// Connects and checks the table's columns: a store that cannot be used fails the run
    /// before any row is scored.
    pub(super) fn open(source: &CustomerSource) -> Result<CustomerStore, ScoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("customer-store")
            .enable_all()
            .build()
            .map_err(ScoreError::Runtime)?;
        let (session, lookup) = runtime
            .block_on(async {
                let session = Session::connect(&source.url, &source.options).await?;
                let lookup = CustomerLookup::prepare(&session, &source.table).await?;
                Ok::<_, PgError>((session, lookup))
            })
            .map_err(|source_error| ScoreError::Customers {
                table: source.table.clone(),
                source: source_error,
            })?;
        log::info!(
            "looking customers up by id in table {} of {}",
            source.table,
            source.url
        );
        Ok(CustomerStore {
            runtime,
            session,
            lookup,
            table: source.table.clone(),
        })
    }

    /// The store's answer for each of `ids`: its profile, or that it holds no such customer.
    pub(super) fn profiles(&self, mut ids: Vec<i64>) -> Result<Profiles, ScoreError> {
        ids.sort_unstable();
        ids.dedup();
        let mut profiles = Profiles::with_store(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let found = self
                .runtime
                .block_on(self.lookup.fetch(&self.session, chunk))
                .map_err(|source| ScoreError::Customers {
                    table: self.table.clone(),
                    source,
                })?;
            // Every id asked is answered: found, or not held (`None`).
            for &id in chunk {
                profiles.insert(id, None);
            }
            for (id, profile) in found {
                profiles.insert(id, Some(Arc::new(profile)));
            }
        }
        Ok(profiles)
    }
}
