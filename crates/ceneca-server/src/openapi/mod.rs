//! The OpenAPI 3.1 document of the API, built from the same route table that serves it
//! (`handlers::v1::routes`): every route carries its description, entity schemas come from
//! the model (`ceneca_wire::entities`), and wire types bring their derived schemas. Served
//! at `GET /api/v1/openapi.json`, read by the docs page at `GET /api/docs`, committed as
//! `openapi.json` (a test fails when the two differ) and checked against the running server
//! by schemathesis (`scripts/test`).

pub mod op;

use ceneca_domain::model;
use ceneca_wire::{auth, entities, error, search, sync, vectors};
use utoipa::ToSchema;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, PathItem, Paths};
use utoipa::openapi::schema::{ComponentsBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Required};

use crate::extract::SESSION_COOKIE;
use crate::handlers;
use op::Access;

/// The document, with paths under `/api/v1` plus the probes.
pub fn document() -> OpenApi {
    let v1 = handlers::v1::routes(usize::MAX);
    let mut paths = Paths::new();
    for (path, item) in v1.docs.paths {
        paths.paths.insert(format!("/api/v1{path}"), item);
    }
    for (path, id, summary) in [
        ("/healthz", "healthz", "Liveness: the process answers"),
        ("/readyz", "readyz", "Readiness: the database answers too"),
    ] {
        let (method, operation) = op::get(id, summary)
            .tag("probes")
            .access(Access::Public)
            .answers_of::<auth::Health>(200, "Up.")
            .answers_of::<auth::Health>(503, "Not ready.")
            .build();
        paths
            .paths
            .insert(path.into(), PathItem::new(method, operation));
    }
    let (method, operation) = op::get("metrics", "Prometheus metrics (system administrators)")
        .tag("probes")
        .access(Access::Account)
        .describe(
            "Request counts and latency per route template and status, database pools, writer \
             waits, the vector outbox and indexer, audit appends, sessions, refusals. Only a \
             system administrator's log-in session on this listener; `metrics_listen` serves \
             it without authentication on an internal address.",
        )
        .answers_media(200, "The Prometheus text format.", "text/plain")
        .build();
    paths
        .paths
        .insert("/metrics".into(), PathItem::new(method, operation));
    let (method, operation) = op::get("openapi", "This document")
        .tag("probes")
        .access(Access::Public)
        .answers(
            200,
            "The OpenAPI 3.1 document.",
            ObjectBuilder::new().schema_type(Type::Object).into(),
        )
        .build();
    paths.paths.insert(
        "/api/v1/openapi.json".into(),
        PathItem::new(method, operation),
    );
    let mut components = ComponentsBuilder::new();
    for entity in model::ALL.iter().copied() {
        for (name, schema) in entities::schemas(entity) {
            components = components.schema(name, schema);
        }
    }
    components = register::<error::ErrorBody>(components);
    components = register::<error::ErrorDetail>(components);
    components = register::<auth::RegisterRequest>(components);
    components = register::<auth::LoginRequest>(components);
    components = register::<auth::LoginResponse>(components);
    components = register::<auth::ChangePasswordRequest>(components);
    components = register::<auth::MfaEnrollment>(components);
    components = register::<auth::MfaConfirmRequest>(components);
    components = register::<auth::MfaConfirmed>(components);
    components = register::<auth::MfaDisableRequest>(components);
    components = register::<auth::ApiTokenRequest>(components);
    components = register::<auth::Health>(components);
    components = register::<search::SearchHit>(components);
    components = register::<search::SearchPage>(components);
    components = register::<search::HybridSearchRequest>(components);
    components = register::<search::HybridHit>(components);
    components = register::<search::HybridPage>(components);
    components = register::<vectors::PointBatch>(components);
    components = register::<vectors::WriteStatus>(components);
    components = register::<vectors::VectorSearchRequest>(components);
    components = register::<vectors::VectorHit>(components);
    components = register::<vectors::VectorHits>(components);
    components = register::<vectors::ClearRequest>(components);
    components = register::<vectors::CollectionInfo>(components);
    components = register::<sync::ChangeOperation>(components);
    components = register::<sync::Change>(components);
    components = register::<sync::PullPage>(components);
    components = register::<sync::SnapshotPage>(components);
    components = register::<sync::PushedChange>(components);
    components = register::<sync::PushRequest>(components);
    components = register::<sync::PushOutcome>(components);
    components = register::<sync::PushResult>(components);
    components = register::<sync::PushResponse>(components);
    components = register::<sync::ConflictRecord>(components);
    components = register::<sync::ConflictPage>(components);
    components = register::<sync::SyncStatus>(components);
    components = register::<ceneca_wire::storage::StatsScope>(components);
    components = register::<ceneca_wire::storage::CategoryUsage>(components);
    components = register::<ceneca_wire::storage::StorageStats>(components);
    components = register::<ceneca_wire::maintenance::MaintenanceTrigger>(components);
    components = register::<ceneca_wire::maintenance::ArchiveRuleReport>(components);
    components = register::<ceneca_wire::maintenance::MaintenanceReport>(components);
    components = register::<ceneca_wire::backup::BackupTrigger>(components);
    components = register::<ceneca_wire::backup::BackupOutcome>(components);
    components = register::<ceneca_wire::backup::BackupRun>(components);
    components = register::<ceneca_wire::backup::BackupItem>(components);
    components = register::<ceneca_wire::backup::BackupList>(components);
    components = register::<ceneca_wire::export::ExportJobStatus>(components);
    components = register::<ceneca_wire::export::ExportJob>(components);
    components = register::<ceneca_wire::erasure::EraseRequest>(components);
    components = register::<ceneca_wire::erasure::ErasureReport>(components);
    for (name, response) in op::error_responses() {
        components = components.response(name, response);
    }
    components = components
        .security_scheme(
            "session",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A log-in session's token (`POST /api/v1/auth/login`), or a device token.",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "apiToken",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`POST /api/v1/api-tokens`): workspace content only.",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The browser session cookie (`POST /api/v1/auth/login?session=cookie`).",
            ))),
        )
        .security_scheme(
            "mutualTLS",
            SecurityScheme::MutualTls {
                description: Some(
                    "A client certificate mapped to an account (`tls_client_accounts`).".into(),
                ),
                deprecated: None,
                extensions: None,
            },
        );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Ceneca")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A secure, local-first storage server for AI workspace and chat \
                     applications. Every error answers `{\"error\": {\"code\", \"message\", \
                     \"fields\"?}}`; lists page with opaque cursors; unknown parameters and \
                     fields are refused.",
                ))
                .license(Some(LicenseBuilder::new().name("Apache-2.0").build())),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

