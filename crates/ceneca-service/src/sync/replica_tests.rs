//! A local node applying an upstream's feed: both sides real services over real SQLite
//! stores, the feed pulled with a device token as the node pulls it. The regression tests
//! are the findings of the attack on the local node.

use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Value, model};
use ceneca_store::Deleted;
use ceneca_wire::sync::{Change, ChangeOperation};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::audit::RequestMeta;
use crate::resources::ParentRef;
use crate::sync::LocalNode;
use crate::testing::{TestServices, id_of, refresh, services, services_with, sign_up};
use crate::{Caller, ServiceConfig, ServiceError};

const PASSWORD: &str = "correct horse battery";

/// An upstream, an account on it with a registered device, and a node enrolled as that
/// device.
struct Pair {
    up: std::sync::Arc<TestServices>,
    node: TestServices,
    /// The enrolled account upstream (a log-in session) and its device's token.
    account: Caller,
    device_id: Uuid,
    device_token: String,
    cursor: i64,
}

async fn enrolled(up: TestServices, email: &str) -> Pair {
    let (account, _) = sign_up(&up.svc, email).await;
    enrol(std::sync::Arc::new(up), account).await
}

/// Another device of the same account on the same upstream, with a node of its own.
async fn another_device(pair: &Pair) -> Pair {
    enrol(pair.up.clone(), pair.account.clone()).await
}

async fn enrol(up: std::sync::Arc<TestServices>, account: Caller) -> Pair {
    let device = up
        .svc
        .create(
            &account,
            &model::DEVICES,
            &json!({"name": "laptop", "platform": "desktop"}),
            None,
        )
        .await
        .unwrap();
    let me = up.svc.me(&account).await.unwrap();
    let node = services_with(ServiceConfig {
        local_node: Some(LocalNode {
            upstream: "http://127.0.0.1:9".into(),
            device_id: id_of(&device),
            user_id: account.user_id,
        }),
        ..ServiceConfig::default()
    })
    .await;
    node.svc
        .adopt_account(&me, PASSWORD, &device)
        .await
        .unwrap();
    Pair {
        up,
        node,
        account,
        device_id: id_of(&device),
        device_token: device["token"].as_str().unwrap().to_owned(),
        cursor: 0,
    }
}

impl Pair {
    /// Pulls everything new with the device's token and applies it to the node, as the
    /// loop does (a workspace given: the snapshot first); answers the failures and the
    /// losses it reported.
    async fn sync_down(&mut self) -> (Vec<String>, Vec<String>) {
        let (mut failed, mut lost) = (Vec::new(), Vec::new());
        let mut resynced = false;
        // Each pull is a request of its own: the device's roles as they are now.
        let device = refresh(&self.up.svc, &self.device_token).await;
        loop {
            let page = self.up.svc.pull(&device, self.cursor, 1000).await.unwrap();
            let applied = self
                .node
                .svc
                .apply_upstream(&page.changes, 0, 0)
                .await
                .unwrap();
            failed.extend(applied.failed);
            lost.extend(applied.lost);
            if applied.resync.is_some() && !resynced {
                resynced = true;
                let (f, l) = self.snapshot_down().await;
                failed.extend(f);
                lost.extend(l);
                continue;
            }
            self.cursor = page.cursor.parse().unwrap();
            if !page.has_more {
                return (failed, lost);
            }
        }
    }

    /// Starts the node again from the upstream's snapshot, as the loop does, in pages
    /// of `limit`.
    async fn snapshot_down_in(&mut self, limit: u32) -> (Vec<String>, Vec<String>) {
        let (mut failed, mut lost) = (Vec::new(), Vec::new());
        let device = refresh(&self.up.svc, &self.device_token).await;
        let (mut as_of, mut cursor) = (None, 0);
        let mut shown = crate::sync::Shown::default();
        loop {
            let page = self
                .up
                .svc
                .snapshot(&device, as_of, cursor, limit)
                .await
                .unwrap();
            as_of = Some(page.as_of.parse().unwrap());
            shown.note(&page.changes);
            let applied = self
                .node
                .svc
                .apply_upstream(&page.changes, i64::MAX, 0)
                .await
                .unwrap();
            failed.extend(applied.failed);
            lost.extend(applied.lost);
            cursor = page.cursor.parse().unwrap();
            if !page.has_more {
                break;
            }
        }
        lost.extend(self.node.svc.keep_only(&shown, 0).await.unwrap());
        self.cursor = as_of.unwrap();
        (failed, lost)
    }

    async fn snapshot_down(&mut self) -> (Vec<String>, Vec<String>) {
        self.snapshot_down_in(1000).await
    }

    /// The node's own session for its account.
    async fn local(&self) -> Caller {
        let login = self
            .node
            .svc
            .login(
                &serde_json::from_value(json!({"email": self.account.email, "password": PASSWORD}))
                    .unwrap(),
                &RequestMeta::default(),
            )
            .await
            .unwrap();
        refresh(&self.node.svc, &login.token).await
    }

    async fn node_has(&self, entity: &'static ceneca_domain::Entity, id: Uuid) -> bool {
        self.node
            .svc
            .store()
            .get(entity, id, ScopeFilter::All, Deleted::Include)
            .await
            .unwrap()
            .is_some()
    }
}

async fn workspace_with_thread(svc: &crate::Services, owner: &Caller, body: Json) -> (Uuid, Uuid) {
    let workspace = id_of(
        &svc.create(owner, &model::WORKSPACES, &body, None)
            .await
            .unwrap(),
    );
    let owner = refresh_caller(svc, owner).await;
    let thread = svc
        .create(
            &owner,
            &model::THREADS,
            &json!({"workspace_id": workspace, "title": "plans"}),
            None,
        )
        .await
        .unwrap();
    (workspace, id_of(&thread))
}

