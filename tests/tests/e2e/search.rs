//! Full-text search: ranking, snippets, filters, tricky queries, deleted content, and
//! permission filtering in the query itself — on SQLite and PostgreSQL.

use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use serde_json::{Value, json};

on_every_backend!(
    ranks_and_highlights,
    filters_narrow_the_hits,
    tricky_queries_never_fail,
    deleted_content_is_excluded_unless_asked,
    other_tenants_content_never_appears,
    every_row_of_an_uneven_batch_is_indexed,
    very_common_words_rank_the_most_recent_matches,
    regression_repeated_terms_find_what_each_term_once_finds,
    regression_selective_filters_find_their_few_matches_beyond_the_window,
    regression_each_term_is_read_on_its_own,
    regression_a_small_tenant_finds_its_few_matches_of_a_word_common_elsewhere
);

async fn search(s: &TestServer, u: &ceneca_e2e::User, query: &str) -> Vec<Value> {
    s.get(u, &format!("/api/v1/search?{query}"))
        .await
        .expect(200)["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn ranks_and_highlights(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let thread = format!("/api/v1/threads/{}/messages/batch", w.thread);
    s.post(&u, &thread, json!({"items": [
        {"role": "user", "content": "the rocket engine test passed; engine pressure nominal, engine temperature nominal"},
        {"role": "assistant", "content": "we ordered a new engine"},
        {"role": "user", "content": "lunch menu for friday"}
    ]}))
    .await
    .expect(201);
    s.post(&u, "/api/v1/documents", json!({"workspace_id": w.workspace, "title": "Engine handbook", "body": "How to service the engine."})).await.expect(201);
    let hits = search(&s, &u, "q=engine").await;
    assert_eq!(hits.len(), 3);
    assert!(
        hits[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>engine</mark>"),
        "{}",
        hits[0]
    );
    let relevances: Vec<f64> = hits
        .iter()
        .map(|h| h["relevance"].as_f64().unwrap())
        .collect();
    assert!(
        relevances.windows(2).all(|p| p[0] >= p[1]),
        "best first: {relevances:?}"
    );
    let top_message = hits.iter().find(|h| h["kind"] == "message").unwrap();
    assert!(
        top_message["snippet"].as_str().unwrap().contains("rocket"),
        "the message that says engine three times ranks above the one that says it once"
    );
    let doc = hits.iter().find(|h| h["kind"] == "document").unwrap();
    assert_eq!(doc["title"], "Engine handbook");
    // A phrase matches words in order; two words match both anywhere.
    assert_eq!(search(&s, &u, "q=%22engine+test%22").await.len(), 1);
    assert_eq!(search(&s, &u, "q=%22test+engine%22").await.len(), 0);
    assert_eq!(search(&s, &u, "q=engine+nominal").await.len(), 1);
    // Paging.
    let first = s
        .get(&u, "/api/v1/search?q=engine&limit=2")
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = s
        .get(
            &u,
            &format!("/api/v1/search?q=engine&limit=2&cursor={cursor}"),
        )
        .await
        .expect(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
}

async fn filters_narrow_the_hits(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let other = s
        .post(
            &u,
            "/api/v1/threads",
            json!({"workspace_id": w.org_workspace}),
        )
        .await
        .expect(201);
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages", other["id"].as_str().unwrap()),
        json!({"role": "assistant", "content": "launch window opens at dawn"}),
    )
    .await
    .expect(201);
    s.post(
        &u,
        "/api/v1/documents",
        json!({"workspace_id": w.workspace, "title": "Dawn launch checklist"}),
    )
    .await
    .expect(201);
    assert_eq!(
        search(&s, &u, "q=dawn").await.len(),
        3,
        "world message + other thread + document"
    );
    assert_eq!(
        search(&s, &u, &format!("q=dawn&workspace_id={}", w.org_workspace))
            .await
            .len(),
        1
    );
    assert_eq!(
        search(&s, &u, &format!("q=dawn&thread_id={}", w.thread))
            .await
            .len(),
        1
    );
    assert_eq!(search(&s, &u, "q=dawn&kind=documents").await.len(), 1);
    assert_eq!(search(&s, &u, "q=dawn&kind=messages").await.len(), 2);
    assert_eq!(
        search(&s, &u, &format!("q=launch&author_id={}", u.id))
            .await
            .len(),
        1,
        "only the user's own message names them as author"
    );
    assert_eq!(
        search(&s, &u, &format!("q=dawn&project_id={}", w.project))
            .await
            .len(),
        1
    );
    assert_eq!(
        search(&s, &u, "q=dawn&created_after=2999-01-01T00:00:00Z")
            .await
            .len(),
        0
    );
    assert_eq!(
        search(&s, &u, "q=dawn&created_before=2999-01-01T00:00:00Z")
            .await
            .len(),
        3
    );
}

async fn tricky_queries_never_fail(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages", w.thread),
        json!({"role": "user", "content": "café AND tea OR (coffee) NEAR \"quotes\" 日本語"}),
    )
    .await
    .expect(201);
    for q in [
        "%22unbalanced",
        "AND",
        "OR+NOT",
        "NEAR(a+b)",
        "a*",
        "-minus",
        "(paren",
        "col:umn",
        "tea+%22",
        "%27single%27",
        "%E6%97%A5%E6%9C%AC%E8%AA%9E",
        "caf%C3%A9",
        "select+*+from+users%3B+--",
    ] {
        let r = s.get(&u, &format!("/api/v1/search?q={q}")).await;
        assert_eq!(r.status.as_u16(), 200, "q={q}: {}", r.body);
    }
    assert!(!search(&s, &u, "q=coffee").await.is_empty());
    assert!(
        !search(&s, &u, "q=AND").await.is_empty(),
        "operators are words"
    );
    for q in [
        "",
        "q=",
        "q=%20%20",
        "q=!!!",
        "q=*",
        "q=%22%22%22",
        "q=%5E%5E",
        &format!("q={}", "x+".repeat(700)),
        "q=a&limit=0",
        "q=a&limit=x",
        "q=a&kind=images",
        "q=a&cursor=zz",
        "q=a&workspace_id=nope",
        "q=a&bogus=1",
        "q=a&created_after=soon",
        "q=a&deleted=maybe",
    ] {
        let r = s.get(&u, &format!("/api/v1/search?{q}")).await;
        assert_eq!(r.status.as_u16(), 400, "{q}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "bad_request");
    }
}

async fn deleted_content_is_excluded_unless_asked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    assert_eq!(search(&s, &u, "q=dawn").await.len(), 1);
    s.delete(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    assert_eq!(search(&s, &u, "q=dawn").await.len(), 0);
    assert_eq!(search(&s, &u, "q=dawn&deleted=include").await.len(), 1);
    // Edits are searchable at once: the index is written with the row.
    s.post(
        &u,
        &format!("/api/v1/threads/{}/restore", w.thread),
        json!({}),
    )
    .await
    .expect(200);
    s.patch(
        &u,
        &format!("/api/v1/messages/{}", w.message),
        json!({"content": "When is the eclipse?"}),
    )
    .await
    .expect(200);
    assert_eq!(search(&s, &u, "q=eclipse").await.len(), 1);
    assert_eq!(search(&s, &u, "q=launch").await.len(), 0);
}

async fn other_tenants_content_never_appears(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let mallory = s.user("mallory").await;
    let a = world(&s, &alice).await;
    world(&s, &mallory).await;
    s.post(&alice, "/api/v1/documents", json!({"workspace_id": a.workspace, "title": "Secret merger plan", "body": "acquire the competitor"})).await.expect(201);
    assert_eq!(search(&s, &alice, "q=merger").await.len(), 1);
    assert!(search(&s, &mallory, "q=merger").await.is_empty());
    assert!(
        search(
            &s,
            &mallory,
            &format!("q=merger&workspace_id={}", a.workspace)
        )
        .await
        .is_empty()
    );
    assert_eq!(
        search(&s, &mallory, "q=dawn").await.len(),
        1,
        "only mallory's own world message"
    );
    // A viewer added to the workspace sees it; removed again, no longer.
    let members = format!("/api/v1/workspaces/{}/members", a.workspace);
    let m = s
        .post(&alice, &members, json!({"user_id": mallory.id}))
        .await
        .expect(201);
    assert_eq!(search(&s, &mallory, "q=merger").await.len(), 1);
    s.delete(&alice, &format!("{members}/{}", m["id"].as_str().unwrap()))
        .await
        .expect(204);
    assert!(search(&s, &mallory, "q=merger").await.is_empty());
}

/// A batch is written in multi-row statements of 64, 32, 16, ... rows: 123 rows take every
/// size down to one, and each row must reach the full-text index, in its place.
async fn every_row_of_an_uneven_batch_is_indexed(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let items: Vec<Value> = (0..123)
        .map(|i| json!({"role": "user", "content": format!("batchword item{i}")}))
        .collect();
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages/batch", w.thread),
        json!({"items": items}),
    )
    .await
    .expect(201);
    for i in [0, 63, 64, 95, 96, 111, 112, 119, 120, 121, 122] {
        let hits = search(&s, &u, &format!("q=item{i}")).await;
        assert_eq!(hits.len(), 1, "item{i}: {hits:?}");
        assert_eq!(
            hits[0]["snippet"]
                .as_str()
                .map(|t| t.contains(&format!("item{i}"))),
            Some(true),
            "{hits:?}"
        );
    }
    let all = s.list_all(&u, "/api/v1/search?q=batchword&limit=50").await;
    assert_eq!(all.len(), 123);
}

/// A query of words in ten thousand rows or more ranks the caller's 1,100 most recent
/// matches among the index's 10,000 most recent on SQLite (FTS5 would score every match: a
/// cost in proportion to the index); PostgreSQL ranks the caller's 2,000 most recent
/// matches of any query. On both: the caller's rows only, highlighted, best first, pages
/// that never overlap, filters applied, and a rare word beside a common one found however
/// old.
async fn very_common_words_rank_the_most_recent_matches(backend: Backend) {
    let s = TestServer::start(backend).await;
    let alice = s.user("alice").await;
    let mallory = s.user("mallory").await;
    let a = world(&s, &alice).await;
    let m = world(&s, &mallory).await;
    let batch = |thread: &str| format!("/api/v1/threads/{thread}/messages/batch");
    // Mallory's five, written first: older than all of alice's.
    let hers: Vec<Value> = (0..5)
        .map(|i| json!({"role": "user", "content": format!("common mallory note {i}")}))
        .collect();
    s.post(&mallory, &batch(&m.thread), json!({"items": hers}))
        .await
        .expect(201);
    // The oldest of alice's says "common" five times: the best match of all, by far.
    s.post(
        &alice,
        &batch(&a.thread),
        json!({"items": [
            {"role": "user", "content": "common common common common common zebra"}
        ]}),
    )
    .await
    .expect(201);
    for round in 0..11 {
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                json!({"role": "user", "content": format!("common filler words of message r{round}n{i} and more words after them")})
            })
            .collect();
        s.post(&alice, &batch(&a.thread), json!({"items": items}))
            .await
            .expect(201);
    }
    // The best of the recent ones, and three in another thread, the newest of all.
    s.post(
        &alice,
        &batch(&a.thread),
        json!({"items": [
            {"role": "user", "content": "common common common recent"}
        ]}),
    )
    .await
    .expect(201);
    let other = s
        .post(
            &alice,
            "/api/v1/threads",
            json!({"workspace_id": a.workspace, "title": "other"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let three: Vec<Value> = (0..3)
        .map(|i| json!({"role": "user", "content": format!("common in the other thread {i}")}))
        .collect();
    s.post(&alice, &batch(&other), json!({"items": three}))
        .await
        .expect(201);

    let top = search(&s, &alice, "q=common&kind=messages&limit=5").await;
    assert_eq!(top.len(), 5);
    for hit in &top {
        assert_eq!(hit["workspace_id"], json!(a.workspace), "{hit}");
        assert!(
            hit["snippet"]
                .as_str()
                .unwrap()
                .contains("<mark>common</mark>"),
            "{hit}"
        );
    }
    let best = top[0]["snippet"].as_str().unwrap();
    // The five-times match is older than the window on both engines: not ranked.
    assert!(best.contains("recent"), "{best}");
    // A rare word beside the common one: its only match is found, however old.
    let zebra = search(&s, &alice, "q=zebra+common").await;
    assert_eq!(zebra.len(), 1, "{zebra:?}");
    assert!(
        zebra[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<mark>zebra</mark>")
    );
    // A phrase of the common word is looked for among recent rows too: on PostgreSQL the
    // caller's 10,000 most recent with its words, so the old five-times match is not
    // found and the recent one is; on SQLite the index's 50,000 most recent rows, which
    // hold all of these. A rare word beside the phrase finds the old one on both.
    let phrase = search(&s, &alice, "q=%22common+common+common%22").await;
    let found: Vec<&str> = phrase
        .iter()
        .map(|h| h["snippet"].as_str().unwrap())
        .collect();
    match backend {
        Backend::Sqlite => assert!(
            found.len() == 2 && found[0].contains("zebra") && found[1].contains("recent"),
            "{found:?}"
        ),
        Backend::Postgres => assert!(found.len() == 1 && found[0].contains("recent"), "{found:?}"),
    }
    let old = search(&s, &alice, "q=%22common+common+common%22+zebra").await;
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(old[0]["snippet"].as_str().unwrap().contains("zebra"));
    // The other tenant never sees alice's rows. Her five are older than the index's
    // 10,000 most recent matches: on SQLite, the word alone does not find them (the
    // trade-off), a rarer word beside it does. PostgreSQL's window is the caller's own.
    let theirs = search(&s, &mallory, "q=common&limit=100").await;
    assert!(
        theirs
            .iter()
            .all(|h| h["workspace_id"] == json!(m.workspace))
    );
    let expected = match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 5,
    };
    assert_eq!(theirs.len(), expected, "{theirs:?}");
    // Naming alice's workspace or thread (rule 8: ids a client sends are checked against
    // what the caller may read) finds nothing on the bounded path either.
    for filter in [
        format!("workspace_id={}", a.workspace),
        format!("thread_id={}", a.thread),
        format!("author_id={}", alice.id),
    ] {
        let named = search(&s, &mallory, &format!("q=common&kind=messages&{filter}")).await;
        assert!(named.is_empty(), "{filter}: {named:?}");
    }
    let narrowed = search(&s, &mallory, "q=common+mallory&limit=100").await;
    assert_eq!(narrowed.len(), 5, "{narrowed:?}");
    assert!(
        narrowed
            .iter()
            .all(|h| h["workspace_id"] == json!(m.workspace))
    );
    // Filters apply inside the window.
    let in_other = search(&s, &alice, &format!("q=common&thread_id={other}")).await;
    assert_eq!(in_other.len(), 3, "{in_other:?}");
    // Pages: best first throughout, never a hit twice.
    let mut seen = std::collections::HashSet::new();
    let mut relevances = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let path = match &cursor {
            None => "/api/v1/search?q=common&kind=messages&limit=100".to_owned(),
            Some(c) => format!("/api/v1/search?q=common&kind=messages&limit=100&cursor={c}"),
        };
        let page = s.get(&alice, &path).await.expect(200);
        for hit in page["items"].as_array().unwrap() {
            assert!(
                seen.insert(hit["id"].as_str().unwrap().to_owned()),
                "twice: {hit}"
            );
            relevances.push(hit["relevance"].as_f64().unwrap());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 300);
    assert!(
        relevances.windows(2).all(|p| p[0] >= p[1]),
        "best first across pages"
    );
}

/// Found by the attack on bounded search: "babe bebe" sixteen times took 30 s on
/// PostgreSQL (each copy read the words' matches again, and the planner took the query
/// for a rare one). A repeated term is searched once: the same hits in the same order.
async fn regression_repeated_terms_find_what_each_term_once_finds(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages/batch", w.thread),
        json!({"items": [
            {"role": "user", "content": "babe bebe one"},
            {"role": "user", "content": "bebe babe two"},
            {"role": "user", "content": "babe bebe babe bebe three"},
            {"role": "user", "content": "babe alone"}
        ]}),
    )
    .await
    .expect(201);
    let ids = |hits: Vec<Value>| -> Vec<String> {
        hits.iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let once = ids(search(&s, &u, "q=babe+bebe").await);
    assert_eq!(once.len(), 3);
    // Forty terms: more than a query may have, but two once repeats are dropped.
    let repeated = format!("q={}", "babe+BEBE+".repeat(20));
    assert_eq!(ids(search(&s, &u, &repeated).await), once);
    let phrase_once = ids(search(&s, &u, "q=%22babe+bebe%22").await);
    assert_eq!(phrase_once.len(), 2, "one and three");
    let phrases = format!("q={}", "%22babe+bebe%22+".repeat(16));
    assert_eq!(ids(search(&s, &u, &phrases).await), phrase_once);
    // What the engine reads as the same word is searched once too: punctuation around
    // it, or its case (32 terms, at most two words).
    let punctuated = format!("q={}", "babe,+BEBE;+(babe)+Bebe!+".repeat(8));
    assert_eq!(ids(search(&s, &u, &punctuated).await), once);
    let phrases = format!("q={}", "%22babe,+bebe%22+%22(Babe)+bebe!%22+".repeat(16));
    assert_eq!(ids(search(&s, &u, &phrases).await), phrase_once);
    // A phrase repeating its words still means those words in that order.
    assert_eq!(search(&s, &u, "q=%22babe+bebe+babe%22").await.len(), 1);
    assert_eq!(search(&s, &u, "q=%22bebe+babe%22").await.len(), 2);
    assert_eq!(search(&s, &u, "q=%22bebe+babe+bebe+babe%22").await.len(), 0);
    // Which terms count as one never depends on their order (a capital sigma is another
    // letter than a final one to PostgreSQL, the same to SQLite's tokenizer).
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages", w.thread),
        json!({"role": "user", "content": "ΟΔΟΣ zzsigmatest"}),
    )
    .await
    .expect(201);
    assert_eq!(
        search(
            &s,
            &u,
            "q=%CE%9F%CE%94%CE%9F%CE%A3+%CE%BF%CE%B4%CE%BF%CF%82+zzsigmatest"
        )
        .await
        .len(),
        search(
            &s,
            &u,
            "q=%CE%BF%CE%B4%CE%BF%CF%82+%CE%9F%CE%94%CE%9F%CE%A3+zzsigmatest"
        )
        .await
        .len()
    );
}

/// PostgreSQL stops a search at `store.pg_search_time_limit_ms` and answers 422 on `q`,
/// saying what to do (not a 500). Here the limit is 1 ms and the query a phrase of two
/// words in 20,000 messages, which takes longer; a query of many common words that seldom
/// stand together, on enough rows, is stopped the same way at the default 3 s. SQLite's
/// search reads a bounded window instead (`sqlite/search/recent.rs`) and has no limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_past_its_time_limit_is_stopped_and_explained_on_postgres() {
    let s = TestServer::start_with_store(Backend::Postgres, |options| {
        options.pg_search_time_limit = std::time::Duration::from_millis(1);
    })
    .await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    for round in 0..4 {
        let items: Vec<Value> = (0..5000)
            .map(
                |i| json!({"role": "user", "content": format!("common filler {round} {i} common")}),
            )
            .collect();
        s.post(
            &u,
            &format!("/api/v1/threads/{}/messages/batch", w.thread),
            json!({"items": items}),
        )
        .await
        .expect(201);
    }
    let stopped = s.get(&u, "/api/v1/search?q=%22filler+common%22").await;
    assert_eq!(stopped.status.as_u16(), 422, "{}", stopped.body);
    assert!(
        stopped.body["error"]["fields"]["q"]
            .as_str()
            .unwrap()
            .contains("store.pg_search_time_limit_ms"),
        "{}",
        stopped.body
    );
    // The server goes on answering: what needs no search is not limited.
    s.get(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
}

/// A search that waits for a lock held by maintenance (`REINDEX`, a migration) is answered
/// 503 with a time to retry after `SEARCH_LOCK_WAIT`, not as a too costly query (a
/// finding of the attack on bounded search), and searches answer again once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_waiting_on_maintenance_is_answered_unavailable_on_postgres() {
    let s = TestServer::start(Backend::Postgres).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages", w.thread),
        json!({"role": "user", "content": "the locked table"}),
    )
    .await
    .expect(201);
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&s.database_url)
        .await
        .unwrap();
    sqlx::Executor::execute(&mut holder, "BEGIN").await.unwrap();
    sqlx::Executor::execute(&mut holder, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let held = s.get(&u, "/api/v1/search?q=locked").await;
    let waited = started.elapsed();
    assert_eq!(held.status.as_u16(), 503, "{}", held.body);
    assert_eq!(held.body["error"]["code"], "unavailable", "{}", held.body);
    assert!(
        waited >= ceneca_store::search::SEARCH_LOCK_WAIT
            && waited < ceneca_store::search::SEARCH_TIME_LIMIT,
        "answered when the lock wait ran out: {waited:?}"
    );
    sqlx::Executor::execute(&mut holder, "ROLLBACK")
        .await
        .unwrap();
    for _ in 0..12 {
        assert_eq!(search(&s, &u, "q=locked").await.len(), 1);
    }
}

