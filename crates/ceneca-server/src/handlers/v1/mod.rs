//! `/api/v1`: accounts, then one generic set of routes per entity of the model, then the
//! routes nested under a parent (members, a thread's messages).
//!
//! Deviation from DESIGN.md's `handlers/v1/<resource>.rs`: the resources share one
//! generic module (`resources.rs`) because their handlers are identical but for the entity
//! they are given; what differs per entity lives in the service's rules.

pub mod admin;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod erasure;
pub mod exports;
pub mod nested;
pub mod resources;
pub mod search;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod vectors;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use ceneca_domain::model;
use ceneca_domain::schema::Tenancy;

use utoipa::openapi::path::{PathItem, Paths};

use crate::AppState;
use crate::openapi::op::{self, Access, Op};

/// The API's routes with their path templates and their OpenAPI description, built
/// together so none can drift from what is served: every route is added with the
/// operations it serves (the OpenAPI document is `docs`), and the authorization matrix test
/// walks `paths` (every route × every kind of caller), so a new route is documented and
/// covered the day it is added.
pub struct Routes {
    pub router: Router<AppState>,
    pub paths: Vec<String>,
    pub docs: Paths,
}

impl Routes {
    pub fn new() -> Self {
        Self {
            router: Router::new(),
            paths: Vec::new(),
            docs: Paths::new(),
        }
    }
    /// Serves `handler` at `path`, described by `ops` (one per method it answers).
    pub fn route(
        mut self,
        path: &str,
        handler: MethodRouter<AppState>,
        ops: impl IntoIterator<Item = Op>,
    ) -> Self {
        self.paths.push(path.to_owned());
        self.router = self.router.route(path, handler);
        let mut item: Option<PathItem> = None;
        for op in ops {
            let (method, operation) = op.build();
            match &mut item {
                None => item = Some(PathItem::new(method, operation)),
                Some(item) => item.merge_operations(PathItem::new(method, operation)),
            }
        }
        if let Some(mut item) = item {
            let parameters = crate::openapi::path_parameters(path);
            if !parameters.is_empty() {
                item.parameters = Some(parameters.into_iter().map(Into::into).collect());
            }
            self.docs.paths.insert(path.to_owned(), item);
        }
        self
    }
    pub fn merge(mut self, other: Routes) -> Self {
        self.paths.extend(other.paths);
        self.router = self.router.merge(other.router);
        self.docs.paths.extend(other.docs.paths);
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
    use ceneca_wire::auth as wire;
    let mut router = Routes::new()
        .route(
            "/auth/register",
            post(auth::register),
            [op::post("register", "Create an account and log in")
                .tag("auth")
                .access(Access::Public)
                .body_of::<wire::RegisterRequest>()
                .answers_of::<wire::LoginResponse>(201, "The account and its first session.")
                .empty(409, "The e-mail address is taken.")],
        )
        .route(
            "/auth/login",
            post(auth::login),
            [op::post("login", "Log in")
                .tag("auth")
                .access(Access::Public)
                .describe(
                    "With `?session=cookie` (browsers) the token goes into a `Secure; HttpOnly; \
                     SameSite=Strict` cookie instead of the body. Failed log-ins are counted \
                     per account and per address; too many answer 429.",
                )
                .param(op::query(
                    "session",
                    "`cookie`: set the session as a cookie.",
                    op::string().enum_values(Some(["cookie"])),
                ))
                .body_of::<wire::LoginRequest>()
                .answers_of::<wire::LoginResponse>(200, "A new session.")
                .answers_of::<ceneca_wire::ErrorBody>(
                    401,
                    "Wrong e-mail or password, or `mfa_required`.",
                )],
        )
        .route(
            "/auth/logout",
            post(auth::logout),
            [op::post("logout", "End this session")
                .tag("auth")
                .empty(204, "Ended.")],
        )
        .route(
            "/auth/me",
            get(auth::me),
            [op::get("me", "The caller's account").tag("auth").answers(
                200,
                "The account.",
                schema_of_entity(&model::USERS),
            )],
        )
        .route(
            "/auth/password",
            post(auth::change_password),
            [
                op::post("changePassword", "Change the password; every session ends")
                    .tag("auth")
                    .access(Access::Account)
                    .body_of::<wire::ChangePasswordRequest>()
                    .empty(204, "Changed."),
            ],
        )
        .route(
            "/api-tokens",
            get(auth::list_api_tokens).post(auth::create_api_token),
            [
                op::get(
                    "listApiTokens",
                    "The caller's API tokens, without their values",
                )
                .tag("api-tokens")
                .access(Access::Account)
                .answers(
                    200,
                    "Up to 200 tokens, newest first.",
                    op::items(schema_of_entity(&model::SESSIONS)),
                ),
                op::post("createApiToken", "Create an API token for one workspace")
                    .tag("api-tokens")
                    .access(Access::Account)
                    .body_of::<wire::ApiTokenRequest>()
                    .answers(
                        201,
                        "The token row; `token` holds its value, shown once.",
                        utoipa::openapi::schema::AllOfBuilder::new()
                            .item(schema_of_entity(&model::SESSIONS))
                            .item(
                                utoipa::openapi::schema::ObjectBuilder::new()
                                    .schema_type(utoipa::openapi::schema::Type::Object)
                                    .property("token", op::string())
                                    .required("token"),
                            )
                            .into(),
                    ),
            ],
        )
        .route(
            "/api-tokens/{id}",
            axum::routing::delete(auth::revoke_api_token),
            [op::delete("revokeApiToken", "Revoke an API token at once")
                .tag("api-tokens")
                .access(Access::Account)
                .empty(204, "Revoked.")],
        )
        .route(
            "/auth/mfa/enroll",
            post(auth::mfa_enroll),
            [
                op::post("mfaEnroll", "Start MFA enrolment (on only after confirm)")
                    .tag("auth")
                    .access(Access::Account)
                    .answers_of::<wire::MfaEnrollment>(200, "The TOTP secret.")
                    .empty(409, "MFA is already enabled."),
            ],
        )
        .route(
            "/auth/mfa/confirm",
            post(auth::mfa_confirm),
            [op::post(
                "mfaConfirm",
                "Confirm MFA with a code; answers recovery codes once",
            )
            .tag("auth")
            .access(Access::Account)
            .body_of::<wire::MfaConfirmRequest>()
            .answers_of::<wire::MfaConfirmed>(200, "MFA is on.")
            .empty(409, "MFA is already enabled, or enrolment was not started.")],
        )
        .route(
            "/auth/mfa/disable",
            post(auth::mfa_disable),
            [
                op::post("mfaDisable", "Turn MFA off with a code or a recovery code")
                    .tag("auth")
                    .access(Access::Account)
                    .body_of::<wire::MfaDisableRequest>()
                    .empty(204, "MFA is off.")
                    .empty(409, "MFA is not enabled."),
            ],
        )
        .route("/audit-log/export", get(audit::export), [audit::doc()])
        .route("/search", get(search::search), [search::doc()])
        .route(
            "/telemetry/export",
            post(telemetry::export_telemetry),
            [op::post(
                "exportTelemetry",
                "The caller's telemetry, only with consent",
            )
            .tag("telemetry")
            .access(Access::Account)
            .answers(
                200,
                "The caller's telemetry events.",
                op::items(schema_of_entity(&model::TELEMETRY_EVENTS)),
            )],
        )
        .merge(vectors::routes(batch_body_limit))
        .merge(sync::routes(batch_body_limit))
        .merge(attachments::routes())
        .merge(exports::routes())
        .merge(storage::routes())
        .merge(admin::routes());
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

/// The answered row of `entity` (its generated schema).
pub(crate) fn schema_of_entity(
    entity: &ceneca_domain::Entity,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    ceneca_wire::entities::schema_ref(entity, "")
}
