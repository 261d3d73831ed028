//! Which entities and fields travel between replicas.

use crate::model;
use crate::schema::{Entity, Field, Kind, Output, Tenancy};

/// Whether a device may push changes to rows of `entity`: workspace content only. Who has
/// access (members, permission rules), accounts, organizations and workspaces themselves
/// change on the upstream, online, and reach devices through the feed; a device working
/// offline writes content, and the upstream checks each change as an API write.
pub fn pushable(entity: &Entity) -> bool {
    entity.changelog
        && entity.api.create
        && matches!(entity.tenancy, Tenancy::Workspace { .. })
        && !std::ptr::eq(entity, &model::WORKSPACE_MEMBERS)
}

/// The entity a change names, by table name, among those written to the change log.
pub fn entity_named(table: &str) -> Option<&'static Entity> {
    model::by_table(table).filter(|e| e.changelog)
}

/// The entity a change-log row names (the log keeps an entity's singular name,
/// `thread`; the protocol names it by table, `threads`).
pub fn entity_logged_as(name: &str) -> Option<&'static Entity> {
    model::ALL
        .iter()
        .copied()
        .find(|e| e.name == name && e.changelog)
}

/// Whether `field` of `entity` travels in a change's values. Left out, because each
/// replica keeps its own: the id (the change names the row), `updated_at`, the deletion
/// (a register of its own, carried by delete and restore changes), the version counter,
/// counters kept from other rows (recomputed, never merged as values), what a node keeps
/// of its own (how a body is stored, an image's thumbnail), and secrets with
/// what derives from them (their ciphertext is bound to this node's key ring). Hidden
/// columns stay home too, except the key id of sealed content, which a replica needs to
/// open the sealed text the change carries.
pub fn replicated(entity: &Entity, field: &Field) -> bool {
    let name = field.name;
    if matches!(name, "id" | "updated_at" | "deleted_at") || entity.version_field == Some(name) {
        return false;
    }
    if is_counter_column(entity, name) || derives_from_secret(entity, name) {
        return false;
    }
    if crate::storage::node_local(entity, name) {
        return false;
    }
    if field.output == Output::Never {
        return name.strip_suffix("_key_id").is_some_and(|base| {
            entity
                .fields
                .iter()
                .any(|f| f.name == base && f.stored && f.kind != Kind::Secret)
        });
    }
    true
}

/// The secrets of `entity` (write-only fields with no column of their own) and the column
/// holding each one's ciphertext, which is also the register the merge keeps for it. A
/// secret travels apart from the other values: never kept in the change log, read from
/// its row by the feed for a device that may change the row, over a secure connection,
/// and sealed again under the receiving node's key ring (`service/sync`).
pub fn secrets(entity: &Entity) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
    entity
        .fields
        .iter()
        .filter(|f| f.kind == Kind::Secret)
        .filter_map(move |secret| {
            let column = entity
                .columns()
                .find(|c| c.name.strip_prefix(secret.name) == Some("_ciphertext"))?;
            Some((secret.name, column.name))
        })
}

/// The fields of `entity` that travel, in model order.
pub fn replicated_fields(entity: &Entity) -> impl Iterator<Item = &Field> {
    entity.columns().filter(move |f| replicated(entity, f))
}

fn is_counter_column(entity: &Entity, name: &str) -> bool {
    model::ALL.iter().any(|child| {
        child.counter.is_some_and(|c| {
            c.table == entity.table && (c.count_column == name || c.touch_column == Some(name))
        })
    })
}

fn derives_from_secret(entity: &Entity, name: &str) -> bool {
    entity.fields.iter().any(|f| {
        f.kind == Kind::Secret
            && name.len() > f.name.len()
            && name.starts_with(f.name)
            && name.as_bytes()[f.name.len()] == b'_'
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(entity: &Entity) -> Vec<&'static str> {
        replicated_fields(entity).map(|f| f.name).collect()
    }

    #[test]
    fn content_travels_and_each_replica_keeps_its_own_bookkeeping() {
        let threads = names(&model::THREADS);
        assert!(threads.contains(&"title") && threads.contains(&"created_at"));
        for own in [
            "id",
            "updated_at",
            "deleted_at",
            "message_count",
            "last_message_at",
        ] {
            assert!(!threads.contains(&own), "{own} must not travel");
        }
        let messages = names(&model::MESSAGES);
        assert!(messages.contains(&"content") && messages.contains(&"content_key_id"));
    }

    #[test]
    fn secrets_and_hidden_columns_never_travel() {
        let configs = names(&model::AI_PROVIDER_CONFIGS);
        assert!(
            configs.iter().all(|n| !n.starts_with("api_key")),
            "{configs:?}"
        );
        let users = names(&model::USERS);
        assert!(!users.contains(&"password_hash"), "{users:?}");
    }

    #[test]
    fn a_secret_travels_as_its_ciphertext_column() {
        let configs: Vec<_> = secrets(&model::AI_PROVIDER_CONFIGS).collect();
        assert_eq!(configs, vec![("api_key", "api_key_ciphertext")]);
        assert_eq!(secrets(&model::THREADS).count(), 0);
    }

    #[test]
    fn devices_push_content_only() {
        assert!(pushable(&model::MESSAGES) && pushable(&model::DOCUMENTS));
        for governance in [
            &model::WORKSPACE_MEMBERS,
            &model::WORKSPACES,
            &model::PERMISSION_SETS,
            &model::USERS,
            &model::SYNC_EVENTS,
            &model::AUDIT_LOG,
        ] {
            assert!(!pushable(governance), "{}", governance.table);
        }
    }
}
