//! # ceneca-server
//!
//! The HTTP face of Ceneca: an axum [`router`] over [`ceneca_service::Services`]. Handlers
//! are thin (extract, call one service method, shape the answer); every error goes
//! through [`error::ApiError`], the one mapping to HTTP statuses; extractors in
//! [`extract`] make authentication visible in each handler's signature.
//!
//! It knows nothing of SQL: it sees services, callers and JSON.
//!
//! Around every request: a request id ([`request_id`]), counts and latency per route
//! template ([`metrics`], served at `GET /metrics`), and compression of larger answers.

pub mod error;
pub mod extract;
pub mod handlers;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod request_id;
pub mod settings;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ceneca_service::Services;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// What handlers share: one `Arc`, since axum clones the state for every extractor and
/// middleware that asks for it (cloning the parts would be a dozen atomic counts each).
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub services: Services,
    pub limits: std::sync::Arc<limits::RateLimits>,
    pub admin_networks: Vec<ipnet::IpNet>,
    /// Origins whose pages may use the API from a browser (CORS), and so the session
    /// cookie.
    pub cors_origins: Vec<String>,
    /// The HTTP figures `GET /metrics` reports.
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// Set when the server starts shutting down: endless responses (change streams) end
    /// then, instead of holding the shutdown for its whole grace period.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// The API's router, and its figures for a separate metrics listener
/// ([`metrics::open_router`]).
pub struct App {
    pub router: Router,
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// Tells the router's endless responses that the server is shutting down.
    pub stopping: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
}

/// Responses smaller than this are sent as they are: compressing them saves little and
/// costs a round of the encoder.
pub const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// HTTP limits.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest request body in general.
    pub max_body_bytes: usize,
    /// The largest body of a batch request.
    pub max_batch_body_bytes: usize,
    pub rate: limits::RateConfig,
    /// Browser origins allowed to call the API (CORS); empty: CORS is off.
    pub cors_origins: Vec<String>,
    /// Networks system administrators may use their powers from; empty: anywhere.
    pub admin_networks: Vec<ipnet::IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_batch_body_bytes: 64 * 1024 * 1024,
            rate: limits::RateConfig::default(),
            cors_origins: Vec::new(),
            admin_networks: Vec::new(),
        }
    }
}

/// The whole API: `/healthz`, `/readyz`, `/metrics` and `/api/v1/...`.
pub fn router(services: Services, http: HttpConfig) -> Router {
    app(services, http).router
}

/// [`router`], with the figures it keeps.
pub fn app(services: Services, http: HttpConfig) -> App {
    let routes = handlers::v1::routes(http.max_batch_body_bytes);
    let templates: Vec<String> = ["/healthz", "/readyz", "/metrics"]
        .into_iter()
        .map(str::to_owned)
        .chain(routes.paths.iter().map(|p| format!("/api/v1{p}")))
        .collect();
    let figures = metrics::Metrics::new(templates.iter().map(String::as_str));
    let api = routes.router;
    let limits = limits::RateLimits::new(http.rate, figures.clone());
    let janitor = std::sync::Arc::downgrade(&limits);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                tick.tick().await;
                match janitor.upgrade() {
                    Some(limits) => limits.shrink(),
                    None => return,
                }
            }
        });
    }
    let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
    let state = AppState(std::sync::Arc::new(Shared {
        services,
        limits,
        admin_networks: http.admin_networks.clone(),
        cors_origins: http.cors_origins.clone(),
        metrics: figures.clone(),
        stopping: stopping_seen,
    }));
    // The docs page and the document it reads, assets served from the binary (no CDN: the
    // zero-sync edition works air-gapped). Swagger UI styles elements inline and draws
    // icons as data: images, which the API's strict policy would block.
    // The document itself is built on its first request, not at start: it is half a
    // megabyte of JSON that most processes never serve.
    let docs: Router<AppState> = Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/api/docs").config(
            utoipa_swagger_ui::Config::new(["/api/v1/openapi.json"])
                // Swagger UI's default validator badge loads from validator.swagger.io.
                .validator_url("none"),
        ),
    )
    .route("/api/v1/openapi.json", get(openapi::serve_document))
    .layer(security_header(
        "content-security-policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    ));
    let router = Router::new()
        .merge(docs)
        .route("/healthz", get(handlers::health::healthz))
        .route("/readyz", get(handlers::health::readyz))
        .route("/metrics", get(metrics::scrape))
        .nest("/api/v1", api)
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed on this resource",
            )
        })
        .with_state(state.clone())
        // One stack, outermost first, applied in one `layer` call: axum boxes each
        // `layer` call's service and its future separately, and clones every level for
        // every request, so fifteen calls cost fifteen allocations a request where one
        // stack costs one.
        .layer(
            tower::ServiceBuilder::new()
                .layer(axum::middleware::from_fn_with_state(
                    figures.clone(),
                    metrics::track,
                ))
                .layer(axum::middleware::from_fn(request_id::assign))
                .layer(TraceLayer::new_for_http().make_span_with(
                    |r: &axum::http::Request<axum::body::Body>| request_id::span(r),
                ))
                .layer(compression())
                .layer(cors(&http.cors_origins))
                .layer(security_header(
                    "content-security-policy",
                    "default-src 'self'",
                ))
                .layer(security_header("referrer-policy", "no-referrer"))
                .layer(security_header("x-frame-options", "DENY"))
                .layer(security_header("x-content-type-options", "nosniff"))
                .layer(CatchPanicLayer::custom(
                    |_: Box<dyn std::any::Any + Send>| -> Response {
                        tracing::error!("a handler panicked");
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal",
                            "internal error; see the server log",
                        )
                        .into_response()
                    },
                ))
                .layer(extract::body_limit(http.max_body_bytes))
                .layer(axum::middleware::from_fn_with_state(state, limits::per_ip))
                .layer(axum::middleware::from_fn(extract::json_or_nothing)),
        );
    App {
        router,
        metrics: figures,
        stopping: std::sync::Arc::new(stopping),
    }
}

/// gzip, Brotli or zstd, as the client's `Accept-Encoding` prefers, for answers of at
/// least [`COMPRESS_ABOVE_BYTES`] (an answer of unknown length, a stream, counts as
/// large). Never for Server-Sent Events, whose events must reach the client as they are
/// written, nor for images and ZIP archives (already compressed). A compressed answer loses its
/// `Content-Length` (the encoder's output length is not known in advance) and gains
/// `Vary: Accept-Encoding`. Answers with an `ETag` (attachment content) are never
/// compressed: a strong entity tag names one sequence of bytes.
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    tower_http::compression::CompressionLayer::new().compress_when(
        SizeAbove::new(COMPRESS_ABOVE_BYTES)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE)
            // An export's archive is compressed already, entry by entry.
            .and(NotForContentType::const_new("application/zip"))
            .and(
                |_: axum::http::StatusCode,
                 _: axum::http::Version,
                 headers: &axum::http::HeaderMap,
                 _: &axum::http::Extensions| {
                    !headers.contains_key(axum::http::header::ETAG)
                },
            ),
    )
}

/// CORS for the configured origins only; with none, no CORS headers at all (browsers on
/// other origins are refused by their own same-origin policy).
fn cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::{Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(600))
}

fn security_header(name: &'static str, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

/// How long in-flight requests may take to finish once shutdown starts (as on the TLS
/// listener): a client that trickles its headers or body must not hold the process, its
/// indexer lease and the audit head flush, forever.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight
/// requests for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stopping, mut stopped) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    tokio::select! {
        result = server => result,
        _ = async {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "requests still in flight after the shutdown grace period were cut off"
            );
            Ok(())
        }
    }
}
