//! `/api/v1`: accounts, then one generic set of routes per entity of the model, then the
//! routes nested under a parent (members, a thread's messages).
//!
//! Deviation from DESIGN.md's `handlers/v1/<resource>.rs`: the resources share one
//! generic module (`resources.rs`) because their handlers are identical but for the entity
//! they are given; what differs per entity lives in the service's rules.

pub mod audit;
pub mod auth;
pub mod nested;
pub mod resources;
pub mod search;
pub mod telemetry;
pub mod vectors;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use ceneca_domain::model;
use ceneca_domain::schema::Tenancy;

use crate::AppState;

/// The API's routes with their path templates, built together so the list cannot drift
/// from what is served: the authorization matrix test walks `paths` (every route × every
/// kind of caller), so a new route is covered the day it is added.
pub struct Routes {
    pub router: Router<AppState>,
    pub paths: Vec<String>,
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
        }
    }
    pub fn route(mut self, path: &str, handler: MethodRouter<AppState>) -> Self {
        self.paths.push(path.to_owned());
        self.router = self.router.route(path, handler);
        self
    }
    pub fn merge(mut self, other: Routes) -> Self {
        self.paths.extend(other.paths);
        self.router = self.router.merge(other.router);
        self
    }
}

impl Default for Routes {
    fn default() -> Self {
        Self::new()
    }
}

/// Every route of `/api/v1`.
pub fn routes(batch_body_limit: usize) -> Routes {
    let mut router = Routes::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/auth/password", post(auth::change_password))
        .route(
            "/api-tokens",
            get(auth::list_api_tokens).post(auth::create_api_token),
        )
        .route(
            "/api-tokens/{id}",
            axum::routing::delete(auth::revoke_api_token),
        )
        .route("/auth/mfa/enroll", post(auth::mfa_enroll))
        .route("/auth/mfa/confirm", post(auth::mfa_confirm))
        .route("/auth/mfa/disable", post(auth::mfa_disable))
        .route("/audit-log/export", get(audit::export))
        .route("/search", get(search::search))
        .route("/telemetry/export", post(telemetry::export_telemetry))
        .merge(vectors::routes(batch_body_limit));
    for entity in model::ALL.iter().copied() {
        let only_nested = entity.nested.is_some_and(|n| n.only_nested);
        if entity.tenancy == Tenancy::Internal || only_nested {
            continue;
        }
        router = router.merge(resources::routes(entity));
    }
    // Routes under a parent, as the model declares them (`Entity::nested`).
    for entity in model::ALL.iter().copied() {
        let Some(nesting) = entity.nested else {
            continue;
        };
        router = router.merge(nested::routes(nesting, entity));
        if nesting.batch {
            router = router.merge(nested::batch_route(nesting, entity, batch_body_limit));
        }
    }
    router
}
