//! `GET /metrics` in the Prometheus text format (version 0.0.4).
//!
//! The server owns the HTTP figures — requests and latency per route *template*, method
//! and status, and rate-limit refusals — and renders everything else at scrape time from
//! those who keep it: the store's connections and write waits ([`Store::pool_stats`]),
//! the service's counters (audit appends, sessions, lock-outs) and the vector outbox.
//!
//! Cost on the request path: one lookup of the route template in a map built at start
//! (no allocation), then per series an uncontended read lock of its family's map (taken
//! for writing only the first time a series appears) and a few relaxed atomic additions;
//! the latency histogram is atomics too (the client library's own histogram takes a
//! mutex per observation). Route templates, never raw paths, so ids cannot multiply the
//! series; requests that match no route share the label `unmatched`, and unusual
//! methods share `other`.
//!
//! Tenants never see it: on the API's listener only a system administrator's session may
//! read it ([`scrape`]); `metrics_listen` serves it on an address of its own without
//! authentication, meant for an internal scrape network ([`open_router`]).
//!
//! [`Store::pool_stats`]: ceneca_store::Store::pool_stats

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ceneca_service::Services;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Auth;

/// Upper bounds (seconds) of the request latency buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The label of requests that matched no route (404s of unknown paths).
const UNMATCHED: &str = "unmatched";

/// The labels of one HTTP series.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RequestLabels {
    method: &'static str,
    route: Arc<str>,
    status: u16,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        ("method", self.method).encode(encoder.encode_label())?;
        ("route", &*self.route).encode(encoder.encode_label())?;
        ("status", self.status).encode(encoder.encode_label())
    }
}

/// Which edge limit refused a request.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Limit {
    Address,
    Account,
    Login,
    Registration,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct LimitLabels(Limit);

impl EncodeLabelSet for LimitLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeLabel;
        let name = match self.0 {
            Limit::Address => "address",
            Limit::Account => "account",
            Limit::Login => "login",
            Limit::Registration => "registration",
        };
        ("limit", name).encode(encoder.encode_label())
    }
}

/// A latency histogram kept with atomics only.
#[derive(Debug, Default)]
struct LatencyHistogram {
    /// Per bucket of [`LATENCY_BUCKETS`] (not cumulative), then one above the last bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            self.count.load(Ordering::Relaxed),
            &buckets,
            None,
        )
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A histogram's figures taken elsewhere (the store's write waits), rendered as they are.
#[derive(Debug)]
struct FixedHistogram(ceneca_store::stats::WaitSnapshot);

impl EncodeMetric for FixedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_seconds,
            self.0.count,
            &self.0.buckets,
            None,
        )
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The HTTP figures of one server, shared by its listeners.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, LatencyHistogram>,
    rate_limited: Family<LimitLabels, Counter>,
    /// Route templates as served (`/api/v1/threads/{id}`), so a label costs no allocation.
    routes: HashMap<Box<str>, Arc<str>>,
    unmatched: Arc<str>,
}

