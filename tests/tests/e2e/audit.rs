//! The audit trail: what is recorded, who may read it, and that tampering is detected —
//! including the security review's finding that the chain could be cut short or re-forged
//! undetected (the `audit_*` stories).

use std::sync::Arc;

use ceneca_domain::audit::{BreakKind, ChainBreak, ChainHead, ChainKey, chain_hash, seal};
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value as V, model};
use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use ceneca_store::{Actor, AuditChain, ListQuery, WriteBatch, WriteOp};
use reqwest::Method;
use serde_json::{Value, json};

on_every_backend!(
    auth_events_and_writes_are_audited,
    tampering_is_detected,
    the_chain_holds_under_concurrent_writers,
    reads_are_audited_at_enhanced_level,
    audit_tail_cut_is_reported,
    audit_middle_deletion_and_reordering_are_reported,
    audit_sequence_gap_is_reported,
    audit_reforged_chain_is_reported,
    audit_expected_head_is_checked,
    audit_head_file_is_private_and_follows_appends,
    audit_head_files_of_several_nodes_each_hold_what_they_saw,
    audit_legacy_entries_are_accepted_only_as_a_prefix
);

async fn entries(s: &TestServer, admin: &ceneca_e2e::User, query: &str) -> Vec<Value> {
    s.list_all(admin, &format!("/api/v1/audit-log?{query}"))
        .await
}

async fn auth_events_and_writes_are_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let admin = s.admin().await;
    let u = s.user("u").await;
    let viewer = s.user("viewer").await;
    let registered = entries(
        &s,
        &admin,
        &format!("action=auth.register&actor_id={}", u.id),
    )
    .await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0]["source_ip"], "127.0.0.1");
    s.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(&json!({"email": u.email, "password": "wrong password"})),
    )
    .await
    .expect(401);
    let failures = entries(&s, &admin, "action=auth.login&outcome=failure").await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["details"]["email"], json!(u.email));

    let w = world(&s, &u).await;
    let created = entries(
        &s,
        &admin,
        &format!("action=threads.create&resource_id={}", w.thread),
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor_id"], json!(u.id));
    assert_eq!(created[0]["outcome"], "success");
    s.patch(
        &u,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "x"}),
    )
    .await
    .expect(200);
    let updated = entries(
        &s,
        &admin,
        &format!("action=threads.update&resource_id={}", w.thread),
    )
    .await;
    assert_eq!(updated[0]["details"]["fields"], json!(["title"]));
    let batch = entries(&s, &admin, "action=messages.create_many").await;
    assert_eq!(batch[0]["details"]["count"], 2);

    // A refused write is recorded as denied.
    s.post(
        &u,
        &format!("/api/v1/workspaces/{}/members", w.workspace),
        json!({"user_id": viewer.id}),
    )
    .await
    .expect(201);
    s.delete(&viewer, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(403);
    let denied = entries(
        &s,
        &admin,
        &format!(
            "action=threads.delete&outcome=denied&actor_id={}",
            viewer.id
        ),
    )
    .await;
    assert_eq!(denied.len(), 1);

    // Only system administrators read the trail.
    assert!(s.list_all(&u, "/api/v1/audit-log").await.is_empty());
    s.get(
        &u,
        &format!("/api/v1/audit-log/{}", created[0]["id"].as_str().unwrap()),
    )
    .await
    .expect(404);
    s.get(&u, "/api/v1/audit-log/export").await.expect(404);
    s.post(&u, "/api/v1/auth/logout", json!({}))
        .await
        .expect(204);
    assert_eq!(
        entries(&s, &admin, &format!("action=auth.logout&actor_id={}", u.id))
            .await
            .len(),
        1
    );

    // The export is JSON lines, in chain order, and the chain verifies.
    let res = s
        .http
        .get(format!("{}/api/v1/audit-log/export", s.base))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let text = res.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 10);
    assert!(
        lines.windows(2).all(|p| p[1]["prev_hash"] == p[0]["hash"]),
        "linked in sequence order"
    );
    let filtered = s
        .http
        .get(format!(
            "{}/api/v1/audit-log/export?action=auth.logout",
            s.base
        ))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(filtered.lines().count(), 1);
    let report = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(report.broken, None);
    assert!(report.checked as usize >= lines.len());
}

