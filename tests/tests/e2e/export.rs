//! A user's export (right of access and portability) over real HTTP, on SQLite and
//! PostgreSQL: every entity that can be a user's is in the archive (the test walks the
//! model, so an entity added later cannot be forgotten), checksums match the manifest,
//! no secret leaves, another user's content stays out, and only the user or a system
//! administrator exports.

use std::collections::BTreeMap;
use std::io::Read;

use ceneca_domain::export::exported_entities;
use ceneca_domain::model;
use ceneca_e2e::{Backend, TestServer, User, on_every_backend, samples, world};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_every_backend!(
    a_users_export_holds_every_row_that_is_theirs_and_no_secret,
    only_the_user_or_an_administrator_exports,
    regression_a_failed_export_is_never_a_zip_that_opens,
    regression_exports_per_account_are_capped,
    large_exports_run_as_jobs_only_their_requester_reads,
    an_export_job_is_deleted_when_it_expires,
    regression_what_the_user_created_in_a_shared_workspace_is_in_their_export,
    regression_a_job_outlives_neither_the_right_to_read_it_nor_the_account,
);

const API_KEY: &str = "sk-test-0123456789abcd";

/// The archive's files by name.
fn unzip(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a whole ZIP");
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        out.insert(file.name().unwrap().to_string(), content);
    }
    out
}

