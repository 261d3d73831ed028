use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiResult;
use ceneca_wire::auth as wire;

use crate::extract::{Auth, Body, ContentAuth, Id, Meta, NoQuery, QueryPairs, SESSION_COOKIE};

/// `POST /auth/register` `{email, password, display_name?}` → 201 `{token, user}`.
pub async fn register(
    State(state): State<AppState>,
    _: NoQuery,
    Meta(meta): Meta,
    Body(body): Body<wire::RegisterRequest>,
) -> ApiResult<Response> {
    state
        .limits
        .registration(meta.source_ip.as_deref().and_then(|ip| ip.parse().ok()))?;
    let login = state.services.register(&body, &meta).await?;
    Ok((StatusCode::CREATED, Json(login.to_json())).into_response())
}

/// `POST /auth/login` `{email, password, mfa_code?}` → `{token, expires_at, user}`. With
/// `?session=cookie` (browsers), the token goes into a `Secure; HttpOnly; SameSite=Strict`
/// cookie instead of the body, out of reach of page scripts.
pub async fn login(
    State(state): State<AppState>,
    Meta(meta): Meta,
    QueryPairs(query): QueryPairs,
    Body(body): Body<wire::LoginRequest>,
) -> ApiResult<Response> {
    state
        .limits
        .login(meta.source_ip.as_deref().and_then(|ip| ip.parse().ok()))?;
    let login = state.services.login(&body, &meta).await?;
    // `session=cookie` or nothing: any other value would hand the token to page scripts
    // while the client believed it was in an HttpOnly cookie.
    ceneca_wire::params::refuse_repeats(&query)?;
    let mut cookie = false;
    for (k, v) in &query {
        match (k.as_str(), v.as_str()) {
            ("session", "cookie") => cookie = true,
            ("session", _) => {
                return Err(
                    crate::error::ApiError::bad_request("session must be cookie")
                        .with_field("session", "must be cookie"),
                );
            }
            (other, _) => {
                return Err(ceneca_wire::ParamError::unknown(other, &["session"]).into());
            }
        }
    }
    if !cookie {
        return Ok(Json(login.to_json()).into_response());
    }
    let max_age = (login.expires_at - ceneca_domain::clock::now())
        .whole_seconds()
        .max(0);
    let set_cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
        login.token
    );
    let mut body = login.to_json();
    if let Some(object) = body.as_object_mut() {
        object.remove("token");
        object.insert("token_type".into(), "Cookie".into());
    }
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&set_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /auth/logout`: the token stops working.
pub async fn logout(
    State(state): State<AppState>,
    _: NoQuery,
    ContentAuth(caller): ContentAuth,
) -> ApiResult<Response> {
    state.services.logout(&caller).await?;
    // Also clear a browser's session cookie, if it used one.
    let clear = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `GET /auth/me`: the caller's account.
pub async fn me(
    State(state): State<AppState>,
    _: NoQuery,
    ContentAuth(caller): ContentAuth,
) -> ApiResult<Response> {
    Ok(Json(state.services.me(&caller).await?).into_response())
}

/// `POST /auth/password` `{current_password, new_password}`: every session ends.
pub async fn change_password(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
    Body(body): Body<wire::ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    state.services.change_password(&caller, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/mfa/enroll` → `{secret, otpauth_uri}`: MFA is on only after confirming.
pub async fn mfa_enroll(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
) -> ApiResult<Response> {
    Ok(Json(state.services.mfa_enroll(&caller).await?).into_response())
}

/// `POST /auth/mfa/confirm` `{code}` → `{mfa_enabled, recovery_codes}` (shown once).
pub async fn mfa_confirm(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
    Body(body): Body<wire::MfaConfirmRequest>,
) -> ApiResult<Response> {
    Ok(Json(state.services.mfa_confirm(&caller, &body).await?).into_response())
}

/// `POST /auth/mfa/disable` `{mfa_code}` or `{recovery_code}`.
pub async fn mfa_disable(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
    Body(body): Body<wire::MfaDisableRequest>,
) -> ApiResult<StatusCode> {
    state.services.mfa_disable(&caller, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api-tokens`: the caller's API tokens, without their values.
pub async fn list_api_tokens(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
) -> ApiResult<Response> {
    Ok(Json(state.services.list_api_tokens(&caller).await?).into_response())
}

/// `POST /api-tokens` `{name, workspace_id, expires_in_days?}` → 201 with the token, once.
pub async fn create_api_token(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
    Body(body): Body<wire::ApiTokenRequest>,
) -> ApiResult<Response> {
    let created = state.services.create_api_token(&caller, &body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `DELETE /api-tokens/{id}`: the token stops working at once.
pub async fn revoke_api_token(
    State(state): State<AppState>,
    _: NoQuery,
    Auth(caller): Auth,
    Id(id): Id,
) -> ApiResult<StatusCode> {
    state.services.revoke_api_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
