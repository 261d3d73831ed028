//! Thumbnails of uploaded images over real HTTP, on SQLite and PostgreSQL: made off the
//! request path by the server's worker, bounded before decoding, served to who may read
//! the file, sealed like the file, replaced with it and removed with it.

use std::io::Cursor;
use std::time::Duration;

use ceneca_e2e::{Backend, TestServer, User, on_every_backend};
use ceneca_service::ServiceConfig;
use image::{ImageBuffer, ImageFormat, Rgb};
use serde_json::{Value, json};

on_every_backend!(
    an_image_gets_a_thumbnail_off_the_request_path,
    what_is_no_image_or_too_large_to_decode_gets_none,
    a_sealed_image_gets_a_sealed_thumbnail,
    an_archived_images_thumbnail_goes_with_its_file,
    regression_thumbnails_count_against_the_quota,
    regression_one_accounts_queue_does_not_hold_up_anothers,
    regression_an_unreadable_file_does_not_stop_the_queue,
    regression_reading_a_thumbnail_is_audited,
);

fn image_bytes(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let image = ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 7) as u8 * 30])
    });
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A valid PNG whose header claims `width` × `height` pixels (a decompression bomb's
/// header), with one pixel of data.
fn bomb(width: u32, height: u32) -> Vec<u8> {
    let mut png = image_bytes(1, 1, ImageFormat::Png);
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = 0xFFFF_FFFFu32;
    for &b in &png[12..29] {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    png[29..33].copy_from_slice(&(!crc).to_be_bytes());
    png
}

fn id(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

/// A user's message to attach files to: (workspace, message).
async fn message(s: &TestServer, u: &User) -> (String, String) {
    message_in(s, u, json!({"name": "Pictures"})).await
}

/// A message in a new workspace made of `workspace` (its name, its organization).
async fn message_in(s: &TestServer, u: &User, workspace: Value) -> (String, String) {
    let ws = id(&s.post(u, "/api/v1/workspaces", workspace).await.expect(201));
    let thread = id(&s
        .post(
            u,
            "/api/v1/threads",
            json!({"workspace_id": ws, "title": "t"}),
        )
        .await
        .expect(201));
    let message = id(&s
        .post(
            u,
            &format!("/api/v1/threads/{thread}/messages"),
            json!({"role": "user", "content": "see attached"}),
        )
        .await
        .expect(201));
    (ws, message)
}

/// An attachment of `message` holding `bytes`; its row after the upload.
async fn upload(s: &TestServer, u: &User, ws: &str, message: &str, bytes: Vec<u8>) -> Value {
    let attachment = id(&s
        .post(
            u,
            "/api/v1/attachments",
            json!({"workspace_id": ws, "message_id": message, "file_name": "picture"}),
        )
        .await
        .expect(201));
    put(s, u, &attachment, bytes).await
}

async fn put(s: &TestServer, u: &User, attachment: &str, bytes: Vec<u8>) -> Value {
    let answer = s
        .http
        .put(format!(
            "{}/api/v1/attachments/{attachment}/content",
            s.base
        ))
        .bearer_auth(&u.token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

/// `GET …/thumbnail`: status, headers, body.
async fn thumbnail(
    s: &TestServer,
    u: &User,
    attachment: &str,
    etag: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = s
        .http
        .get(format!(
            "{}/api/v1/attachments/{attachment}/thumbnail",
            s.base
        ))
        .bearer_auth(&u.token);
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    (status, headers, answer.bytes().await.unwrap().to_vec())
}

/// The attachment's `thumbnail` once the worker has settled it.
async fn settled(s: &TestServer, u: &User, attachment: &str) -> Value {
    for _ in 0..200 {
        let row = s
            .get(u, &format!("/api/v1/attachments/{attachment}"))
            .await
            .expect(200);
        if row["thumbnail"] != "pending" {
            return row["thumbnail"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the thumbnail of {attachment} stayed pending");
}

/// The blobs kept (temporary files, in a folder of their own, left out).
fn blob_files(s: &TestServer) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = s.data_dir().join("blobs");
    let mut out = Vec::new();
    walk(&root, &mut out);
    out.retain(|p| {
        p.strip_prefix(&root)
            .is_ok_and(|r| r.components().count() == 3)
    });
    out
}

async fn an_image_gets_a_thumbnail_off_the_request_path(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;

    // The upload answers at once; the thumbnail is made after it.
    let row = upload(
        &s,
        &u,
        &ws,
        &message,
        image_bytes(800, 600, ImageFormat::Png),
    )
    .await;
    let photo = id(&row);
    assert!(
        row["thumbnail"] == "pending" || row["thumbnail"] == "ready",
        "{row}"
    );
    assert!(row.get("thumbnail_key").is_none(), "{row}");
    assert_eq!(settled(&s, &u, &photo).await, "ready");
    let (status, headers, png) = thumbnail(&s, &u, &photo, None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    let shown = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
    assert_eq!(
        (shown.width(), shown.height()),
        (256, 192),
        "proportions kept"
    );
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, body) = thumbnail(&s, &u, &photo, Some(&etag)).await;
    assert_eq!((status, body.len()), (304, 0));

    // A JPEG, taller than wide.
    let tall = id(&upload(
        &s,
        &u,
        &ws,
        &message,
        image_bytes(300, 900, ImageFormat::Jpeg),
    )
    .await);
    assert_eq!(settled(&s, &u, &tall).await, "ready");
    let (_, _, png) = thumbnail(&s, &u, &tall, None).await;
    let shown = image::load_from_memory(&png).unwrap();
    assert_eq!(shown.height(), 256);
    assert!((84..=86).contains(&shown.width()), "{}", shown.width());

    // Whose is it: another account learns nothing of it.
    let stranger = s.user("stranger").await;
    let (status, _, body) = thumbnail(&s, &stranger, &photo, None).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = thumbnail(&s, &stranger, "not-an-id", None).await;
    assert_eq!(status, 400);

    // A new file replaces the thumbnail with its own; the old one goes to the sweep.
    let replaced = put(&s, &u, &photo, image_bytes(100, 400, ImageFormat::Gif)).await;
    assert!(replaced["thumbnail"] == "pending" || replaced["thumbnail"] == "ready");
    assert_eq!(settled(&s, &u, &photo).await, "ready");
    let (_, headers, png) = thumbnail(&s, &u, &photo, None).await;
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
    let shown = image::load_from_memory(&png).unwrap();
    assert_eq!((shown.width(), shown.height()), (64, 256));
    s.services.sweep_blobs(Duration::ZERO).await.unwrap();
    // Two files and their two thumbnails are named; nothing else is kept.
    assert_eq!(blob_files(&s).len(), 4, "{:?}", blob_files(&s));
    let (status, _, _) = thumbnail(&s, &u, &tall, None).await;
    assert_eq!(status, 200, "a thumbnail still named survives the sweep");
}

async fn what_is_no_image_or_too_large_to_decode_gets_none(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;

    // No image: no thumbnail, and the route says so.
    let text = upload(&s, &u, &ws, &message, b"just some notes\n".to_vec()).await;
    assert!(text["thumbnail"].is_null(), "{text}");
    let (status, _, body) = thumbnail(&s, &u, &id(&text), None).await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    // An image that does not decode, and a bomb's header claiming ten billion pixels:
    // refused before anything is decoded, the file itself kept.
    let mut broken = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    broken.resize(5000, 7);
    for bytes in [broken, bomb(100_000, 100_000)] {
        let row = upload(&s, &u, &ws, &message, bytes.clone()).await;
        let attachment = id(&row);
        assert_eq!(settled(&s, &u, &attachment).await, "unavailable");
        let (status, _, _) = thumbnail(&s, &u, &attachment, None).await;
        assert_eq!(status, 404);
        let content = s
            .http
            .get(format!(
                "{}/api/v1/attachments/{attachment}/content",
                s.base
            ))
            .bearer_auth(&u.token)
            .send()
            .await
            .unwrap();
        assert_eq!(content.status(), 200);
        assert_eq!(content.bytes().await.unwrap().to_vec(), bytes);
    }
}

async fn a_sealed_image_gets_a_sealed_thumbnail(backend: Backend) {
    let config = ServiceConfig {
        encrypt_attachments: true,
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;
    let row = upload(
        &s,
        &u,
        &ws,
        &message,
        image_bytes(640, 640, ImageFormat::Png),
    )
    .await;
    assert_eq!(row["encrypted"], true);
    let photo = id(&row);
    assert_eq!(settled(&s, &u, &photo).await, "ready");
    let (status, _, png) = thumbnail(&s, &u, &photo, None).await;
    assert_eq!(status, 200);
    let shown = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
    assert_eq!((shown.width(), shown.height()), (256, 256));
    // On disk, neither the file nor its thumbnail is an image any more.
    let files = blob_files(&s);
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.starts_with(b"\x89PNG"),
            "{} is stored in clear",
            file.display()
        );
    }
}

async fn an_archived_images_thumbnail_goes_with_its_file(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;
    let photo = id(&upload(
        &s,
        &u,
        &ws,
        &message,
        image_bytes(500, 500, ImageFormat::Png),
    )
    .await);
    assert_eq!(settled(&s, &u, &photo).await, "ready");
    assert_eq!(blob_files(&s).len(), 2);
    // The thread idle for long, its files older than the sweep's grace.
    let long_ago = "2020-01-01T00:00:00.000000Z";
    let thread = format!("SELECT thread_id FROM messages WHERE id = '{message}'");
    for sql in [
        format!(
            "UPDATE threads SET last_message_at = '{long_ago}', updated_at = '{long_ago}' WHERE id IN ({thread})"
        ),
        format!("UPDATE messages SET updated_at = '{long_ago}' WHERE id = '{message}'"),
        format!("UPDATE attachments SET updated_at = '{long_ago}' WHERE id = '{photo}'"),
    ] {
        s.raw_execute(&sql).await;
    }
    let then = std::time::SystemTime::now() - Duration::from_secs(7200);
    for path in blob_files(&s) {
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(then).unwrap();
    }
    let report = s
        .services
        .run_maintenance(
            ceneca_wire::maintenance::MaintenanceTrigger::Manual,
            None,
            false,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.threads_archived, 1);
    assert_eq!(
        report.blob_files_deleted, 2,
        "the file and its thumbnail: {report:?}"
    );
    assert!(blob_files(&s).is_empty(), "{:?}", blob_files(&s));
    let (status, _, body) = thumbnail(&s, &u, &photo, None).await;
    assert_eq!(status, 410, "{}", String::from_utf8_lossy(&body));
    let row = s
        .get(&u, &format!("/api/v1/attachments/{photo}"))
        .await
        .expect(200);
    assert!(row["thumbnail"].is_null(), "{row}");
}

/// A JPEG of noise: a small file whose thumbnail (lossless) is larger than it.
fn noise_jpeg(edge: u32) -> Vec<u8> {
    let image = ImageBuffer::from_fn(edge, edge, |x, y| {
        let h = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)).wrapping_mul(2_654_435_761);
        Rgb([(h >> 8) as u8, (h >> 16) as u8, (h >> 24) as u8])
    });
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

async fn attachment_bytes(s: &TestServer, u: &User, ws: &str) -> u64 {
    s.get(u, &format!("/api/v1/storage/stats?scope=workspace&id={ws}"))
        .await
        .expect(200)["attachments"]["bytes"]
        .as_u64()
        .unwrap()
}

async fn no_drift(s: &TestServer) {
    let drift = s.services.store().reconcile_storage(false).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
}

/// Found by the attack: thumbnails were kept uncounted, up to 512 KB for an 8 KB file.
async fn regression_thumbnails_count_against_the_quota(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;
    let jpeg = noise_jpeg(200);
    let file = jpeg.len() as u64;
    let name = "picture".len() as u64;
    let photo = id(&upload(&s, &u, &ws, &message, jpeg.clone()).await);
    assert_eq!(settled(&s, &u, &photo).await, "ready");
    let (_, headers, png) = thumbnail(&s, &u, &photo, None).await;
    let thumb = png.len() as u64;
    assert!(
        thumb > file,
        "the case that matters: {thumb} against {file}"
    );
    assert_eq!(attachment_bytes(&s, &u, &ws).await, name + file + thumb);
    no_drift(&s).await;

    // The same bytes again: the thumbnail made of them is reused, and each row counts
    // what it keeps, as each counts its file.
    let again = id(&upload(&s, &u, &ws, &message, jpeg.clone()).await);
    assert_eq!(settled(&s, &u, &again).await, "ready");
    let (_, again_headers, _) = thumbnail(&s, &u, &again, None).await;
    assert_eq!(again_headers["etag"], headers["etag"]);
    assert_eq!(
        attachment_bytes(&s, &u, &ws).await,
        2 * (name + file + thumb)
    );
    // Never reused across workspaces: how fast it came would tell another tenant holds
    // the same file.
    let key = s
        .raw_text(&format!(
            "SELECT storage_key FROM attachments WHERE id = '{again}'"
        ))
        .await
        .unwrap();
    let (elsewhere, _) = self::message(&s, &u).await;
    let store = s.services.store();
    let same_workspace = store
        .thumbnail_of_blob(key.clone(), ws.parse().unwrap())
        .await
        .unwrap();
    assert!(same_workspace.is_some());
    let other_workspace = store
        .thumbnail_of_blob(key, elsewhere.parse().unwrap())
        .await
        .unwrap();
    assert!(other_workspace.is_none());
    // Another file in its place: its thumbnail stops counting.
    put(&s, &u, &again, b"plain text now".to_vec()).await;
    assert_eq!(
        attachment_bytes(&s, &u, &ws).await,
        (name + file + thumb) + (name + 14)
    );
    no_drift(&s).await;

    // A quota with room for the file and not for its thumbnail: the image gets none, the
    // file is kept and served, and the quota is never passed.
    let quota = file + 1000;
    let s = TestServer::start_with(
        backend,
        ServiceConfig {
            user_quota_bytes: quota,
            ..ServiceConfig::default()
        },
    )
    .await;
    let u = s.user("u").await;
    let (ws, note) = self::message(&s, &u).await;
    let photo = id(&upload(&s, &u, &ws, &note, jpeg.clone()).await);
    assert_eq!(settled(&s, &u, &photo).await, "unavailable");
    assert_eq!(thumbnail(&s, &u, &photo, None).await.0, 404);
    assert_eq!(
        blob_files(&s).len(),
        1,
        "the file, and no thumbnail left behind"
    );
    let me = s
        .get(
            &u,
            &format!("/api/v1/storage/stats?scope=workspace&id={ws}"),
        )
        .await
        .expect(200);
    assert!(me["quota_used_bytes"].as_u64().unwrap() <= quota, "{me}");
    let content = s
        .http
        .get(format!("{}/api/v1/attachments/{photo}/content", s.base))
        .bearer_auth(&u.token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.status(), 200);
    assert_eq!(content.bytes().await.unwrap().to_vec(), jpeg);
    no_drift(&s).await;
}

/// Everything waiting made pending again, straight in the database (as an upgrade
/// queues every image), once the worker has settled what it was given and gone idle.
async fn wait_again(s: &TestServer) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.raw_execute(
        "UPDATE attachments SET thumbnail = 'pending', thumbnail_key = NULL, thumbnail_bytes = 0",
    )
    .await;
}

/// Found by the attacks: one worker served the oldest images first, whoever's, so an
/// account's backlog (a hundred slow images) held up every other account's; then, once
/// fair, an organization's workspaces each counted as an account of their own, and more
/// accounts than a round holds were served oldest first, never reaching a newer one.
async fn regression_one_accounts_queue_does_not_hold_up_anothers(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, b, c) = (s.user("a").await, s.user("b").await, s.user("c").await);
    let (a_ws, a_message) = message(&s, &a).await;
    let (b_ws, b_message) = message(&s, &b).await;
    // Two workspaces of the same owner are one account.
    let (a_ws2, a_message2) = message(&s, &a).await;
    // So are an organization's workspaces, whoever made them.
    let org = id(&s
        .post(
            &c,
            "/api/v1/organizations",
            json!({"name": "Many", "slug": "many-workspaces"}),
        )
        .await
        .expect(201));
    let mut org_places = Vec::new();
    for i in 0..3 {
        let workspace = json!({"name": format!("org {i}"), "organization_id": org});
        org_places.push(message_in(&s, &c, workspace).await);
    }
    let mut a_photos = Vec::new();
    let mut c_photos = Vec::new();
    for i in 0..12 {
        let (ws, message) = if i % 2 == 0 {
            (&a_ws, &a_message)
        } else {
            (&a_ws2, &a_message2)
        };
        let bytes = image_bytes(10 + i, 10, ImageFormat::Png);
        a_photos.push(id(&upload(&s, &a, ws, message, bytes).await));
        let (ws, message) = &org_places[i as usize % 3];
        let bytes = image_bytes(10 + i, 11, ImageFormat::Png);
        c_photos.push(id(&upload(&s, &c, ws, message, bytes).await));
    }
    let b_photo = id(&upload(
        &s,
        &b,
        &b_ws,
        &b_message,
        image_bytes(5, 5, ImageFormat::Png),
    )
    .await);
    for photo in &a_photos {
        settled(&s, &a, photo).await;
    }
    for photo in &c_photos {
        settled(&s, &c, photo).await;
    }
    settled(&s, &b, &b_photo).await;
    wait_again(&s).await;

    let store = s.services.store();
    let ids = |turns: &[(uuid::Uuid, ceneca_domain::Record)]| -> Vec<String> {
        let mut ids: Vec<String> = turns
            .iter()
            .map(|(_, row)| row.id().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let all = store.thumbnails_waiting(None, 16).await.unwrap();
    let mut expected = vec![a_photos[0].clone(), b_photo.clone(), c_photos[0].clone()];
    expected.sort();
    assert_eq!(ids(&all), expected, "the oldest image of each account");
    // Rounds smaller than the accounts: each account in turn, none left behind.
    let first = store.thumbnails_waiting(None, 2).await.unwrap();
    let last = first.last().unwrap().0;
    let second = store.thumbnails_waiting(Some(last), 2).await.unwrap();
    let mut seen: Vec<String> = ids(&first);
    seen.extend(ids(&second[..1]));
    seen.sort();
    assert_eq!(seen, expected, "the third account comes next");

    while s.services.make_pending_thumbnails().await.unwrap() > 0 {}
    for (u, photo) in a_photos
        .iter()
        .map(|p| (&a, p))
        .chain(c_photos.iter().map(|p| (&c, p)))
        .chain([(&b, &b_photo)])
    {
        assert_eq!(settled(&s, u, photo).await, "ready");
    }
}

/// Found by the attack: a file missing from disk failed every round before the rows
/// behind it, so no image got a thumbnail again, anyone's.
async fn regression_an_unreadable_file_does_not_stop_the_queue(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;
    let lost = id(&upload(&s, &u, &ws, &message, image_bytes(30, 30, ImageFormat::Png)).await);
    let kept = id(&upload(&s, &u, &ws, &message, image_bytes(40, 40, ImageFormat::Png)).await);
    settled(&s, &u, &lost).await;
    settled(&s, &u, &kept).await;
    let key = s
        .raw_text(&format!(
            "SELECT storage_key FROM attachments WHERE id = '{lost}'"
        ))
        .await
        .unwrap();
    std::fs::remove_file(s.data_dir().join("blobs").join(&key)).unwrap();
    wait_again(&s).await;

    assert_eq!(s.services.make_pending_thumbnails().await.unwrap(), 1);
    assert_eq!(settled(&s, &u, &lost).await, "unavailable");
    assert_eq!(s.services.make_pending_thumbnails().await.unwrap(), 1);
    assert_eq!(settled(&s, &u, &kept).await, "ready");
}

/// Found by the attack: a thumbnail was read with no audit entry, where a download of
/// the same file leaves one.
async fn regression_reading_a_thumbnail_is_audited(backend: Backend) {
    // The level that records reads (the configuration file's default).
    let config = ServiceConfig {
        audit_level: ceneca_domain::audit::AuditLevel::Enhanced,
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let u = s.user("u").await;
    let (ws, message) = message(&s, &u).await;
    let photo = id(&upload(&s, &u, &ws, &message, image_bytes(30, 30, ImageFormat::Png)).await);
    assert_eq!(settled(&s, &u, &photo).await, "ready");
    let reads = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_log \
         WHERE action = 'attachment.thumbnail' AND resource_id = '{photo}'"
    );
    assert_eq!(s.raw_text(&reads).await.as_deref(), Some("0"));
    assert_eq!(thumbnail(&s, &u, &photo, None).await.0, 200);
    assert_eq!(s.raw_text(&reads).await.as_deref(), Some("1"));
}