fn register<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    components
        .schema(T::name(), T::schema())
        .schemas_from_iter(nested)
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json`: the document, serialised once on first use and shared.
pub async fn serve_document() -> axum::response::Response {
    use axum::response::IntoResponse;
    static DOCUMENT: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let body = DOCUMENT
        .get_or_init(|| axum::body::Bytes::from(document_json()))
        .clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The path parameters of a path template (`/threads/{parent}/messages/{child}`), typed:
/// ids are UUIDs, a vector collection is one of the collections.
pub fn path_parameters(path: &str) -> Vec<Parameter> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let (description, schema) = match name {
                "collection" => (
                    "A vector collection.",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["messages", "documents", "attachments"])),
                ),
                "parent" => (
                    "The parent's id.",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                ),
                _ => (
                    "An id.",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                ),
            };
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value as Json;

    fn walk<'a>(json: &'a Json, out: &mut Vec<&'a str>) {
        match json {
            Json::Object(map) => {
                for (key, value) in map {
                    if key == "$ref"
                        && let Some(r) = value.as_str()
                    {
                        out.push(r);
                    }
                    walk(value, out);
                }
            }
            Json::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut refs = Vec::new();
        walk(&doc, &mut refs);
        assert!(refs.len() > 50, "the document uses its components");
        for r in refs {
            let (kind, name) = r
                .strip_prefix("#/components/")
                .and_then(|r| r.split_once('/'))
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            assert!(
                doc["components"][kind].get(name).is_some(),
                "{r} does not resolve"
            );
        }
    }

    #[test]
    fn every_route_is_documented_and_operation_ids_are_unique() {
        let routes = handlers::v1::routes(1);
        let mut served: Vec<&String> = routes.paths.iter().collect();
        let mut documented: Vec<&String> = routes.docs.paths.keys().collect();
        served.sort();
        documented.sort();
        assert_eq!(served, documented);
        let doc = serde_json::to_value(document()).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(
                    ids.insert(id.clone()),
                    "{method} {path}: {id} is used twice"
                );
                assert!(
                    op["responses"].get("default").is_some(),
                    "{method} {path} documents its errors"
                );
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_its_security_schemes() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        for scheme in ["session", "apiToken", "cookie", "mutualTLS"] {
            assert!(doc["components"]["securitySchemes"].get(scheme).is_some());
        }
        // Public operations say so; the rest name their credentials.
        assert_eq!(
            doc["paths"]["/api/v1/auth/login"]["post"]["security"],
            serde_json::json!([])
        );
        let me = &doc["paths"]["/api/v1/auth/me"]["get"]["security"];
        assert!(me.as_array().is_some_and(|s| !s.is_empty()));
        // Account routes refuse API tokens; content routes take them.
        let tokens = &doc["paths"]["/api/v1/api-tokens"]["post"]["security"];
        assert!(!tokens.to_string().contains("apiToken"));
        let threads = &doc["paths"]["/api/v1/threads"]["get"]["security"];
        assert!(threads.to_string().contains("apiToken"));
    }

    /// The committed `openapi.json` (for client generators and reviewers) is the served
    /// document. Regenerate it with `cargo run -p ceneca-cli -- openapi > openapi.json`.
    #[test]
    fn the_committed_document_is_the_served_one() {
        let committed: Json =
            serde_json::from_str(include_str!("../../../../openapi.json")).unwrap();
        let served = serde_json::to_value(document()).unwrap();
        assert!(
            committed == served,
            "openapi.json drifted from the served document: run \
             `cargo run -p ceneca-cli -- openapi > openapi.json`"
        );
    }
}