impl Metrics {
    /// Figures for a server whose routes are `templates` (as `MatchedPath` reports them).
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, LatencyHistogram>::default();
        let rate_limited = Family::<LimitLabels, Counter>::default();
        // Every limit's series from the start, at 0: a rate over a missing series is no
        // rate at all, and an alert on refusals should see "none" before the first one.
        for limit in [
            Limit::Address,
            Limit::Account,
            Limit::Login,
            Limit::Registration,
        ] {
            let _ = rate_limited.get_or_create(&LimitLabels(limit));
        }
        let mut registry = Registry::with_prefix("ceneca");
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (until the response head), by method, route template and status",
            Unit::Seconds,
            latency.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by an edge rate limit (per address, per account, log-ins, registrations)",
            rate_limited.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            latency,
            rate_limited,
            routes: templates
                .into_iter()
                .map(|t| (Box::from(t), Arc::from(t)))
                .collect(),
            unmatched: Arc::from(UNMATCHED),
        })
    }

    /// Counts a refusal by an edge rate limit.
    pub fn rate_limited(&self, limit: Limit) {
        self.rate_limited.get_or_create(&LimitLabels(limit)).inc();
    }

    fn observe(&self, method: &Method, route: Option<&str>, status: StatusCode, took: Duration) {
        let route = match route {
            None => self.unmatched.clone(),
            Some(r) => match self.routes.get(r) {
                Some(interned) => interned.clone(),
                // A template not announced at start (still a template, so bounded).
                None => Arc::from(r),
            },
        };
        let labels = RequestLabels {
            method: method_label(method),
            route,
            status: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(took);
    }

    /// The text exposition: the HTTP figures, then those read at scrape time.
    async fn render(&self, services: &Services) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        let scraped = scrape_time_registry(services).await;
        prometheus_client::encoding::prometheus_text::encode(&mut out, &scraped)?;
        Ok(out)
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

type Labels = Vec<(&'static str, String)>;

/// The figures others keep, read now: connections, write waits, service counters, the
/// vector outbox.
async fn scrape_time_registry(services: &Services) -> Registry {
    let mut r = Registry::with_prefix("ceneca");
    let store = services.store();
    let engine = store.engine().as_str();
    let pool = store.pool_stats();
    let in_use = Family::<Labels, Gauge>::default();
    let idle = Family::<Labels, Gauge>::default();
    let max = Family::<Labels, Gauge>::default();
    for g in &pool.groups {
        let labels = vec![("engine", engine.to_owned()), ("pool", g.name.to_owned())];
        in_use.get_or_create(&labels).set(g.in_use as i64);
        idle.get_or_create(&labels).set(g.idle as i64);
        if let Some(m) = g.max {
            max.get_or_create(&labels).set(m as i64);
        }
    }
    r.register(
        "db_connections_in_use",
        "Database connections doing work now (SQLite: the writer and reader connections; PostgreSQL: the pool)",
        in_use,
    );
    r.register(
        "db_connections_idle",
        "Open database connections waiting for work",
        idle,
    );
    r.register(
        "db_connections_max",
        "The most database connections a pool may open",
        max,
    );
    r.register(
        "db_writes_waiting",
        "Writes waiting now for the SQLite writer or a PostgreSQL connection",
        ConstGauge::new(pool.writes_waiting as i64),
    );
    r.register_with_unit(
        "db_write_wait",
        "How long writes waited for the SQLite writer or a PostgreSQL connection",
        Unit::Seconds,
        FixedHistogram(pool.write_wait),
    );

    let counts = services.metrics().counts();
    r.register(
        "audit_appends",
        "Audit entries appended (committed) by this node",
        ConstCounter::new(counts.audit_appends),
    );
    let created = Family::<Labels, Counter>::default();
    for (kind, n) in counts.sessions_created {
        created
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc_by(n);
    }
    r.register(
        "sessions_created",
        "Sessions issued by this node: log-ins, device tokens, API tokens",
        created,
    );
    let ended = Family::<Labels, Counter>::default();
    for (reason, n) in counts.sessions_ended {
        ended
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc_by(n);
    }
    r.register(
        "sessions_ended",
        "Sessions ended before their time: logouts, the oldest beyond max_sessions_per_user, revoked API tokens",
        ended,
    );
    let lockouts = Family::<Labels, Counter>::default();
    for (kind, n) in counts.lockouts {
        lockouts
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc_by(n);
    }
    r.register(
        "lockout_refusals",
        "Attempts refused by a repeated-failure lock (log-ins; password and second-factor checks)",
        lockouts,
    );
    let authentications = Family::<Labels, Counter>::default();
    for (source, n) in counts.authentications {
        authentications
            .get_or_create(&vec![("source", source.to_owned())])
            .inc_by(n);
    }
    r.register(
        "authentications",
        "Credentials accepted: from the callers kept in memory while nothing that concerns them changed, or read from the database",
        authentications,
    );

    if let Some(status) = services.vector_indexer_status() {
        let depth = Family::<Labels, Gauge>::default();
        let mut total = 0u64;
        match store.vector_outbox_pending().await {
            Ok(pending) => {
                for (collection, n) in pending {
                    total += n;
                    depth
                        .get_or_create(&vec![("collection", collection)])
                        .set(n as i64);
                }
                r.register(
                    "vector_outbox_depth",
                    "Vector outbox entries waiting to be applied to the index, per collection",
                    depth,
                );
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the vector outbox"),
        }
        let lag = if total == 0 || !status.leader {
            0.0
        } else {
            SystemTime::now()
                .duration_since(status.caught_up_at)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        r.register(
            "vector_indexer_leader",
            "1 when this node's indexer holds the lease and applies the vector outbox",
            ConstGauge::new(i64::from(status.leader)),
        );
        r.register_with_unit(
            "vector_indexer_lag",
            "Since when the outbox has waited: time since this node's indexer last found it applied (0 when empty or not the leader)",
            Unit::Seconds,
            ConstGauge::new(lag),
        );
    }
    r
}

/// Middleware: counts and times every request under its route template.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // A clone of the template's `Arc`, not of its text.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.observe(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        response.status(),
        started.elapsed(),
    );
    response
}

fn exposition(text: Result<String, std::fmt::Error>) -> Response {
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
        .into_response(),
    }
}

/// `GET /metrics` on the API's listener: a system administrator's log-in session (or
/// mapped client certificate) only. [`Auth`] already refuses API and device tokens.
pub async fn scrape(State(state): State<AppState>, Auth(caller): Auth) -> Response {
    if !caller.system_admin {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only system administrators may read the metrics",
        )
        .into_response();
    }
    exposition(state.metrics.render(&state.services).await)
}