async fn export(s: &TestServer, token: &str, user: &str) -> (u16, Vec<u8>) {
    let answer = s
        .http
        .post(format!("{}/api/v1/users/{user}/export", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.bytes().await.unwrap().to_vec())
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

async fn a_users_export_holds_every_row_that_is_theirs_and_no_secret(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let other = s.user("other").await;
    let admin = s.admin().await;
    let w = world(&s, &u).await;
    // One of every resource the user can create.
    let mut attachment = None;
    for sample in samples(&w) {
        let created = s
            .post(
                &u,
                &format!("/api/v1/{}", sample.path),
                sample.create.clone(),
            )
            .await
            .expect(201);
        if sample.path == "attachments" {
            attachment = Some(id(&created));
        }
    }
    let attachment = attachment.unwrap();
    let file = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR exported file".repeat(40);
    assert_eq!(s.put_content(&u, &attachment, file.clone()).await, 200);
    // A member in the user's workspace, an invoice, an API token, a message in the bin.
    s.post(
        &u,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": other.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    s.post(
        &admin,
        "/api/v1/invoices",
        json!({"user_id": u.id, "period_start": "2026-11-01T00:00:00Z",
               "period_end": "2026-12-01T00:00:00Z", "amount_micros": 1000, "currency": "EUR"}),
    )
    .await
    .expect(201);
    let token = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "ci bot", "workspace_id": w.workspace, "expires_in_days": 30}),
        )
        .await
        .expect(201);
    // Found by the attack: a member's API token for the user's workspace was exported
    // with the workspace's content; it is the member's account data.
    s.post(
        &other,
        "/api/v1/api-tokens",
        json!({"name": "other-members-token", "workspace_id": w.workspace, "expires_in_days": 30}),
    )
    .await
    .expect(201);
    let api_token = token["token"].as_str().unwrap().to_owned();
    let binned = id(&s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": "deleted but still mine"}),
        )
        .await
        .expect(201));
    s.delete(&u, &format!("/api/v1/messages/{binned}"))
        .await
        .expect(200);
    // In another user's workspace: what the user wrote is theirs, the rest is not.
    let theirs = id(&s
        .post(
            &other,
            "/api/v1/workspaces",
            json!({"name": "Other's private"}),
        )
        .await
        .expect(201));
    s.post(
        &other,
        &format!("/api/v1/workspaces/{theirs}/members"),
        json!({"user_id": u.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let shared_thread = id(&s
        .post(
            &other,
            "/api/v1/threads",
            json!({"workspace_id": theirs, "title": "others-thread-title"}),
        )
        .await
        .expect(201));
    let mine = id(&s
        .post(
            &u,
            &format!("/api/v1/threads/{shared_thread}/messages"),
            json!({"role": "user", "content": "written by u in a shared thread"}),
        )
        .await
        .expect(201));
    s.post(
        &other,
        &format!("/api/v1/threads/{shared_thread}/messages"),
        json!({"role": "user", "content": "others-private-words"}),
    )
    .await
    .expect(201);

    // Found by the attack: an edit of the user's that lost a merge (a sync conflict, kept
    // as a raw row here as the merge keeps it) was not exported.
    let (conflict, change) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    s.raw_execute(&format!(
        "INSERT INTO sync_conflicts (id, created_at, updated_at, user_id, workspace_id, entity_type,
             entity_id, kind, change_id, hlc, lost_values, winner_change_id, winner_hlc)
         VALUES ('{conflict}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', '{}',
             '{}', 'message', '{}', 'concurrent_edit', '{change}', 1,
             '{{\"content\": \"my lost edit\"}}', '{change}', 2)",
        u.id, w.workspace, w.message
    ))
    .await;
    let (status, bytes) = export(&s, &u.token, &u.id).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let files = unzip(&bytes);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["format"], "ceneca-export/1");
    assert_eq!(manifest["user_id"], u.id.as_str());

    // Every file the manifest lists is there, with its size and checksum; every file
    // there is listed.
    let listed = manifest["files"].as_array().unwrap();
    assert_eq!(listed.len(), files.len() - 1, "{listed:?}");
    for entry in listed {
        let path = entry["path"].as_str().unwrap();
        let content = files.get(path).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(entry["bytes"], content.len() as u64, "{path}");
        assert_eq!(
            entry["sha256"],
            hex::encode(Sha256::digest(content)),
            "{path}"
        );
    }

    // The model walked: every entity that can be a user's is in the archive.
    let rows = |table: &str| -> Vec<Value> {
        files
            .get(&format!("{table}.jsonl"))
            .map(|content| {
                String::from_utf8(content.clone())
                    .unwrap()
                    .lines()
                    .map(|line| serde_json::from_str(line).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    for entity in exported_entities() {
        let found = rows(entity.table);
        assert_eq!(
            manifest["entities"][entity.table],
            found.len() as u64,
            "{}",
            entity.table
        );
        // A plan is the server's catalogue, nobody's own.
        if std::ptr::eq(entity, &model::SUBSCRIPTION_PLANS) {
            assert!(found.is_empty());
            continue;
        }
        assert!(!found.is_empty(), "no {} of the user's", entity.table);
    }
    assert!(files.keys().all(|name| name != "sync_events.jsonl"));
    let ids = |table: &str| -> Vec<String> {
        rows(table)
            .iter()
            .map(|row| row["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids("users"), std::slice::from_ref(&u.id));
    assert_eq!(ids("sync_conflicts"), [conflict.to_string()]);
    assert_eq!(
        rows("sync_conflicts")[0]["lost_values"]["content"],
        "my lost edit"
    );
    let messages = ids("messages");
    assert!(
        messages.contains(&binned) && messages.contains(&mine),
        "{messages:?}"
    );
    assert!(messages.contains(&w.message));
    // The file, as uploaded.
    let stored = files
        .iter()
        .find(|(name, _)| name.starts_with(&format!("files/{attachment}/")))
        .map(|(_, content)| content)
        .expect("the attachment's file");
    assert_eq!(stored, &file);

    // No secret and nothing of another user's.
    let everything: Vec<u8> = files.values().flatten().copied().collect();
    let text = String::from_utf8_lossy(&everything);
    for secret in [
        API_KEY,
        u.token.as_str(),
        api_token.as_str(),
        "correct horse battery",
        "password_hash",
        "token_hash",
        "_ciphertext",
        "totp_secret",
    ] {
        assert!(!text.contains(secret), "the archive holds {secret}");
    }
    let providers = rows("ai_provider_configs");
    assert!(providers[0]["api_key_hint"].is_string(), "{providers:?}");
    for private in [
        "others-private-words",
        "Other's private",
        "others-thread-title",
    ] {
        assert!(!text.contains(private), "the archive holds {private}");
    }

    // Audited, with counts.
    let entries = s.audit_log(&admin, "action=user.export").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["actor_id"], u.id.as_str());
    assert_eq!(entries[0]["resource_id"], u.id.as_str());
    assert_eq!(entries[0]["details"]["files"], 1);
    // Found by the attack: the entry had no source address.
    assert!(entries[0]["source_ip"].is_string(), "{entries:?}");
}

async fn only_the_user_or_an_administrator_exports(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let other = s.user("other").await;
    let admin = s.admin().await;
    let w = world(&s, &u).await;
    let token = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "bot", "workspace_id": w.workspace, "expires_in_days": 1}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let device = s
        .post(
            &u,
            "/api/v1/devices",
            json!({"name": "laptop", "platform": "desktop"}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another account: 404, as for any account but one's own.
    let (status, body) = export(&s, &other.token, &u.id).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    // The user's API token and device token reach content, never the account.
    for credential in [&token, &device] {
        let (status, body) = export(&s, credential, &u.id).await;
        assert!(
            matches!(status, 401 | 403 | 404),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
    }
    let (status, _) = export(&s, "not-a-token", &u.id).await;
    assert_eq!(status, 401);
    // An administrator exports anyone; an unknown account is 404, a malformed id 400.
    let (status, bytes) = export(&s, &admin.token, &u.id).await;
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&unzip(&bytes)["manifest.json"]).unwrap();
    assert_eq!(manifest["user_id"], u.id.as_str());
    let (status, _) = export(&s, &admin.token, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(status, 404);
    let (status, _) = export(&s, &admin.token, "not-an-id").await;
    assert_eq!(status, 400);
    // No body, no query: said, not ignored.
    let with_body = s
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/export", u.id),
            Some(&u.token),
            Some(&json!({"format": "csv"})),
        )
        .await;
    assert_eq!(with_body.status, 400, "{with_body:?}");
    let with_query = s
        .call(
            Method::POST,
            &format!("/api/v1/users/{}/export?since=2020", u.id),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(with_query.status, 400, "{with_query:?}");
}

/// The body of an export, as far as the server sent it (a cut body ends the reading).
async fn export_as_far_as_sent(s: &TestServer, token: &str, user: &str) -> (u16, Vec<u8>, bool) {
    let mut answer = s
        .http
        .post(format!("{}/api/v1/users/{user}/export", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let mut bytes = Vec::new();
    let whole = loop {
        match answer.chunk().await {
            Ok(Some(piece)) => bytes.extend_from_slice(&piece),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    (status, bytes, whole)
}

/// Found by the attack: an export that failed midway (a file missing from the disk)
/// still ended with a central directory, which `unzip -t` passed as a whole archive.
async fn regression_a_failed_export_is_never_a_zip_that_opens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let admin = s.admin().await;
    let w = world(&s, &u).await;
    let attachment = id(&s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "message_id": w.message, "file_name": "gone.png"}),
        )
        .await
        .expect(201));
    assert_eq!(
        s.put_content(
            &u,
            &attachment,
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR the file that goes missing".repeat(100)
        )
        .await,
        200
    );
    // The file goes missing from the disk behind the server's back.
    for entry in std::fs::read_dir(s.data_dir().join("blobs"))
        .unwrap()
        .flatten()
    {
        if entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    let (status, bytes, whole) = export_as_far_as_sent(&s, &u.token, &u.id).await;
    assert_eq!(status, 200);
    assert!(!whole, "the body was not cut short");
    assert!(
        zip::ZipArchive::new(std::io::Cursor::new(&bytes)).is_err(),
        "a failed export opens as an archive ({} bytes)",
        bytes.len()
    );
    let entries = s.audit_log(&admin, "action=user.export").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["outcome"], "failure");
}

/// Found by the attack: 50 exports that were never read held 50 threads and 700 MB.
async fn regression_exports_per_account_are_capped(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // A file larger than what the sockets (up to 32 MiB on loopback) and the server's
    // buffers hold: an export whose
    // client does not read waits, holding its slot.
    let attachment = id(&s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "message_id": w.message, "file_name": "big.png"}),
        )
        .await
        .expect(201));
    let mut big = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    while big.len() < 64 << 20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        big.extend_from_slice(&state.to_le_bytes());
    }
    assert_eq!(s.put_content(&u, &attachment, big).await, 200);
    let start = || {
        s.http
            .post(format!("{}/api/v1/users/{}/export", s.base, u.id))
            .bearer_auth(&u.token)
            .send()
    };
    let first = start().await.unwrap();
    let second = start().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = start().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    // The readers leave: their slots come back.
    drop((first, second));
    let mut again = 0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        again = start().await.unwrap().status().as_u16();
        if again == 200 {
            break;
        }
    }
    assert_eq!(again, 200, "the slots were never given back");
}

/// Asks for an export; answers the status, the `Location` header and the body.
async fn ask_export(
    s: &TestServer,
    token: &str,
    user: &str,
    query: &str,
) -> (u16, Option<String>, Vec<u8>) {
    let answer = s
        .http
        .post(format!("{}/api/v1/users/{user}/export{query}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, answer.bytes().await.unwrap().to_vec())
}

/// Waits until the job is no longer running; answers it.
async fn job_done(s: &TestServer, u: &User, job: &str) -> Value {
    for _ in 0..600 {
        let seen = s
            .get(u, &format!("/api/v1/exports/{job}"))
            .await
            .expect(200);
        if seen["status"] != "running" {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the export job did not end in 30 s");
}

/// Reads a job's archive (as far as the server sends it).
async fn job_content(s: &TestServer, token: &str, job: &str) -> (u16, Vec<u8>) {
    let answer = s
        .http
        .get(format!("{}/api/v1/exports/{job}/content", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let mut body = Vec::new();
    let mut answer = answer;
    while let Ok(Some(piece)) = answer.chunk().await {
        body.extend_from_slice(&piece);
    }
    (status, body)
}

async fn large_exports_run_as_jobs_only_their_requester_reads(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        export_job_threshold_bytes: 20_000,
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let other = s.user("other").await;
    let admin = s.admin().await;
    let w = world(&s, &u).await;
    let attachment = id(&s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": w.workspace, "file_name": "canary.txt"}),
        )
        .await
        .expect(201));
    let file = b"CANARY-export-job-plaintext ".repeat(2000);
    assert_eq!(s.put_content(&u, &attachment, file.clone()).await, 200);

    // Over the threshold: a job, at once.
    let (status, location, body) = ask_export(&s, &u.token, &u.id, "").await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let job: Value = serde_json::from_slice(&body).unwrap();
    let job_id = id(&job);
    assert_eq!(
        location.as_deref(),
        Some(format!("/api/v1/exports/{job_id}").as_str())
    );
    assert_eq!(job["user_id"], u.id.as_str());
    assert_eq!(
        job["content_url"],
        format!("/api/v1/exports/{job_id}/content")
    );
    let done = job_done(&s, &u, &job_id).await;
    assert_eq!(done["status"], "ready", "{done}");
    assert_eq!(done["files"], 1);
    assert!(done["expires_at"].is_string());

    // Only the requester, as the account, sees or reads it.
    let api_token = s
        .post(
            &u,
            "/api/v1/api-tokens",
            json!({"name": "bot", "workspace_id": w.workspace, "expires_in_days": 1}),
        )
        .await
        .expect(201)["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for token in [&other.token, &admin.token, &api_token] {
        let seen = s
            .call(
                Method::GET,
                &format!("/api/v1/exports/{job_id}"),
                Some(token),
                None,
            )
            .await;
        assert!(matches!(seen.status.as_u16(), 403 | 404), "{seen:?}");
        let (status, _) = job_content(&s, token, &job_id).await;
        assert!(matches!(status, 403 | 404), "{status}");
        let gone = s
            .call(
                Method::DELETE,
                &format!("/api/v1/exports/{job_id}"),
                Some(token),
                None,
            )
            .await;
        assert!(matches!(gone.status.as_u16(), 403 | 404), "{gone:?}");
    }
    let unknown = s
        .call(
            Method::GET,
            &format!("/api/v1/exports/{}", uuid::Uuid::now_v7()),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);

    // The archive reads whole, as the job says; on disk it is sealed.
    let (status, bytes) = job_content(&s, &u.token, &job_id).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, done["archive_bytes"].as_u64().unwrap());
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        done["sha256"].as_str().unwrap()
    );
    let files = unzip(&bytes);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["user_id"], u.id.as_str());
    assert!(files.values().any(|f| *f == file));
    let exports = s.data_dir().join("exports");
    for path in ceneca_e2e::files_under(&exports) {
        let stored = std::fs::read(&path).unwrap();
        assert!(
            !stored
                .windows(27)
                .any(|w| w == b"CANARY-export-job-plaintext"),
            "{} holds the export in the clear",
            path.display()
        );
    }
    // Audited once the archive is read whole, which the client may see first (its length
    // was announced): wait a little for the entry.
    let mut reads = Vec::new();
    for _ in 0..100 {
        reads = s.audit_log(&admin, "action=user.export_download").await;
        if !reads.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["actor_id"], u.id.as_str());

    // A changed byte on disk: the body ends early and is no archive.
    let sealed = exports.join(format!("{}.zip.sealed", job_id.replace('-', "")));
    let mut stored = std::fs::read(&sealed).unwrap();
    let middle = stored.len() / 2;
    stored[middle] ^= 1;
    std::fs::write(&sealed, &stored).unwrap();
    let (_, cut) = job_content(&s, &u.token, &job_id).await;
    assert!(zip::ZipArchive::new(std::io::Cursor::new(&cut)).is_err());

    // Asked either way; a bad value is said.
    let (status, _, body) = ask_export(&s, &u.token, &u.id, "?job=false").await;
    assert_eq!(status, 200);
    assert!(unzip(&body).contains_key("manifest.json"));
    let (status, _, _) = ask_export(&s, &u.token, &u.id, "?job=maybe").await;
    assert_eq!(status, 400);
    let (status, _, body) = ask_export(&s, &other.token, &other.id, "?job=true").await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    // Others learn nothing of an account's export, bad input included.
    let (status, _, _) = ask_export(&s, &other.token, &u.id, "?job=maybe").await;
    assert_eq!(status, 404);

    // Deleted by its requester: gone, with its file.
    let deleted = s
        .call(
            Method::DELETE,
            &format!("/api/v1/exports/{job_id}"),
            Some(&u.token),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert_eq!(
        s.get(&u, &format!("/api/v1/exports/{job_id}")).await.status,
        404
    );
    assert!(!sealed.exists());
}

async fn an_export_job_is_deleted_when_it_expires(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        export_keep: std::time::Duration::from_secs(1),
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    let (status, _, body) = ask_export(&s, &u.token, &u.id, "?job=true").await;
    assert_eq!(status, 202);
    let job_id = id(&serde_json::from_slice(&body).unwrap());
    assert_eq!(job_done(&s, &u, &job_id).await["status"], "ready");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        s.get(&u, &format!("/api/v1/exports/{job_id}")).await.status,
        404
    );
    assert!(ceneca_e2e::files_under(&s.data_dir().join("exports")).is_empty());
}

async fn regression_what_the_user_created_in_a_shared_workspace_is_in_their_export(
    backend: Backend,
) {
    // Found in review: a document or a file has no column naming who wrote it, so one the
    // user wrote in another account's workspace was in neither their export nor their
    // erase. The change log's creation says whose it is.
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let owner = s.user("owner").await;
    let shared = id(&s
        .post(&owner, "/api/v1/workspaces", json!({"name": "Shared"}))
        .await
        .expect(201));
    s.post(
        &owner,
        &format!("/api/v1/workspaces/{shared}/members"),
        json!({"user_id": u.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let mine = id(&s
        .post(
            &u,
            "/api/v1/documents",
            json!({"workspace_id": shared, "title": "u wrote this", "body": "mine"}),
        )
        .await
        .expect(201));
    let theirs = id(&s
        .post(
            &owner,
            "/api/v1/documents",
            json!({"workspace_id": shared, "title": "the owner wrote this", "body": "theirs"}),
        )
        .await
        .expect(201));
    let my_file = id(&s
        .post(
            &u,
            "/api/v1/attachments",
            json!({"workspace_id": shared, "file_name": "mine.txt"}),
        )
        .await
        .expect(201));
    assert_eq!(s.put_content(&u, &my_file, b"u's file".to_vec()).await, 200);
    let (status, bytes) = export(&s, &u.token, &u.id).await;
    assert_eq!(status, 200);
    let files = unzip(&bytes);
    let documents = String::from_utf8(files["documents.jsonl"].clone()).unwrap();
    assert!(documents.contains(&mine), "{documents}");
    assert!(!documents.contains(&theirs), "{documents}");
    let attachments = String::from_utf8(files["attachments.jsonl"].clone()).unwrap();
    assert!(attachments.contains(&my_file), "{attachments}");
    assert!(files.values().any(|f| f == b"u's file"));
    // The owner's export has both: everything in one's own workspace is one's own.
    let (_, bytes) = export(&s, &owner.token, &owner.id).await;
    let documents = String::from_utf8(unzip(&bytes)["documents.jsonl"].clone()).unwrap();
    assert!(documents.contains(&theirs) && documents.contains(&mine));
}

async fn regression_a_job_outlives_neither_the_right_to_read_it_nor_the_account(backend: Backend) {
    // Found by the attack: an administrator demoted after asking still read the job, an
    // erased account's archive stayed readable (and on disk), and finished jobs had no
    // bound.
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let admin = s.admin().await;
    let other_admin = s.admin().await;
    world(&s, &u).await;
    let start = |who: &User, whose: &str| {
        let (s, token, whose) = (&s, who.token.clone(), whose.to_owned());
        async move {
            let (status, _, body) = ask_export(s, &token, &whose, "?job=true").await;
            assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
            id(&serde_json::from_slice(&body).unwrap())
        }
    };
    let by_admin = start(&admin, &u.id).await;
    job_done(&s, &admin, &by_admin).await;
    s.patch(
        &other_admin,
        &format!("/api/v1/users/{}", admin.id),
        json!({"role": "user"}),
    )
    .await
    .expect(200);
    assert_eq!(
        s.get(&admin, &format!("/api/v1/exports/{by_admin}"))
            .await
            .status,
        404
    );
    assert_eq!(job_content(&s, &admin.token, &by_admin).await.0, 404);

    // At most 3 kept per account.
    let mut mine = Vec::new();
    for _ in 0..3 {
        let job = start(&u, &u.id).await;
        job_done(&s, &u, &job).await;
        mine.push(job);
    }
    let (status, _, body) = ask_export(&s, &u.token, &u.id, "?job=true").await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let by_other = start(&other_admin, &u.id).await;
    job_done(&s, &other_admin, &by_other).await;

    // The account erased: every job of it goes, with its archive.
    let report = s
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}?erase=true", u.id),
            Some(&u.token),
            Some(&json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(report.status, 200, "{report:?}");
    assert!(
        report.body["export_jobs_deleted"].as_u64().unwrap() >= 4,
        "{report:?}"
    );
    assert_eq!(
        s.get(&other_admin, &format!("/api/v1/exports/{by_other}"))
            .await
            .status,
        404
    );
    assert!(ceneca_e2e::files_under(&s.data_dir().join("exports")).is_empty());
}
