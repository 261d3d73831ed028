//! Suite 2 of the seed report: relationships, cascades and soft delete; plus the counters
//! and the change log every write keeps.

use ceneca_e2e::{Backend, TestServer, on_every_backend, world};
use serde_json::{Value, json};

on_every_backend!(
    deleting_a_workspace_takes_its_content_and_restore_brings_it_back,
    deleting_a_thread_soft_deletes_its_messages,
    batches_keep_order_counters_and_pages,
    every_write_is_in_the_change_log,
    organization_roles_decide_who_may_do_what,
    workspace_roles_decide_who_may_write,
    hard_deletes_cascade_where_the_model_says,
    regression_two_owners_leaving_at_once_leave_one_owner,
    regression_many_owners_leaving_at_once_get_answers_never_a_server_error,
    regression_a_closed_account_is_no_owner,
    regression_co_owners_closing_their_accounts_at_once_get_answers,
    regression_an_account_closes_once_its_organizations_are_handed_over_or_binned,
    regression_racing_edits_deletes_and_restores_answer_never_a_server_error,
);

async fn deleting_a_workspace_takes_its_content_and_restore_brings_it_back(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    // A message deleted on its own before stays deleted after the restore.
    let lone = s
        .post(
            &u,
            &format!("/api/v1/threads/{}/messages", w.thread),
            json!({"role": "user", "content": "typo"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.delete(&u, &format!("/api/v1/messages/{lone}"))
        .await
        .expect(200);

    s.delete(&u, &format!("/api/v1/workspaces/{}", w.workspace))
        .await
        .expect(200);
    for path in [
        format!("/api/v1/workspaces/{}", w.workspace),
        format!("/api/v1/projects/{}", w.project),
        format!("/api/v1/threads/{}", w.thread),
        format!("/api/v1/messages/{}", w.message),
        format!("/api/v1/documents/{}", w.document),
    ] {
        s.get(&u, &path).await.expect(404);
    }
    assert!(
        s.list_all(&u, &format!("/api/v1/threads?workspace_id={}", w.workspace))
            .await
            .is_empty()
    );

    s.post(
        &u,
        &format!("/api/v1/workspaces/{}/restore", w.workspace),
        json!({}),
    )
    .await
    .expect(200);
    s.get(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    s.get(&u, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(200);
    let messages = s
        .list_all(&u, &format!("/api/v1/threads/{}/messages", w.thread))
        .await;
    assert_eq!(
        messages.len(),
        2,
        "the two world messages are back; the lone one is not"
    );
    s.get(&u, &format!("/api/v1/messages/{lone}"))
        .await
        .expect(404);
    let deleted_only = s
        .list_all(
            &u,
            &format!("/api/v1/threads/{}/messages?deleted=only", w.thread),
        )
        .await;
    assert_eq!(deleted_only.len(), 1);
    assert_eq!(deleted_only[0]["id"], json!(lone));
}

async fn deleting_a_thread_soft_deletes_its_messages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    s.delete(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    s.get(&u, &format!("/api/v1/messages/{}", w.message))
        .await
        .expect(404);
    s.get(&u, &format!("/api/v1/threads/{}/messages", w.thread))
        .await
        .expect(404);
    s.post(
        &u,
        &format!("/api/v1/threads/{}/messages", w.thread),
        json!({"role": "user", "content": "x"}),
    )
    .await
    .expect(404);
    // The project delete cascade reaches threads and documents of the project.
    s.post(
        &u,
        &format!("/api/v1/threads/{}/restore", w.thread),
        json!({}),
    )
    .await
    .expect(200);
    s.delete(&u, &format!("/api/v1/projects/{}", w.project))
        .await
        .expect(200);
    s.get(&u, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(404);
    s.get(&u, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(404);
    s.get(&u, &format!("/api/v1/messages/{}", w.message))
        .await
        .expect(404);
    s.post(
        &u,
        &format!("/api/v1/projects/{}/restore", w.project),
        json!({}),
    )
    .await
    .expect(200);
    s.get(&u, &format!("/api/v1/messages/{}", w.message))
        .await
        .expect(200);
}

async fn batches_keep_order_counters_and_pages(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let thread = s
        .post(&u, "/api/v1/threads", json!({"workspace_id": w.workspace}))
        .await
        .expect(201);
    let thread_id = thread["id"].as_str().unwrap();
    let items: Vec<Value> = (0..120).map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("message {i}"), "token_count": i})).collect();
    let created = s
        .post(
            &u,
            &format!("/api/v1/threads/{thread_id}/messages/batch"),
            json!({"items": items}),
        )
        .await
        .expect(201);
    assert_eq!(created["items"].as_array().unwrap().len(), 120);

    let after = s
        .get(&u, &format!("/api/v1/threads/{thread_id}"))
        .await
        .expect(200);
    assert_eq!(after["message_count"], 120);
    assert!(
        after["last_message_at"].as_str() > thread["last_message_at"].as_str()
            || after["last_message_at"] == created["items"][119]["created_at"]
    );

    let first = s
        .get(
            &u,
            &format!("/api/v1/threads/{thread_id}/messages?limit=50"),
        )
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    assert!(first["next_cursor"].is_string());
    let all = s
        .list_all(
            &u,
            &format!("/api/v1/threads/{thread_id}/messages?limit=50"),
        )
        .await;
    let contents: Vec<_> = all
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        contents,
        (0..120).map(|i| format!("message {i}")).collect::<Vec<_>>(),
        "oldest first, in batch order"
    );
    let newest = s
        .get(
            &u,
            &format!("/api/v1/threads/{thread_id}/messages?limit=1&sort=-created_at"),
        )
        .await
        .expect(200);
    assert_eq!(newest["items"][0]["content"], "message 119");
    let users = s
        .list_all(
            &u,
            &format!("/api/v1/threads/{thread_id}/messages?role=user"),
        )
        .await;
    assert_eq!(users.len(), 60);

    // Deleting a message moves the counter; restoring moves it back.
    let id = all[5]["id"].as_str().unwrap();
    s.delete(&u, &format!("/api/v1/messages/{id}"))
        .await
        .expect(200);
    assert_eq!(
        s.get(&u, &format!("/api/v1/threads/{thread_id}"))
            .await
            .expect(200)["message_count"],
        119
    );
    s.post(&u, &format!("/api/v1/messages/{id}/restore"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        s.get(&u, &format!("/api/v1/threads/{thread_id}"))
            .await
            .expect(200)["message_count"],
        120
    );

    // A batch with one bad item writes nothing and names the item.
    let bad = s
        .post(&u, &format!("/api/v1/threads/{thread_id}/messages/batch"), json!({"items": [{"role": "user", "content": "ok"}, {"role": "robot", "content": "no"}]}))
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert!(
        bad.body["error"]["fields"]["items[1].role"].is_string(),
        "{}",
        bad.body
    );
    assert_eq!(
        s.get(&u, &format!("/api/v1/threads/{thread_id}"))
            .await
            .expect(200)["message_count"],
        120
    );

    // Threads of a workspace come most recently active first.
    let older = s
        .post(
            &u,
            "/api/v1/threads",
            json!({"workspace_id": w.workspace, "title": "older"}),
        )
        .await
        .expect(201);
    s.post(
        &u,
        &format!("/api/v1/threads/{thread_id}/messages"),
        json!({"role": "user", "content": "bump"}),
    )
    .await
    .expect(201);
    let threads = s
        .list_all(&u, &format!("/api/v1/threads?workspace_id={}", w.workspace))
        .await;
    assert_eq!(
        threads[0]["id"],
        json!(thread_id),
        "the thread with the newest message leads"
    );
    assert!(threads.iter().any(|t| t["id"] == older["id"]));
}

async fn every_write_is_in_the_change_log(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let other = s.user("other").await;
    let w = world(&s, &u).await;
    s.patch(
        &u,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "Renamed", "pinned": true}),
    )
    .await
    .expect(200);
    s.delete(&u, &format!("/api/v1/documents/{}", w.document))
        .await
        .expect(200);
    let events = s.list_all(&u, "/api/v1/sync-events?limit=200").await;
    let thread_events: Vec<&Value> = events
        .iter()
        .filter(|e| e["entity_id"] == json!(w.thread))
        .collect();
    assert_eq!(thread_events[0]["operation"], "create");
    let update = thread_events
        .iter()
        .find(|e| e["operation"] == "update")
        .expect("update logged");
    let mut fields: Vec<_> = update["changed_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(fields, ["pinned", "title"]);
    assert_eq!(update["user_id"], json!(u.id));
    assert!(
        events
            .iter()
            .any(|e| e["entity_id"] == json!(w.document) && e["operation"] == "delete")
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|p| p[0] < p[1]),
        "the cursor order is commit order"
    );
    let hlcs: Vec<i64> = events.iter().map(|e| e["hlc"].as_i64().unwrap()).collect();
    assert!(
        hlcs.windows(2).all(|p| p[0] < p[1]),
        "HLC timestamps increase"
    );
    // Another tenant sees none of it.
    let theirs = s.list_all(&other, "/api/v1/sync-events").await;
    assert!(
        theirs
            .iter()
            .all(|e| e["scope_workspace_id"] != json!(w.workspace))
    );
}

async fn organization_roles_decide_who_may_do_what(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let admin = s.user("admin").await;
    let member = s.user("member").await;
    let viewer = s.user("viewer").await;
    let w = world(&s, &owner).await;
    let members = format!("/api/v1/organizations/{}/members", w.organization);
    s.post(
        &owner,
        &members,
        json!({"user_id": admin.id, "role": "admin"}),
    )
    .await
    .expect(201);
    let m = s
        .post(
            &admin,
            &members,
            json!({"user_id": member.id, "role": "member"}),
        )
        .await
        .expect(201);
    s.post(
        &admin,
        &members,
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(201);
    s.post(
        &admin,
        &members,
        json!({"user_id": viewer.id, "role": "viewer"}),
    )
    .await
    .expect(409);
    // Members can be added by e-mail address too.
    let r = s
        .post(&admin, &members, json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!(
        r.body["error"]["fields"]["email"],
        "no account uses this e-mail address"
    );
    let again = s
        .post(
            &admin,
            &members,
            json!({"email": viewer.email.to_uppercase()}),
        )
        .await;
    assert_eq!(again.status.as_u16(), 409, "{}", again.body);
    // Only owners make owners.
    s.patch(
        &admin,
        &format!("{members}/{}", m["id"].as_str().unwrap()),
        json!({"role": "owner"}),
    )
    .await
    .expect(403);
    // Members read the organization, cannot change it or its members.
    s.get(
        &member,
        &format!("/api/v1/organizations/{}", w.organization),
    )
    .await
    .expect(200);
    s.patch(
        &member,
        &format!("/api/v1/organizations/{}", w.organization),
        json!({"name": "x"}),
    )
    .await
    .expect(403);
    s.post(&member, &members, json!({"user_id": viewer.id}))
        .await
        .expect(403);
    assert_eq!(s.list_all(&viewer, &members).await.len(), 4);
    // Members create workspaces in the organization; viewers cannot.
    s.post(
        &member,
        "/api/v1/workspaces",
        json!({"name": "M", "organization_id": w.organization}),
    )
    .await
    .expect(201);
    s.post(
        &viewer,
        "/api/v1/workspaces",
        json!({"name": "V", "organization_id": w.organization}),
    )
    .await
    .expect(403);
    // Organization admins administer every workspace of the organization.
    s.post(
        &admin,
        "/api/v1/threads",
        json!({"workspace_id": w.org_workspace}),
    )
    .await
    .expect(201);
    s.post(
        &member,
        "/api/v1/threads",
        json!({"workspace_id": w.org_workspace}),
    )
    .await
    .expect(404);
    // Admins change the organization; only owners delete it; the last owner stays.
    s.patch(
        &admin,
        &format!("/api/v1/organizations/{}", w.organization),
        json!({"name": "Acme 2"}),
    )
    .await
    .expect(200);
    s.delete(&admin, &format!("/api/v1/organizations/{}", w.organization))
        .await
        .expect(403);
    let owners = s.list_all(&owner, &format!("{members}?role=owner")).await;
    s.delete(
        &owner,
        &format!("{members}/{}", owners[0]["id"].as_str().unwrap()),
    )
    .await
    .expect(409);
    s.delete(&owner, &format!("/api/v1/organizations/{}", w.organization))
        .await
        .expect(200);
    s.get(
        &member,
        &format!("/api/v1/organizations/{}", w.organization),
    )
    .await
    .expect(404);
    s.get(&owner, &format!("/api/v1/workspaces/{}", w.org_workspace))
        .await
        .expect(404);
}

async fn workspace_roles_decide_who_may_write(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = s.user("owner").await;
    let editor = s.user("editor").await;
    let viewer = s.user("viewer").await;
    let w = world(&s, &owner).await;
    let members = format!("/api/v1/workspaces/{}/members", w.workspace);
    s.post(
        &owner,
        &members,
        json!({"user_id": editor.id, "role": "editor"}),
    )
    .await
    .expect(201);
    let v = s
        .post(&owner, &members, json!({"user_id": viewer.id}))
        .await
        .expect(201);
    assert_eq!(v["role"], "viewer");
    s.get(&viewer, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(200);
    s.post(
        &viewer,
        "/api/v1/threads",
        json!({"workspace_id": w.workspace}),
    )
    .await
    .expect(403);
    s.patch(
        &viewer,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "x"}),
    )
    .await
    .expect(403);
    s.delete(&viewer, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(403);
    s.post(
        &editor,
        "/api/v1/threads",
        json!({"workspace_id": w.workspace}),
    )
    .await
    .expect(201);
    s.patch(
        &editor,
        &format!("/api/v1/threads/{}", w.thread),
        json!({"title": "x"}),
    )
    .await
    .expect(200);
    s.post(&editor, &members, json!({"user_id": viewer.id}))
        .await
        .expect(403);
    s.patch(
        &editor,
        &format!("/api/v1/workspaces/{}", w.workspace),
        json!({"name": "x"}),
    )
    .await
    .expect(403);
    // Promotion takes effect on the next request.
    s.patch(
        &owner,
        &format!("{members}/{}", v["id"].as_str().unwrap()),
        json!({"role": "editor"}),
    )
    .await
    .expect(200);
    s.post(
        &viewer,
        "/api/v1/threads",
        json!({"workspace_id": w.workspace}),
    )
    .await
    .expect(201);
    // Removal too.
    s.delete(&owner, &format!("{members}/{}", v["id"].as_str().unwrap()))
        .await
        .expect(204);
    s.get(&viewer, &format!("/api/v1/threads/{}", w.thread))
        .await
        .expect(404);
}

async fn hard_deletes_cascade_where_the_model_says(backend: Backend) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let run = uuid::Uuid::now_v7().to_string();
    let step = s
        .post(
            &u,
            "/api/v1/orchestration-step-results",
            json!({"flow_id": w.flow, "run_id": run, "step_key": "draft"}),
        )
        .await
        .expect(201);
    assert_eq!(
        step["workspace_id"],
        json!(w.workspace),
        "inherits the flow's workspace"
    );
    s.delete(&u, &format!("/api/v1/orchestration-flows/{}", w.flow))
        .await
        .expect(204);
    s.get(
        &u,
        &format!(
            "/api/v1/orchestration-step-results/{}",
            step["id"].as_str().unwrap()
        ),
    )
    .await
    .expect(404);
    // Removing a provider config keeps the usage records that named it.
    let config = s
        .post(
            &u,
            "/api/v1/provider-configs",
            json!({"provider": "openai", "name": "c"}),
        )
        .await
        .expect(201);
    let usage = s
        .post(&u, "/api/v1/ai-interactions", json!({"workspace_id": w.workspace, "provider_config_id": config["id"], "provider": "openai", "model": "m", "prompt_tokens": 3, "completion_tokens": 4}))
        .await
        .expect(201);
    assert_eq!(usage["total_tokens"], 7);
    s.delete(
        &u,
        &format!(
            "/api/v1/provider-configs/{}",
            config["id"].as_str().unwrap()
        ),
    )
    .await
    .expect(204);
    let kept = s
        .get(
            &u,
            &format!("/api/v1/ai-interactions/{}", usage["id"].as_str().unwrap()),
        )
        .await
        .expect(200);
    assert_eq!(kept["provider_config_id"], Value::Null);
}

/// Found by the attack on demotions: two owners who demoted (or removed) each other at
/// the same moment both passed a count read before the write, leaving the organization
/// with no owner. The store now counts the others inside the write, owners locked.
async fn regression_two_owners_leaving_at_once_leave_one_owner(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ann = s.user("ann").await;
    let bob = s.user("bob").await;
    for round in 0..12 {
        let org = organization(&s, &ann, &format!("race-{round}")).await;
        let members = format!("/api/v1/organizations/{org}/members");
        let bobs = s
            .post(&ann, &members, json!({"user_id": bob.id, "role": "owner"}))
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let owners = s.list_all(&ann, &format!("{members}?role=owner")).await;
        let anns = owners
            .iter()
            .find(|m| m["user_id"] == json!(ann.id))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Even rounds: each demotes the other; odd rounds: each removes the other.
        let (bobs, anns) = (format!("{members}/{bobs}"), format!("{members}/{anns}"));
        let (a, b) = if round % 2 == 0 {
            tokio::join!(
                s.patch(&ann, &bobs, json!({"role": "admin"})),
                s.patch(&bob, &anns, json!({"role": "member"})),
            )
        } else {
            tokio::join!(s.delete(&ann, &bobs), s.delete(&bob, &anns))
        };
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        // Whoever is still a member sees the owners that are left.
        let mut left = Vec::new();
        for user in [&ann, &bob] {
            let page = s.get(user, &format!("{members}?role=owner")).await;
            if page.status == 200 {
                left = page.body["items"].as_array().unwrap().clone();
            }
        }
        assert_eq!(
            left.len(),
            1,
            "round {round}: {statuses:?}, owners {left:?}"
        );
        // One of the two went through; the other was refused as the last owner's removal
        // (or, once removed, found nothing to change).
        assert!(
            [200, 204].contains(&statuses[0]) && [403, 404, 409].contains(&statuses[1]),
            "round {round}: {statuses:?}, {a:?}, {b:?}"
        );
    }
}

/// Second attack on the owner guard, finding 1: four owners demoting and removing one
/// another (and themselves) at once deadlocked on PostgreSQL (500): the guard locked the
/// owner rows, and a row demoted meanwhile was locked later, out of order. Changes to an
/// organization's owners now take the organization's row first, one at a time.
async fn regression_many_owners_leaving_at_once_get_answers_never_a_server_error(backend: Backend) {
    let s = TestServer::start(backend).await;
    let users = [
        s.user("ann").await,
        s.user("bob").await,
        s.user("cat").await,
        s.user("dan").await,
    ];
    for round in 0..6 {
        let org = s
            .post(
                &users[0],
                "/api/v1/organizations",
                json!({"name": format!("Many {round}"), "slug": format!("many-{round}")}),
            )
            .await
            .expect(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let members = format!("/api/v1/organizations/{org}/members");
        for u in &users[1..] {
            s.post(
                &users[0],
                &members,
                json!({"user_id": u.id, "role": "owner"}),
            )
            .await
            .expect(201);
        }
        let rows: Vec<String> = s
            .list_all(&users[0], &members)
            .await
            .iter()
            .map(|m| format!("{members}/{}", m["id"].as_str().unwrap()))
            .collect();
        // Every owner acts on every membership, its own included, all at once.
        let mut requests = tokio::task::JoinSet::new();
        for (i, u) in users.iter().enumerate() {
            for (j, row) in rows.iter().enumerate() {
                let request = if (i + j + round) % 2 == 0 {
                    s.http
                        .patch(format!("{}{row}", s.base))
                        .json(&json!({"role": "member"}))
                } else {
                    s.http.delete(format!("{}{row}", s.base))
                };
                let request = request.bearer_auth(&u.token);
                requests.spawn(async move { request.send().await.unwrap().status().as_u16() });
            }
        }
        while let Some(status) = requests.join_next().await {
            let status = status.unwrap();
            assert!(
                [200, 204, 403, 404, 409].contains(&status),
                "round {round}: {status}"
            );
        }
        let mut owners = None;
        for u in &users {
            let page = s.get(u, &format!("{members}?role=owner")).await;
            if page.status == 200 {
                owners = Some(page.body["items"].as_array().unwrap().len());
            }
        }
        assert_eq!(owners, Some(1), "round {round}: one owner stays");
    }
}

/// Second attack on the owner guard, finding 3: an owner whose account was closed still
/// counted as an owner, so the last open owner could leave; and a sole owner could close
/// their account, leaving the organization to nobody.
async fn regression_a_closed_account_is_no_owner(backend: Backend) {
    let s = TestServer::start(backend).await;
    let ann = s.user("ann").await;
    let gone = s.user("gone").await;
    let org = organization(&s, &ann, "closing").await;
    let members = format!("/api/v1/organizations/{org}/members");
    s.post(&ann, &members, json!({"user_id": gone.id, "role": "owner"}))
        .await
        .expect(201);
    s.delete(&gone, &format!("/api/v1/users/{}", gone.id))
        .await
        .expect(200);
    let anns = s
        .list_all(&ann, &format!("{members}?role=owner"))
        .await
        .into_iter()
        .find(|m| m["user_id"] == json!(ann.id))
        .unwrap();
    let demoted = s
        .patch(
            &ann,
            &format!("{members}/{}", anns["id"].as_str().unwrap()),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(demoted.status, 409, "{demoted:?}");

    // The sole owner cannot close their account while the organization is theirs alone.
    let closing = s.delete(&ann, &format!("/api/v1/users/{}", ann.id)).await;
    assert_eq!(closing.status, 409, "{closing:?}");
    assert!(
        closing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("owner"),
        "{closing:?}"
    );
    s.get(&ann, &format!("/api/v1/organizations/{org}"))
        .await
        .expect(200);
}

/// Third attack on ownership, finding 1: two co-owners of several organizations closing
/// their accounts at once locked the organizations in opposite orders and deadlocked on
/// PostgreSQL (500). Organizations are now locked in id order.
async fn regression_co_owners_closing_their_accounts_at_once_get_answers(backend: Backend) {
    let s = TestServer::start(backend).await;
    for round in 0..4 {
        let ann = s.user(&format!("ann{round}")).await;
        let bob = s.user(&format!("bob{round}")).await;
        // Ann creates some organizations and Bob others, each making the other an owner:
        // their memberships were made in opposite orders.
        for (i, (first, second)) in [(&ann, &bob), (&bob, &ann), (&ann, &bob), (&bob, &ann)]
            .into_iter()
            .enumerate()
        {
            let org = organization(&s, first, &format!("co-{round}-{i}")).await;
            s.post(
                first,
                &format!("/api/v1/organizations/{org}/members"),
                json!({"user_id": second.id, "role": "owner"}),
            )
            .await
            .expect(201);
        }
        let (anns, bobs) = (
            format!("/api/v1/users/{}", ann.id),
            format!("/api/v1/users/{}", bob.id),
        );
        let (a, b) = tokio::join!(s.delete(&ann, &anns), s.delete(&bob, &bobs));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "round {round}: {a:?} {b:?}");
    }
}

/// Third attack on ownership, findings 2 and 3: an account closing read the organizations
/// it owned before its transaction (an ownership granted meanwhile escaped the check),
/// and organizations in the bin kept an account from ever closing (anyone could make a
/// user the owner of an organization, leave, and so pin their account open).
async fn regression_an_account_closes_once_its_organizations_are_handed_over_or_binned(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let mallory = s.user("mallory").await;
    let victim = s.user("victim").await;
    let org = organization(&s, &mallory, "unwanted").await;
    let members = format!("/api/v1/organizations/{org}/members");
    s.post(
        &mallory,
        &members,
        json!({"email": victim.email, "role": "owner"}),
    )
    .await
    .expect(201);
    let mallorys = s
        .list_all(&mallory, &format!("{members}?role=owner"))
        .await
        .into_iter()
        .find(|m| m["user_id"] == json!(mallory.id))
        .unwrap();
    s.delete(
        &mallory,
        &format!("{members}/{}", mallorys["id"].as_str().unwrap()),
    )
    .await
    .expect(204);
    // The victim is the last owner: the account stays open until the organization is
    // handed over or deleted; deleted, it no longer holds the account.
    s.delete(&victim, &format!("/api/v1/users/{}", victim.id))
        .await
        .expect(409);
    s.delete(&victim, &format!("/api/v1/organizations/{org}"))
        .await
        .expect(200);
    s.delete(&victim, &format!("/api/v1/users/{}", victim.id))
        .await
        .expect(200);
    // A closed account is never made an owner.
    let ann = s.user("ann").await;
    let acme = organization(&s, &ann, "acme-closing").await;
    let gone = s.user("gone").await;
    let acme_members = format!("/api/v1/organizations/{acme}/members");
    let row = s
        .post(
            &ann,
            &acme_members,
            json!({"user_id": gone.id, "role": "member"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.delete(&gone, &format!("/api/v1/users/{}", gone.id))
        .await
        .expect(200);
    let promoted = s
        .patch(
            &ann,
            &format!("{acme_members}/{row}"),
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(promoted.status, 403, "{promoted:?}");
}

/// A new organization of `owner`'s, named by its slug; its id.
async fn organization(s: &TestServer, owner: &ceneca_e2e::User, slug: &str) -> String {
    s.post(
        owner,
        "/api/v1/organizations",
        json!({"name": "Org", "slug": slug}),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Second attack on quotas, finding 2: edits, deletes and restores of the same messages
/// and their thread, racing, deadlocked on PostgreSQL, and the deadlock's victim answered
/// 500. PostgreSQL rolls the victim back whole: it now answers 409 `stale` (send it
/// again), like any write that lost a race.
async fn regression_racing_edits_deletes_and_restores_answer_never_a_server_error(
    backend: Backend,
) {
    let s = TestServer::start(backend).await;
    let u = s.user("u").await;
    let w = world(&s, &u).await;
    let mut messages = Vec::new();
    for _ in 0..4 {
        messages.push(
            s.post(
                &u,
                &format!("/api/v1/threads/{}/messages", w.thread),
                json!({"role": "user", "content": "s".repeat(100)}),
            )
            .await
            .expect(201)["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..240usize {
        let message = &messages[i % messages.len()];
        let (base, thread) = (&s.base, &w.thread);
        let request = match i % 5 {
            0 => s
                .http
                .patch(format!("{base}/api/v1/messages/{message}"))
                .json(&json!({"content": "p".repeat(1 + i * 7)})),
            1 => s.http.delete(format!("{base}/api/v1/messages/{message}")),
            2 => s
                .http
                .post(format!("{base}/api/v1/messages/{message}/restore"))
                .json(&json!({})),
            3 => s.http.delete(format!("{base}/api/v1/threads/{thread}")),
            _ => s
                .http
                .post(format!("{base}/api/v1/threads/{thread}/restore"))
                .json(&json!({})),
        };
        let request = request.bearer_auth(&u.token);
        requests.spawn(async move { request.send().await.unwrap().status().as_u16() });
        if requests.len() >= 16
            && let Some(status) = requests.join_next().await
        {
            assert!(status.unwrap() < 500);
        }
    }
    while let Some(status) = requests.join_next().await {
        assert!(status.unwrap() < 500);
    }
}
