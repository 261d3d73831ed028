//! `DELETE /users/{id}`: an account put in the bin, or, with `?erase=true`, erased for
//! good (`ceneca_service::erasure`).

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use ceneca_domain::model;
use ceneca_wire::erasure::{EraseRequest, ErasureReport};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{OneOfBuilder, Schema};

use super::resources::{Docs, deletion_response};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Body, ContentAuth, Id, QueryPairs};
use crate::openapi::op::{self, Op};

pub(crate) async fn delete_user(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    QueryPairs(pairs): QueryPairs,
    request: Request,
) -> ApiResult<Response> {
    let erase = ceneca_wire::params::erase_param(&pairs)?;
    if !erase && request.headers().contains_key(header::CONTENT_TYPE) {
        // A body means the client meant to prove an erase: closing the account instead
        // would leave it believing it erased.
        return Err(crate::error::ApiError::bad_request(
            "a body is taken only with ?erase=true (without it, the account is put in the bin)",
        ));
    }
    if !erase {
        let deletion = state.services.delete(&caller, &model::USERS, id).await?;
        return Ok(deletion_response(deletion));
    }
    // The proof is a JSON body; none at all is an empty proof, refused by the service
    // with the field it lacks.
    let proof = if request.headers().contains_key(header::CONTENT_TYPE) {
        let Body(proof) = Body::<EraseRequest>::from_request(request, &state).await?;
        proof
    } else {
        EraseRequest::default()
    };
    let permit = state.services.authorize_erase(&caller, id, &proof).await?;
    Ok(Json(state.services.erase_user(permit).await?).into_response())
}

/// The operation's description: a soft delete, or an erase.
pub(crate) fn delete_user_doc() -> Op {
    let answer: RefOr<Schema> = OneOfBuilder::new()
        .item(ceneca_wire::entities::schema_ref(&model::USERS, ""))
        .item(op::schema_of::<ErasureReport>())
        .into();
    Docs::of(&model::USERS)
        .delete_op()
        .describe(
            "Without `erase`, the account is closed and put in the bin (restorable): the \
             row with its `deleted_at`. With `erase=true`, it is erased for good (right to \
             be forgotten) and the answer says what went: its row and everything that goes \
             with it (memberships, devices, sessions, settings, AI records), its personal \
             workspaces and the organizations it alone was in, with everything in them; in \
             shared workspaces what it wrote is deleted, or kept without its author where \
             the organization's `erasure` is `anonymise` (a thread another user wrote in \
             stays); files no other row names, vectors, full-text entries; its audit \
             entries keep its id but lose their address and details, and `ceneca audit \
             verify` still passes. The account itself sends its `password` (and `mfa_code` \
             or `recovery_code` when MFA is on); a system administrator erasing another \
             account sends a current `mfa_code` (MFA must be on). Logged in as the account \
             (API and device tokens get 403); others get 404; 409 while the account alone \
             holds an organization or a personal workspace others are in (the message \
             says which). An interrupted erase is finished by the next call, `ceneca user \
             erase` or a maintenance run; a finished one answers 404. Audited as \
             `user.erase_begin` and `user.erase`.",
        )
        .param(op::query(
            "erase",
            "`true` erases the account for good; `false` (the default) puts it in the bin.",
            op::string().enum_values(Some(["true", "false"])),
        ))
        .optional_body_of::<EraseRequest>()
        .answers(
            200,
            "The row in the bin, or what the erase removed.",
            answer,
        )
}
