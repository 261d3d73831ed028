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
use axum::routing::{get, post};
use ceneca_domain::model;
use ceneca_domain::schema::Tenancy;

use crate::AppState;

pub fn routes(batch_body_limit: usize) -> Router<AppState> {
    let mut router = Router::new()
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
        let nested_only = std::ptr::eq(entity, &model::ORGANIZATION_MEMBERS)
            || std::ptr::eq(entity, &model::WORKSPACE_MEMBERS);
        if entity.tenancy == Tenancy::Internal || nested_only {
            continue;
        }
        router = router.merge(resources::routes(entity));
    }
    router
        .merge(nested::routes(
            "organizations",
            "organization_id",
            &model::ORGANIZATION_MEMBERS,
        ))
        .merge(nested::routes(
            "workspaces",
            "workspace_id",
            &model::WORKSPACE_MEMBERS,
        ))
        .merge(nested::routes("threads", "thread_id", &model::MESSAGES))
        .merge(nested::batch_route(
            "threads",
            "thread_id",
            &model::MESSAGES,
            batch_body_limit,
        ))
}
