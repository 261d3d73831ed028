//! Attachment content: `PUT` streams a file in (any content type: the server reads the
//! type from the bytes), `GET` streams it out with byte ranges and an entity tag.

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ceneca_domain::content_type::reorders_or_hides_text;
use ceneca_wire::attachments::UploadParams;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio_stream::StreamExt;

use super::Routes;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{BodyLimit, ContentAuth, Id, JsonBody, NoQuery, QueryPairs};
use crate::openapi::op;

pub fn routes() -> Routes {
    Routes::new().route(
        "/attachments/{id}/content",
        get(download).put(upload),
        [
            op::get("getAttachmentContent", "Download an attachment's file")
                .tag("attachments")
                .describe(
                    "The file as uploaded, with `Content-Type` as read from its bytes, \
                     `ETag` (its SHA-256) and `Content-Disposition: attachment`. One byte \
                     range (`Range: bytes=…`) answers 206; a range outside the file, 416. \
                     404 when the attachment has no content on this server yet.",
                )
                .answers_media(200, "The file.", "application/octet-stream")
                .answers_media(
                    206,
                    "The requested bytes of the file.",
                    "application/octet-stream",
                )
                .answers_of::<ceneca_wire::ErrorBody>(416, "The range is outside the file."),
            op::put("putAttachmentContent", "Upload an attachment's file")
                .tag("attachments")
                .describe(
                    "The request body is the file, streamed to disk (any `Content-Type`: \
                     the server reads the type from the bytes and checks it against \
                     `attachments.allowed_types`, 415 otherwise). The server sets the \
                     attachment's `size_bytes`, `sha256` and `mime_type`; identical files \
                     are stored once. Larger than `attachments.max_upload_bytes`: 413. \
                     With `expected_sha256`, content that does not match is refused (422) \
                     and nothing is kept. Replaces any content the attachment had.",
                )
                .param(op::query(
                    "expected_sha256",
                    "The file's SHA-256 (hex) as the client computed it.",
                    op::string(),
                ))
                .answers_of::<ceneca_wire::ErrorBody>(413, "The file is too large.")
                .answers_of::<ceneca_wire::ErrorBody>(415, "Files of this type are not accepted.")
                .answers_of::<ceneca_wire::ErrorBody>(
                    422,
                    "The content does not match `expected_sha256`, or is empty.",
                ),
        ],
    )
    .route(
        "/attachments/{id}/thumbnail",
        get(thumbnail),
        [
            op::get("getAttachmentThumbnail", "Download an image's thumbnail")
                .tag("attachments")
                .describe(
                    "A PNG of the image (PNG, JPEG, GIF or WebP) at most 256 pixels on its                      longer side, made by the server after the upload, off the request                      path. The attachment's `thumbnail` says where it stands: `pending`                      answers 404 `not_ready` with `Retry-After`; a file that is no image,                      or one that does not decode or is too large to (over 64 MiB or 32                      megapixels: `unavailable`), answers 404; 410 once retention removed                      the file. `ETag` names the thumbnail.",
                )
                .answers_media(200, "The thumbnail.", "image/png")
                .answers_of::<ceneca_wire::ErrorBody>(
                    404,
                    "No thumbnail: not an image, not made yet (`not_ready`), or none can be.",
                ),
        ],
    )
}

/// The create operation's documentation, with the multipart form beside the JSON body.
pub(super) fn create_docs(json: op::Op) -> op::Op {
    let row = ceneca_wire::entities::schema_ref(&ceneca_domain::model::ATTACHMENTS, "Create");
    json.json_or_form_body(
        row.clone(),
        [("metadata", row), ("file", op::binary().into())],
        "JSON creates the row alone; its file follows with `PUT /attachments/{id}/content`. \
         As `multipart/form-data`, the `metadata` part (the JSON body; `file_name` may be \
         left out, the file part's name is used), then the `file` part: the file is \
         streamed to disk and the row written only once it is kept, so a refused file \
         leaves nothing (too large 413, a type not in `attachments.allowed_types` 415, \
         `expected_sha256` not matched 422).",
    )
    .param(op::query(
        "expected_sha256",
        "With a multipart body: the file's SHA-256 (hex) as the client computed it.",
        op::string(),
    ))
    .answers_of::<ceneca_wire::ErrorBody>(413, "The file is too large.")
    .answers_of::<ceneca_wire::ErrorBody>(415, "Files of this type are not accepted.")
}

