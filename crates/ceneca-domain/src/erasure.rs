//! What an erase of an account (right to be forgotten) does to each reference to it, read
//! off the model so a reference added later is decided the day it is declared.
//!
//! Most rows that name the account are the account's (its memberships, devices, settings,
//! AI records, sessions): they go with it, by the schema's cascade, with their history in
//! the change log. A few references stay, without the account behind them, because the
//! row is someone else's too: the author of a message or thread in a shared workspace
//! (unless the organization asks for it to be deleted), who invited a member, who made a
//! change. An audit entry keeps its actor as a pseudonymous id (its personal fields are
//! erased, see `audit`). Who owns an organization or a workspace is handed over first.

use crate::model;
use crate::schema::{Entity, Kind};

/// What an erase does to a row that names the account in one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnErase {
    /// The row goes with the account (the foreign key cascades), and its history.
    Goes,
    /// The row stays; the reference is set to `NULL` by the schema (an author, who
    /// invited someone, who made a change).
    Unlinked,
    /// The row stays and keeps the id, as a pseudonym (the audit trail's actor).
    Pseudonymised,
    /// The row is history about the account alone (a change logged for its devices): it
    /// goes with the account's history, deleted by the erase (no foreign key).
    History,
    /// The row passes to someone else first (another owner of the organization; nobody,
    /// for a workspace of an organization), or goes whole when it was the account's alone.
    HandedOver,
}

/// What an erase does to the rows of `entity` whose `column` names the account.
pub fn on_erase(entity: &Entity, column: &str) -> OnErase {
    match (entity.table, column) {
        ("organizations" | "workspaces", "owner_user_id") => OnErase::HandedOver,
        ("audit_log", "actor_id") => OnErase::Pseudonymised,
        ("sync_events", "scope_user_id") => OnErase::History,
        ("threads", "created_by") | ("messages", "author_id") | ("sync_events", "user_id") => {
            OnErase::Unlinked
        }
        (_, "invited_by") => OnErase::Unlinked,
        _ => OnErase::Goes,
    }
}

/// Every `(entity, column)` that references `users`, with what an erase does to it.
pub fn references() -> impl Iterator<Item = (&'static Entity, &'static str, OnErase)> {
    model::ALL
        .iter()
        .copied()
        .chain([&model::SYNC_CONFLICTS])
        .flat_map(|entity| {
            entity
                .columns()
                .filter(|f| f.kind == Kind::Ref(model::USERS.table))
                .map(move |f| (entity, f.name, on_erase(entity, f.name)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_to_an_account_is_decided() {
        let all: Vec<_> = references().collect();
        assert!(all.len() >= 20, "{}", all.len());
        let of = |t: &str, c: &str| {
            all.iter()
                .find(|(e, col, _)| e.table == t && *col == c)
                .map(|r| r.2)
        };
        assert_eq!(of("sessions", "user_id"), Some(OnErase::Goes));
        assert_eq!(of("ai_interactions", "user_id"), Some(OnErase::Goes));
        assert_eq!(of("sync_conflicts", "user_id"), Some(OnErase::Goes));
        assert_eq!(of("messages", "author_id"), Some(OnErase::Unlinked));
        assert_eq!(of("audit_log", "actor_id"), Some(OnErase::Pseudonymised));
        assert_eq!(
            of("organizations", "owner_user_id"),
            Some(OnErase::HandedOver)
        );
        assert_eq!(of("sync_events", "scope_user_id"), Some(OnErase::History));
    }
}
