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
use crate::extract::{Body, ContentAuth, NoQuery, QueryPairs, StreamBody};
use crate::openapi::op;
use ceneca_wire::{search as wire_search, vectors as wire};
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, Type};

/// The vector routes; upserts take bodies up to `batch_body_limit` (a hundred
/// 1536-dimension vectors are about 3 MB of JSON; a thousand, 30 MB).
pub fn routes(batch_body_limit: usize) -> Routes {
    let limit = || crate::extract::body_limit(batch_body_limit);
    let wait = || {
        op::query(
            "wait",
            "`true`: answer once the index applied the write (`completed`), not only when it \
             is durable (`acknowledged`).",
            op::string().enum_values(Some(["true", "false"])),
        )
    };
    let point =
        || ceneca_wire::entities::create(&model::EMBEDDING_RECORDS, &["collection", "dims"]);
    let scroll_parameters = super::resources::list_parameters(&model::EMBEDDING_RECORDS)
        .into_iter()
        .filter(|p| p.name != "collection");
    Routes::new()
        .route(
            "/vectors/{collection}/points",
            get(scroll).put(upsert).post(upsert).layer(limit()),
            [
                op::get(
                    "scrollPoints",
                    "Page through a collection's points (embedding rows)",
                )
                .tag("vectors")
                .params(scroll_parameters)
                .answers(
                    200,
                    "A page of embedding rows.",
                    ceneca_wire::entities::schema_ref(&model::EMBEDDING_RECORDS, "Page"),
                ),
                op::put(
                    "upsertPoint",
                    "Write one point (replaces the same source and model)",
                )
                .tag("vectors")
                .param(wait())
                .body(point(), None)
                .answers_of::<wire::WriteStatus>(200, "Written."),
                op::post("upsertPointPost", "Write one point (as PUT)")
                    .tag("vectors")
                    .param(wait())
                    .body(point(), None)
                    .answers_of::<wire::WriteStatus>(200, "Written."),
            ],
        )
        .route(
            "/vectors/{collection}/points/batch",
            post(upsert_batch).layer(limit()),
            [op::post(
                "upsertPoints",
                "Write up to 1,000 points in one transaction",
            )
            .tag("vectors")
            .param(wait())
            .body(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property(
                        "points",
                        ArrayBuilder::new()
                            .items(point())
                            .min_items(Some(1))
                            .max_items(Some(1000)),
                    )
                    .required("points")
                    .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false))),
                None,
            )
            .answers_of::<wire::WriteStatus>(200, "Written.")],
        )
        .route(
            "/vectors/{collection}",
            get(info),
            [op::get(
                "getCollection",
                "A collection's settings (and index figures for administrators)",
            )
            .tag("vectors")
            .answers_of::<wire::CollectionInfo>(200, "The collection.")],
        )
        .route(
            "/vectors/{collection}/points/{id}",
            axum::routing::delete(delete),
            [op::delete("deletePoint", "Delete one point")
                .tag("vectors")
                .param(wait())
                .answers_of::<wire::WriteStatus>(200, "Deleted.")],
        )
        .route(
            "/vectors/{collection}/search",
            post(search),
            [op::post(
                "searchPoints",
                "Nearest points to a vector, in the caller's scope",
            )
            .tag("vectors")
            .body_of::<wire::VectorSearchRequest>()
            .answers_of::<wire::VectorHits>(200, "Hits whose sources the caller may read.")
            .answers_of::<ceneca_wire::ErrorBody>(503, "The vector index is unavailable.")],
        )
        .route(
            "/vectors/{collection}/clear",
            post(clear),
            [op::post(
                "clearPoints",
                "Delete every point of one workspace (its administrators)",
            )
            .tag("vectors")
            .param(wait())
            .body_of::<wire::ClearRequest>()
            .answers_of::<wire::WriteStatus>(200, "Cleared.")],
        )
        .route(
            "/search/hybrid",
            post(hybrid),
            [op::post(
                "hybridSearch",
                "Text and vector results fused by reciprocal rank",
            )
            .tag("search")
            .body_of::<wire_search::HybridSearchRequest>()
            .answers_of::<wire_search::HybridPage>(200, "Fused hits.")
            .answers_of::<ceneca_wire::ErrorBody>(503, "The vector index is unavailable.")],
        )
}

async fn info(
    State(state): State<AppState>,
    _: NoQuery,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
) -> ApiResult<Json<wire::CollectionInfo>> {
    Ok(Json(
        state
            .services
            .vector_collection(&caller, &collection)
            .await?,
    ))
}

/// `/points`: one point object (several go to `/points/batch`).
async fn upsert(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    QueryPairs(pairs): QueryPairs,
    StreamBody(point): StreamBody<wire::PointInput>,
) -> ApiResult<Json<wire::WriteStatus>> {
    let wait = ceneca_wire::params::wait_param(&pairs)?;
    if let wire::PointInput::Object { fields, .. } = &point
        && fields.contains_key("points")
    {
        return Err(
            ApiError::bad_request("send several points to /points/batch")
                .with_field("points", "belongs to /points/batch"),
        );
    }
    let out = state
        .services
        .upsert_vectors(&caller, &collection, &wire::Points::One(point), wait)
        .await?;
    Ok(Json(out))
}

/// `/points/batch`: `{"points": [...]}`.
async fn upsert_batch(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    QueryPairs(pairs): QueryPairs,
    StreamBody(batch): StreamBody<wire::PointBatch>,
) -> ApiResult<Json<wire::WriteStatus>> {
    let wait = ceneca_wire::params::wait_param(&pairs)?;
    let out = state
        .services
        .upsert_vectors(
            &caller,
            &collection,
            &wire::Points::Batch(batch.points),
            wait,
        )
        .await?;
    Ok(Json(out))
}

async fn delete(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path((collection, id)): Path<(String, String)>,
    QueryPairs(pairs): QueryPairs,
) -> ApiResult<Json<wire::WriteStatus>> {
    let wait = ceneca_wire::params::wait_param(&pairs)?;
    let id = Uuid::parse_str(&id).map_err(|_| {
        ApiError::bad_request("the point id must be a UUID").with_field("id", "must be a UUID")
    })?;
    let out = state
        .services
        .delete_vector(&caller, &collection, id, wait)
        .await?;
    Ok(Json(out))
}

async fn search(
    State(state): State<AppState>,
    _: NoQuery,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    Body(request): Body<wire::VectorSearchRequest>,
) -> ApiResult<Json<wire::VectorHits>> {
    Ok(Json(
        state
            .services
            .search_vectors(&caller, &collection, &request)
            .await?,
    ))
}

async fn clear(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Path(collection): Path<String>,
    QueryPairs(pairs): QueryPairs,
    Body(request): Body<wire::ClearRequest>,
) -> ApiResult<Json<wire::WriteStatus>> {
    let wait = ceneca_wire::params::wait_param(&pairs)?;
    Ok(Json(
        state
            .services
            .clear_vectors(&caller, &collection, &request, wait)
            .await?,
    ))
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
            &ListParams::from_pairs(pairs)?,
            None,
        )
        .await?;
    Ok(Json(page.to_json()).into_response())
}

async fn hybrid(
    State(state): State<AppState>,
    _: NoQuery,
    ContentAuth(caller): ContentAuth,
    Body(request): Body<wire_search::HybridSearchRequest>,
) -> ApiResult<Json<wire_search::HybridPage>> {
    Ok(Json(state.services.hybrid_search(&caller, &request).await?))
}