/// `POST /attachments`: a JSON body creates the row alone (its file comes later with
/// `PUT …/content`); `multipart/form-data` creates the row with its file.
pub(super) async fn create(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
    request: Request,
) -> Response {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = multipart else {
        let json = match ceneca_wire::params::no_params(&pairs) {
            Ok(()) => JsonBody::from_request(request, &state).await,
            Err(e) => Err(e.into()),
        };
        return match json {
            Ok(body) => super::resources::create(
                State(state),
                ContentAuth(caller),
                body,
                &ceneca_domain::model::ATTACHMENTS,
            )
            .await
            .into_response(),
            Err(e) => e.into_response(),
        };
    };
    let metadata_limit = request
        .extensions()
        .get::<BodyLimit>()
        .map_or(DEFAULT_METADATA_LIMIT, |l| l.0);
    closing_on_error(
        create_with_file(state, caller, pairs, boundary, metadata_limit, request).await,
    )
}

/// The most a `metadata` part may hold when no route limit is set.
const DEFAULT_METADATA_LIMIT: usize = 2 * 1024 * 1024;

async fn create_with_file(
    state: AppState,
    caller: ceneca_service::Caller,
    pairs: Vec<(String, String)>,
    boundary: String,
    metadata_limit: usize,
    request: Request,
) -> ApiResult<Response> {
    let params = UploadParams::from_pairs(&pairs)?;
    let limit = state.services.config().max_upload_bytes;
    refuse_declared_over(
        request.headers(),
        limit.saturating_add(metadata_limit as u64 + FORM_OVERHEAD),
        limit,
    )?;
    // The parser keeps whatever comes before a boundary (a preamble, a part's headers) in
    // memory and scans it again on every read: the bytes before the file part are bounded,
    // or a body that never reaches its file would grow the server's memory without end.
    // The same holds after the file: what follows it is read only to its end.
    let before_file = metadata_limit as u64 + FORM_OVERHEAD;
    let read = Arc::new(AtomicU64::new(0));
    let readable = Arc::new(AtomicU64::new(before_file));
    let overrun = Arc::new(AtomicBool::new(false));
    let (counted, bound, over) = (read.clone(), readable.clone(), overrun.clone());
    let body = request.into_body().into_data_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        let total = counted.fetch_add(chunk.len() as u64, Ordering::AcqRel) + chunk.len() as u64;
        if total > bound.load(Ordering::Acquire) {
            over.store(true, Ordering::Release);
            return Err(std::io::Error::other(
                "the form holds more around its file than this server reads",
            ));
        }
        Ok(chunk)
    });
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["metadata", "file"])
        .size_limit(
            multer::SizeLimit::new()
                .whole_stream(limit.saturating_add(before_file))
                .for_field("metadata", metadata_limit as u64),
        );
    let mut form = multer::Multipart::with_constraints(body, boundary, constraints);
    let form_error = |e| form_error(e, overrun.load(Ordering::Acquire));
    let part = form.next_field().await.map_err(form_error)?;
    let Some(part) = part.filter(|p| p.name() == Some("metadata")) else {
        return Err(ApiError::bad_request(
            "the form's first part must be `metadata` (the attachment as JSON), then `file`",
        )
        .with_field("metadata", "is missing"));
    };
    let text = part.bytes().await.map_err(form_error)?;
    let mut metadata: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        ApiError::bad_request("the `metadata` part is not JSON")
            .with_field("metadata", format!("is not JSON: {e}"))
    })?;
    let part = form.next_field().await.map_err(form_error)?;
    let Some(file) = part.filter(|p| p.name() == Some("file")) else {
        return Err(ApiError::bad_request(
            "the form's second part must be `file`, the attachment's file",
        )
        .with_field("file", "is missing"));
    };
    readable.store(u64::MAX, Ordering::Release);
    if let (Some(object), Some(name)) = (metadata.as_object_mut(), file.file_name())
        && !object.contains_key("file_name")
    {
        object.insert("file_name".into(), name.into());
    }
    // The form ends with its file: a part after it is refused, not ignored.
    let mut rest = Some(form);
    let after_file = tokio_stream::once(()).then(move |()| {
        let form = rest.take();
        let end = read.load(Ordering::Acquire).saturating_add(FORM_OVERHEAD);
        readable.store(end, Ordering::Release);
        async move {
            match form?.next_field().await {
                Ok(None) => None,
                Ok(Some(part)) => Some(Err(std::io::Error::other(format!(
                    "the form goes on after its `file` part (with `{}`); it takes `metadata`, \
                     then `file`, and nothing else",
                    part.name().unwrap_or("a part without a name")
                )))),
                Err(e) => Some(Err(std::io::Error::other(e))),
            }
        }
    });
    let file = file
        .map(|chunk| chunk.map_err(std::io::Error::other))
        .chain(after_file.filter_map(|end| end));
    let body = tokio_util::io::StreamReader::new(Box::pin(file));
    let row = state
        .services
        .create_attachment_with_content(&caller, &metadata, body, params.expected_sha256.as_deref())
        .await?;
    let location = row["id"].as_str().and_then(|id| {
        format!("/api/v1/attachments/{id}")
            .parse::<HeaderValue>()
            .ok()
    });
    let mut response = (StatusCode::CREATED, axum::Json(row)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// What a form may add before its file besides the metadata (boundaries, part headers,
/// the first bytes of the file read ahead with them).
const FORM_OVERHEAD: u64 = 1024 * 1024;

/// A form that cannot be read as one: a part too large, one this route does not take, or
/// bytes that are not `multipart/form-data`. `overrun`: the bytes before the file part
/// passed their bound.
fn form_error(error: multer::Error, overrun: bool) -> ApiError {
    if overrun {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the form's parts before `file` are larger than this server accepts",
        )
        .with_field(
            "metadata",
            "is too large, or the form never reaches its file",
        );
    }
    match error {
        multer::Error::FieldSizeExceeded { field_name, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the `metadata` part is larger than this server accepts",
        )
        .with_field(field_name.as_deref().unwrap_or("metadata"), "is too large"),
        multer::Error::UnknownField { field_name } => {
            let name = field_name.unwrap_or_default();
            ApiError::bad_request("the form takes two parts: `metadata`, then `file`")
                .with_field(&name, "is not a part of this form")
        }
        other => ApiError::bad_request(format!("the multipart body is malformed: {other}"))
            .with_field("body", "is not a readable multipart/form-data body"),
    }
}

