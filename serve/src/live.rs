//! A loaded table version, and what a door holds while it answers.
//!
//! A [`LiveTable`] is what every door needs of a version: the scoring [`Snapshot`] and the
//! table's rows (for the doors that describe the table). How a door renders it is the door's
//! business, not this type's.
//!
//! [`Served`] is the one seam between the doors and the scoring core: a door takes one from
//! [`crate::tables::Tables::served`] per request (or per batch, stream or batch of events) and
//! scores every item through [`Served::score`] (or, with the customer store's answer for the
//! item's batch, [`Served::score_with`]). Which version answers an item is decided there and
//! nowhere else: the live one, or the canary's for the customers of its buckets
//! ([`crate::canary`]), each request then also scored against the other for the shadow
//! comparison.

use std::sync::Arc;

use voucher_shared::manifest::Manifest;
use voucher_shared::publish::Version;
use voucher_shared::score::{self, Profiles, Scored, Snapshot, VoucherRequest};
use voucher_shared::table::VoucherTable;

use crate::canary::Canary;
use crate::metrics::Arm;

/// A loaded table version, ready to answer requests.
#[derive(Debug)]
pub struct LiveTable {
    snapshot: Snapshot,
    /// The rows as published, for the doors that list the table.
    table: VoucherTable,
}

impl LiveTable {
    pub fn new(version: Version, table: VoucherTable, manifest: Option<Manifest>) -> Self {
        LiveTable {
            snapshot: Snapshot::new(version, &table, manifest),
            table,
        }
    }

    /// What scoring reads: only through [`Served::score`], so that no door scores on its own.
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The countries of the table, sorted.
    pub fn countries(&self) -> Vec<&str> {
        self.snapshot.countries()
    }

    /// The rows as published.
    pub fn table(&self) -> &VoucherTable {
        &self.table
    }

    pub fn version(&self) -> Version {
        self.snapshot.version()
    }

    pub fn version_name(&self) -> &str {
        self.snapshot.version_name()
    }

    pub fn rows(&self) -> usize {
        self.snapshot.rows()
    }

    pub fn manifest(&self) -> Option<&Manifest> {
        self.snapshot.manifest()
    }
}

/// What is served, held for the whole of one request, batch or stream, so that a reload
/// meanwhile does not change its answers.
#[derive(Debug, Clone)]
pub struct Served {
    live: Arc<LiveTable>,
    canary: Option<Arc<Canary>>,
}

/// The core's answer to one item, and the version that gave it.
#[derive(Debug)]
pub struct Answer<'s> {
    pub scored: Scored<'s>,
    /// The name of the version that answered (a refusal names none of its own).
    pub version: &'s str,
}

impl Served {
    pub fn new(live: Arc<LiveTable>) -> Self {
        Served { live, canary: None }
    }

    /// The live version and a canary beside it.
    pub fn with_canary(live: Arc<LiveTable>, canary: Option<Arc<Canary>>) -> Self {
        Served { live, canary }
    }

    /// Scores one request at time `now` (seconds since the epoch, UTC), without a customer
    /// store: an id-only request is missing its fields.
    pub fn score<'s>(&'s self, request: &VoucherRequest<'_>, now: i64) -> Answer<'s> {
        self.score_with(request, &Profiles::no_store(), now)
    }

    /// Scores one request of any form at time `now` (an id-only one with its customer's
    /// profile from `profiles`, what the customer store answered for the request's batch),
    /// from the version the customer's bucket picks; with a canary, also against the other
    /// version (shadow).
    pub fn score_with<'s>(
        &'s self,
        request: &VoucherRequest<'_>,
        profiles: &Profiles,
        now: i64,
    ) -> Answer<'s> {
        let Some(canary) = &self.canary else {
            return answer(&self.live, request, profiles, now);
        };
        let (arm, chosen, other) = if canary.answers(request) {
            (Arm::Canary, canary.table(), &self.live)
        } else {
            (Arm::Live, &self.live, canary.table())
        };
        let answered = answer(chosen, request, profiles, now);
        let shadow = score::score_with(request, profiles, other.snapshot(), now);
        canary.observe(arm, request, &answered.scored, &shadow);
        answered
    }

    /// The canary served beside the live version, if any.
    pub fn canary(&self) -> Option<&Canary> {
        self.canary.as_deref()
    }

    /// The live version: what a door names as having answered a whole batch or stream (each
    /// item names the version that answered it, which is the canary's for some customers).
    pub fn live(&self) -> &LiveTable {
        &self.live
    }
}

fn answer<'s>(
    table: &'s LiveTable,
    request: &VoucherRequest<'_>,
    profiles: &Profiles,
    now: i64,
) -> Answer<'s> {
    let snapshot = table.snapshot();
    Answer {
        scored: score::score_with(request, profiles, snapshot, now),
        version: snapshot.version_name(),
    }
}
