//! Rate limits per client address and per account (GCRA, in memory, per node: a deployment
//! with several nodes behind a balancer multiplies the allowance by the node count).
//! Failed log-ins per account are limited in the service instead, from the audit trail,
//! so every node agrees on them.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::metrics::{Limit, Metrics};

/// Allowances; 0 turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    /// Requests per minute from one address, to any endpoint.
    pub per_ip_per_minute: u32,
    /// Requests per minute by one account (or device), to any endpoint.
    pub per_account_per_minute: u32,
    /// Log-in attempts per minute from one address.
    pub logins_per_ip_per_minute: u32,
    /// Registrations per hour from one address.
    pub registrations_per_ip_per_hour: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 6000,
            per_account_per_minute: 3000,
            logins_per_ip_per_minute: 30,
            registrations_per_ip_per_hour: 60,
        }
    }
}

type Limiter<K> = Option<DefaultKeyedRateLimiter<K>>;

/// The limiters of one node.
pub struct RateLimits {
    per_ip: Limiter<IpAddr>,
    per_account: Limiter<Uuid>,
    logins: Limiter<IpAddr>,
    registrations: Limiter<IpAddr>,
    /// Where refusals are counted.
    metrics: Arc<Metrics>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per: u32, period: Duration) -> Limiter<K> {
    let n = NonZeroU32::new(per)?;
    let quota = Quota::with_period(period / per)?.allow_burst(n);
    Some(RateLimiter::keyed(quota))
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Limiter<K>,
    key: &K,
    what: &str,
) -> Result<(), ApiError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        too_many(what, wait)
    })
}

impl RateLimits {
    /// [`check`], counting a refusal under `limit`.
    fn counted<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Limiter<K>,
        key: &K,
        limit: Limit,
        what: &str,
    ) -> Result<(), ApiError> {
        check(limiter, key, what).inspect_err(|_| self.metrics.rate_limited(limit))
    }
}

pub fn too_many(what: &str, wait: Duration) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many {what}; retry later"),
    );
    e.retry_after = Some((wait.as_millis().div_ceil(1000).max(1)) as u64);
    e
}

impl RateLimits {
    pub fn new(config: RateConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let minute = Duration::from_secs(60);
        Arc::new(Self {
            per_ip: limiter(config.per_ip_per_minute, minute),
            per_account: limiter(config.per_account_per_minute, minute),
            logins: limiter(config.logins_per_ip_per_minute, minute),
            registrations: limiter(
                config.registrations_per_ip_per_hour,
                Duration::from_secs(3600),
            ),
            metrics,
        })
    }

    pub fn account(&self, id: Uuid) -> Result<(), ApiError> {
        self.counted(
            &self.per_account,
            &id,
            Limit::Account,
            "requests for this account",
        )
    }
    pub fn login(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        ip.map_or(Ok(()), |ip| {
            self.counted(
                &self.logins,
                &ip,
                Limit::Login,
                "log-in attempts from this address",
            )
        })
    }
    pub fn registration(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        ip.map_or(Ok(()), |ip| {
            self.counted(
                &self.registrations,
                &ip,
                Limit::Registration,
                "registrations from this address",
            )
        })
    }

    /// Forgets keys idle long enough to be full again, so memory stays bounded.
    pub fn shrink(&self) {
        for l in [&self.per_ip, &self.logins, &self.registrations]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_account {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Middleware: the per-address limit on every request.
pub async fn per_ip(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The probes are neither counted nor refused: an orchestrator probing from an address
    // a flood also comes from (a proxy, a node's own address) would take a busy node for a
    // dead one. Each costs a request's parsing and, for readiness, one `SELECT 1` on a
    // connection of its own.
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && let Err(e) = state.limits.counted(
            &state.limits.per_ip,
            &ip,
            Limit::Address,
            "requests from this address",
        )
    {
        return e.into_response();
    }
    next.run(request).await
}
