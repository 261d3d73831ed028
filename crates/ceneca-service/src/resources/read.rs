//! Reading rows: one by id, or a page of a list.

use ceneca_domain::output::View;
use ceneca_domain::schema::Tenancy;
use ceneca_domain::scope::Access;
use ceneca_domain::{Entity, Value};
use ceneca_store::{Deleted, ListQuery};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{ParentRef, action};
use crate::error::{Result, ServiceError};
use crate::page::{ListParams, Page, build_query, encode_cursor};
use crate::{Caller, Services};

impl Services {
    /// One row the caller may read.
    pub async fn get(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        id: Uuid,
        deleted: Deleted,
    ) -> Result<Json> {
        caller.require_reach(entity)?;
        let row = self
            .store
            .get(entity, id, read_filter(caller, entity, deleted), deleted)
            .await?
            .ok_or(ServiceError::NotFound(entity.name))?;
        self.audit_read(
            caller,
            action(entity, "read"),
            entity.table,
            Some(id),
            self.hashes_queries()
                .then(|| format!("{}:{id}:{deleted:?}", entity.table)),
        )
        .await?;
        self.present(entity, &row, View::Detail)
    }

    /// A page of the rows the caller may read, optionally under a parent.
    pub async fn list(
        &self,
        caller: &Caller,
        entity: &'static Entity,
        params: &ListParams,
        parent: Option<ParentRef>,
    ) -> Result<Page> {
        caller.require_reach(entity)?;
        let mut query = ListQuery::new(
            caller.filter(entity, Access::Read),
            entity.sort,
            entity.sort_desc,
            50,
        );
        build_query(entity, params, &mut query)?;
        query.filter = read_filter(caller, entity, query.deleted);
        if let Some(p) = parent {
            self.visible_parent(caller, entity, p).await?;
            query.equals.retain(|(c, _)| *c != p.field);
            query.equals.push((p.field, Value::Id(p.id)));
        }
        let (sort, descending, limit) = (query.sort, query.descending, query.limit as usize);
        let description = self
            .hashes_queries()
            .then(|| format!("{}:{query:?}", entity.table));
        let mut rows = self.store.list(entity, query).await?;
        self.audit_read(
            caller,
            action(entity, "list"),
            entity.table,
            parent.map(|p| p.id),
            description,
        )
        .await?;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .and_then(|last| encode_cursor(entity, last, sort, descending))
        } else {
            None
        };
        Ok(Page {
            items: rows
                .iter()
                .map(|r| self.present(entity, r, View::Summary))
                .collect::<Result<_>>()?,
            next_cursor,
        })
    }
}

/// Reading deleted organizations and workspaces takes the right to restore them: they are
/// outside the live scope.
pub(super) fn read_filter(
    caller: &Caller,
    entity: &Entity,
    deleted: Deleted,
) -> ceneca_domain::scope::ScopeFilter {
    let read = caller.filter(entity, Access::Read);
    match (deleted, entity.tenancy) {
        (Deleted::Include | Deleted::Only, Tenancy::SelfOrganization | Tenancy::SelfWorkspace) => {
            read.or(caller.filter(entity, Access::Restore))
        }
        _ => read,
    }
}