/// The caller with the roles its latest writes gave it.
async fn refresh_caller(svc: &crate::Services, caller: &Caller) -> Caller {
    Caller {
        scope: svc
            .store()
            .load_scope(caller.user_id, caller.system_admin)
            .await
            .unwrap(),
        ..caller.clone()
    }
}

fn hostile(entity: &str, id: Uuid, operation: ChangeOperation, hlc: u64, values: Json) -> Change {
    Change {
        cursor: "1".into(),
        change_id: Uuid::now_v7(),
        entity: entity.into(),
        entity_id: id,
        operation,
        hlc: hlc.to_string(),
        device_id: None,
        user_id: None,
        workspace_id: None,
        organization_id: None,
        values: values.as_object().unwrap().clone(),
    }
}

#[tokio::test]
async fn the_feed_of_a_device_builds_the_node_and_its_roles() {
    let mut pair = enrolled(services().await, "ada@example.com").await;
    let (workspace, thread) =
        workspace_with_thread(&pair.up.svc, &pair.account, json!({"name": "Research"})).await;
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    let local = pair.local().await;
    pair.node
        .svc
        .get(&local, &model::THREADS, thread, Deleted::Exclude)
        .await
        .unwrap();
    // The roles came with the user's own membership: the node lets its user write.
    pair.node
        .svc
        .create(
            &local,
            &model::THREADS,
            &json!({"workspace_id": workspace, "title": "made offline"}),
            None,
        )
        .await
        .unwrap();
    let pending = pair.node.svc.pending_changes(0, 100).await.unwrap().0;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].entity, "threads");
}

#[tokio::test]
async fn regression_a_hostile_upstream_cannot_rewrite_accounts_or_create_logins() {
    let mut pair = enrolled(services().await, "ada@example.com").await;
    pair.sync_down().await;
    let me = pair.account.user_id;
    let before = pair
        .node
        .svc
        .store()
        .get(&model::USERS, me, ScopeFilter::All, Deleted::Include)
        .await
        .unwrap()
        .unwrap();
    let now = ceneca_domain::clock::HybridClock::physical_now();
    let intruder = Uuid::now_v7();
    let changes = vec![
        hostile(
            "users",
            me,
            ChangeOperation::Update,
            now,
            json!({"password_hash": "$argon2id$forged", "role": "admin"}),
        ),
        hostile(
            "users",
            intruder,
            ChangeOperation::Create,
            now,
            json!({"email": "mallory@evil.test", "password_hash": "$argon2id$forged",
                   "role": "admin", "status": "active", "display_name": "M"}),
        ),
        hostile(
            "sessions",
            Uuid::now_v7(),
            ChangeOperation::Create,
            now,
            json!({"user_id": me}),
        ),
        // A membership giving someone else a role here.
        hostile(
            "workspace_members",
            Uuid::now_v7(),
            ChangeOperation::Create,
            now,
            json!({"workspace_id": Uuid::now_v7(), "user_id": intruder, "role": "admin"}),
        ),
    ];
    let applied = pair.node.svc.apply_upstream(&changes, 0, 0).await.unwrap();
    assert_eq!(applied.failed.len(), 4, "{:?}", applied.failed);
    let after = pair
        .node
        .svc
        .store()
        .get(&model::USERS, me, ScopeFilter::All, Deleted::Include)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.get("password_hash"), after.get("password_hash"));
    assert_eq!(after.get("role").and_then(|v| v.as_str()), Some("user"));
    assert!(!pair.node_has(&model::USERS, intruder).await);
    pair.local().await;
}

#[tokio::test]
async fn regression_changes_stamped_far_ahead_are_refused_and_leave_the_clock_alone() {
    let mut pair = enrolled(services().await, "ada@example.com").await;
    let (workspace, _) =
        workspace_with_thread(&pair.up.svc, &pair.account, json!({"name": "Research"})).await;
    pair.sync_down().await;
    let hour_ahead = ceneca_domain::clock::HybridClock::physical_now()
        + ceneca_domain::clock::HybridClock::from_millis(3_600_000);
    let changes: Vec<Change> = [u64::MAX, i64::MAX as u64 + 1, hour_ahead]
        .into_iter()
        .map(|hlc| {
            hostile(
                "threads",
                Uuid::now_v7(),
                ChangeOperation::Create,
                hlc,
                json!({"workspace_id": workspace, "title": "from the future"}),
            )
        })
        .collect();
    let applied = pair.node.svc.apply_upstream(&changes, 0, 0).await.unwrap();
    assert_eq!(applied.failed.len(), 3, "{:?}", applied.failed);
    let next = pair.node.svc.store().clock().tick();
    assert!(
        next < hour_ahead,
        "the node's clock was moved by a refused stamp"
    );
}