/// What the open metrics listener serves from.
#[derive(Clone)]
struct OpenState {
    services: Services,
    metrics: Arc<Metrics>,
}

/// The router of `metrics_listen`: `GET /metrics` without authentication, and nothing
/// else. Only for an address that tenants cannot reach.
pub fn open_router(services: Services, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<OpenState>| async move {
                exposition(s.metrics.render(&s.services).await)
            }),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(OpenState { services, metrics })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_its_bucket_and_renders_cumulatively() {
        let m = Metrics::new(["/api/v1/threads/{id}"]);
        m.observe(
            &Method::GET,
            Some("/api/v1/threads/{id}"),
            StatusCode::OK,
            Duration::from_millis(3),
        );
        m.observe(
            &Method::GET,
            Some("/api/v1/threads/{id}"),
            StatusCode::OK,
            Duration::from_secs(20),
        );
        m.observe(
            &Method::from_bytes(b"BREW").unwrap(),
            None,
            StatusCode::NOT_FOUND,
            Duration::from_millis(1),
        );
        m.rate_limited(Limit::Login);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &m.registry).unwrap();
        let series = r#"method="GET",route="/api/v1/threads/{id}",status="200""#;
        assert!(
            out.contains(&format!("ceneca_http_requests_total{{{series}}} 2")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "ceneca_http_request_duration_seconds_bucket{{le=\"0.005\",{series}}} 1"
            )) || out.contains(&format!(
                "ceneca_http_request_duration_seconds_bucket{{{series},le=\"0.005\"}} 1"
            )),
            "{out}"
        );
        assert!(out.contains(&format!(
            "ceneca_http_request_duration_seconds_count{{{series}}} 2"
        )));
        assert!(out.contains(
            r#"ceneca_http_requests_total{method="other",route="unmatched",status="404"} 1"#
        ));
        assert!(out.contains(r#"ceneca_rate_limited_total{limit="login"} 1"#));
    }
}
