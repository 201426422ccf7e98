//! Liveness and Prometheus metrics: request counts and latencies per route pattern, and the
//! business figures of contract §10 (events recorded, subjects per state, the log, the pool).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub kind: String,
    /// '' for events about no document (erasure requests, erasures).
    pub document: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub document: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: String,
}

pub struct Metrics {
    /// When the business figures were last read: a scrape within a few seconds of it reuses them,
    /// so that requests to this public endpoint cannot keep the database busy.
    figures_read: std::sync::Mutex<Option<Instant>>,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    events: Family<EventLabels, Counter>,
    subjects: Family<StateLabels, Gauge>,
    log_leaves: Gauge,
    pool: Family<PoolLabels, Gauge>,
    watching: Gauge,
    webhook_attempts: Family<OutcomeLabels, Counter>,
    webhook_deliveries: Family<PoolLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("assent");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.5, 14))
        });
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", durations.clone());
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_recorded",
            "Events this server recorded (committed), by kind and document",
            events.clone(),
        );
        let subjects = Family::<StateLabels, Gauge>::default();
        registry.register(
            "subjects",
            "Known subjects per agreement and state, as coverage counts them (read at a scrape, at most every 5 s)",
            subjects.clone(),
        );
        let log_leaves = Gauge::default();
        registry.register("log_leaves", "Leaves in the transparency log", log_leaves.clone());
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register("db_connections", "Database pool connections, busy and idle", pool.clone());
        let watching = Gauge::default();
        registry.register(
            "change_watcher_up",
            "1 while this server's change watcher is looking (its caches are trusted), 0 while every request reads through",
            watching.clone(),
        );
        let webhook_attempts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts this server made, by outcome: delivered, retried (failed, to be tried again), failed (given up)",
            webhook_attempts.clone(),
        );
        let webhook_deliveries = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries waiting (pending) and given up on (failed), over every server (read at a scrape, at most every 5 s)",
            webhook_deliveries.clone(),
        );
        Self {
            figures_read: std::sync::Mutex::new(None),
            registry,
            requests,
            durations,
            events,
            subjects,
            log_leaves,
            pool,
            watching,
            webhook_attempts,
            webhook_deliveries,
        }
    }
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { method: method.to_owned(), route: route.to_owned(), status })
            .inc();
        self.durations.get_or_create(&RouteLabels { route: route.to_owned() }).observe(seconds);
    }

    /// Counts events once they are committed.
    pub fn recorded<'a>(&self, events: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) {
        for (kind, document) in events {
            let labels = EventLabels { kind: kind.to_owned(), document: document.unwrap_or_default().to_owned() };
            self.events.get_or_create(&labels).inc();
        }
    }

    /// Counts webhook attempts by outcome, once their outcome is written.
    pub fn webhook_attempts<'a>(&self, outcomes: impl IntoIterator<Item = &'a str>) {
        for outcome in outcomes {
            self.webhook_attempts.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
        }
    }

    /// Sets the figures read at a scrape.
    fn set_figures(&self, figures: &Figures) {
        for (document, coverage) in &figures.coverage {
            for (state, n) in coverage.by_state() {
                let labels = StateLabels { document: document.clone(), state: state.to_owned() };
                self.subjects.get_or_create(&labels).set(n);
            }
        }
        self.log_leaves.set(i64::try_from(figures.log_leaves).unwrap_or(i64::MAX));
        let (pending, failed) = figures.webhooks;
        self.webhook_deliveries.get_or_create(&PoolLabels { state: "pending".into() }).set(pending);
        self.webhook_deliveries.get_or_create(&PoolLabels { state: "failed".into() }).set(failed);
    }

    /// Sets whether the change watcher is looking (no query: every scrape).
    fn set_watching(&self, watching: bool) {
        self.watching.set(i64::from(watching));
    }

    /// Sets the pool's figures (no query: every scrape).
    fn set_pool(&self, (open, idle): (u32, u32)) {
        self.pool.get_or_create(&PoolLabels { state: "busy".into() }).set(i64::from(open.saturating_sub(idle)));
        self.pool.get_or_create(&PoolLabels { state: "idle".into() }).set(i64::from(idle));
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Middleware: counts and times every request by its route pattern (not its raw path, which
/// would make one series per subject).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    // A fixed set: any token is a valid HTTP method, and each new label value is a new series.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "HEAD" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let res = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        metrics.observe(&method, &route, res.status().as_u16(), started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// What a scrape reads from the database: each agreement's coverage (a sum over a few groups, see
/// `crate::coverage`) and the log's size.
struct Figures {
    coverage: Vec<(String, crate::coverage::Coverage)>,
    log_leaves: u64,
    /// Webhook deliveries pending and failed.
    webhooks: (i64, i64),
}

/// How long business figures read at a scrape are reused.
const FIGURES_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl Metrics {
    /// Whether this scrape should read the business figures again (and, if so, marks them read).
    fn figures_due(&self) -> bool {
        match self.figures_read.lock() {
            Ok(mut read) if read.is_none_or(|t| t.elapsed() >= FIGURES_FOR) => {
                *read = Some(Instant::now());
                true
            }
            _ => false,
        }
    }
}

/// `GET /metrics`
pub async fn prometheus(state: web::Data<AppState>) -> HttpResponse {
    if state.metrics.figures_due() {
        read_figures(&state).await;
    }
    state.metrics.set_pool(state.db.pool_state());
    state.metrics.set_watching(state.freshness.watching());
    match state.metrics.encode() {
        Ok(text) => {
            HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(text)
        }
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// Reads the business figures into the gauges.
async fn read_figures(state: &AppState) {
    let figures = match state.catalog.get(&state.db).await {
        Ok(catalog) => {
            state
                .db
                .run(move |c| -> Result<Figures, crate::db::DbError> {
                    let now = chrono::Utc::now();
                    let mut coverage = Vec::new();
                    for doc in crate::domain::rules::agreements(&catalog) {
                        coverage.push((doc.slug.to_string(), crate::coverage::coverage(c, &catalog, doc, now)?));
                    }
                    Ok(Figures {
                        coverage,
                        log_leaves: crate::log::head(c)?.size,
                        webhooks: crate::db::webhooks::open_counts(c, None)?,
                    })
                })
                .await
        }
        Err(e) => Err(e),
    };
    match figures {
        Ok(f) => state.metrics.set_figures(&f),
        // The HTTP figures are still worth serving; the business ones keep their last values.
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the business figures"),
    }
}

/// `GET /healthz`: 200 when the database answers, 503 when it does not.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let backend = state.db.backend();
    match state.db.run(|c| c.ping()).await {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": backend})),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            super::errors::answer(actix_web::http::StatusCode::SERVICE_UNAVAILABLE).json(serde_json::json!({
                "error": {"code": "unavailable", "message": "the database is not answering"}
            }))
        }
    }
}