#[tokio::test]
async fn regression_a_member_removed_then_added_back_gets_the_workspace_back() {
    let up = services().await;
    let (owner, _) = sign_up(&up.svc, "ada@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let (workspace, thread) =
        workspace_with_thread(&pair.up.svc, &owner, json!({"name": "Shared"})).await;
    let owner = refresh_caller(&pair.up.svc, &owner).await;
    let bob = pair.account.user_id;
    let add = |role: &'static str| json!({"user_id": bob, "role": role});
    let parent = ParentRef {
        field: "workspace_id",
        id: workspace,
    };
    let member = pair
        .up
        .svc
        .create(
            &owner,
            &model::WORKSPACE_MEMBERS,
            &add("editor"),
            Some(parent),
        )
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::THREADS, thread).await);

    // Bob writes here; the owner removes him before it is pushed.
    let local = pair.local().await;
    pair.node
        .svc
        .create(
            &local,
            &model::THREADS,
            &json!({"workspace_id": workspace, "title": "never pushed"}),
            None,
        )
        .await
        .unwrap();
    pair.up
        .svc
        .delete(&owner, &model::WORKSPACE_MEMBERS, id_of(&member))
        .await
        .unwrap();
    let (failed, lost) = pair.sync_down().await;
    // The membership's delete applies (memberships are not soft-deleted), and the write
    // lost with the workspace is reported.
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(!pair.node_has(&model::WORKSPACES, workspace).await);
    assert!(!pair.node_has(&model::THREADS, thread).await);

    pair.up
        .svc
        .create(
            &owner,
            &model::WORKSPACE_MEMBERS,
            &add("viewer"),
            Some(parent),
        )
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::WORKSPACES, workspace).await);
    assert!(pair.node_has(&model::THREADS, thread).await);
}

#[tokio::test]
async fn regression_losing_an_organization_drops_the_workspaces_it_gave() {
    let up = services().await;
    let (owner, _) = sign_up(&up.svc, "ada@example.com").await;
    let mut pair = enrolled(up, "eve@example.com").await;
    let org = id_of(
        &pair
            .up
            .svc
            .create(
                &owner,
                &model::ORGANIZATIONS,
                &json!({"name": "Acme", "slug": "acme"}),
                None,
            )
            .await
            .unwrap(),
    );
    let owner = refresh_caller(&pair.up.svc, &owner).await;
    let membership = pair
        .up
        .svc
        .create(
            &owner,
            &model::ORGANIZATION_MEMBERS,
            &json!({"user_id": pair.account.user_id, "role": "admin"}),
            Some(ParentRef {
                field: "organization_id",
                id: org,
            }),
        )
        .await
        .unwrap();
    let (workspace, thread) = workspace_with_thread(
        &pair.up.svc,
        &owner,
        json!({"name": "Acme plans", "organization_id": org}),
    )
    .await;
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::THREADS, thread).await);

    pair.up
        .svc
        .delete(&owner, &model::ORGANIZATION_MEMBERS, id_of(&membership))
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!pair.node_has(&model::WORKSPACES, workspace).await);
    assert!(!pair.node_has(&model::THREADS, thread).await);
}

#[tokio::test]
async fn regression_a_node_is_one_accounts_and_its_account_changes_upstream() {
    let pair = enrolled(services().await, "ada@example.com").await;
    let (other, _) = sign_up(&pair.up.svc, "bob@example.com").await;
    let me = pair.up.svc.me(&other).await.unwrap();
    let device = json!({"id": Uuid::now_v7(), "name": "bob's", "platform": "desktop"});
    let err = pair
        .node
        .svc
        .adopt_account(&me, PASSWORD, &device)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("ada@example.com"), "{err}");

    let local = pair.local().await;
    let password = pair
        .node
        .svc
        .change_password(
            &local,
            &serde_json::from_value(
                json!({"current_password": PASSWORD, "new_password": "another long password"}),
            )
            .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(password, ServiceError::UpstreamOnly(_)),
        "{password}"
    );
    let mfa = pair.node.svc.mfa_enroll(&local).await.unwrap_err();
    assert!(matches!(mfa, ServiceError::UpstreamOnly(_)), "{mfa}");
}

#[tokio::test]
async fn a_locked_node_account_cannot_log_in_until_enrolled_again() {
    let pair = enrolled(services().await, "ada@example.com").await;
    pair.local().await;
    pair.node.svc.lock_adopted_account().await.unwrap();
    let refused = pair
        .node
        .svc
        .login(
            &serde_json::from_value(json!({"email": "ada@example.com", "password": PASSWORD}))
                .unwrap(),
            &RequestMeta::default(),
        )
        .await;
    assert!(refused.is_err());
    let me = pair.up.svc.me(&pair.account).await.unwrap();
    let device = json!({"id": pair.device_id, "name": "laptop", "platform": "desktop"});
    pair.node
        .svc
        .adopt_account(&me, PASSWORD, &device)
        .await
        .unwrap();
    pair.local().await;
}

/// An organization of `owner`'s with `user` in it as `role`: (organization, membership,
/// the owner with the roles that gave them).
async fn organization_with(
    svc: &crate::Services,
    owner: &Caller,
    user: Uuid,
    role: &str,
) -> (Uuid, Uuid, Caller) {
    let org = id_of(
        &svc.create(
            owner,
            &model::ORGANIZATIONS,
            &json!({"name": "Acme", "slug": "acme"}),
            None,
        )
        .await
        .unwrap(),
    );
    let owner = refresh_caller(svc, owner).await;
    let membership = id_of(
        &svc.create(
            &owner,
            &model::ORGANIZATION_MEMBERS,
            &json!({"user_id": user, "role": role}),
            Some(ParentRef {
                field: "organization_id",
                id: org,
            }),
        )
        .await
        .unwrap(),
    );
    (org, membership, owner)
}

/// A provider setting of the enrolled account upstream, with this API key.
async fn provider_setting(pair: &Pair, key: &str) -> Uuid {
    id_of(
        &pair
            .up
            .svc
            .create(
                &pair.account,
                &model::AI_PROVIDER_CONFIGS,
                &json!({"provider": "openai", "name": "Mine", "api_key": key}),
                None,
            )
            .await
            .unwrap(),
    )
}