/// A refused upload may leave its body unread: the connection cannot carry another
/// request, and the client must not put it back in its pool.
fn closing_on_error(result: ApiResult<Response>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            let mut response = error.into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// A declared length over `most` is refused before a byte is read (as a file over
/// `file_limit`, the limit the client can act on).
fn refuse_declared_over(headers: &HeaderMap, most: u64, file_limit: u64) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > most) {
        return Err(ceneca_service::error::ServiceError::too_large(file_limit).into());
    }
    Ok(())
}

async fn upload(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
    Id(id): Id,
    headers: HeaderMap,
    body: Body,
) -> Response {
    closing_on_error(store_upload(state, caller, pairs, id, headers, body).await)
}

async fn store_upload(
    state: AppState,
    caller: ceneca_service::Caller,
    pairs: Vec<(String, String)>,
    id: uuid::Uuid,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let params = UploadParams::from_pairs(&pairs)?;
    let limit = state.services.config().max_upload_bytes;
    refuse_declared_over(&headers, limit, limit)?;
    let stream = body_reader(body);
    let row = state
        .services
        .put_attachment_content(&caller, id, stream, params.expected_sha256.as_deref())
        .await?;
    Ok(axum::Json(row).into_response())
}

/// The request body as a reader.
fn body_reader(body: Body) -> impl tokio::io::AsyncRead + Unpin + Send {
    tokio_util::io::StreamReader::new(
        body.into_data_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other)),
    )
}

/// Whether the client holds the version `etag` names (`If-None-Match` compares weakly:
/// `W/"…"` names the same content).
fn holds(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
            })
        })
}

async fn thumbnail(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    _: NoQuery,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let thumbnail = state.services.attachment_thumbnail(&caller, id).await?;
    let etag = format!("\"{}\"", thumbnail.etag);
    let response = Response::builder()
        .header(header::CONTENT_TYPE, "image/png")
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "private, no-cache");
    let (status, body) = if holds(&headers, &etag) {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(thumbnail.png))
    };
    response.status(status).body(body).map_err(internal)
}

async fn download(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    _: NoQuery,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let content = state.services.attachment_content(&caller, id).await?;
    let etag = format!("\"{}\"", content.sha256);
    let size = content.size;
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, &content.mime_type)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_DISPOSITION, disposition(&content.file_name))
        .header(header::CACHE_CONTROL, "private, no-cache");
    if holds(&headers, &etag) {
        return response
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(internal);
    }
    // A range of another version than the client holds (If-Range names what it holds)
    // would splice two files: the whole file instead.
    let same_version = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|t| t.trim() == etag));
    let range = match headers
        .get(header::RANGE)
        .filter(|_| same_version)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None => None,
        Some(text) => match byte_range(text, size) {
            Ok(range) => range,
            Err(()) => {
                let mut error = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    format!("the range is outside the file, which has {size} bytes"),
                )
                .with_field("range", format!("the file has {size} bytes"))
                .into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    error.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return Ok(error);
            }
        },
    };
    let (status, start, length) = match range {
        Some((start, end)) => {
            response =
                response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        None => (StatusCode::OK, 0, size),
    };
    let mut reader = content.range(start, length).await.map_err(internal)?;
    // Read ahead by at most two pieces: a slow client holds the reader back, never
    // the server's memory.
    let (sender, receiver) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        loop {
            let piece = reader.next_chunk().await;
            let end = !matches!(piece, Ok(Some(_)));
            let piece = match piece {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => break,
                Err(e) => {
                    // Headers are sent: the client sees the body cut short.
                    tracing::error!(attachment = %id, error = %e, "reading attachment content");
                    Err(e)
                }
            };
            if sender.send(piece).await.is_err() || end {
                break;
            }
        }
    });
    response
        .status(status)
        .header(header::CONTENT_LENGTH, length)
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        ))
        .map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "answering attachment content");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the server log",
    )
}

