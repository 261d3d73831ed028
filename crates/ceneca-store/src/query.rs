//! Read queries: scoped lists with equality filters, time ranges and keyset pagination.

use ceneca_domain::Value;
use ceneca_domain::scope::ScopeFilter;
use time::OffsetDateTime;
use uuid::Uuid;

pub use ceneca_domain::Deleted;

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: ScopeFilter,
    /// `column = value` conditions (columns come from the entity model, never from clients).
    pub equals: Vec<(&'static str, Value)>,
    /// Only these rows (`id IN ids`), when set: checking many ids in one query.
    pub ids: Option<Vec<Uuid>>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    pub deleted: Deleted,
    pub sort: &'static str,
    pub descending: bool,
    /// Keyset position: rows strictly after `(sort value, id)` in the list order.
    pub after: Option<(Value, Uuid)>,
    pub limit: u32,
}

impl ListQuery {
    pub fn new(filter: ScopeFilter, sort: &'static str, descending: bool, limit: u32) -> Self {
        Self {
            filter,
            equals: Vec::new(),
            ids: None,
            created_after: None,
            created_before: None,
            deleted: Deleted::Exclude,
            sort,
            descending,
            after: None,
            limit,
        }
    }
}
