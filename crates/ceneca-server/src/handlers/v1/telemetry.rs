use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Auth, NoQuery};

/// `POST /telemetry/export`: the caller's telemetry, only with consent (`telemetry`).
pub async fn export_telemetry(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
) -> ApiResult<Response> {
    Ok(Json(state.services.export_telemetry(&caller).await?).into_response())
}