/// One byte range of a file of `size` bytes (`bytes=a-b`, `bytes=a-`, `bytes=-n`), as
/// inclusive bounds (RFC 9110 §14). `Ok(None)`: answer the whole file — several ranges,
/// another unit, or a header that does not parse, which a server ignores. `Err`: a valid
/// range that is outside the file (416).
fn byte_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let header = header.trim();
    let Some(spec) = header
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &header[6..])
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().unwrap_or(u64::MAX))
    };
    let (start, end) = match (number(first), number(last), first.is_empty()) {
        // The last n bytes.
        (None, Some(n), true) => {
            if n == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size - 1)
        }
        (Some(start), None, false) if last.is_empty() => (start, size.saturating_sub(1)),
        (Some(start), Some(end), _) if end >= start => (start, end.min(size.saturating_sub(1))),
        _ => return Ok(None),
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Characters kept as they are in `filename*` (RFC 8187 `attr-char`).
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with the file's name, never a path: only the last component, without
/// control characters; an ASCII fallback (`filename`) and the UTF-8 name (`filename*`).
fn disposition(file_name: &str) -> HeaderValue {
    let base = file_name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control() && !reorders_or_hides_text(*c))
        .collect::<String>();
    let base = match base.trim() {
        "" | "." | ".." => "attachment".to_owned(),
        name => name.to_owned(),
    };
    let ascii: String = base
        .chars()
        .map(|c| {
            if c.is_ascii() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let value = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(&base, ATTR)
    );
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-4", 10), Ok(Some((0, 4))));
        assert_eq!(byte_range("bytes=5-", 10), Ok(Some((5, 9))));
        assert_eq!(byte_range("bytes=-3", 10), Ok(Some((7, 9))));
        assert_eq!(byte_range("bytes=-30", 10), Ok(Some((0, 9))));
        assert_eq!(byte_range("bytes=8-100", 10), Ok(Some((8, 9))));
        assert_eq!(byte_range("bytes=0-1,4-5", 10), Ok(None));
        assert_eq!(byte_range("items=0-1", 10), Ok(None));
        assert_eq!(byte_range("BYTES=2-3", 10), Ok(Some((2, 3))));
        // Outside the file: 416.
        for outside in ["bytes=10-", "bytes=10-12", "bytes=-0"] {
            assert_eq!(byte_range(outside, 10), Err(()), "{outside}");
        }
        assert_eq!(byte_range("bytes=0-", 0), Err(()));
        // Not a range at all: ignored, the whole file.
        for ignored in [
            "bytes=5-4",
            "bytes=-",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes",
        ] {
            assert_eq!(byte_range(ignored, 10), Ok(None), "{ignored}");
        }
        assert_eq!(byte_range("bytes=18446744073709551615-", 10), Err(()));
        assert_eq!(byte_range("bytes=99999999999999999999999-", 10), Err(()));
    }

    #[test]
    fn a_download_names_a_file_never_a_path() {
        let text = |name: &str| disposition(name).to_str().unwrap().to_owned();
        assert_eq!(
            text("report.pdf"),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        );
        assert_eq!(
            text("../../etc/passwd"),
            "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
        );
        assert_eq!(
            text("C:\\Users\\x\\a.txt"),
            "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
        );
        assert_eq!(
            text("a\r\nSet-Cookie: x\".txt"),
            "attachment; filename=\"aSet-Cookie: x_.txt\"; filename*=UTF-8''aSet-Cookie%3A%20x%22.txt"
        );
        assert_eq!(
            text("r\u{e9}sum\u{e9}.pdf"),
            "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
        );
        assert_eq!(
            text(".."),
            "attachment; filename=\"attachment\"; filename*=UTF-8''attachment"
        );
    }
}
