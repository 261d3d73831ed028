//! Attachment content over real HTTP, on SQLite and PostgreSQL: uploads streamed to
//! content-addressed files the server describes itself, downloads with ranges and entity
//! tags, refusals that keep nothing, whose rows may be named, and the orphan sweep.

use ceneca_e2e::{Backend, TestServer, User, on_every_backend, world};
use ceneca_service::ServiceConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_every_backend!(
    an_upload_is_described_by_the_server_and_read_back_in_ranges,
    identical_files_are_stored_once_and_swept_when_no_row_holds_them,
    refused_uploads_keep_nothing,
    only_who_may_change_the_row_uploads_and_only_readers_download,
    clients_never_name_where_content_is,
    file_names_are_names_never_paths,
    regression_a_sweep_racing_an_upload_of_a_stored_file_keeps_it,
    regression_a_denied_or_binned_parent_hides_its_files,
    files_are_sealed_at_rest_and_served_in_the_clear,
    regression_a_binary_padded_with_text_is_not_text,
    regression_ranges_of_another_version_and_bad_ids,
    a_form_creates_the_row_with_its_file,
    a_refused_form_keeps_no_row_and_no_file,
    a_form_names_only_what_its_sender_may_write,
    regression_a_form_that_never_reaches_its_file_is_cut_off,
    regression_what_follows_a_form_s_file_is_read_only_so_far,
    regression_a_form_is_checked_again_once_its_file_has_arrived,
    regression_a_cookie_form_from_another_origin_without_fetch_metadata_is_refused,
);

/// A PNG signature and a little more: sniffed as `image/png`.
fn png(extra: &[u8]) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    bytes.extend_from_slice(extra);
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn new_attachment(s: &TestServer, u: &User, workspace: &str, message: &str) -> String {
    s.post(
        u,
        "/api/v1/attachments",
        json!({"workspace_id": workspace, "message_id": message, "file_name": "chart.png"}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn send(
    s: &TestServer,
    u: &User,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut request = s
        .http
        .request(method, format!("{}{path}", s.base))
        .bearer_auth(&u.token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.unwrap()
}

async fn upload(
    s: &TestServer,
    u: &User,
    id: &str,
    query: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let reply = send(
        s,
        u,
        Method::PUT,
        &format!("/api/v1/attachments/{id}/content{query}"),
        &[("content-type", "application/octet-stream")],
        Some(bytes),
    )
    .await;
    let status = reply.status();
    (status, reply.json().await.unwrap_or(Value::Null))
}

/// Files under the blob folder: (blobs, temporary files).
fn files(s: &TestServer) -> (usize, usize) {
    let mut blobs = 0;
    let mut temporary = 0;
    let mut stack = vec![s.data_dir().join("blobs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else if dir.ends_with("tmp") {
                temporary += 1;
            } else {
                blobs += 1;
            }
        }
    }
    (blobs, temporary)
}

async fn an_upload_is_described_by_the_server_and_read_back_in_ranges(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let id = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let before = s
        .get(&u, &format!("/api/v1/attachments/{id}"))
        .await
        .expect(200);
    assert_eq!(before["sha256"], Value::Null);
    assert_eq!(before["size_bytes"], 0);
    let missing = send(
        &s,
        &u,
        Method::GET,
        &format!("/api/v1/attachments/{id}/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let bytes = png(&(0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let (status, row) = upload(
        &s,
        &u,
        &id,
        &format!("?expected_sha256={}", sha256(&bytes).to_uppercase()),
        bytes.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["sha256"], sha256(&bytes));
    assert_eq!(row["size_bytes"], bytes.len());
    assert_eq!(row["mime_type"], "image/png");
    assert_eq!(row["encrypted"], false);
    assert!(
        row.get("storage_key").is_none(),
        "where the bytes are is never shown: {row}"
    );

    let path = format!("/api/v1/attachments/{id}/content");
    let whole = send(&s, &u, Method::GET, &path, &[], None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["etag"], format!("\"{}\"", sha256(&bytes)).as_str());
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"chart.png\"; filename*=UTF-8''chart.png"
    );
    assert_eq!(headers["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let part = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("range", "bytes=10-19")],
        None,
    )
    .await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 10-19/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[10..20]);
    let tail = send(&s, &u, Method::GET, &path, &[("range", "bytes=-5")], None).await;
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 5..]
    );
    let outside = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("range", &format!("bytes={}-", bytes.len()))],
        None,
    )
    .await;
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        outside.headers()["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );
    let body: Value = outside.json().await.unwrap();
    assert_eq!(body["error"]["code"], "range_not_satisfiable");
    let cached = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("if-none-match", &format!("\"{}\"", sha256(&bytes)))],
        None,
    )
    .await;
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    // Compression never changes the bytes an entity tag names.
    let text_like = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("accept-encoding", "gzip")],
        None,
    )
    .await;
    assert!(text_like.headers().get("content-encoding").is_none());

    // Replacing the content describes the new file.
    let text = b"quarterly numbers\nlaunch moves to Thursday\n".to_vec();
    let (status, row) = upload(&s, &u, &id, "", text.clone()).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["mime_type"], "text/plain");
    assert_eq!(row["size_bytes"], text.len());
    let again = send(&s, &u, Method::GET, &path, &[], None).await;
    assert_eq!(again.bytes().await.unwrap().as_ref(), text.as_slice());

    // The upload is audited, and changes the row through the one write path.
    let changes = s.get(&u, "/api/v1/sync/pull?cursor=0&limit=1000").await;
    if changes.status == StatusCode::OK {
        let logged = changes.body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["entity_id"] == id.as_str() && c["operation"] == "update")
            .count();
        assert_eq!(logged, 2);
        for change in changes.body["changes"].as_array().unwrap() {
            assert!(change["values"].get("storage_key").is_none(), "{change}");
        }
    }
}

