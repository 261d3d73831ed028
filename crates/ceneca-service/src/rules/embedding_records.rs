//! Embedding records: the vector has the declared number of dimensions, and its source
//! (a message, document or attachment) is a row the caller can read in the same
//! workspace.

use async_trait::async_trait;
use ceneca_domain::scope::Access;
use ceneca_domain::{Record, Value, model};
use ceneca_store::Deleted;

use super::{Cx, EntityRules, text};
use crate::error::{Result, ServiceError};

pub(super) struct EmbeddingRecords;

#[async_trait]
impl EntityRules for EmbeddingRecords {
    fn table(&self) -> Option<&'static str> {
        Some("embedding_records")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        let dims = record.get("dims").and_then(Value::as_int).unwrap_or(0);
        // The index takes one dimension per collection: another one would be refused by
        // it for ever and hold back every tenant's points behind it.
        if let Some(collection) = text(record, "collection")
            && let Some(expected) = cx.svc.index_dimension(collection)
            && dims != expected as i64
        {
            return Err(ServiceError::invalid(
                "dims",
                format!("the {collection} collection takes vectors of {expected} dimensions"),
            ));
        }
        let len = match record.get("vector") {
            Some(Value::Bytes(b)) => b.len() as i64 / 4,
            _ => 0,
        };
        if dims != len {
            return Err(ServiceError::invalid(
                "vector",
                format!("has {len} dimensions but dims is {dims}"),
            ));
        }
        Ok(())
    }

    async fn check_create_in_store(&self, cx: &Cx<'_>, record: &Record) -> Result<()> {
        let source = match text(record, "collection") {
            Some("messages") => &model::MESSAGES,
            Some("documents") => &model::DOCUMENTS,
            _ => &model::ATTACHMENTS,
        };
        let id = record
            .id_of("source_id")
            .ok_or_else(|| ServiceError::invalid("source_id", "is required"))?;
        let row = cx
            .svc
            .store
            .get(
                source,
                id,
                cx.caller.filter(source, Access::Read),
                Deleted::Exclude,
            )
            .await?;
        match row {
            None => Err(ServiceError::invalid(
                "source_id",
                format!("no {} with this id exists", source.name),
            )),
            Some(row) if row.id_of("workspace_id") != record.id_of("workspace_id") => {
                Err(ServiceError::invalid(
                    "source_id",
                    format!("this {} belongs to another workspace", source.name),
                ))
            }
            Some(_) => Ok(()),
        }
    }
}
