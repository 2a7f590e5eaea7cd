//! Liveness, readiness and metrics over HTTP (`/healthz`, `/readyz`, `/metrics`), the same for
//! every serving binary.
//!
//! Ready means: not draining, a table is loaded, and none of the binary's own [`Check`]s is
//! unavailable (voucher-events checks its broker). A check may also be only degraded: readiness
//! reports it and stays ready.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use serde::Serialize;
use tokio::sync::watch;
use voucher_shared::score::now_secs;

use crate::metrics::Metrics;
use crate::tables::Tables;

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";

/// Liveness.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Readiness: a table is loaded, the process is not shutting down, and its checks pass.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready<'a> {
    /// `ready`.
    pub status: &'static str,
    /// The live table version.
    pub version: &'a str,
    /// Seconds since the live version was made.
    pub age_seconds: i64,
    /// The process's own checks by name (e.g. `broker`), when it has any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, CheckReport>,
}

/// Not ready: no table loaded yet, shutting down, or a check unavailable.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotReady {
    /// `starting` (no table yet), `draining` (shutting down), or `<check>_unavailable` (e.g.
    /// `broker_unavailable`).
    pub status: String,
    pub detail: String,
    /// The process's own checks by name, when it has any.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<&'static str, CheckReport>,
}

/// What readiness says of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckReport {
    /// `ok`, `degraded` (reported, still ready) or `unavailable` (not ready).
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The state of a dependency of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckState {
    Ok,
    /// Reported by readiness, which stays ready: the process serves without it.
    Degraded(String),
    /// Readiness answers 503: the process cannot do its work without it.
    Unavailable(String),
}

impl CheckState {
    fn report(&self) -> CheckReport {
        let (state, detail) = match self {
            CheckState::Ok => ("ok", None),
            CheckState::Degraded(why) => ("degraded", Some(why.clone())),
            CheckState::Unavailable(why) => ("unavailable", Some(why.clone())),
        };
        CheckReport { state, detail }
    }
}

/// A dependency that readiness reports on, under its name.
pub trait Check: Send + Sync + 'static {
    /// The name in readiness's `checks`, and in `<name>_unavailable`.
    fn name(&self) -> &'static str;
    fn state(&self) -> CheckState;
}

/// Set on SIGTERM: readiness turns 503 while the process finishes its work. Cloned handles
/// share the flag; [`Draining::subscribe`] follows it without polling.
#[derive(Debug, Clone)]
pub struct Draining(Arc<watch::Sender<bool>>);

impl Default for Draining {
    fn default() -> Self {
        Draining(Arc::new(watch::Sender::new(false)))
    }
}

impl Draining {
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// What the three routes read; register it as `web::Data<HealthState>`.
pub struct HealthState {
    tables: Arc<Tables>,
    metrics: Metrics,
    draining: Draining,
    /// What the process does while draining, for readiness's `detail`.
    draining_detail: &'static str,
    checks: Vec<Arc<dyn Check>>,
}

impl HealthState {
    /// `draining_detail` says what the process does once draining (e.g. "finishing in-flight
    /// requests").
    pub fn new(
        tables: Arc<Tables>,
        metrics: Metrics,
        draining: Draining,
        draining_detail: &'static str,
    ) -> Self {
        HealthState {
            tables,
            metrics,
            draining,
            draining_detail,
            checks: Vec::new(),
        }
    }

    /// Adds a check that readiness reports on.
    pub fn with_check(mut self, check: Arc<dyn Check>) -> Self {
        self.checks.push(check);
        self
    }

    pub fn draining(&self) -> &Draining {
        &self.draining
    }

    /// Readiness: the status and its JSON body.
    pub fn readiness(&self) -> (StatusCode, Vec<u8>) {
        let states: Vec<(&'static str, CheckState)> =
            self.checks.iter().map(|c| (c.name(), c.state())).collect();
        let checks = states.iter().map(|(n, s)| (*n, s.report())).collect();
        let live = self.tables.live();
        let why_not = if self.draining.is_draining() {
            let detail = format!("shutting down: {}", self.draining_detail);
            Some(("draining".to_owned(), detail))
        } else if live.is_none() {
            let dir = self.tables.dir().root().display();
            let detail = format!("no voucher table loaded yet from {dir}");
            Some(("starting".to_owned(), detail))
        } else {
            states.iter().find_map(|(name, state)| match state {
                CheckState::Unavailable(why) => Some((format!("{name}_unavailable"), why.clone())),
                CheckState::Ok | CheckState::Degraded(_) => None,
            })
        };
        match (why_not, live.as_ref()) {
            (None, Some(table)) => {
                let body = Ready {
                    status: "ready",
                    version: table.version_name(),
                    age_seconds: now_secs() - table.version().time().timestamp(),
                    checks,
                };
                (StatusCode::OK, to_json(&body))
            }
            (why_not, _) => {
                let (status, detail) = why_not.unwrap_or_default();
                let body = NotReady {
                    status,
                    detail,
                    checks,
                };
                (StatusCode::SERVICE_UNAVAILABLE, to_json(&body))
            }
        }
    }
}

/// Serializing plain strings and numbers cannot fail; the fallback keeps the body JSON anyway.
fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| br#"{"status":"error"}"#.to_vec())
}

fn json(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(ContentType::json())
        .body(body)
}

/// Registers the three routes (for a binary whose only HTTP routes they are; voucher-api lists
/// them in its own route table).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(HEALTHZ, web::get().to(healthz))
        .route(READYZ, web::get().to(readyz))
        .route(METRICS, web::get().to(metrics_text));
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process serves requests", body = Health))
))]
pub async fn healthz() -> HttpResponse {
    json(StatusCode::OK, to_json(&Health { status: "ok" }))
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "A table is loaded", body = Ready<'_>),
        (status = 503, description = "No table yet, or shutting down", body = NotReady),
    )
))]
pub async fn readyz(health: web::Data<HealthState>) -> HttpResponse {
    let (status, body) = health.readiness();
    json(status, body)
}