async fn identical_files_are_stored_once_and_swept_when_no_row_holds_them(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let first = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let second = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let bytes = png(b"the same chart, twice");
    assert_eq!(
        upload(&s, &u, &first, "", bytes.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        upload(&s, &u, &second, "", bytes.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(files(&s), (1, 0), "stored once");

    // Deleting one row leaves the file to the other.
    s.delete(&u, &format!("/api/v1/attachments/{first}"))
        .await
        .expect(204);
    let report = s
        .services
        .sweep_blobs(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.blobs_examined, report.blobs_removed), (1, 0));
    let kept = send(
        &s,
        &u,
        Method::GET,
        &format!("/api/v1/attachments/{second}/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(kept.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // A file younger than the grace period stays even unreferenced (an upload may be
    // about to name it); past it, it goes.
    s.delete(&u, &format!("/api/v1/attachments/{second}"))
        .await
        .expect(204);
    let young = s
        .services
        .sweep_blobs(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(young.blobs_removed, 0);
    assert_eq!(files(&s), (1, 0));
    let old = s
        .services
        .sweep_blobs(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(old.blobs_removed, 1);
    assert_eq!(files(&s), (0, 0));
}

async fn refused_uploads_keep_nothing(backend: Backend) {
    let config = ServiceConfig {
        max_upload_bytes: 100_000,
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let id = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let zeros = format!("?expected_sha256={}", "0".repeat(64));
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            "",
            png(&vec![7u8; 100_001]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "file",
        ),
        (
            "",
            b"MZ\x90\0\x03\0\0\0\x04\0\0\0".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "file",
        ),
        (
            "",
            b"\0\x01\x02\x03 unknown binary".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "file",
        ),
        (
            &zeros,
            png(b"x"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "expected_sha256",
        ),
        (
            "?expected_sha256=abc",
            png(b"x"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected_sha256",
        ),
        (
            "?unknown=1",
            png(b"x"),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "unknown",
        ),
        (
            "",
            Vec::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "file",
        ),
    ];
    for (query, bytes, status, code, field) in cases {
        let (got, body) = upload(&s, &u, &id, query, bytes).await;
        assert_eq!(got, status, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["fields"].get(field).is_some(),
            "{field}: {body}"
        );
        assert_eq!(files(&s), (0, 0), "nothing kept after {code}");
    }
    // A body that declares more than the limit is refused before it is read; one that
    // streams past it without declaring a length is cut off.
    let declared = send(
        &s,
        &u,
        Method::PUT,
        &format!("/api/v1/attachments/{id}/content"),
        &[("content-length", "999999999")],
        Some(Vec::new()),
    )
    .await;
    assert!(
        declared.status() == StatusCode::PAYLOAD_TOO_LARGE || declared.status().is_client_error()
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![1u8; 10_000])).collect();
    let streamed = s
        .http
        .put(format!("{}/api/v1/attachments/{id}/content", s.base))
        .bearer_auth(&u.token)
        .body(reqwest::Body::wrap_stream(tokio_stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(files(&s), (0, 0));
    let row = s
        .get(&u, &format!("/api/v1/attachments/{id}"))
        .await
        .expect(200);
    assert_eq!(row["sha256"], Value::Null, "{row}");
    assert_eq!(row["size_bytes"], 0);
}

async fn only_who_may_change_the_row_uploads_and_only_readers_download(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let viewer = s.user("viewer").await;
    let stranger = s.user("stranger").await;
    let w = world(&s, &owner).await;
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    let id = new_attachment(&s, &owner, &w.workspace, &w.message).await;
    let bytes = png(b"board deck");
    assert_eq!(
        upload(&s, &owner, &id, "", bytes.clone()).await.0,
        StatusCode::OK
    );

    let content = format!("/api/v1/attachments/{id}/content");
    // A viewer reads it, but may not replace it; a stranger learns nothing.
    let read = send(&s, &viewer, Method::GET, &content, &[], None).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        upload(&s, &viewer, &id, "", png(b"forged")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        upload(&s, &stranger, &id, "", png(b"forged")).await.0,
        StatusCode::NOT_FOUND
    );
    let foreign = send(&s, &stranger, Method::GET, &content, &[], None).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    // An id that names nothing, and no credentials at all.
    let nothing = uuid::Uuid::now_v7();
    assert_eq!(
        upload(&s, &owner, &nothing.to_string(), "", png(b"x"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let anonymous = s
        .http
        .get(format!("{}{content}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let malformed = send(
        &s,
        &owner,
        Method::GET,
        "/api/v1/attachments/not-an-id/content",
        &[],
        None,
    )
    .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    // A stranger's own upload of the very same bytes gives them their copy, not the
    // owner's row.
    let theirs = world(&s, &stranger).await;
    let their_id = new_attachment(&s, &stranger, &theirs.workspace, &theirs.message).await;
    assert_eq!(
        upload(&s, &stranger, &their_id, "", bytes.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&s, &stranger, Method::GET, &content, &[], None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let unchanged = send(&s, &owner, Method::GET, &content, &[], None).await;
    assert_eq!(unchanged.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_eq!(
        upload(&s, &viewer, &id, "", png(b"forged")).await.0,
        StatusCode::FORBIDDEN
    );
}

async fn clients_never_name_where_content_is(backend: Backend) {
    let s = TestServer::start(backend).await;
    let victim = s.user("victim").await;
    let attacker = s.user("attacker").await;
    let w = world(&s, &victim).await;
    let id = new_attachment(&s, &victim, &w.workspace, &w.message).await;
    let bytes = png(b"salary review");
    assert_eq!(
        upload(&s, &victim, &id, "", bytes.clone()).await.0,
        StatusCode::OK
    );
    let key = format!(
        "{}/{}/{}",
        &sha256(&bytes)[..2],
        &sha256(&bytes)[2..4],
        sha256(&bytes)
    );

    // Whatever the attacker claims about content is refused, on create and on change.
    let theirs = world(&s, &attacker).await;
    for field in [
        json!({"storage_key": key}),
        json!({"sha256": sha256(&bytes)}),
        json!({"size_bytes": 13}),
        json!({"mime_type": "image/png"}),
        json!({"encrypted": true}),
        json!({"thumbnail": key}),
    ] {
        let mut body = json!({"workspace_id": theirs.workspace, "message_id": theirs.message, "file_name": "x.png"});
        let (name, value) = field.as_object().unwrap().iter().next().unwrap();
        body[name] = value.clone();
        let reply = s.post(&attacker, "/api/v1/attachments", body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["fields"][name], "is set by the server");
    }
    let own = new_attachment(&s, &attacker, &theirs.workspace, &theirs.message).await;
    let patched = s
        .patch(
            &attacker,
            &format!("/api/v1/attachments/{own}"),
            json!({"storage_key": key}),
        )
        .await;
    assert_eq!(
        patched.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        patched.body
    );
    let nothing = send(
        &s,
        &attacker,
        Method::GET,
        &format!("/api/v1/attachments/{own}/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);
}

async fn file_names_are_names_never_paths(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    for bad in [
        "../../etc/passwd",
        "a/b.png",
        "C:\\x.png",
        "a\r\nb.png",
        "tab\there",
        "..",
        " ",
        "",
    ] {
        let reply = s
            .post(
                &u,
                "/api/v1/attachments",
                json!({"workspace_id": w.workspace, "message_id": w.message, "file_name": bad}),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["fields"].get("file_name").is_some(),
            "{}",
            reply.body
        );
    }
    let id = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let renamed = s
        .patch(
            &u,
            &format!("/api/v1/attachments/{id}"),
            json!({"file_name": "../up.png"}),
        )
        .await;
    assert_eq!(
        renamed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        renamed.body
    );
    let fine = s
        .patch(
            &u,
            &format!("/api/v1/attachments/{id}"),
            json!({"file_name": "r\u{e9}sum\u{e9} (final).png"}),
        )
        .await
        .expect(200);
    assert_eq!(fine["file_name"], "r\u{e9}sum\u{e9} (final).png");
}

/// First attack, finding 1: the sweep read a blob's time once; an upload of the same bytes
/// renewing it and committing its row in between lost its file.
async fn regression_a_sweep_racing_an_upload_of_a_stored_file_keeps_it(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    for round in 0..15u8 {
        let bytes = png(&[round; 64]);
        // The file is stored, and no row holds it any more.
        let first = new_attachment(&s, &u, &w.workspace, &w.message).await;
        assert_eq!(
            upload(&s, &u, &first, "", bytes.clone()).await.0,
            StatusCode::OK
        );
        s.delete(&u, &format!("/api/v1/attachments/{first}"))
            .await
            .expect(204);
        // Another row takes the same file while the sweep runs.
        let second = new_attachment(&s, &u, &w.workspace, &w.message).await;
        let (uploaded, swept) = tokio::join!(
            upload(&s, &u, &second, "", bytes.clone()),
            s.services.sweep_blobs(std::time::Duration::ZERO)
        );
        assert_eq!(uploaded.0, StatusCode::OK);
        swept.unwrap();
        let read = send(
            &s,
            &u,
            Method::GET,
            &format!("/api/v1/attachments/{second}/content"),
            &[],
            None,
        )
        .await;
        assert_eq!(
            read.status(),
            StatusCode::OK,
            "round {round}: the file of a committed upload is there"
        );
        assert_eq!(read.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }
}

/// First attack, findings 2 and 6: a permission set that hides a document left its files
/// readable and replaceable; a message in the bin kept its files open.
async fn regression_a_denied_or_binned_parent_hides_its_files(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let editor = s.user("editor").await;
    let w = world(&s, &owner).await;
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": editor.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let on_document = s
        .post(
            &owner,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "document_id": w.document, "file_name": "salaries.txt"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        upload(&s, &owner, &on_document, "", b"ceo: 1000000\n".to_vec())
            .await
            .0,
        StatusCode::OK
    );
    let content = format!("/api/v1/attachments/{on_document}/content");
    assert_eq!(
        send(&s, &editor, Method::GET, &content, &[], None)
            .await
            .status(),
        StatusCode::OK
    );
    s.post(
        &owner,
        "/api/v1/permission-sets",
        json!({"workspace_id": w.workspace, "subject_type": "user", "subject_user_id": editor.id, "resource_type": "documents", "resource_id": w.document, "actions": ["read", "write", "delete"], "effect": "deny"}),
    )
    .await
    .expect(201);
    s.get(&editor, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(404);
    assert_eq!(
        send(&s, &editor, Method::GET, &content, &[], None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        upload(&s, &editor, &on_document, "", b"ceo: 1\n".to_vec())
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let kept = send(&s, &owner, Method::GET, &content, &[], None).await;
    assert_eq!(kept.bytes().await.unwrap().as_ref(), b"ceo: 1000000\n");

    // A message in the bin keeps its files there; restored, they are back.
    let on_message = new_attachment(&s, &owner, &w.workspace, &w.message).await;
    assert_eq!(
        upload(&s, &owner, &on_message, "", png(b"chart")).await.0,
        StatusCode::OK
    );
    let path = format!("/api/v1/attachments/{on_message}/content");
    s.delete(&owner, &format!("/api/v1/messages/{}", w.message))
        .await
        .expect(200);
    assert_eq!(
        send(&s, &owner, Method::GET, &path, &[], None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        upload(&s, &owner, &on_message, "", png(b"other")).await.0,
        StatusCode::NOT_FOUND
    );
    s.post(
        &owner,
        &format!("/api/v1/messages/{}/restore", w.message),
        json!({}),
    )
    .await
    .expect(200);
    let back = send(&s, &owner, Method::GET, &path, &[], None).await;
    assert_eq!(
        back.bytes().await.unwrap().as_ref(),
        png(b"chart").as_slice()
    );
}

/// Every file under the blob folder (not the temporary ones), with its path.
fn blob_files(s: &TestServer) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![s.data_dir().join("blobs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                if !entry.path().ends_with("tmp") {
                    stack.push(entry.path());
                }
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// With `attachments.encrypt` (the zero-sync edition's default), a file is sealed on
/// disk under a keyed name and served in the clear, in ranges across its chunks; the
/// same file is stored once; a sealed file moved under another's name is refused, not
/// served. (First attack, finding 3, refused files here rather than store them in
/// plaintext; they are now sealed.)
async fn files_are_sealed_at_rest_and_served_in_the_clear(backend: Backend) {
    let config = ServiceConfig {
        encrypt_content: true,
        encrypt_attachments: true,
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let marker = b"TOP-SECRET-QUOKKA-";
    // Three 64 KiB chunks and a bit: ranges cross chunk boundaries.
    let content = png(&marker.repeat(200_000 / marker.len()));
    let id = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let (status, row) = upload(&s, &u, &id, "", content.clone()).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["encrypted"], true);
    assert_eq!(row["sha256"], sha256(&content));
    assert_eq!(row["size_bytes"], content.len());

    let stored = blob_files(&s);
    assert_eq!(stored.len(), 1);
    let on_disk = std::fs::read(&stored[0]).unwrap();
    let name = stored[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert_ne!(name, sha256(&content), "the name does not tell the content");
    assert!(
        !on_disk.windows(marker.len()).any(|w| w == marker),
        "no content in the clear on disk"
    );
    assert!(
        on_disk.len() > content.len(),
        "a header and a tag per chunk"
    );

    let path = format!("/api/v1/attachments/{id}/content");
    let whole = send(&s, &u, Method::GET, &path, &[], None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(
        whole.headers()["etag"].to_str().unwrap(),
        format!("\"{}\"", sha256(&content))
    );
    assert_eq!(whole.bytes().await.unwrap().as_ref(), content.as_slice());
    let chunk = 64 * 1024;
    for (range, from, to) in [
        (
            format!("bytes={}-{}", chunk - 5, chunk + 5),
            chunk - 5,
            chunk + 6,
        ),
        (format!("bytes={}-", 2 * chunk), 2 * chunk, content.len()),
        ("bytes=-7".to_owned(), content.len() - 7, content.len()),
        ("bytes=0-0".to_owned(), 0, 1),
    ] {
        let part = send(&s, &u, Method::GET, &path, &[("range", &range)], None).await;
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            part.bytes().await.unwrap().as_ref(),
            &content[from..to],
            "{range}"
        );
    }

    // The same file again: stored once.
    let again = new_attachment(&s, &u, &w.workspace, &w.message).await;
    assert_eq!(
        upload(&s, &u, &again, "", content.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(blob_files(&s).len(), 1);

    // Another file, then the first file's sealed bytes moved under its name: refused.
    let other = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let small = png(b"another file");
    assert_eq!(
        upload(&s, &u, &other, "", small.clone()).await.0,
        StatusCode::OK
    );
    let target = blob_files(&s)
        .into_iter()
        .find(|p| *p != stored[0])
        .unwrap();
    let kept = std::fs::read(&target).unwrap();
    std::fs::write(&target, &on_disk).unwrap();
    let forged = send(
        &s,
        &u,
        Method::GET,
        &format!("/api/v1/attachments/{other}/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(forged.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = forged.bytes().await.unwrap();
    assert!(!body.windows(marker.len()).any(|w| w == marker));
    // One chunk flipped inside the right file: refused as well, before a byte is served.
    let mut flipped = on_disk.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    std::fs::write(&target, &kept).unwrap();
    std::fs::write(&stored[0], &flipped).unwrap();
    let cut = send(&s, &u, Method::GET, &path, &[], None).await;
    let served = cut.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    assert_ne!(
        served, content,
        "an altered chunk is never served as the file"
    );
    let read_back = send(
        &s,
        &u,
        Method::GET,
        &format!("/api/v1/attachments/{other}/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(read_back.bytes().await.unwrap().as_ref(), small.as_slice());
}

/// First attack, finding 4: only the first 8 KiB were read for text, so a binary behind
/// 8 KiB of `#` was taken for text; and a name that reorders text passed.
async fn regression_a_binary_padded_with_text_is_not_text(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let id = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let mut padded = vec![b'#'; 8192];
    padded.extend_from_slice(b"MZ\x90\0\x03\0\0\0\x04\0");
    let (status, body) = upload(&s, &u, &id, "", padded).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(files(&s), (0, 0));
    let long_text = "a line of plain text\n".repeat(2000).into_bytes();
    assert_eq!(upload(&s, &u, &id, "", long_text).await.0, StatusCode::OK);
    let reply = s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "message_id": w.message, "file_name": "x\u{202e}gnp.exe"}),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
}

/// First attack, finding 6: a range of another version (If-Range) was served, a weak
/// entity tag did not match, and a malformed id answered in plain text.
async fn regression_ranges_of_another_version_and_bad_ids(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let id = new_attachment(&s, &u, &w.workspace, &w.message).await;
    let bytes = png(b"version two of the file");
    assert_eq!(
        upload(&s, &u, &id, "", bytes.clone()).await.0,
        StatusCode::OK
    );
    let path = format!("/api/v1/attachments/{id}/content");
    let etag = format!("\"{}\"", sha256(&bytes));
    let stale = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("range", "bytes=0-3"), ("if-range", "\"0000\"")],
        None,
    )
    .await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(stale.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let current = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("range", "bytes=0-3"), ("if-range", &etag)],
        None,
    )
    .await;
    assert_eq!(current.status(), StatusCode::PARTIAL_CONTENT);
    let ignored = send(&s, &u, Method::GET, &path, &[("range", "bytes=abc")], None).await;
    assert_eq!(ignored.status(), StatusCode::OK);
    let weak = send(
        &s,
        &u,
        Method::GET,
        &path,
        &[("if-none-match", &format!("W/{etag}"))],
        None,
    )
    .await;
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
    let bad = send(
        &s,
        &u,
        Method::GET,
        "/api/v1/attachments/not-an-id/content",
        &[],
        None,
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
}

const BOUNDARY: &str = "ceneca-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body of `parts` (name, file name, bytes), in order.
fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file_name, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        let disposition = match file_name {
            Some(file) => format!("form-data; name=\"{name}\"; filename=\"{file}\""),
            None => format!("form-data; name=\"{name}\""),
        };
        body.extend_from_slice(format!("Content-Disposition: {disposition}\r\n\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn post_form(s: &TestServer, u: &User, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let reply = send(
        s,
        u,
        Method::POST,
        &format!("/api/v1/attachments{query}"),
        &[("content-type", content_type.as_str())],
        Some(body),
    )
    .await;
    let status = reply.status();
    (status, reply.json().await.unwrap_or(Value::Null))
}

async fn attachment_count(s: &TestServer, u: &User) -> usize {
    s.get(u, "/api/v1/attachments?limit=200").await.expect(200)["items"]
        .as_array()
        .unwrap()
        .len()
}

async fn a_form_creates_the_row_with_its_file(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let bytes = png(&[7u8; 70_000]);
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message});
    let (status, row) = post_form(
        &s,
        &u,
        &format!("?expected_sha256={}", sha256(&bytes).to_uppercase()),
        form(&[
            ("metadata", None, metadata.to_string().as_bytes()),
            ("file", Some("chart.png"), &bytes),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    // The file part named the file; the server described it.
    assert_eq!(row["file_name"], "chart.png");
    assert_eq!(row["mime_type"], "image/png");
    assert_eq!(row["size_bytes"], bytes.len());
    assert_eq!(row["sha256"], sha256(&bytes));
    let id = row["id"].as_str().unwrap();
    let got = send(
        &s,
        &u,
        Method::GET,
        &format!("/api/v1/attachments/{id}/content"),
        &[],
        None,
    )
    .await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());
    // A file name in the metadata wins over the part's; JSON still creates a row alone.
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message,
                          "file_name": "named.png"});
    let (status, row) = post_form(
        &s,
        &u,
        "",
        form(&[
            ("metadata", None, metadata.to_string().as_bytes()),
            ("file", Some("ignored.png"), &png(b"other")),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{row}");
    assert_eq!(row["file_name"], "named.png");
    new_attachment(&s, &u, &w.workspace, &w.message).await;
    assert_eq!(attachment_count(&s, &u).await, 3);
    // The create is audited with what the server read from the file.
    let admin = s.admin().await;
    let audit = s
        .get(
            &admin,
            "/api/v1/audit-log?action=attachments.create&limit=200",
        )
        .await
        .expect(200);
    let text = audit.to_string();
    assert!(text.contains(&sha256(&bytes)), "{text}");
}

async fn a_refused_form_keeps_no_row_and_no_file(backend: Backend) {
    let config = ServiceConfig {
        max_upload_bytes: 100_000,
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message}).to_string();
    let metadata = metadata.as_bytes();
    let cases: Vec<(&str, u16, Vec<u8>, String)> = vec![
        (
            "too large",
            413,
            form(&[
                ("metadata", None, metadata),
                ("file", Some("a.png"), &png(&[0; 200_000])),
            ]),
            String::new(),
        ),
        (
            "a type not allowed (an ELF program)",
            415,
            form(&[
                ("metadata", None, metadata),
                (
                    "file",
                    Some("a.png"),
                    b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0",
                ),
            ]),
            String::new(),
        ),
        (
            "not the hash expected",
            422,
            form(&[
                ("metadata", None, metadata),
                ("file", Some("a.png"), &png(b"x")),
            ]),
            format!("?expected_sha256={}", sha256(b"something else")),
        ),
        (
            "empty",
            422,
            form(&[("metadata", None, metadata), ("file", Some("a.png"), b"")]),
            String::new(),
        ),
        (
            "the file before the metadata",
            400,
            form(&[
                ("file", Some("a.png"), &png(b"x")),
                ("metadata", None, metadata),
            ]),
            String::new(),
        ),
        (
            "no file",
            400,
            form(&[("metadata", None, metadata)]),
            String::new(),
        ),
        (
            "a part the form does not take",
            400,
            form(&[
                ("metadata", None, metadata),
                ("extra", None, b"1"),
                ("file", Some("a.png"), &png(b"x")),
            ]),
            String::new(),
        ),
        (
            "a part after the file",
            400,
            form(&[
                ("metadata", None, metadata),
                ("file", Some("a.png"), &png(b"x")),
                ("file", Some("b.exe"), b"\x7fELF"),
            ]),
            String::new(),
        ),
        (
            "metadata that is not JSON",
            400,
            form(&[
                ("metadata", None, b"{nope"),
                ("file", Some("a.png"), &png(b"x")),
            ]),
            String::new(),
        ),
        (
            "metadata that is not a valid row",
            422,
            form(&[
                ("metadata", None, br#"{"workspace_id": "not-an-id"}"#),
                ("file", Some("a.png"), &png(b"x")),
            ]),
            String::new(),
        ),
        (
            "a path for a name",
            422,
            form(&[
                ("metadata", None, metadata),
                ("file", Some("../../etc/passwd"), &png(b"x")),
            ]),
            String::new(),
        ),
        (
            "server fields in the metadata",
            422,
            form(&[
                (
                    "metadata",
                    None,
                    json!({"workspace_id": w.workspace, "message_id": w.message,
                                          "sha256": sha256(b"x"), "storage_key": "ab/cd/x"})
                    .to_string()
                    .as_bytes(),
                ),
                ("file", Some("a.png"), &png(b"x")),
            ]),
            String::new(),
        ),
        (
            "a body that is not a form",
            400,
            b"--not-the-boundary\r\nnothing here".to_vec(),
            String::new(),
        ),
    ];
    for (what, expected, body, query) in cases {
        let (status, reply) = post_form(&s, &u, &query, body).await;
        assert_eq!(status.as_u16(), expected, "{what}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{what}: {reply}");
    }
    assert_eq!(
        attachment_count(&s, &u).await,
        0,
        "a refused form kept a row"
    );
    assert_eq!(files(&s), (0, 0), "a refused form kept a file");
    // A declared length past the limit is refused before the body is read.
    let reply = send(
        &s,
        &u,
        Method::POST,
        "/api/v1/attachments",
        &[
            (
                "content-type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            ),
            ("content-length", "900000000"),
        ],
        None,
    )
    .await;
    assert_eq!(reply.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn a_form_names_only_what_its_sender_may_write(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b) = (s.user("a").await, s.user("b").await);
    let w = world(&s, &a).await;
    let bytes = png(b"mine");
    // b names a's workspace and message: refused before the file is read; a keeps nothing
    // of b's.
    for metadata in [
        json!({"workspace_id": w.workspace, "message_id": w.message}),
        json!({"workspace_id": w.workspace, "document_id": w.document}),
    ] {
        let (status, reply) = post_form(
            &s,
            &b,
            "",
            form(&[
                ("metadata", None, metadata.to_string().as_bytes()),
                ("file", Some("x.png"), &bytes),
            ]),
        )
        .await;
        assert!(
            [403, 404, 422].contains(&status.as_u16()),
            "{status}: {reply}"
        );
    }
    assert_eq!(attachment_count(&s, &a).await, 0);
    assert_eq!(files(&s), (0, 0));
    // The session cookie from a page of another origin is refused (forms can be sent
    // across sites; the cookie is not theirs to use).
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message}).to_string();
    let reply = form_request(&s)
        .header("cookie", format!("ceneca_session={}", a.token))
        .header("sec-fetch-site", "same-site")
        .header("origin", "https://evil.example.com")
        .body(form(&[
            ("metadata", None, metadata.as_bytes()),
            ("file", Some("x.png"), &bytes),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    assert_eq!(attachment_count(&s, &a).await, 0);
}

/// `POST /attachments` with a form's content type; the caller adds the rest.
fn form_request(s: &TestServer) -> reqwest::RequestBuilder {
    s.http
        .post(format!("{}/api/v1/attachments", s.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
}

/// A request the server refused before its body was sent: answered with `status`, or,
/// when the server closed the connection while the client was still sending, cut off
/// (the client may see the broken pipe before it reads the answer).
fn refused_early(reply: reqwest::Result<reqwest::Response>, status: StatusCode) {
    match reply {
        Ok(reply) => assert_eq!(reply.status(), status),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
}

/// A body sent in chunks as they come through the returned sender (no declared length).
fn streamed_body() -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    reqwest::Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (tx, body)
}

/// From the attack on forms: the parser keeps what comes before a boundary in memory and
/// scans it again on every read, so a chunked body that never reached its file grew the
/// server by what was sent (400 MB in, 540 MB resident) at quadratic cost.
async fn regression_a_form_that_never_reaches_its_file_is_cut_off(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    for garbage in [
        // A preamble with no boundary in it.
        b"x".repeat(64 * 1024),
        // A part whose headers never end.
        [
            format!("--{BOUNDARY}\r\nX-Filler: ").into_bytes(),
            b"y".repeat(64 * 1024),
        ]
        .concat(),
    ] {
        let (tx, body) = streamed_body();
        let sending = tokio::spawn(async move {
            let mut first = Some(garbage.clone());
            // 64 MiB at most: far past what the form may hold before its file.
            for _ in 0..1024 {
                let chunk = first
                    .take()
                    .unwrap_or_else(|| garbage[garbage.len() - 1..].repeat(64 * 1024));
                if tx.send(Ok(chunk)).await.is_err() {
                    return false;
                }
            }
            true
        });
        let reply = form_request(&s)
            .bearer_auth(&u.token)
            .body(body)
            .send()
            .await;
        refused_early(reply, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(!sending.await.unwrap(), "the whole body was read");
    }
}

/// From the second attack on forms: checking for a part after the file read that part's
/// headers without bound, so a form whose next part's headers never ended held the
/// request (and hundreds of MB) until the idle timeout.
async fn regression_what_follows_a_form_s_file_is_read_only_so_far(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message}).to_string();
    let whole = form(&[
        ("metadata", None, metadata.as_bytes()),
        ("file", Some("a.png"), &png(b"x")),
    ]);
    let end = format!("--{BOUNDARY}--\r\n");
    let head = [
        whole[..whole.len() - end.len()].to_vec(),
        format!("--{BOUNDARY}\r\nX-Filler: ").into_bytes(),
    ]
    .concat();
    let (tx, body) = streamed_body();
    let sending = tokio::spawn(async move {
        if tx.send(Ok(head)).await.is_err() {
            return false;
        }
        for _ in 0..1024 {
            if tx.send(Ok(b"y".repeat(64 * 1024))).await.is_err() {
                return false;
            }
        }
        true
    });
    let reply = form_request(&s)
        .bearer_auth(&u.token)
        .body(body)
        .send()
        .await;
    refused_early(reply, StatusCode::BAD_REQUEST);
    assert!(!sending.await.unwrap(), "the whole body was read");
    assert_eq!(attachment_count(&s, &u).await, 0);
}

/// From the attack on forms: the create was checked when the form began and written when
/// its file had arrived, however long after: a member removed, a parent binned or a
/// session ended meanwhile still created the attachment.
async fn regression_a_form_is_checked_again_once_its_file_has_arrived(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let b = s.user("b").await;
    let w = world(&s, &a).await;
    let member = s
        .post(
            &a,
            &format!("/api/v1/workspaces/{}/members", w.workspace),
            json!({"user_id": b.id, "role": "editor"}),
        )
        .await
        .expect(201);
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message}).to_string();
    let head = [
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n")
            .into_bytes(),
        metadata.into_bytes(),
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"a.png\"\r\n\r\n"
        )
        .into_bytes(),
        png(b"first half"),
    ]
    .concat();
    let tail = format!("second half\r\n--{BOUNDARY}--\r\n").into_bytes();
    let (tx, body) = streamed_body();
    let request = form_request(&s).bearer_auth(&b.token).body(body).send();
    let pending = tokio::spawn(request);
    tx.send(Ok(head)).await.unwrap();
    // The form is under way (its create checked) before b loses the workspace.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.delete(
        &a,
        &format!(
            "/api/v1/workspaces/{}/members/{}",
            w.workspace,
            member["id"].as_str().unwrap()
        ),
    )
    .await;
    tx.send(Ok(tail)).await.unwrap();
    drop(tx);
    let reply = pending.await.unwrap().unwrap();
    let status = reply.status().as_u16();
    assert!(
        [403, 404].contains(&status),
        "{status}: {:?}",
        reply.text().await
    );
    assert_eq!(
        attachment_count(&s, &a).await,
        0,
        "the form created its row"
    );
    assert_eq!(files(&s).0, 0, "the form kept its file");
}

/// From the attack on forms: a browser that sends no fetch metadata was let through on
/// the session cookie whatever page sent the form.
async fn regression_a_cookie_form_from_another_origin_without_fetch_metadata_is_refused(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let a = s.user("a").await;
    let w = world(&s, &a).await;
    let metadata = json!({"workspace_id": w.workspace, "message_id": w.message}).to_string();
    let host = s.base.trim_start_matches("http://").to_owned();
    for (origin, expected) in [
        ("https://evil.example.com".to_owned(), StatusCode::FORBIDDEN),
        ("null".to_owned(), StatusCode::FORBIDDEN),
        (format!("http://{host}"), StatusCode::CREATED),
    ] {
        let reply = form_request(&s)
            .header("cookie", format!("ceneca_session={}", a.token))
            .header("origin", &origin)
            .body(form(&[
                ("metadata", None, metadata.as_bytes()),
                ("file", Some("x.png"), &png(b"x")),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), expected, "{origin}");
    }
}
