//! The points API (the seed's `qdrant.config` API): upsert, batch upsert with `wait`,
//! search with filters and a score threshold, delete, collection info, clear.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ceneca_domain::scope::Access;
use ceneca_domain::validate::{Mode, fill_defaults, parse_object};
use ceneca_domain::{Record, Value, model, new_id};
use ceneca_store::{ListQuery, WriteBatch, WriteOp};
use ceneca_vector::{Hit, Query};
use ceneca_wire::vectors::{
    ClearRequest, CollectionInfo, PointInput, Points, VectorHit, VectorHits, VectorInput,
    VectorSearchRequest, WriteState, WriteStatus,
};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{kind_of, vector_error};
use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::{Caller, Services};

use ceneca_wire::vectors::MAX_POINTS_PER_BATCH;
pub(crate) const MAX_LIMIT: usize = 100;
/// The most nearest points one search looks at to fill a page whose nearest hits the
/// caller may not see: past that, the page comes back short rather than the search
/// scanning without bound.
const MAX_CANDIDATES: usize = 1600;
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The entity whose rows a collection's points are made from.
fn source_entity(collection: &str) -> Option<&'static ceneca_domain::Entity> {
    match collection {
        "messages" => Some(&model::MESSAGES),
        "documents" => Some(&model::DOCUMENTS),
        "attachments" => Some(&model::ATTACHMENTS),
        _ => None,
    }
}

/// `limit`: 1 to [`MAX_LIMIT`], 10 when absent; anything else is refused, not clamped.
pub(crate) fn checked_limit(limit: Option<u32>) -> Result<usize> {
    match limit {
        None => Ok(10),
        Some(l) if (1..=MAX_LIMIT as u32).contains(&l) => Ok(l as usize),
        Some(_) => Err(ServiceError::bad_request(
            "limit",
            format!("limit must be 1 to {MAX_LIMIT}"),
        )),
    }
}

impl Services {
    fn collection_dims(&self, collection: &str) -> Result<usize> {
        self.vectors()?
            .dims
            .get(collection)
            .copied()
            .ok_or_else(|| {
                ServiceError::bad_request(
                    "collection",
                    format!(
                        "unknown collection '{collection}': use messages, documents or attachments"
                    ),
                )
            })
    }

    /// Checks a vector's shape: the collection's dimension, finite numbers (a JSON number
    /// beyond the 32-bit range arrives as infinity).
    fn check_vector(&self, collection: &str, vector: &[f32], field: &str) -> Result<()> {
        let dims = self.collection_dims(collection)?;
        if vector.len() != dims {
            return Err(ServiceError::bad_request(
                field,
                format!(
                    "{field} has {} numbers; collection '{collection}' takes {dims}",
                    vector.len()
                ),
            ));
        }
        if !vector.iter().all(|x| x.is_finite()) {
            return Err(ServiceError::bad_request(
                field,
                format!(
                    "{field} must hold finite numbers (no NaN, no infinity, within 32-bit float range)"
                ),
            ));
        }
        // Cosine similarity divides by the length, in 32-bit floats as the index computes
        // it: a vector of no length (all zeros), or one whose squared length is too small
        // or too large for them, has no direction the index can compare.
        let length2: f32 = vector.iter().map(|x| x * x).sum();
        if !(length2.is_finite() && length2 >= f32::EPSILON) {
            return Err(ServiceError::bad_request(
                field,
                format!(
                    "{field} has no direction to compare: it is all zeros, or its length is \
                     too small or too large for 32-bit floats (scale it to about 1)"
                ),
            ));
        }
        Ok(())
    }

    /// Reads a point's vector: an array of the collection's dimension of finite numbers.
    fn point_vector(
        &self,
        collection: &str,
        vector: &VectorInput,
        field: &str,
    ) -> Result<Vec<f32>> {
        let dims = self.collection_dims(collection)?;
        let VectorInput::Numbers(vector) = vector else {
            return Err(ServiceError::bad_request(
                field,
                format!("{field} must be an array of {dims} numbers"),
            ));
        };
        self.check_vector(collection, vector, field)?;
        Ok(vector.clone())
    }