/// Found by the attack on bounded search: a filter that few of the caller's rows pass (a
/// date, a small or empty project, an author) made PostgreSQL walk every newer row of
/// the caller's to find none (0.2–0.3 s on a million messages). Now the walk starts where
/// the filter's rows are. Here the few matches lie behind more newer matches than are
/// ranked, so they are found only if each filter narrows the rows before the window does.
async fn regression_selective_filters_find_their_few_matches_beyond_the_window(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let batch = |thread: &str| format!("/api/v1/threads/{thread}/messages/batch");
    // Three of the user's own in the project's thread, first.
    let early = s
        .post(
            &u,
            &batch(&w.thread),
            json!({"items": (0..3).map(|i| json!({"role": "user", "content": format!("common early {i}")})).collect::<Vec<_>>()}),
        )
        .await
        .expect(201);
    let early_ids: Vec<String> = early["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let after_early = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Then 2,500 newer matches (more than are ranked), authorless, outside the project.
    let busy = s
        .post(&u, "/api/v1/threads", json!({"workspace_id": w.workspace}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let filler: Vec<Value> = (0..2500)
        .map(|i| json!({"role": "assistant", "content": format!("common filler {i}")}))
        .collect();
    s.post(&u, &batch(&busy), json!({"items": filler}))
        .await
        .expect(201);
    let found = |hits: Vec<Value>| -> Vec<String> {
        let mut ids: Vec<String> = hits
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        found(search(&s, &u, "q=common+early&kind=messages").await),
        early_ids
    );
    let common = "q=common&kind=messages&limit=50";
    assert_eq!(
        found(search(&s, &u, &format!("{common}&project_id={}", w.project)).await),
        early_ids
    );
    assert_eq!(
        found(search(&s, &u, &format!("{common}&created_before={after_early}")).await),
        early_ids
    );
    assert_eq!(
        found(search(&s, &u, &format!("{common}&author_id={}", u.id)).await),
        early_ids
    );
    let newer = search(&s, &u, &format!("{common}&created_after={after_early}")).await;
    assert_eq!(newer.len(), 50);
    assert!(newer.iter().all(|h| h["thread_id"] == busy.as_str()));
    // An empty project, and another tenant's, hold none of the user's messages.
    let empty = s
        .post(
            &u,
            "/api/v1/projects",
            json!({"workspace_id": w.workspace, "name": "Empty"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        search(&s, &u, &format!("{common}&project_id={empty}"))
            .await
            .is_empty()
    );
    let mallory = s.user("mallory").await;
    let m = world(&s, &mallory).await;
    assert!(
        search(&s, &u, &format!("{common}&project_id={}", m.project))
            .await
            .is_empty()
    );
    assert!(
        search(&s, &mallory, &format!("q=common&project_id={}", w.project))
            .await
            .is_empty(),
        "naming another tenant's project finds none of its messages"
    );
}

/// Found by the third attack on bounded search: PostgreSQL read the query's words from
/// its terms joined by spaces, and its parser reads `<tagword bold>` as one HTML tag, so
/// the query matched nothing. Each term is read on its own, as each is matched.
async fn regression_each_term_is_read_on_its_own(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages", w.thread),
        json!({"role": "user", "content": "<b>bold</b> tagword"}),
    )
    .await
    .expect(201);
    assert_eq!(search(&s, &u, "q=%3Ctagword+bold%3E").await.len(), 1);
    assert_eq!(search(&s, &u, "q=tagword+bold").await.len(), 1);
}

/// From the third attack on bounded search: a tenant whose matches of a word are far
/// fewer than the planner expects from the word's frequency elsewhere has PostgreSQL walk
/// other tenants' messages newest first to find them (0.3-0.4 s on a million; not fixed,
/// see ARCHITECTURE). The answer is right all the same: all of the tenant's few matches,
/// none of the other's many.
async fn regression_a_small_tenant_finds_its_few_matches_of_a_word_common_elsewhere(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let big = s.user("big").await;
    let small = s.user("small").await;
    let b = world(&s, &big).await;
    let m = world(&s, &small).await;
    let batch = |thread: &str| format!("/api/v1/threads/{thread}/messages/batch");
    let theirs: Vec<Value> = (0..3000)
        .map(|i| json!({"role": "user", "content": format!("frequent word {i}")}))
        .collect();
    s.post(&big, &batch(&b.thread), json!({"items": theirs}))
        .await
        .expect(201);
    let mine: Vec<Value> = (0..300)
        .map(|i| {
            let content = if i % 100 == 0 {
                "frequent here"
            } else {
                "other text"
            };
            json!({"role": "user", "content": format!("{content} {i}")})
        })
        .collect();
    s.post(&small, &batch(&m.thread), json!({"items": mine}))
        .await
        .expect(201);
    let found = search(&s, &small, "q=frequent&limit=50").await;
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found
            .iter()
            .all(|h| h["workspace_id"] == m.workspace.as_str())
    );
    assert_eq!(search(&s, &big, "q=frequent&limit=50").await.len(), 50);
}
