//! `GET /api/v1/versions`: the tables directory's versions with their state and gate outcome,
//! what the live version changed against the one before it, and the held versions with the
//! checks they failed. The page's "what changed" section reads the same JSON.
//!
//! Read from the directory on each request (on the blocking pool: it reads manifests, two
//! tables and gate reports): operators and the page ask rarely, and the answer must show a
//! held version as soon as a run writes it, not at the next reload.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use voucher_serve::canary::Canary;
use voucher_shared::canary::CanaryRecord;
use voucher_shared::diff::{Change, Diff};
use voucher_shared::gate::Check;
use voucher_shared::overview::{self, Held, Overview};
use voucher_shared::segments::SegmentType;
use voucher_shared::versions::VersionInfo;

use crate::http::errors::ApiError;
use crate::http::model::{
    CanaryView, ChangedShare, ErrorDetail, FailedCheck, HeldVersion, SegmentChange, VersionChanges,
    VersionEntry, VersionsResponse,
};
use crate::http::routes::{AppState, json};

pub const VERSIONS: &str = "/api/v1/versions";

#[utoipa::path(
    get,
    path = "/api/v1/versions",
    tag = "vouchers",
    responses(
        (status = 200, description = "Every version with its state and gate outcome, the live version's changes against the one before it, and the held versions with the checks they failed", body = VersionsResponse),
        (status = 401, description = "A token is configured and the request lacks it", body = ErrorDetail),
        (status = 500, description = "The tables directory cannot be read", body = ErrorDetail),
    )
)]
pub async fn versions(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let dir = state.tables.dir().clone();
    let overview = web::block(move || overview::read(&dir))
        .await
        .map_err(|e| ApiError::Internal(format!("cannot list the versions: {e}")))?
        .map_err(|e| {
            ApiError::Internal(format!(
                "cannot list the versions: {}",
                voucher_shared::errors::Chain(&e)
            ))
        })?;
    let served = state.tables.canary();
    let live = state
        .tables
        .live()
        .as_ref()
        .map(|t| t.version_name().to_owned());
    let body = serde_json::to_vec(&render(overview, served.as_deref(), live))
        .map_err(|e| ApiError::Internal(format!("cannot render the versions: {e}")))?;
    Ok(json(StatusCode::OK, body))
}

fn render(overview: Overview, served: Option<&Canary>, live: Option<String>) -> VersionsResponse {
    let canary = overview
        .canary
        .as_ref()
        .map(|record| canary(record, overview.canary_changes.as_ref(), served, live));
    VersionsResponse {
        canary,
        live: overview.live.map(|v| v.to_string()),
        versions: overview
            .versions
            .into_iter()
            .map(VersionEntry::from)
            .collect(),
        changes: overview.changes.map(VersionChanges::from),
        held: overview.held.into_iter().map(HeldVersion::from).collect(),
        problems: overview.problems,
    }
}

impl From<VersionInfo> for VersionEntry {
    fn from(v: VersionInfo) -> Self {
        let gate = v.gate.as_ref();
        VersionEntry {
            version: v.version.to_string(),
            state: v.state.name(),
            created_at: v.created_at,
            rows_kept: v.rows_kept,
            table_rows: v.table_rows,
            gate: gate.map(|g| g.outcome.name()),
            gate_failed: gate.map(|g| g.failed),
            rollback_target: v.rollback_target,
        }
    }
}

impl From<Diff> for VersionChanges {
    fn from(diff: Diff) -> Self {
        let summary = &diff.summary;
        let changed_share_by_segment_type = summary
            .by_segment_type
            .iter()
            .map(|(t, a)| (t.name().to_owned(), a.changed_share))
            .collect::<BTreeMap<_, _>>();
        VersionChanges {
            from: diff.from.to_string(),
            to: diff.to.to_string(),
            segments_changed: summary.segments_changed,
            changed_share: summary.answers.changed_share,
            changed_share_by_segment_type,
            segments: diff
                .segments
                .into_iter()
                .filter(|s| s.change != Change::Unchanged)
                .map(|s| SegmentChange {
                    country_code: s.country_code,
                    segment_name: s.segment_name.name(),
                    segment: s.segment,
                    change: s.change.name(),
                    from_amount: s.from_amount,
                    to_amount: s.to_amount,
                })
                .collect(),
        }
    }
}

impl From<Held> for HeldVersion {
    fn from(held: Held) -> Self {
        HeldVersion {
            baseline: held.baseline.map(|v| v.to_string()),
            failed: held.failed.into_iter().map(FailedCheck::from).collect(),
            version: held.version.to_string(),
            created_at: held.created_at,
        }
    }
}

impl From<Check> for FailedCheck {
    fn from(c: Check) -> Self {
        FailedCheck {
            check: c.check.name(),
            subject: c.subject,
            observed: c.observed,
            bound: c.bound,
            observed_shown: c.check.show(c.observed),
            bound_shown: c.check.show(c.bound),
            detail: c.detail,
        }
    }
}

/// The canary's record, with what this replica's shadow comparison measured beside what the
/// diff predicted.
fn canary(
    record: &CanaryRecord,
    predicted: Option<&Diff>,
    served: Option<&Canary>,
    live: Option<String>,
) -> CanaryView {
    let served = served.filter(|c| c.record().version == record.version);
    let counts = served.map(Canary::counts);
    let mut answers = BTreeMap::new();
    if let (Some(c), Some(counts)) = (served, &counts) {
        answers.insert(
            live.unwrap_or_else(|| "live".to_owned()),
            counts.live_answers,
        );
        answers.insert(c.record().version.to_string(), counts.canary_answers);
    }
    let changed_share_by_segment_type = SegmentType::ALL
        .iter()
        .map(|t| {
            let measured = counts
                .as_ref()
                .and_then(|c| c.by_segment_type.iter().find(|m| m.segment_name == *t));
            let share = ChangedShare {
                predicted: predicted
                    .and_then(|d| d.summary.by_segment_type.get(t))
                    .map(|a| a.changed_share),
                measured: measured.and_then(|m| m.different_share),
                compared: measured.map_or(0, |m| m.compared),
                different: measured.map_or(0, |m| m.different),
            };
            (t.name().to_owned(), share)
        })
        .collect();
    CanaryView {
        version: record.version.to_string(),
        percent: record.percent.as_f64(),
        since: record.since.clone(),
        reason: record.reason.clone(),
        by: record.by.clone(),
        served: served.is_some(),
        answers,
        changed_share_by_segment_type,
    }
}
