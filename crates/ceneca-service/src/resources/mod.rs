//! Create, read, list, update, delete and restore for every entity, driven by the entity
//! model. The order of checks is the same for all of them:
//!
//! 1. validate the input against the model (422);
//! 2. find the parent the row hangs under (a message's thread) inside the caller's scope
//!    (404), and inherit its workspace;
//! 3. apply the entity's own rules ([`crate::rules`]);
//! 4. authorize against the caller's roles (403, or 404 when the owner is not even
//!    visible, so other tenants' ids reveal nothing);
//! 5. check that every other referenced row exists and is visible to the caller, in the
//!    same workspace (422), so no reference can cross a tenant boundary;
//! 6. write through the one write path (`Store::apply`), with the scope filter in SQL.
//!
//! The use cases are split by operation: `create.rs` (create, create_many), `read.rs`
//! (get, list), `update.rs` (update), `delete.rs` (delete, restore), and `authorize.rs`
//! (steps 2, 4 and 5, and the answer to a write that matched nothing).

mod authorize;
mod create;
mod delete;
mod read;
mod update;

use ceneca_domain::Entity;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::error::{Result, ServiceError};

/// The parent named by a nested route (`/threads/{id}/messages` → `thread_id = id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentRef {
    pub field: &'static str,
    pub id: Uuid,
}

/// What happened on delete: soft deletes answer with the row (it can be restored).
#[derive(Debug)]
pub enum Deletion {
    Soft(Json),
    Hard,
}

pub(super) fn object(body: &Json) -> Result<&Map<String, Json>> {
    body.as_object()
        .ok_or_else(|| ServiceError::invalid("body", "expected a JSON object"))
}

/// The audit action name of an operation on an entity (`threads.create`).
pub(super) fn action(entity: &Entity, operation: &str) -> String {
    format!("{}.{operation}", entity.table)
}

#[cfg(test)]
mod tests {
    use ceneca_domain::model;
    use ceneca_store::Deleted;
    use serde_json::json;

    use super::{Deletion, ParentRef};
    use crate::ListParams;
    use crate::error::ServiceError;
    use crate::testing::{id_of, refresh, services, sign_up};

    #[tokio::test]
    async fn a_row_is_created_read_listed_changed_deleted_and_restored() {
        let t = services().await;
        let svc = &t.svc;
        let (ann, token) = sign_up(svc, "ann@example.com").await;
        let ws = svc
            .create(&ann, &model::WORKSPACES, &json!({"name": "Lab"}), None)
            .await
            .unwrap();
        let ann = refresh(svc, &token).await;
        let thread = svc
            .create(
                &ann,
                &model::THREADS,
                &json!({"workspace_id": ws["id"], "title": "Plans"}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(thread["created_by"], json!(ann.user_id.to_string()));
        let under = ParentRef {
            field: "thread_id",
            id: id_of(&thread),
        };
        let message = svc
            .create(
                &ann,
                &model::MESSAGES,
                &json!({"role": "user", "content": "hello"}),
                Some(under),
            )
            .await
            .unwrap();
        // The message inherits its thread's workspace.
        assert_eq!(message["workspace_id"], ws["id"]);
        let many = svc
            .create_many(
                &ann,
                &model::MESSAGES,
                under,
                &json!({"items": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "bye"}]}),
            )
            .await
            .unwrap();
        assert_eq!(many.len(), 2);

        let page = svc
            .list(&ann, &model::MESSAGES, &ListParams::default(), Some(under))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 3);
        let id = id_of(&message);
        let changed = svc
            .update(
                &ann,
                &model::MESSAGES,
                id,
                &json!({"content": "hello again"}),
            )
            .await
            .unwrap();
        assert_eq!(changed["content"], "hello again");
        assert!(matches!(
            svc.delete(&ann, &model::MESSAGES, id).await.unwrap(),
            Deletion::Soft(_)
        ));
        assert!(matches!(
            svc.get(&ann, &model::MESSAGES, id, Deleted::Exclude).await,
            Err(ServiceError::NotFound(_))
        ));
        let restored = svc.restore(&ann, &model::MESSAGES, id).await.unwrap();
        assert_eq!(restored["content"], "hello again");
        let read = svc
            .get(&ann, &model::MESSAGES, id, Deleted::Exclude)
            .await
            .unwrap();
        assert_eq!(read["id"], message["id"]);
    }

    #[tokio::test]
    async fn another_tenants_rows_are_not_found_and_cannot_be_referenced() {
        let t = services().await;
        let svc = &t.svc;
        let (ann, ann_token) = sign_up(svc, "ann@example.com").await;
        let (bob, _) = sign_up(svc, "bob@example.com").await;
        let ws = svc
            .create(&ann, &model::WORKSPACES, &json!({"name": "Ann's"}), None)
            .await
            .unwrap();
        let ann = refresh(svc, &ann_token).await;
        let thread = svc
            .create(
                &ann,
                &model::THREADS,
                &json!({"workspace_id": ws["id"], "title": "Private"}),
                None,
            )
            .await
            .unwrap();
        let id = id_of(&thread);
        assert!(matches!(
            svc.get(&bob, &model::THREADS, id, Deleted::Exclude).await,
            Err(ServiceError::NotFound(_))
        ));
        assert!(matches!(
            svc.update(&bob, &model::THREADS, id, &json!({"title": "Mine"}))
                .await,
            Err(ServiceError::NotFound(_))
        ));
        assert!(matches!(
            svc.delete(&bob, &model::THREADS, id).await,
            Err(ServiceError::NotFound(_))
        ));
        // Bob's own workspace cannot hold a thread in Ann's project or workspace.
        assert!(matches!(
            svc.create(
                &bob,
                &model::THREADS,
                &json!({"workspace_id": ws["id"], "title": "Intruder"}),
                None
            )
            .await,
            Err(ServiceError::NotFound(_))
        ));
    }
}