async fn tampering_is_detected(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    let intact = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(intact.broken, None);
    assert!(intact.checked >= 8, "{intact:?}");

    // Altering an entry breaks its own hash.
    s.raw_execute("UPDATE audit_log SET outcome = 'failure' WHERE sequence = 3")
        .await;
    let report = s.services.verify_audit_chain().await.unwrap();
    let broken = report.broken.expect("alteration detected");
    assert_eq!(broken.sequence, 3);
    assert!(broken.kind.to_string().contains("altered"));
    assert_eq!(report.checked, 2);
    s.raw_execute("UPDATE audit_log SET outcome = 'success' WHERE sequence = 3")
        .await;
    assert_eq!(
        s.services.verify_audit_chain().await.unwrap().broken,
        None,
        "restored content verifies again"
    );

    // Deleting one breaks the link of the next.
    s.raw_execute("DELETE FROM audit_log WHERE sequence = 5")
        .await;
    let broken = s
        .services
        .verify_audit_chain()
        .await
        .unwrap()
        .broken
        .expect("deletion detected");
    assert_eq!(broken.sequence, 6);
    assert!(broken.kind.to_string().contains("deleted"));
}

async fn the_chain_holds_under_concurrent_writers(backend: Backend) {
    let s = std::sync::Arc::new(TestServer::start(backend).await);
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (s, u, ws) = (s.clone(), u.clone(), w.workspace.clone());
        tasks.push(tokio::spawn(async move {
            s.post(
                &u,
                "/api/v1/threads",
                json!({"workspace_id": ws, "title": format!("t{i}")}),
            )
            .await
            .expect(201);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(report.broken, None);
    assert!(report.checked >= 24);
}

async fn reads_are_audited_at_enhanced_level(backend: Backend) {
    let config = ceneca_service::ServiceConfig {
        audit_level: ceneca_domain::audit::AuditLevel::Maximum,
        ..Default::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let admin = s.admin().await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.get(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    s.get(
        &u,
        &format!("/api/v1/threads/{}/messages?role=user", w.thread),
    )
    .await
    .expect(200);
    let reads = entries(
        &s,
        &admin,
        &format!("action=threads.read&resource_id={}", w.thread),
    )
    .await;
    assert_eq!(reads.len(), 1);
    assert_eq!(reads[0]["data_sources"], json!(["threads"]));
    assert_eq!(reads[0]["query_hash"].as_str().map(str::len), Some(64));
    let lists = entries(&s, &admin, "action=messages.list").await;
    assert_eq!(lists.len(), 1);
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);
}

// ---- The review finding: cut short, gaps, re-forged ----------------------------------

/// Every audit entry as stored, oldest first.
async fn stored(s: &TestServer) -> Vec<Record> {
    let q = ListQuery::new(ScopeFilter::All, "sequence", false, 10_000);
    s.services.store().list(&model::AUDIT_LOG, q).await.unwrap()
}

/// The first break `ceneca audit verify` reports (with the head file).
async fn first_break(s: &TestServer) -> ChainBreak {
    s.services
        .verify_audit_chain()
        .await
        .unwrap()
        .broken
        .expect("tampering is reported")
}

async fn intact_head(s: &TestServer) -> ChainHead {
    let report = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(report.broken, None);
    report.head
}

/// Writes entries' action and chain columns back by sequence, as someone with write
/// access to the database would.
async fn overwrite(s: &TestServer, entries: &[Record]) {
    let mut sql = String::new();
    for e in entries {
        let text = |name: &str| match e.get(name) {
            Some(V::Text(t)) => format!("'{}'", t.replace('\'', "''")),
            _ => "NULL".into(),
        };
        sql.push_str(&format!(
            "UPDATE audit_log SET action = {}, prev_hash = {}, hash = {}, mac_key_id = {} WHERE sequence = {};\n",
            text("action"),
            text("prev_hash"),
            text("hash"),
            text("mac_key_id"),
            e.get("sequence").and_then(V::as_int).unwrap()
        ));
    }
    s.raw_execute(&sql).await;
}

/// Rewrites `entry` as a legacy entry after `prev`: no key id, a plain SHA-256.
fn as_legacy(entry: &mut Record, prev: &str) -> String {
    entry.set("mac_key_id", V::Null);
    entry.set("prev_hash", V::Text(prev.to_owned()));
    let hash = chain_hash(prev, entry);
    entry.set("hash", V::Text(hash.clone()));
    hash
}

fn hash_of(entry: &Record) -> String {
    entry.get("hash").and_then(V::as_str).unwrap().to_owned()
}

async fn threads(s: &TestServer, u: &ceneca_e2e::User, workspace: &str, n: usize) {
    for i in 0..n {
        s.post(
            u,
            "/api/v1/threads",
            json!({"workspace_id": workspace, "title": format!("t{i}")}),
        )
        .await
        .expect(201);
    }
}

fn head_file(s: &TestServer) -> ChainHead {
    let path = s.services.audit_head_file().expect("anchored");
    ChainHead::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn audit_tail_cut_is_reported(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    threads(&s, &u, &w.workspace, 30).await;
    let head = intact_head(&s).await;
    let last = head.sequence;
    assert!(last > 30, "{head}");
    assert_eq!(head_file(&s), head, "the head file holds the chain's end");

    // The last 25 entries deleted.
    s.raw_execute(&format!(
        "DELETE FROM audit_log WHERE sequence > {}",
        last - 25
    ))
    .await;
    let report = s.services.verify_audit_chain().await.unwrap();
    let broken = report.broken.expect("a cut tail is reported");
    assert_eq!(broken.sequence, last - 24, "the first missing entry");
    assert!(
        matches!(&broken.kind, BreakKind::CutTail { last: l, anchored, .. } if *l == last - 25 && *anchored == last),
        "{broken}"
    );
    assert!(broken.to_string().contains("tail was cut"), "{broken}");
    assert_eq!(report.checked, (last - 25) as u64);

    // New entries refill the deleted numbers: the head file does not follow them, so the
    // cut stays visible.
    threads(&s, &u, &w.workspace, 30).await;
    s.services.flush_audit_head().unwrap();
    assert_eq!(
        head_file(&s),
        head,
        "frozen at the last head it saw committed"
    );
    let broken = first_break(&s).await;
    assert_eq!(broken.sequence, last);
    assert!(
        matches!(broken.kind, BreakKind::AnchorMismatch { .. }),
        "{broken}"
    );

    // Every entry deleted.
    s.raw_execute("DELETE FROM audit_log").await;
    let broken = first_break(&s).await;
    assert_eq!(broken.sequence, 1);
    assert!(
        matches!(broken.kind, BreakKind::CutTail { last: 0, anchored, .. } if anchored == last),
        "{broken}"
    );
}

async fn audit_middle_deletion_and_reordering_are_reported(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    intact_head(&s).await;

    // Two entries swap places.
    let swap = "UPDATE audit_log SET sequence = -4 WHERE sequence = 4; \
                UPDATE audit_log SET sequence = 4 WHERE sequence = 5; \
                UPDATE audit_log SET sequence = 5 WHERE sequence = -4;";
    s.raw_execute(swap).await;
    let broken = first_break(&s).await;
    assert_eq!((broken.sequence, broken.kind), (4, BreakKind::Unlinked));
    s.raw_execute(swap).await;
    intact_head(&s).await;

    // One deleted from the middle.
    s.raw_execute("DELETE FROM audit_log WHERE sequence = 5")
        .await;
    let broken = first_break(&s).await;
    assert_eq!(
        (broken.sequence, broken.kind),
        (6, BreakKind::Gap { from: 5, to: 5 })
    );
}

async fn audit_sequence_gap_is_reported(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    let last = intact_head(&s).await.sequence;
    // Renumbered: every link still holds, the numbering does not.
    s.raw_execute(&format!(
        "UPDATE audit_log SET sequence = {} WHERE sequence = {last}",
        last + 5
    ))
    .await;
    let broken = first_break(&s).await;
    assert_eq!(broken.sequence, last + 5);
    assert_eq!(
        broken.kind,
        BreakKind::Gap {
            from: last,
            to: last + 4
        }
    );
}

async fn audit_reforged_chain_is_reported(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    let head = intact_head(&s).await;
    let original = stored(&s).await;
    assert!(original.len() >= 6);

    // From entry 3 on, altered and re-chained with plain SHA-256, as the old chain was.
    let mut forged = original.clone();
    let mut prev = hash_of(&forged[1]);
    for e in &mut forged[2..] {
        e.set("action", V::Text("nothing to see".into()));
        prev = as_legacy(e, &prev);
    }
    overwrite(&s, &forged[2..]).await;
    let broken = first_break(&s).await;
    assert_eq!((broken.sequence, broken.kind), (3, BreakKind::Downgraded));

    // The whole chain re-forged with plain hashes is consistent by itself; not with the
    // head the file anchored.
    let mut prev = ceneca_domain::audit::GENESIS.to_owned();
    for e in &mut forged {
        prev = as_legacy(e, &prev);
    }
    overwrite(&s, &forged).await;
    let unanchored = s.services.verify_audit_chain_with(vec![]).await.unwrap();
    assert_eq!(unanchored.broken, None);
    assert_eq!(unanchored.legacy, original.len() as u64);
    let broken = first_break(&s).await;
    assert_eq!(broken.sequence, head.sequence);
    assert!(
        matches!(broken.kind, BreakKind::AnchorMismatch { .. }),
        "{broken}"
    );

    // Re-forged with MACs under the right key id but a wrong key.
    let key_id = original[0].get("mac_key_id").and_then(V::as_str).unwrap();
    let forger = ChainKey::new(key_id, [9; 32]);
    let mut forged = original.clone();
    let mut prev = ChainHead::of(&forged[1]).unwrap();
    for e in &mut forged[2..] {
        e.set("action", V::Text("nothing to see".into()));
        prev = seal(&forger, &prev, e);
    }
    overwrite(&s, &forged).await;
    let broken = first_break(&s).await;
    assert_eq!(
        (broken.sequence, broken.kind),
        (3, BreakKind::Altered { keyed: true })
    );
}

async fn audit_expected_head_is_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // What `ceneca audit head` prints, kept elsewhere.
    let recorded = intact_head(&s).await;
    threads(&s, &u, &w.workspace, 3).await;
    let report = s
        .services
        .verify_audit_chain_expecting(Some(recorded.clone()))
        .await
        .unwrap();
    assert_eq!(report.broken, None, "a log that grew since is fine");
    assert!(report.head.sequence > recorded.sequence);
    assert_eq!(
        report.anchors.len(),
        2,
        "the head file and the expected head"
    );

    let other = ChainHead {
        sequence: recorded.sequence,
        mac: "ab".repeat(32),
    };
    let report = s
        .services
        .verify_audit_chain_expecting(Some(other))
        .await
        .unwrap();
    let broken = report.broken.unwrap();
    assert_eq!(broken.sequence, recorded.sequence);
    assert!(
        matches!(&broken.kind, BreakKind::AnchorMismatch { source } if source == "the expected head")
    );

    // Without the head file, the expected head alone catches a cut.
    std::fs::remove_file(s.services.audit_head_file().unwrap()).unwrap();
    s.raw_execute(&format!(
        "DELETE FROM audit_log WHERE sequence > {}",
        recorded.sequence - 2
    ))
    .await;
    assert_eq!(
        s.services.verify_audit_chain().await.unwrap().broken,
        None,
        "no anchor, nothing to tell a cut log from a short one"
    );
    let broken = s
        .services
        .verify_audit_chain_expecting(Some(recorded.clone()))
        .await
        .unwrap()
        .broken
        .unwrap();
    assert_eq!(broken.sequence, recorded.sequence - 1);
    assert!(
        matches!(&broken.kind, BreakKind::CutTail { anchored, source, .. } if *anchored == recorded.sequence && source == "the expected head"),
        "{broken}"
    );
}

async fn audit_head_file_is_private_and_follows_appends(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    world(&s, &u).await;
    let path = s.services.audit_head_file().unwrap().to_owned();
    // The writer thread anchors the end within its delay, without being asked.
    let end = s
        .services
        .verify_audit_chain_with(vec![])
        .await
        .unwrap()
        .head;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| ChainHead::parse(&t).ok())
        != Some(end.clone())
    {
        assert!(std::time::Instant::now() < deadline, "the head file lags");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("audit.head") && n != "audit.head")
        .collect();
    assert!(leftovers.is_empty(), "replaced whole: {leftovers:?}");
}

async fn audit_head_files_of_several_nodes_each_hold_what_they_saw(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // A second node on the same database, with a head file of its own.
    let dir = tempfile::tempdir().unwrap();
    let node_b = s
        .services
        .clone()
        .with_audit_head(dir.path().join("audit.head"))
        .await
        .unwrap();
    node_b
        .login(
            &serde_json::from_value(json!({"email": u.email, "password": "wrong password"}))
                .unwrap(),
            &Default::default(),
        )
        .await
        .unwrap_err();
    node_b.flush_audit_head().unwrap();
    let b_head =
        ChainHead::parse(&std::fs::read_to_string(dir.path().join("audit.head")).unwrap()).unwrap();
    // Node A writes on; node B's file is now behind the database, which is fine.
    threads(&s, &u, &w.workspace, 3).await;
    let on_b = node_b.verify_audit_chain().await.unwrap();
    assert_eq!(on_b.broken, None);
    assert!(on_b.head.sequence > b_head.sequence);
    assert_eq!(on_b.anchors[0].head, b_head);
    assert_eq!(s.services.verify_audit_chain().await.unwrap().broken, None);
    assert!(head_file(&s).sequence > b_head.sequence);
}

async fn audit_legacy_entries_are_accepted_only_as_a_prefix(backend: Backend) {
    let s = TestServer::start(backend).await;
    assert!(stored(&s).await.is_empty());
    // Three entries as a binary before the keyed chain wrote them: no key id, plain
    // SHA-256 hashes.
    let chain = AuditChain {
        key: Arc::new(ChainKey::new("unused", [1; 32])),
        watcher: None,
    };
    for i in 0..3 {
        let now = ceneca_domain::clock::now();
        let mut r = Record::new();
        r.set("id", V::Id(ceneca_domain::new_id()));
        r.set("created_at", V::Time(now));
        r.set("updated_at", V::Time(now));
        r.set("at", V::Time(now));
        r.set("action", V::Text(format!("auth.login{i}")));
        r.set("outcome", V::Text("success".into()));
        ceneca_domain::validate::fill_defaults(&model::AUDIT_LOG, &mut r, now);
        s.services
            .store()
            .apply(WriteBatch::new(Actor::default()).push(WriteOp::Audit {
                record: r,
                chain: chain.clone(),
            }))
            .await
            .unwrap();
    }
    let mut legacy = stored(&s).await;
    let mut prev = ceneca_domain::audit::GENESIS.to_owned();
    for e in &mut legacy {
        prev = as_legacy(e, &prev);
    }
    overwrite(&s, &legacy).await;

    // The keyed chain continues after them.
    let u = s.user("u").await;
    world(&s, &u).await;
    let report = s.services.verify_audit_chain().await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.legacy, 3);
    assert!(report.checked > 3);

    // A plain-hash entry after keyed ones is a downgrade.
    let mut all = stored(&s).await;
    let before = hash_of(&all[all.len() - 2]);
    let last = all.last_mut().unwrap();
    last.set("action", V::Text("nothing to see".into()));
    as_legacy(last, &before);
    overwrite(&s, std::slice::from_ref(last)).await;
    let broken = first_break(&s).await;
    assert_eq!(
        (broken.sequence, broken.kind),
        (report.head.sequence, BreakKind::Downgraded)
    );
}
