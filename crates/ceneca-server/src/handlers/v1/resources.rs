//! The routes every entity gets, generated from its declaration:
//! `GET|POST /{path}`, `GET|PATCH|DELETE /{path}/{id}` and, for soft-deleted entities,
//! `POST /{path}/{id}/restore`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use ceneca_domain::Entity;
use ceneca_service::ListParams;
use ceneca_service::resources::Deletion;
use ceneca_store::Deleted;

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ContentAuth, Id, JsonBody, QueryPairs};

pub fn routes(entity: &'static Entity) -> Routes {
    let mut collection: MethodRouter<AppState> = get(
        move |state: State<AppState>, auth: ContentAuth, query: QueryPairs| {
            list(state, auth, query, entity)
        },
    );
    if entity.api.create {
        collection = collection.post(
            move |state: State<AppState>, auth: ContentAuth, body: JsonBody| {
                create(state, auth, body, entity)
            },
        );
    }
    let mut item: MethodRouter<AppState> = get(
        move |state: State<AppState>, auth: ContentAuth, id: Id, query: QueryPairs| {
            read(state, auth, id, query, entity)
        },
    );
    if entity.api.update {
        item = item.patch(
            move |state: State<AppState>, auth: ContentAuth, id: Id, body: JsonBody| {
                update(state, auth, id, body, entity)
            },
        );
    }
    if entity.api.delete {
        item = item.delete(move |state: State<AppState>, auth: ContentAuth, id: Id| {
            delete(state, auth, id, entity)
        });
    }
    let base = format!("/{}", entity.path);
    let mut router = Routes::new()
        .route(&base, collection)
        .route(&format!("{base}/{{id}}"), item);
    if entity.soft_delete && entity.api.delete {
        router = router.route(
            &format!("{base}/{{id}}/restore"),
            post(move |state: State<AppState>, auth: ContentAuth, id: Id| {
                restore(state, auth, id, entity)
            }),
        );
    }
    router
}

pub(crate) fn deleted_param(pairs: &[(String, String)]) -> ApiResult<Deleted> {
    let mut deleted = Deleted::Exclude;
    for (k, v) in pairs {
        deleted = match (k.as_str(), v.as_str()) {
            ("deleted", "include") | ("include_deleted", "true") => Deleted::Include,
            ("deleted", "only") => Deleted::Only,
            ("deleted", "exclude") | ("include_deleted", "false") => Deleted::Exclude,
            ("deleted", _) => {
                return Err(
                    ApiError::bad_request("deleted must be exclude, include or only")
                        .with_field("deleted", "must be exclude, include or only"),
                );
            }
            _ => {
                return Err(ApiError::bad_request(format!("unknown parameter '{k}'"))
                    .with_field(k, "is not a parameter of this endpoint"));
            }
        };
    }
    Ok(deleted)
}

async fn list(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
    entity: &'static Entity,
) -> ApiResult<Response> {
    let page = state
        .services
        .list(&caller, entity, &ListParams::from_pairs(pairs), None)
        .await?;
    Ok(Json(page.to_json()).into_response())
}

async fn create(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    JsonBody(body): JsonBody,
    entity: &'static Entity,
) -> ApiResult<Response> {
    let created = state.services.create(&caller, entity, &body, None).await?;
    let location = created["id"]
        .as_str()
        .map(|id| format!("/api/v1/{}/{id}", entity.path));
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    if let Some(value) = location.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

async fn read(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    QueryPairs(pairs): QueryPairs,
    entity: &'static Entity,
) -> ApiResult<Response> {
    let deleted = deleted_param(&pairs)?;
    Ok(Json(state.services.get(&caller, entity, id, deleted).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    JsonBody(body): JsonBody,
    entity: &'static Entity,
) -> ApiResult<Response> {
    Ok(Json(state.services.update(&caller, entity, id, &body).await?).into_response())
}

pub(crate) fn deletion_response(deletion: Deletion) -> Response {
    match deletion {
        Deletion::Soft(row) => Json(row).into_response(),
        Deletion::Hard => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn delete(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    entity: &'static Entity,
) -> ApiResult<Response> {
    Ok(deletion_response(
        state.services.delete(&caller, entity, id).await?,
    ))
}

async fn restore(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    entity: &'static Entity,
) -> ApiResult<Response> {
    Ok(Json(state.services.restore(&caller, entity, id).await?).into_response())
}
