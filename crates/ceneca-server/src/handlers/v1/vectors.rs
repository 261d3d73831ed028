//! `/vectors/{collection}/...`: the seed's Qdrant API over HTTP, and `/search/hybrid`.
//! Writes take `?wait=true` to return only once the index has applied them.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ceneca_domain::model;
use ceneca_service::ListParams;
use uuid::Uuid;

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ContentAuth, JsonBody, QueryPairs};

/// The vector routes; upserts take bodies up to `batch_body_limit` (a hundred
/// 1536-dimension vectors are about 3 MB of JSON; a thousand, 30 MB).
pub fn routes(batch_body_limit: usize) -> Routes {
    let limit = || crate::extract::body_limit(batch_body_limit);
    Routes::new()
        .route(
            "/vectors/{collection}/points",
            get(scroll).put(upsert).post(upsert).layer(limit()),
        )
        .route(
            "/vectors/{collection}/points/batch",
            post(upsert_batch).layer(limit()),
        )
        .route("/vectors/{collection}", get(info))
        .route(
            "/vectors/{collection}/points/{id}",
            axum::routing::delete(delete),
        )
        .route("/vectors/{collection}/search", post(search))
        .route("/vectors/{collection}/clear", post(clear))
        .route("/search/hybrid", post(hybrid))
}

/// `?wait=true|false`; nothing else is accepted.
fn wait_param(pairs: &[(String, String)]) -> ApiResult<bool> {
    let mut wait = false;
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("wait", "true") => wait = true,
            ("wait", "false") => wait = false,
            ("wait", _) => {
                return Err(ApiError::bad_request("wait must be true or false")
                    .with_field("wait", "must be true or false"));
            }
            _ => {
                return Err(ApiError::bad_request(format!("unknown parameter '{k}'"))
                    .with_field(k, "is not a parameter of this endpoint"));
            }
        }
    }
    Ok(wait)
}

async fn info(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(
        state
            .services
            .vector_collection(&caller, &collection)
            .await?,
    )
    .into_response())
}

async fn upsert(
    state: State<AppState>,
    auth: ContentAuth,
    collection: Path<String>,
    query: QueryPairs,
    body: JsonBody,
) -> ApiResult<Response> {
    upsert_points(state, auth, collection, query, body, false).await
}

async fn upsert_batch(
    state: State<AppState>,
    auth: ContentAuth,
    collection: Path<String>,
    query: QueryPairs,
    body: JsonBody,
) -> ApiResult<Response> {
    upsert_points(state, auth, collection, query, body, true).await
}

/// One point at `/points`, `{"points": [...]}` at `/points/batch`.
async fn upsert_points(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    QueryPairs(pairs): QueryPairs,
    JsonBody(body): JsonBody,
    batch: bool,
) -> ApiResult<Response> {
    let wait = wait_param(&pairs)?;
    match (batch, body.get("points").is_some()) {
        (false, true) => {
            return Err(
                ApiError::bad_request("send several points to /points/batch")
                    .with_field("points", "belongs to /points/batch"),
            );
        }
        (true, false) => {
            return Err(ApiError::bad_request("expected {\"points\": [...]}")
                .with_field("points", "is required"));
        }
        _ => {}
    }
    let out = state
        .services
        .upsert_vectors(&caller, &collection, &body, wait)
        .await?;
    Ok(Json(out).into_response())
}

async fn delete(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path((collection, id)): Path<(String, String)>,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Response> {
    let wait = wait_param(&pairs)?;
    let id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::bad_request("the point id must be a UUID").with_field("id", "must be a UUID")
    })?;
    let out = state
        .services
        .delete_vector(&caller, &collection, id, wait)
        .await?;
    Ok(Json(out).into_response())
}

async fn search(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    Ok(Json(
        state
            .services
            .search_vectors(&caller, &collection, &body)
            .await?,
    )
    .into_response())
}

async fn clear(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    QueryPairs(pairs): QueryPairs,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let wait = wait_param(&pairs)?;
    Ok(Json(
        state
            .services
            .clear_vectors(&caller, &collection, &body, wait)
            .await?,
    )
    .into_response())
}

/// Pages through a collection's points (the embedding rows), in the caller's scope.
async fn scroll(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    QueryPairs(mut pairs): QueryPairs,
) -> ApiResult<Response> {
    state
        .services
        .vector_collection(&caller, &collection)
        .await?;
    pairs.retain(|(k, _)| k != "collection");
    pairs.push(("collection".into(), collection));
    let page = state
        .services
        .list(
            &caller,
            &model::EMBEDDING_RECORDS,
            &ListParams::from_pairs(pairs),
            None,
        )
        .await?;
    Ok(Json(page.to_json()).into_response())
}

async fn hybrid(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    Ok(Json(state.services.hybrid_search(&caller, &body).await?).into_response())
}