/// The replicated fields of a row as a store holds it (`None`: it has no such row), with
/// whether it is deleted: what two replicas must agree on.
async fn row_state(
    svc: &crate::Services,
    entity: &'static ceneca_domain::Entity,
    id: Uuid,
) -> Option<(Vec<(String, String)>, bool)> {
    let row = svc
        .store()
        .get(entity, id, ScopeFilter::All, Deleted::Include)
        .await
        .unwrap()?;
    let fields = ceneca_domain::sync::replicated_fields(entity)
        .filter(|f| !f.name.ends_with("_key_id") && f.name != "content")
        .map(|f| (f.name.to_owned(), format!("{:?}", row.get(f.name))))
        .collect();
    let deleted = row.get("deleted_at").is_some_and(|v| !v.is_null());
    Some((fields, deleted))
}

/// Edits on the upstream that leave most of the log overwritten: a thread renamed many
/// times, a message edited, a document deleted and restored, another deleted for good.
async fn busy_history(
    svc: &crate::Services,
    owner: &Caller,
    workspace: Uuid,
) -> Vec<(&'static ceneca_domain::Entity, Uuid)> {
    let thread = id_of(
        &svc.create(
            owner,
            &model::THREADS,
            &json!({"workspace_id": workspace, "title": "draft 0"}),
            None,
        )
        .await
        .unwrap(),
    );
    let message = id_of(
        &svc.create(
            owner,
            &model::MESSAGES,
            &json!({"thread_id": thread, "role": "user", "content": "first words"}),
            None,
        )
        .await
        .unwrap(),
    );
    for n in 1..=5 {
        svc.update(
            owner,
            &model::THREADS,
            thread,
            &json!({"title": format!("draft {n}")}),
        )
        .await
        .unwrap();
    }
    svc.update(
        owner,
        &model::MESSAGES,
        message,
        &json!({"content": "better words"}),
    )
    .await
    .unwrap();
    let kept = id_of(
        &svc.create(
            owner,
            &model::DOCUMENTS,
            &json!({"workspace_id": workspace, "title": "kept", "body": "text"}),
            None,
        )
        .await
        .unwrap(),
    );
    svc.delete(owner, &model::DOCUMENTS, kept).await.unwrap();
    svc.restore(owner, &model::DOCUMENTS, kept).await.unwrap();
    svc.update(
        owner,
        &model::DOCUMENTS,
        kept,
        &json!({"title": "kept, renamed"}),
    )
    .await
    .unwrap();
    let binned = id_of(
        &svc.create(
            owner,
            &model::DOCUMENTS,
            &json!({"workspace_id": workspace, "title": "binned", "body": "gone"}),
            None,
        )
        .await
        .unwrap(),
    );
    svc.delete(owner, &model::DOCUMENTS, binned).await.unwrap();
    vec![
        (&model::THREADS, thread),
        (&model::MESSAGES, message),
        (&model::DOCUMENTS, kept),
        (&model::DOCUMENTS, binned),
    ]
}