#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
))]
pub async fn metrics_text(health: web::Data<HealthState>) -> HttpResponse {
    let live = health.tables.live();
    match health.metrics.render(live.as_deref(), now_secs()) {
        Ok(body) => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ))
            .body(body),
        Err(e) => {
            log::error!("cannot render metrics: {e}");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"detail":"internal error"}"#.to_vec(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::metrics::Binary;
    use crate::tables::PollState;

    struct Fake(&'static str, Mutex<CheckState>);

    impl Check for Fake {
        fn name(&self) -> &'static str {
            self.0
        }
        fn state(&self) -> CheckState {
            self.1.lock().expect("lock").clone()
        }
    }

    fn body(health: &HealthState) -> (u16, serde_json::Value) {
        let (status, body) = health.readiness();
        (
            status.as_u16(),
            serde_json::from_slice(&body).expect("json"),
        )
    }

    #[test]
    fn ready_needs_a_table_no_drain_and_no_unavailable_check() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tables = Arc::new(Tables::new(tmp.path()));
        let metrics = Metrics::new(Binary::Api).expect("metrics");
        let broker = Arc::new(Fake(
            "broker",
            Mutex::new(CheckState::Unavailable("unreachable".into())),
        ));
        let store = Arc::new(Fake(
            "store",
            Mutex::new(CheckState::Degraded("slow".into())),
        ));
        let health = HealthState::new(
            Arc::clone(&tables),
            metrics.clone(),
            Draining::default(),
            "finishing",
        )
        .with_check(broker.clone())
        .with_check(store);

        let (status, json) = body(&health);
        assert_eq!((status, json["status"].as_str()), (503, Some("starting")));
        assert!(
            json["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no voucher table")),
            "{json}"
        );

        let mut bytes = Vec::new();
        voucher_shared::fixtures::contract_table()
            .write(&mut bytes)
            .expect("write");
        let staged = tables.dir().stage(chrono::Utc::now()).expect("stage");
        std::fs::write(staged.path(voucher_shared::publish::TABLE_FILE), bytes).expect("write");
        staged.commit().expect("commit");
        assert!(tables.poll(&mut PollState::default(), &metrics));
        let (status, json) = body(&health);
        assert_eq!(
            (status, json["status"].as_str(), json["detail"].as_str()),
            (503, Some("broker_unavailable"), Some("unreachable"))
        );
        assert_eq!(json["checks"]["store"]["state"], "degraded");

        *broker.1.lock().expect("lock") = CheckState::Ok;
        let (status, json) = body(&health);
        assert_eq!((status, json["status"].as_str()), (200, Some("ready")));
        assert_eq!(json["checks"]["broker"], serde_json::json!({"state": "ok"}));
        assert_eq!(
            json["checks"]["store"],
            serde_json::json!({"state": "degraded", "detail": "slow"}),
            "a degraded check is reported and does not stop readiness"
        );
        assert!(json["age_seconds"].is_i64());

        health.draining().start();
        let (status, json) = body(&health);
        assert_eq!(
            (status, json["status"].as_str(), json["detail"].as_str()),
            (503, Some("draining"), Some("shutting down: finishing"))
        );
    }

    #[test]
    fn without_checks_the_body_has_no_checks_field() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tables = Arc::new(Tables::new(tmp.path()));
        let health = HealthState::new(
            tables,
            Metrics::new(Binary::Api).expect("metrics"),
            Draining::default(),
            "x",
        );
        let (_, json) = body(&health);
        assert!(json.get("checks").is_none(), "{json}");
    }

    #[test]
    fn draining_is_shared_by_clones_and_followed_by_subscribers() {
        let draining = Draining::default();
        let mut follower = draining.subscribe();
        assert!(!*follower.borrow_and_update());
        draining.clone().start();
        assert!(draining.is_draining());
        assert!(follower.has_changed().expect("sender alive"));
        assert!(*follower.borrow_and_update());
    }
}