    /// Upserts points into `collection`; with `wait`, returns once the index has applied
    /// them (a search then sees them).
    pub async fn upsert_vectors(
        &self,
        caller: &Caller,
        collection: &str,
        points: &Points,
        wait: bool,
    ) -> Result<WriteStatus> {
        let dims = self.collection_dims(collection)?;
        let single = matches!(points, Points::One(_));
        let items: Vec<(&VectorInput, &Map<String, Json>)> = match points {
            Points::One(PointInput::Object { vector, fields }) => vec![(vector, fields)],
            Points::One(PointInput::NotAnObject) => {
                return Err(ServiceError::bad_request(
                    "body",
                    "a point must be a JSON object",
                ));
            }
            Points::Batch(points) => {
                if points.is_empty() || points.len() > MAX_POINTS_PER_BATCH {
                    return Err(ServiceError::invalid(
                        "points",
                        format!("must hold between 1 and {MAX_POINTS_PER_BATCH} points"),
                    ));
                }
                points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| match p {
                        PointInput::Object { vector, fields } => Ok((vector, fields)),
                        PointInput::NotAnObject => Err(ServiceError::invalid(
                            &format!("points[{i}]"),
                            "must be an object",
                        )),
                    })
                    .collect::<Result<_>>()?
            }
        };
        let mut records = Vec::with_capacity(items.len());
        let mut dlp_ops = Vec::new();
        let write = caller.filter(&model::EMBEDDING_RECORDS, Access::Write);
        let now = ceneca_domain::clock::now();
        let mut sources = Vec::with_capacity(items.len());
        // Points are read in order; the sources of those read are checked together after.
        let read = async {
            for (i, (vector, fields)) in items.iter().enumerate() {
                let at = |f: &str| {
                    if single {
                        f.to_owned()
                    } else {
                        format!("points[{i}].{f}")
                    }
                };
                let vector = self.point_vector(collection, vector, &at("vector"))?;
                let fields: Map<String, Json> = (*fields).clone();
                let supplied: Vec<String> = fields.keys().cloned().collect();
                self.screen(
                    &if single {
                        String::new()
                    } else {
                        format!("points[{i}].")
                    },
                    &fields,
                )
                .await?;
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                // The vector is checked above and stored from `bytes`: the other fields go
                // through the model's validation without copying thousands of numbers again.
                let mut input = fields;
                input.insert("vector".into(), json!([0.0]));
                input.insert("collection".into(), json!(collection));
                input.insert("dims".into(), json!(dims));
                input.entry("model").or_insert_with(|| json!("default"));
                if !input.contains_key("content_hash") {
                    input.insert(
                        "content_hash".into(),
                        json!(hex::encode(Sha256::digest(&bytes))),
                    );
                }
                let mut record =
                    parse_object(&model::EMBEDDING_RECORDS, &input, Mode::Create, false, &[])
                        .map_err(|e| {
                            let mut renamed = ceneca_domain::ValidationError::new();
                            for (field, reason) in e.fields {
                                renamed.add(at(&field), reason);
                            }
                            ServiceError::Validation(renamed)
                        })?;
                let workspace = record
                    .id_of("workspace_id")
                    .ok_or_else(|| ServiceError::invalid(&at("workspace_id"), "is required"))?;
                if !write.admits("workspace_id", workspace) {
                    return Err(ServiceError::Forbidden(format!(
                        "{}: you may not write embeddings in this workspace",
                        at("workspace_id")
                    )));
                }
                sources.push((
                    record.id_of("source_id"),
                    record.id_of("workspace_id"),
                    at("source_id"),
                ));
                record.set("id", Value::Id(new_id()));
                self.apply_dlp(
                    caller,
                    &model::EMBEDDING_RECORDS,
                    supplied.iter().map(String::as_str),
                    &mut record,
                    None,
                    &mut dlp_ops,
                )
                .await
                .map_err(|e| match e {
                    ServiceError::Validation(e) => {
                        let mut renamed = ceneca_domain::ValidationError::new();
                        for (field, reason) in e.fields {
                            renamed.add(at(&field), reason);
                        }
                        ServiceError::Validation(renamed)
                    }
                    other => other,
                })?;
                record.set("vector", Value::Bytes(bytes));
                record.set("created_at", Value::Time(now));
                record.set("updated_at", Value::Time(now));
                fill_defaults(&model::EMBEDDING_RECORDS, &mut record, now);
                records.push(record);
            }
            Ok::<(), ServiceError>(())
        }
        .await;
        // The first point that fails is named: a source of a point before the one whose
        // other fields failed comes first.
        self.check_embedding_sources(caller, collection, &sources)
            .await?;
        read?;
        // A replaced vector counts as new: the check errs on the side of the quota.
        let guards = self
            .check_quota_of_rows(&model::EMBEDDING_RECORDS, &records)
            .await?;
        let count = records.len();
        let event = AuditEvent::new("embedding.upsert", "success")
            .by(caller)
            .on("embedding_records", None)
            .details(json!({ "collection": collection, "count": count }));
        let mut batch = WriteBatch::new(caller.actor()).push(WriteOp::Upsert {
            entity: &model::EMBEDDING_RECORDS,
            records,
            key: &["collection", "source_id", "model"],
            update: &["vector", "dims", "content_hash"],
        });
        batch.ops.extend(dlp_ops);
        batch.ops.extend(guards);
        let batch = batch.push(self.audit_op(event));
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| from_store("embedding", false, e))?;
        let ids: Vec<Uuid> = rows.iter().take(count).filter_map(Record::id).collect();
        let status = self.wait_for_index(wait, collection, &ids).await?;
        Ok(WriteStatus {
            status,
            ids: Some(ids),
            deleted: None,
        })
    }

    /// The source of every embedding must be a row the caller can read in the same
    /// workspace: `(source, workspace, field)` per point, checked with one query for the
    /// whole batch, inside the caller's scope. The first point that fails is named.
    async fn check_embedding_sources(
        &self,
        caller: &Caller,
        collection: &str,
        points: &[(Option<Uuid>, Option<Uuid>, String)],
    ) -> Result<()> {
        let entity = match collection {
            "messages" => &model::MESSAGES,
            "documents" => &model::DOCUMENTS,
            _ => &model::ATTACHMENTS,
        };
        let mut wanted: Vec<Uuid> = points.iter().filter_map(|(s, _, _)| *s).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut q = ListQuery::new(
            caller.filter(entity, Access::Read),
            "id",
            false,
            wanted.len().max(1) as u32,
        );
        q.ids = Some(wanted);
        let found: std::collections::HashMap<Uuid, Option<Uuid>> = self
            .store
            .list(entity, q)
            .await?
            .iter()
            .filter_map(|row| Some((row.id()?, row.id_of("workspace_id"))))
            .collect();
        for (source, workspace, field) in points {
            let (Some(source), Some(workspace)) = (source, workspace) else {
                return Err(ServiceError::invalid(field, "is required"));
            };
            match found.get(source) {
                Some(in_workspace) if *in_workspace == Some(*workspace) => {}
                Some(_) => {
                    return Err(ServiceError::invalid(field, "belongs to another workspace"));
                }
                None => {
                    return Err(ServiceError::invalid(
                        field,
                        format!("no {} with this id in your workspaces", entity.name),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Called after a write of `ids` in `collection` committed: wakes the indexer; with
    /// `wait`, returns `completed` once the index holds the write, or `acknowledged`
    /// without waiting, or after [`WAIT_TIMEOUT`] (the index is down or far behind; the
    /// write is kept and applied later). On the node that applies the outbox, that is
    /// when a round begun after the commit has drained it; on any other node (several
    /// nodes share a database), when the outbox holds none of the written points.
    async fn wait_for_index(
        &self,
        wait: bool,
        collection: &str,
        ids: &[Uuid],
    ) -> Result<WriteState> {
        let v = self.vectors()?;
        let round = v.started.load(Ordering::Acquire);
        v.wake.notify_one();
        if !wait {
            return Ok(WriteState::Acknowledged);
        }
        if v.leader.load(Ordering::Relaxed) {
            let mut drained = v.drained.subscribe();
            let done = tokio::time::timeout(WAIT_TIMEOUT, drained.wait_for(|d| *d > round)).await;
            return Ok(match done {
                Ok(Ok(_)) => WriteState::Completed,
                _ => WriteState::Acknowledged,
            });
        }
        let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
        // The question reads the outbox, which is long while the index is down: asked
        // often at first, then at most once a second.
        let mut pause = Duration::from_millis(25);
        loop {
            let mut waiting = false;
            for chunk in ids.chunks(1000) {
                if !self
                    .store
                    .vector_outbox_holds(collection.to_owned(), chunk.to_vec())
                    .await?
                    .is_empty()
                {
                    waiting = true;
                    break;
                }
            }
            if !waiting {
                return Ok(WriteState::Completed);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(WriteState::Acknowledged);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Nearest neighbours of `vector` in `collection`, inside the caller's workspaces.
    pub async fn search_vectors(
        &self,
        caller: &Caller,
        collection: &str,
        request: &VectorSearchRequest,
    ) -> Result<VectorHits> {
        let hits = self.vector_hits(caller, collection, request).await?;
        let kind = kind_of(collection).unwrap_or(collection);
        Ok(VectorHits {
            items: hits
                .iter()
                .map(|h| VectorHit {
                    id: h.id,
                    score: h.score,
                    source_id: h.source_id,
                    workspace_id: h.workspace_id,
                    kind: kind.to_owned(),
                })
                .collect(),
        })
    }

    pub(crate) async fn vector_hits(
        &self,
        caller: &Caller,
        collection: &str,
        request: &VectorSearchRequest,
    ) -> Result<Vec<Hit>> {
        self.check_vector(collection, &request.vector, "vector")?;
        let limit = checked_limit(request.limit)?;
        if let Some(t) = request.score_threshold
            && !(-1.0..=1.0).contains(&t)
        {
            return Err(ServiceError::bad_request(
                "score_threshold",
                "score_threshold must be a number from -1 to 1",
            ));
        }
        let view = caller
            .filter(&model::EMBEDDING_RECORDS, Access::Read)
            .workspace_view();
        let (mut workspaces, denied) = (view.workspaces, view.denied);
        if let Some(ws) = request.workspace_id {
            if workspaces.as_ref().is_some_and(|all| !all.contains(&ws)) {
                return Err(ServiceError::NotFound("workspace"));
            }
            workspaces = Some(vec![ws]);
        }
        let source_ids = request.source_ids.clone().unwrap_or_default();
        if source_ids.len() > 1000 {
            return Err(ServiceError::bad_request(
                "source_ids",
                "source_ids must be an array of up to 1000 UUIDs",
            ));
        }
        let mut query = Query {
            vector: request.vector.clone(),
            limit: limit + denied.len().min(MAX_LIMIT),
            workspaces,
            source_ids,
            score_threshold: request.score_threshold,
        };
        // Hits the caller may not see (a denied point, or a source deleted or denied) are
        // dropped after the index answers; the index is asked again, for more, until the
        // page is full, the index has no more, or [`MAX_CANDIDATES`] were looked at.
        let source = source_entity(collection);
        let hits = loop {
            let v = self.searchable_vectors()?;
            let mut hits = match v.index.search(collection, query.clone()).await {
                Ok(hits) => hits,
                Err(e) => {
                    if matches!(e, ceneca_vector::VectorError::Corrupt(_)) {
                        v.report_damaged(collection);
                    }
                    return Err(vector_error(e));
                }
            };
            let exhausted = hits.len() < query.limit;
            hits.retain(|h| !denied.contains(&(h.workspace_id, h.id)));
            if let Some(source) = source {
                self.keep_readable_sources(caller, source, &mut hits)
                    .await?;
            }
            if hits.len() >= limit || exhausted || query.limit >= MAX_CANDIDATES {
                hits.truncate(limit);
                break hits;
            }
            query.limit = (query.limit * 4).min(MAX_CANDIDATES);
        };
        self.audit_read(
            caller,
            "embedding.search".into(),
            "embedding_records",
            None,
            None,
        )
        .await?;
        Ok(hits)
    }

    /// Keeps the hits whose source (the message, document or attachment) the caller can
    /// read: a source in the bin, or hidden by a permission set, hides its embeddings'
    /// matches too. One query for all the sources, inside the SQL scope.
    async fn keep_readable_sources(
        &self,
        caller: &Caller,
        source: &'static ceneca_domain::Entity,
        hits: &mut Vec<Hit>,
    ) -> Result<()> {
        if hits.is_empty() {
            return Ok(());
        }
        let mut q = ListQuery::new(
            caller.filter(source, Access::Read),
            "id",
            false,
            hits.len() as u32,
        );
        q.ids = Some(hits.iter().map(|h| h.source_id).collect());
        let readable: std::collections::HashSet<Uuid> = self
            .store
            .list(source, q)
            .await?
            .iter()
            .filter_map(Record::id)
            .collect();
        hits.retain(|h| readable.contains(&h.source_id));
        Ok(())
    }

    /// Deletes one point (its embedding row).
    pub async fn delete_vector(
        &self,
        caller: &Caller,
        collection: &str,
        id: Uuid,
        wait: bool,
    ) -> Result<WriteStatus> {
        self.collection_dims(collection)?;
        // The point must exist in this collection, inside the caller's scope.
        self.store
            .get(
                &model::EMBEDDING_RECORDS,
                id,
                caller.filter(&model::EMBEDDING_RECORDS, Access::Read),
                ceneca_store::Deleted::Exclude,
            )
            .await?
            .filter(|r| r.get("collection").and_then(Value::as_str) == Some(collection))
            .ok_or(ServiceError::NotFound("point"))?;
        self.delete(caller, &model::EMBEDDING_RECORDS, id).await?;
        let status = self.wait_for_index(wait, collection, &[id]).await?;
        Ok(WriteStatus {
            status,
            ids: None,
            deleted: None,
        })
    }

    /// Deletes every point of a workspace in `collection` (workspace administrators).
    pub async fn clear_vectors(
        &self,
        caller: &Caller,
        collection: &str,
        request: &ClearRequest,
        wait: bool,
    ) -> Result<WriteStatus> {
        self.collection_dims(collection)?;
        let ws = request.workspace_id;
        let delete = caller.filter(&model::EMBEDDING_RECORDS, Access::Delete);
        if !delete.admits("workspace_id", ws) {
            return Err(ServiceError::NotFound("workspace"));
        }
        let mut deleted = Vec::new();
        loop {
            let mut q = ceneca_store::ListQuery::new(delete.clone(), "id", false, 500);
            q.equals = vec![
                ("workspace_id", Value::Id(ws)),
                ("collection", Value::Text(collection.into())),
            ];
            let rows = self.store.list(&model::EMBEDDING_RECORDS, q).await?;
            if rows.is_empty() {
                break;
            }
            let mut batch = WriteBatch::new(caller.actor());
            for row in rows.iter().take(500) {
                if let Some(id) = row.id() {
                    batch.ops.push(WriteOp::Delete {
                        entity: &model::EMBEDDING_RECORDS,
                        id,
                        filter: delete.clone(),
                    });
                    deleted.push(id);
                }
            }
            let event = AuditEvent::new("embedding.clear", "success")
                .by(caller)
                .on("embedding_records", None)
                .details(json!({ "collection": collection, "workspace_id": ws.to_string(), "count": batch.ops.len() }));
            batch.ops.push(self.audit_op(event));
            self.store
                .apply(batch)
                .await
                .map_err(|e| from_store("embedding", false, e))?;
        }
        let status = self.wait_for_index(wait, collection, &deleted).await?;
        Ok(WriteStatus {
            status,
            ids: None,
            deleted: Some(deleted.len() as u64),
        })
    }

    /// A collection's settings and what the index holds.
    ///
    /// The outbox backlog (`pending_writes`, and the `status` derived from it) and the
    /// index totals count every tenant's writes: they tell an ordinary user how busy other
    /// tenants are, so only system administrators see them.
    pub async fn vector_collection(
        &self,
        caller: &Caller,
        collection: &str,
    ) -> Result<CollectionInfo> {
        let dims = self.collection_dims(collection)?;
        let v = self.vectors()?;
        let stats = v.index.stats(collection).await.map_err(vector_error)?;
        let mut out = CollectionInfo {
            name: collection.to_owned(),
            dimension: dims as u32,
            distance: "cosine".into(),
            engine: v.index.kind().to_owned(),
            pending_writes: None,
            status: None,
            points: None,
            indexed_points: None,
            segments: None,
        };
        if caller.system_admin {
            let pending = self
                .store
                .vector_outbox_pending()
                .await?
                .into_iter()
                .find(|(c, _)| c == collection)
                .map(|(_, n)| n)
                .unwrap_or(0);
            out.pending_writes = Some(pending);
            out.status = Some(if pending == 0 { "green" } else { "yellow" }.into());
            out.points = Some(stats.points);
            out.indexed_points = Some(stats.indexed);
            out.segments = Some(stats.segments);
        }
        Ok(out)
    }
}