async fn log_size(svc: &crate::Services) -> usize {
    svc.store()
        .list(
            &model::SYNC_EVENTS,
            ceneca_store::ListQuery::new(ScopeFilter::All, "seq", false, 10_000),
        )
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn compaction_keeps_every_cursor_converging_and_the_snapshot_builds_a_node() {
    let mut behind = enrolled(services().await, "ada@example.com").await;
    let svc = behind.up.svc.clone();
    let owner = behind.account.clone();
    let (workspace, _) = workspace_with_thread(&svc, &owner, json!({"name": "Research"})).await;
    let owner = refresh_caller(&svc, &owner).await;
    let mut rows = busy_history(&svc, &owner, workspace).await;
    // This node stops halfway through the history.
    behind.sync_down().await;
    rows.extend(busy_history(&svc, &owner, workspace).await);

    let before = log_size(&svc).await;
    let compacted = svc
        .compact_change_log(ceneca_domain::clock::now() + std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let after = log_size(&svc).await;
    assert!(compacted.dropped > 0, "{compacted:?}");
    assert_eq!(before - after, compacted.dropped as usize);
    // Compacting again finds nothing more: what stays is needed.
    let again = svc
        .compact_change_log(ceneca_domain::clock::now() + std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.dropped, 0, "{again:?}");

    // A node whose cursor is older than the compaction catches up from it.
    let (failed, _) = behind.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    // A new node starts from the snapshot, in small pages, then pulls from its as_of.
    let mut fresh = another_device(&behind).await;
    let (failed, _) = fresh.snapshot_down_in(3).await;
    assert!(failed.is_empty(), "{failed:?}");
    for (entity, id) in &rows {
        let truth = row_state(&svc, entity, *id).await;
        assert!(truth.is_some(), "{} {id}", entity.table);
        assert_eq!(
            row_state(&behind.node.svc, entity, *id).await,
            truth,
            "behind: {}",
            entity.table
        );
        assert_eq!(
            row_state(&fresh.node.svc, entity, *id).await,
            truth,
            "fresh: {}",
            entity.table
        );
    }

    // A pushed edit older than the last rename still loses to it: the clocks survived.
    let device = refresh(&svc, &behind.device_token).await;
    let (_, thread) = rows[0];
    let mut first = ceneca_store::ListQuery::new(ScopeFilter::All, "seq", false, 1);
    first.equals = vec![("entity_id", ceneca_domain::Value::Id(thread))];
    let first = svc.store().list(&model::SYNC_EVENTS, first).await.unwrap();
    let old = first[0]
        .get("hlc")
        .and_then(ceneca_domain::Value::as_int)
        .unwrap();
    let answer = svc
        .push(
            &device,
            &serde_json::from_value(json!({
                "device_id": behind.device_id,
                "changes": [{
                    "change_id": Uuid::now_v7(),
                    "entity": "threads",
                    "entity_id": thread,
                    "operation": "update",
                    "hlc": (old + 1).to_string(),
                    "values": {"title": "stale rename"},
                }],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_ne!(
        answer.results[0].outcome,
        ceneca_wire::sync::PushOutcome::Applied
    );
    assert_eq!(
        row_state(&svc, &model::THREADS, thread).await,
        row_state(&behind.node.svc, &model::THREADS, thread).await
    );
}

#[tokio::test]
async fn a_snapshot_drops_what_the_user_lost_behind_it() {
    let up = services().await;
    let (owner, _) = sign_up(&up.svc, "ada@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let (workspace, thread) =
        workspace_with_thread(&pair.up.svc, &owner, json!({"name": "Shared"})).await;
    let owner = refresh_caller(&pair.up.svc, &owner).await;
    let member = pair
        .up
        .svc
        .create(
            &owner,
            &model::WORKSPACE_MEMBERS,
            &json!({"user_id": pair.account.user_id, "role": "editor"}),
            Some(ParentRef {
                field: "workspace_id",
                id: workspace,
            }),
        )
        .await
        .unwrap();
    let (mine, my_thread) =
        workspace_with_thread(&pair.up.svc, &pair.account, json!({"name": "Mine"})).await;
    pair.sync_down().await;
    assert!(pair.node_has(&model::THREADS, thread).await);
    // Bob is removed; the node hears of it only through a snapshot (its cursor was lost,
    // or the upstream restored), which no longer shows the workspace.
    pair.up
        .svc
        .delete(&owner, &model::WORKSPACE_MEMBERS, id_of(&member))
        .await
        .unwrap();
    let (failed, lost) = pair.snapshot_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(lost.is_empty(), "nothing was pending: {lost:?}");
    assert!(!pair.node_has(&model::WORKSPACES, workspace).await);
    assert!(!pair.node_has(&model::THREADS, thread).await);
    assert!(pair.node_has(&model::WORKSPACES, mine).await);
    assert!(pair.node_has(&model::THREADS, my_thread).await);
    // And the feed goes on from the snapshot's position.
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!pair.node_has(&model::THREADS, thread).await);
}

#[tokio::test]
async fn a_provider_key_reaches_a_node_sealed_under_its_own_ring_and_only_over_loopback() {
    let pair = enrolled(services().await, "ada@example.com").await;
    let key = "sk-live-abcdefghijklmnop1234";
    let config = provider_setting(&pair, key).await;
    let mut device = refresh(&pair.up.svc, &pair.device_token).await;
    // Over another address without TLS the key does not travel (`null`: not for you).
    device.source_ip = Some("10.1.2.3".into());
    let page = pair.up.svc.pull(&device, 0, 1000).await.unwrap();
    let change = page
        .changes
        .iter()
        .find(|c| c.entity_id == config)
        .expect("the config travels");
    assert_eq!(
        change.values.get("api_key"),
        Some(&Json::Null),
        "{change:?}"
    );
    // Over loopback it does, and the node seals it under its own ring.
    device.source_ip = Some("127.0.0.1".into());
    let page = pair.up.svc.pull(&device, 0, 1000).await.unwrap();
    let applied = pair
        .node
        .svc
        .apply_upstream(&page.changes, 0, 0)
        .await
        .unwrap();
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    let on_node = pair
        .node
        .svc
        .reveal_secret(&model::AI_PROVIDER_CONFIGS, config, "api_key")
        .await
        .unwrap();
    assert_eq!(on_node.as_deref(), Some(key));
    let sealed = |svc: &crate::Services| {
        let svc = svc.clone();
        async move {
            svc.store()
                .get(
                    &model::AI_PROVIDER_CONFIGS,
                    config,
                    ScopeFilter::All,
                    Deleted::Include,
                )
                .await
                .unwrap()
                .unwrap()
                .get("api_key_ciphertext")
                .cloned()
        }
    };
    assert_ne!(sealed(&pair.up.svc).await, sealed(&pair.node.svc).await);
    // The node shows the hint, never the key, and its user cannot change it here.
    let local = pair.local().await;
    let shown = pair
        .node
        .svc
        .get(
            &local,
            &model::AI_PROVIDER_CONFIGS,
            config,
            Deleted::Exclude,
        )
        .await
        .unwrap();
    assert_eq!(shown["api_key_hint"], "…1234");
    assert!(!shown.to_string().contains(key));
    let refused = pair
        .node
        .svc
        .update(
            &local,
            &model::AI_PROVIDER_CONFIGS,
            config,
            &json!({"api_key": "sk-changed-here-00000000"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ServiceError::UpstreamOnly(_)),
        "{refused:?}"
    );
}

/// From the attack: a workspace in the upstream's bin is not in a snapshot (no one reads
/// it there), and the node dropped it, so its restore later found nothing to restore.
#[tokio::test]
async fn regression_a_snapshot_keeps_a_workspace_in_the_bin_and_its_restore_brings_it_back() {
    let mut pair = enrolled(services().await, "ada@example.com").await;
    let (workspace, thread) =
        workspace_with_thread(&pair.up.svc, &pair.account, json!({"name": "Binned"})).await;
    let owner = refresh_caller(&pair.up.svc, &pair.account).await;
    pair.sync_down().await;
    pair.up
        .svc
        .delete(&owner, &model::WORKSPACES, workspace)
        .await
        .unwrap();
    let (failed, lost) = pair.snapshot_down().await;
    assert!(failed.is_empty() && lost.is_empty(), "{failed:?} {lost:?}");
    assert!(pair.node_has(&model::WORKSPACES, workspace).await);
    assert!(pair.node_has(&model::THREADS, thread).await);

    let owner = refresh_caller(&pair.up.svc, &owner).await;
    pair.up
        .svc
        .restore(&owner, &model::WORKSPACES, workspace)
        .await
        .unwrap();
    let owner = refresh_caller(&pair.up.svc, &owner).await;
    let message = id_of(
        &pair
            .up
            .svc
            .create(
                &owner,
                &model::MESSAGES,
                &json!({"thread_id": thread, "role": "user", "content": "back again"}),
                None,
            )
            .await
            .unwrap(),
    );
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::MESSAGES, message).await);
}

/// From the attack: a key set when its provider setting was created never came with a
/// snapshot (the creation did not count as setting it).
#[tokio::test]
async fn regression_a_snapshot_brings_a_key_set_at_creation() {
    let pair = enrolled(services().await, "ada@example.com").await;
    let key = "sk-live-abcdefghijklmnop1234";
    let config = provider_setting(&pair, key).await;
    let mut device = refresh(&pair.up.svc, &pair.device_token).await;
    device.source_ip = Some("::1".into());
    let page = pair.up.svc.snapshot(&device, None, 0, 1000).await.unwrap();
    let applied = pair
        .node
        .svc
        .apply_upstream(&page.changes, i64::MAX, 0)
        .await
        .unwrap();
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    let on_node = pair
        .node
        .svc
        .reveal_secret(&model::AI_PROVIDER_CONFIGS, config, "api_key")
        .await
        .unwrap();
    assert_eq!(on_node.as_deref(), Some(key));
}

/// From the attack: compaction read only its first page (a list answers one row more
/// than asked, which it took for "no more"), so droppable changes after the oldest
/// thousand were never looked at.
#[tokio::test]
async fn regression_compaction_reads_past_its_first_page() {
    let pair = enrolled(services().await, "ada@example.com").await;
    let svc = pair.up.svc.clone();
    let (_, thread) = workspace_with_thread(&svc, &pair.account, json!({"name": "Busy"})).await;
    let owner = refresh_caller(&svc, &pair.account).await;
    let rename = |n: usize| {
        let (svc, owner) = (svc.clone(), owner.clone());
        async move {
            svc.update(
                &owner,
                &model::THREADS,
                thread,
                &json!({"title": format!("t{n}")}),
            )
            .await
            .unwrap();
        }
    };
    for n in 0..5 {
        rename(n).await;
    }
    let items: Vec<Json> = (0..1_100)
        .map(|i| json!({"role": "user", "content": format!("m{i}")}))
        .collect();
    svc.create_many(
        &owner,
        &model::MESSAGES,
        ParentRef {
            field: "thread_id",
            id: thread,
        },
        &json!({ "items": items }),
    )
    .await
    .unwrap();
    for n in 5..10 {
        rename(n).await;
    }
    let compacted = svc
        .compact_change_log(ceneca_domain::clock::now() + std::time::Duration::from_secs(60))
        .await
        .unwrap();
    // Every rename but the last is overwritten (each message's creation also bumped the
    // thread's counters, which are not changes of their own).
    assert_eq!(compacted.dropped, 9, "{compacted:?}");
}

/// From the second attack: a stream opened while its user administered an organization
/// carried the organization's next key after the user was made a plain member; and a key
/// replaced or cleared upstream stayed on the node.
#[tokio::test]
async fn regression_a_demoted_device_gets_no_new_key_and_its_node_drops_the_old_one() {
    let up = services().await;
    let (alice, _) = sign_up(&up.svc, "alice@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let svc = pair.up.svc.clone();
    let (org, membership, alice) =
        organization_with(&svc, &alice, pair.account.user_id, "admin").await;
    let config = id_of(
        &svc.create(
            &alice,
            &model::AI_PROVIDER_CONFIGS,
            &json!({"organization_id": org, "provider": "openai", "name": "Shared",
                    "api_key": "sk-live-first-key-000000001111"}),
            None,
        )
        .await
        .unwrap(),
    );
    // Bob's device, as a stream holds it: its access as it was when it connected.
    let mut device = refresh(&svc, &pair.device_token).await;
    device.source_ip = Some("127.0.0.1".into());
    let page = svc.pull(&device, 0, 1000).await.unwrap();
    let applied = pair
        .node
        .svc
        .apply_upstream(&page.changes, 0, 0)
        .await
        .unwrap();
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    let held = |svc: crate::Services| async move {
        svc.reveal_secret(&model::AI_PROVIDER_CONFIGS, config, "api_key")
            .await
            .unwrap()
    };
    assert_eq!(
        held(pair.node.svc.clone()).await.as_deref(),
        Some("sk-live-first-key-000000001111")
    );
    pair.cursor = page.cursor.parse().unwrap();

    svc.update(
        &alice,
        &model::ORGANIZATION_MEMBERS,
        membership,
        &json!({"role": "member"}),
    )
    .await
    .unwrap();
    svc.update(
        &alice,
        &model::AI_PROVIDER_CONFIGS,
        config,
        &json!({"api_key": "sk-live-second-key-00000002222"}),
    )
    .await
    .unwrap();
    let page = svc.pull(&device, pair.cursor, 1000).await.unwrap();
    let text = serde_json::to_string(&page.changes).unwrap();
    assert!(
        !text.contains("second-key"),
        "a member's device got the key: {text}"
    );
    let applied = pair
        .node
        .svc
        .apply_upstream(&page.changes, 0, 0)
        .await
        .unwrap();
    assert!(applied.failed.is_empty(), "{:?}", applied.failed);
    assert_eq!(
        held(pair.node.svc.clone()).await,
        None,
        "the old key stayed"
    );
}

/// From the second attack: after a snapshot, a plain member of an organization kept one
/// of its workspaces they had been removed from (any organization membership spared it;
/// only owners and administrators read all of an organization's workspaces).
#[tokio::test]
async fn regression_a_plain_organization_member_removed_from_its_workspace_loses_it() {
    let up = services().await;
    let (alice, _) = sign_up(&up.svc, "alice@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let svc = pair.up.svc.clone();
    let bob = pair.account.user_id;
    let (org, _, alice) = organization_with(&svc, &alice, bob, "member").await;
    let (workspace, thread) = workspace_with_thread(
        &svc,
        &alice,
        json!({"name": "Team", "organization_id": org}),
    )
    .await;
    let alice = refresh_caller(&svc, &alice).await;
    let member = svc
        .create(
            &alice,
            &model::WORKSPACE_MEMBERS,
            &json!({"user_id": bob, "role": "editor"}),
            Some(ParentRef {
                field: "workspace_id",
                id: workspace,
            }),
        )
        .await
        .unwrap();
    pair.sync_down().await;
    assert!(pair.node_has(&model::THREADS, thread).await);
    svc.delete(&alice, &model::WORKSPACE_MEMBERS, id_of(&member))
        .await
        .unwrap();
    let (failed, _) = pair.snapshot_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!pair.node_has(&model::WORKSPACES, workspace).await);
    assert!(!pair.node_has(&model::THREADS, thread).await);
}

/// From session 8's left-out list: an organization administrator made a plain member kept,
/// on their node, every workspace of the organization they had read only as administrator
/// (a demotion logged no revocation). Made administrator again, the node gets them back.
#[tokio::test]
async fn regression_a_demoted_administrator_s_node_drops_what_only_the_role_opened() {
    let up = services().await;
    let (alice, _) = sign_up(&up.svc, "alice@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let svc = pair.up.svc.clone();
    let bob = pair.account.user_id;
    let (org, membership, alice) = organization_with(&svc, &alice, bob, "admin").await;
    let (board, board_thread) = workspace_with_thread(
        &svc,
        &alice,
        json!({"name": "Board", "organization_id": org}),
    )
    .await;
    let (team, team_thread) = workspace_with_thread(
        &svc,
        &alice,
        json!({"name": "Team", "organization_id": org}),
    )
    .await;
    let alice = refresh_caller(&svc, &alice).await;
    svc.create(
        &alice,
        &model::WORKSPACE_MEMBERS,
        &json!({"user_id": bob, "role": "editor"}),
        Some(ParentRef {
            field: "workspace_id",
            id: team,
        }),
    )
    .await
    .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::THREADS, board_thread).await);

    svc.update(
        &alice,
        &model::ORGANIZATION_MEMBERS,
        membership,
        &json!({"role": "member"}),
    )
    .await
    .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(!pair.node_has(&model::WORKSPACES, board).await, "kept");
    assert!(!pair.node_has(&model::THREADS, board_thread).await, "kept");
    // What the user still belongs to stays: the organization, the membership (now a
    // member's), and the workspace they are a member of in their own right.
    assert!(pair.node_has(&model::ORGANIZATIONS, org).await);
    let kept = pair
        .node
        .svc
        .store()
        .get(
            &model::ORGANIZATION_MEMBERS,
            membership,
            ScopeFilter::All,
            Deleted::Exclude,
        )
        .await
        .unwrap()
        .expect("the membership was dropped with the role");
    assert_eq!(kept.get("role").and_then(Value::as_str), Some("member"));
    assert!(pair.node_has(&model::THREADS, team_thread).await);

    svc.update(
        &alice,
        &model::ORGANIZATION_MEMBERS,
        membership,
        &json!({"role": "admin"}),
    )
    .await
    .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        pair.node_has(&model::THREADS, board_thread).await,
        "made administrator again, the node did not get the workspace back"
    );
}

/// From session 8's left-out list: a workspace moved to the bin upstream stayed live on
/// its members' nodes (reads leave trashed workspaces out, so their trashing was not in
/// the feed). The node now follows the bin both ways.
#[tokio::test]
async fn regression_a_workspace_binned_upstream_goes_to_the_bin_on_its_members_nodes() {
    let up = services().await;
    let (alice, _) = sign_up(&up.svc, "alice@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let svc = pair.up.svc.clone();
    let (workspace, thread) = workspace_with_thread(&svc, &alice, json!({"name": "Shared"})).await;
    let alice = refresh_caller(&svc, &alice).await;
    svc.create(
        &alice,
        &model::WORKSPACE_MEMBERS,
        &json!({"user_id": pair.account.user_id, "role": "editor"}),
        Some(ParentRef {
            field: "workspace_id",
            id: workspace,
        }),
    )
    .await
    .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    let live = |pair: &Pair, entity: &'static ceneca_domain::Entity, id: Uuid| {
        let store = pair.node.svc.store().clone();
        async move {
            store
                .get(entity, id, ScopeFilter::All, Deleted::Exclude)
                .await
                .unwrap()
                .is_some()
        }
    };
    assert!(live(&pair, &model::THREADS, thread).await);

    svc.delete(&alice, &model::WORKSPACES, workspace)
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        !live(&pair, &model::WORKSPACES, workspace).await,
        "still live"
    );
    assert!(
        !live(&pair, &model::THREADS, thread).await,
        "its thread still live"
    );
    assert!(
        pair.node_has(&model::WORKSPACES, workspace).await,
        "not in the bin"
    );

    let alice = refresh_caller(&svc, &alice).await;
    svc.restore(&alice, &model::WORKSPACES, workspace)
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(live(&pair, &model::WORKSPACES, workspace).await);
    assert!(live(&pair, &model::THREADS, thread).await);
}

/// Purged upstream (issue 14): a member's node deletes its copy of a purged thread with
/// its messages and their history here, and drops a purged workspace; a row not purged
/// stays.
#[tokio::test]
async fn rows_purged_upstream_are_deleted_on_their_members_nodes() {
    let up = services().await;
    let (alice, _) = sign_up(&up.svc, "alice@example.com").await;
    let mut pair = enrolled(up, "bob@example.com").await;
    let svc = pair.up.svc.clone();
    let (workspace, thread) = workspace_with_thread(&svc, &alice, json!({"name": "Shared"})).await;
    let (other_workspace, other_thread) =
        workspace_with_thread(&svc, &alice, json!({"name": "Also shared"})).await;
    let alice = refresh_caller(&svc, &alice).await;
    for place in [workspace, other_workspace] {
        svc.create(
            &alice,
            &model::WORKSPACE_MEMBERS,
            &json!({"user_id": pair.account.user_id, "role": "editor"}),
            Some(ParentRef {
                field: "workspace_id",
                id: place,
            }),
        )
        .await
        .unwrap();
    }
    let alice = refresh_caller(&svc, &alice).await;
    let kept = svc
        .create(
            &alice,
            &model::THREADS,
            &json!({"workspace_id": workspace, "title": "kept"}),
            None,
        )
        .await
        .unwrap();
    let message = svc
        .create(
            &alice,
            &model::MESSAGES,
            &json!({"role": "user", "content": "going"}),
            Some(ParentRef {
                field: "thread_id",
                id: thread,
            }),
        )
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::MESSAGES, id_of(&message)).await);
    assert!(pair.node_has(&model::THREADS, other_thread).await);

    svc.delete(&alice, &model::THREADS, thread).await.unwrap();
    svc.delete(&alice, &model::WORKSPACES, other_workspace)
        .await
        .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(pair.node_has(&model::THREADS, thread).await, "in the bin");

    // Purged upstream (as maintenance does, past the rule).
    let later = ceneca_store::PurgeRule::InBinSince(
        ceneca_domain::clock::now() + time::Duration::seconds(1),
    );
    let mut report = ceneca_wire::maintenance::MaintenanceReport::default();
    svc.purge_rows(&model::THREADS, vec![thread], later, None, &mut report)
        .await
        .unwrap();
    svc.purge_rows(
        &model::WORKSPACES,
        vec![other_workspace],
        later,
        None,
        &mut report,
    )
    .await
    .unwrap();
    let (failed, _) = pair.sync_down().await;
    assert!(failed.is_empty(), "{failed:?}");
    for (entity, id) in [
        (&model::THREADS, thread),
        (&model::MESSAGES, id_of(&message)),
        (&model::WORKSPACES, other_workspace),
        (&model::THREADS, other_thread),
    ] {
        assert!(
            !pair.node_has(entity, id).await,
            "{} {id} kept",
            entity.name
        );
    }
    // Its history here went with it: no change of the thread or its message is left.
    let history = pair
        .node
        .svc
        .store()
        .list(
            &model::SYNC_EVENTS,
            ceneca_store::ListQuery::new(
                ScopeFilter::AnyOf(vec![("entity_id", vec![thread, id_of(&message)])]),
                "seq",
                false,
                100,
            ),
        )
        .await
        .unwrap();
    let operations: Vec<&str> = history
        .iter()
        .filter_map(|e| e.get("operation").and_then(Value::as_str))
        .collect();
    assert_eq!(
        operations,
        ["purge"],
        "only the thread's purge is left here"
    );
    // What was not purged stays, live.
    assert!(pair.node_has(&model::THREADS, id_of(&kept)).await);
    assert!(pair.node_has(&model::WORKSPACES, workspace).await);
}

/// An embedding upserted upstream, then replaced, reaches a node with the very numbers
/// sent: the upstream's log keeps the vector as bytes and the feed shows them as numbers,
/// which the node stores as bytes again.
#[tokio::test]
async fn an_embedding_and_its_replacement_reach_the_node_bit_for_bit() {
    use ceneca_wire::vectors::{PointInput, Points};
    let mut pair = enrolled(
        crate::testing::services_with_vectors(4).await,
        "ada@example.com",
    )
    .await;
    let (workspace, thread) =
        workspace_with_thread(&pair.up.svc, &pair.account, json!({"name": "Research"})).await;
    let owner = refresh_caller(&pair.up.svc, &pair.account).await;
    let message = id_of(
        &pair
            .up
            .svc
            .create(
                &owner,
                &model::MESSAGES,
                &json!({"thread_id": thread, "role": "user", "content": "hello"}),
                None,
            )
            .await
            .unwrap(),
    );
    let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    for vector in [
        [0.1f32, -1.0 / 3.0, 2.5e-8, 7.0],
        [1.0e-3, 0.3, -0.7, 1.0 / 9.0],
    ] {
        let point = PointInput::from_json(json!({
            "source_id": message, "workspace_id": workspace, "vector": vector,
        }));
        let written = pair
            .up
            .svc
            .upsert_vectors(&owner, "messages", &Points::One(point), false)
            .await
            .unwrap();
        let id = written.ids.unwrap()[0];
        let (failed, _) = pair.sync_down().await;
        assert!(failed.is_empty(), "{failed:?}");
        let row = pair
            .node
            .svc
            .store()
            .get(
                &model::EMBEDDING_RECORDS,
                id,
                ScopeFilter::All,
                Deleted::Include,
            )
            .await
            .unwrap()
            .expect("the embedding reached the node");
        assert_eq!(row.get("vector"), Some(&Value::Bytes(bytes(&vector))));
    }
}
