//! Routes under a parent: `/{parent}/{id}/{children}` (list, create),
//! `/{parent}/{id}/{children}/{child}` (get, patch, delete) and the batch endpoint
//! `/{parent}/{id}/{children}/batch`, for the entities the model declares nested
//! (`Entity::nested`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ceneca_domain::Deleted;
use ceneca_domain::Entity;
use ceneca_domain::schema::Nesting;
use ceneca_service::resources::ParentRef;
use ceneca_service::{Caller, ListParams};
use serde_json::json;

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ContentAuth, Id, Ids, JsonBody, NoQuery, QueryPairs};
use crate::handlers::v1::resources::deletion_response;
use crate::openapi::op;

fn base(nesting: Nesting, child: &Entity) -> String {
    format!("/{}/{{parent}}/{}", nesting.parent_path, child.path)
}

/// The collection routes of `child` under its parent; for a child reached only there
/// (members), its single-row routes too.
pub fn routes(nesting: Nesting, child: &'static Entity) -> Routes {
    let field = nesting.parent_field;
    let collection = get(
        move |state: State<AppState>, auth: ContentAuth, id: Id, q: QueryPairs| {
            list(state, auth, id, q, field, child)
        },
    )
    .post(
        move |state: State<AppState>, _: NoQuery, auth: ContentAuth, id: Id, body: JsonBody| {
            create(state, auth, id, body, field, child)
        },
    );
    let docs = super::resources::Docs::nested(child, nesting.parent_path);
    let list_doc = docs.list();
    let create_doc = docs.create(&[field]);
    let mut router = Routes::new().route(&base(nesting, child), collection, [list_doc, create_doc]);
    // Children without routes of their own (members) are read and changed here.
    if nesting.only_nested {
        let item = get(
            move |state: State<AppState>, _: NoQuery, auth: ContentAuth, ids: Ids| {
                read(state, auth, ids, field, child)
            },
        )
        .patch(
            move |state: State<AppState>,
                  _: NoQuery,
                  auth: ContentAuth,
                  ids: Ids,
                  body: JsonBody| { update(state, auth, ids, body, field, child) },
        )
        .delete(
            move |state: State<AppState>, _: NoQuery, auth: ContentAuth, ids: Ids| {
                delete(state, auth, ids, field, child)
            },
        );
        router = router.route(
            &format!("{}/{{child}}", base(nesting, child)),
            item,
            [docs.read(), docs.update(), docs.delete()],
        );
    }
    router
}

/// Many children created under one parent in one transaction.
pub fn batch_route(nesting: Nesting, child: &'static Entity, body_limit: usize) -> Routes {
    let field = nesting.parent_field;
    Routes::new().route(
        &format!("{}/batch", base(nesting, child)),
        post(
            move |state: State<AppState>, _: NoQuery, auth: ContentAuth, id: Id, body: JsonBody| {
                batch(state, auth, id, body, field, child)
            },
        )
        .layer(crate::extract::body_limit(body_limit)),
        [op::post(
            &super::resources::Docs::nested(child, nesting.parent_path).id("createMany"),
            &format!(
                "Create many {}s in one transaction (up to `max_batch_items`)",
                child.name
            ),
        )
        .tag(child.path)
        .body(
            utoipa::openapi::schema::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Object)
                .property(
                    "items",
                    utoipa::openapi::schema::ArrayBuilder::new()
                        .items(ceneca_wire::entities::create(child, &[field]))
                        .min_items(Some(1)),
                )
                .required("items"),
            None,
        )
        .answers(
            201,
            "Created, in order.",
            op::items(ceneca_wire::entities::schema_ref(child, "")),
        )],
    )
}

async fn list(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(parent): Id,
    QueryPairs(pairs): QueryPairs,
    field: &'static str,
    child: &'static Entity,
) -> ApiResult<Response> {
    let parent = ParentRef { field, id: parent };
    let page = state
        .services
        .list(
            &caller,
            child,
            &ListParams::from_pairs(pairs)?,
            Some(parent),
        )
        .await?;
    Ok(Json(page.to_json()).into_response())
}

async fn create(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(parent): Id,
    JsonBody(body): JsonBody,
    field: &'static str,
    child: &'static Entity,
) -> ApiResult<Response> {
    let parent = ParentRef { field, id: parent };
    let created = state
        .services
        .create(&caller, child, &body, Some(parent))
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn batch(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(parent): Id,
    JsonBody(body): JsonBody,
    field: &'static str,
    child: &'static Entity,
) -> ApiResult<Response> {
    let parent = ParentRef { field, id: parent };
    let items = state
        .services
        .create_many(&caller, child, parent, &body)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "items": items }))).into_response())
}

/// The child, if it belongs to the parent in the URL (else 404, as if it did not exist).
async fn child_of(
    state: &AppState,
    caller: &Caller,
    parent: uuid::Uuid,
    id: uuid::Uuid,
    field: &str,
    child: &'static Entity,
) -> ApiResult<serde_json::Value> {
    let row = state
        .services
        .get(caller, child, id, Deleted::Exclude)
        .await?;
    if row[field].as_str() != Some(parent.to_string().as_str()) {
        return Err(ApiError::not_found(child.name));
    }
    Ok(row)
}

async fn read(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Ids(parent, id): Ids,
    field: &'static str,
    child: &'static Entity,
) -> ApiResult<Response> {
    Ok(Json(child_of(&state, &caller, parent, id, field, child).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Ids(parent, id): Ids,
    JsonBody(body): JsonBody,
    field: &'static str,
    child: &'static Entity,
) -> ApiResult<Response> {
    child_of(&state, &caller, parent, id, field, child).await?;
    Ok(Json(state.services.update(&caller, child, id, &body).await?).into_response())
}

async fn delete(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Ids(parent, id): Ids,
    field: &'static str,
    child: &'static Entity,
) -> ApiResult<Response> {
    child_of(&state, &caller, parent, id, field, child).await?;
    Ok(deletion_response(
        state.services.delete(&caller, child, id).await?,
    ))
}
