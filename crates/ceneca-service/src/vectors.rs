//! Vector search (the seed's `qdrant.config` API): upsert, batch upsert with `wait`,
//! search with filters and a score threshold, delete, collection info, clear, and hybrid
//! search fused with full-text results.
//!
//! `embedding_records` rows are the truth (DESIGN.md §3 rule 3). A write here is an SQL
//! write; the database's triggers add outbox entries in the same transaction, and the
//! [indexer](Services::run_vector_indexer) applies them to the index, deleting each entry
//! only once the index has made it durable. A crash, or an index that is unavailable for a
//! while, loses nothing: the outbox catches up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ceneca_domain::scope::Access;
use ceneca_domain::validate::{Mode, fill_defaults, parse_object};
use ceneca_domain::{Record, Value, model, new_id};
use ceneca_store::{EmbeddingPoint, IndexerLease, ListQuery, WriteBatch, WriteOp};
use ceneca_vector::{CollectionStats, Hit, Point, Query, VectorIndex};
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::audit::AuditEvent;
use crate::error::{Result, ServiceError, from_store};
use crate::{Caller, Services};

/// The collections, and the kind of source each holds.
pub const COLLECTIONS: [(&str, &str); 3] = [
    ("messages", "message"),
    ("documents", "document"),
    ("attachments", "attachment"),
];
/// The default dimension (the seed's, OpenAI's `text-embedding-3-small`).
pub const DEFAULT_DIMS: usize = 1536;
const MAX_POINTS_PER_BATCH: usize = 1000;
const MAX_LIMIT: usize = 100;
const OUTBOX_ROUND: u32 = 512;
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a node without the indexer lease tries to take it.
const LEASE_RETRY: Duration = Duration::from_secs(5);

/// The vector index wired into the services, with the indexer's progress.
pub struct Vectors {
    index: Arc<dyn VectorIndex>,
    dims: HashMap<String, usize>,
    /// Wakes the indexer after a write.
    wake: Notify,
    /// Rounds the indexer has started, and the last round that drained the outbox.
    started: AtomicU64,
    drained: watch::Sender<u64>,
    /// Bytes of WAL above which a collection is rebuilt (embedded engine).
    wal_limit: u64,
    /// Whether this node's indexer holds the lease (applies the outbox).
    leader: AtomicBool,
    /// When this node's indexer last found the outbox applied (Unix milliseconds; the
    /// wiring time until the first round): how far behind it is, for monitoring.
    caught_up_at_ms: AtomicU64,
}

/// The indexer's state as monitoring sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexerStatus {
    /// This node applies the outbox (holds the lease).
    pub leader: bool,
    /// When it last found the outbox applied.
    pub caught_up_at: std::time::SystemTime,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One collection's share of an indexer round: upserts, deletes, and the outbox entries.
type RoundWork = (Vec<Point>, Vec<Uuid>, Vec<i64>);

/// Whether a collection's engine log has grown enough to rebuild it away: past the
/// configured bound *and* past twice what the live points take. A fresh rebuild's log
/// holds each point once, so a collection larger than the bound is not rebuilt again and
/// again; it is rebuilt once updates and deletes have doubled its log.
fn wal_needs_rebuild(stats: CollectionStats, dims: usize, limit: u64) -> bool {
    // A point in the log: its vector and about 128 bytes of id, payload and framing.
    let live = stats.points * (dims as u64 * 4 + 128);
    stats.wal_bytes > limit && stats.wal_bytes > 2 * live
}

fn kind_of(collection: &str) -> Option<&'static str> {
    COLLECTIONS
        .iter()
        .find(|(c, _)| *c == collection)
        .map(|(_, k)| *k)
}

fn to_point(collection: &str, p: EmbeddingPoint) -> Point {
    Point {
        id: p.id,
        vector: p
            .vector
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        workspace_id: p.workspace_id,
        source_id: p.source_id,
        kind: kind_of(collection).unwrap_or("message"),
    }
}

fn vector_error(e: ceneca_vector::VectorError) -> ServiceError {
    match e {
        ceneca_vector::VectorError::Unavailable(_) => ServiceError::Unavailable(
            "the vector index is unreachable; writes are kept and applied when it is back".into(),
        ),
        e => ServiceError::Internal(format!("vector index: {e}")),
    }
}

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
fn parse_limit(object: &serde_json::Map<String, Json>) -> Result<usize> {
    match object.get("limit") {
        None => Ok(10),
        Some(l) => l
            .as_u64()
            .filter(|l| (1..=MAX_LIMIT as u64).contains(l))
            .map(|l| l as usize)
            .ok_or_else(|| {
                ServiceError::bad_request("limit", format!("limit must be 1 to {MAX_LIMIT}"))
            }),
    }
}

fn parse_uuid(value: &Json, field: &str) -> Result<Uuid> {
    value
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ServiceError::invalid(field, "must be a UUID"))
}

impl Services {
    /// Wires a vector index in: opens the collections with their dimensions and returns
    /// services that use it. Start [`Services::run_vector_indexer`] beside the server.
    pub async fn with_vectors(
        mut self,
        index: Arc<dyn VectorIndex>,
        dims: HashMap<String, usize>,
        wal_limit: u64,
    ) -> Result<Self> {
        let mut resolved = HashMap::new();
        for (collection, _) in COLLECTIONS {
            let d = dims.get(collection).copied().unwrap_or(DEFAULT_DIMS);
            index
                .open_collection(collection, d)
                .await
                .map_err(vector_error)?;
            resolved.insert(collection.to_owned(), d);
        }
        self.vectors = Some(Arc::new(Vectors {
            index,
            dims: resolved,
            wake: Notify::new(),
            started: AtomicU64::new(0),
            drained: watch::channel(0).0,
            wal_limit,
            leader: AtomicBool::new(false),
            caught_up_at_ms: AtomicU64::new(unix_ms()),
        }));
        Ok(self)
    }

    /// The vector indexer's state, when vectors are enabled.
    pub fn vector_indexer_status(&self) -> Option<IndexerStatus> {
        self.vectors.as_ref().map(|v| IndexerStatus {
            leader: v.leader.load(Ordering::Relaxed),
            caught_up_at: std::time::UNIX_EPOCH
                + Duration::from_millis(v.caught_up_at_ms.load(Ordering::Relaxed)),
        })
    }

    fn vectors(&self) -> Result<&Arc<Vectors>> {
        self.vectors
            .as_ref()
            .ok_or_else(|| ServiceError::NotAllowed("vector search is not enabled".into()))
    }

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

    /// Checks a vector's shape: the collection's dimension, finite numbers.
    fn parse_vector(&self, collection: &str, json: Option<&Json>, field: &str) -> Result<Vec<f32>> {
        let dims = self.collection_dims(collection)?;
        let items = json.and_then(Json::as_array).ok_or_else(|| {
            ServiceError::bad_request(field, format!("{field} must be an array of {dims} numbers"))
        })?;
        if items.len() != dims {
            return Err(ServiceError::bad_request(
                field,
                format!(
                    "{field} has {} numbers; collection '{collection}' takes {dims}",
                    items.len()
                ),
            ));
        }
        items
            .iter()
            .map(|x| {
                x.as_f64()
                    .map(|f| f as f32)
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| {
                        ServiceError::bad_request(field, format!("{field} must hold finite numbers (no NaN, no infinity, within 32-bit float range)"))
                    })
            })
            .collect()
    }

    /// Upserts points (`{"points": [...]}` or one point object) into `collection`; with
    /// `wait`, returns once the index has applied them (a search then sees them).
    pub async fn upsert_vectors(
        &self,
        caller: &Caller,
        collection: &str,
        body: &Json,
        wait: bool,
    ) -> Result<Json> {
        let dims = self.collection_dims(collection)?;
        let object = body
            .as_object()
            .ok_or_else(|| ServiceError::bad_request("body", "expected a JSON object"))?;
        let single = !object.contains_key("points");
        let items: Vec<&Map<String, Json>> = if single {
            vec![object]
        } else {
            let points = object
                .get("points")
                .and_then(Json::as_array)
                .ok_or_else(|| ServiceError::invalid("points", "must be an array of points"))?;
            if points.is_empty() || points.len() > MAX_POINTS_PER_BATCH {
                return Err(ServiceError::invalid(
                    "points",
                    format!("must hold between 1 and {MAX_POINTS_PER_BATCH} points"),
                ));
            }
            points
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    p.as_object().ok_or_else(|| {
                        ServiceError::invalid(&format!("points[{i}]"), "must be an object")
                    })
                })
                .collect::<Result<_>>()?
        };
        let mut records = Vec::with_capacity(items.len());
        let write = caller.filter(&model::EMBEDDING_RECORDS, Access::Write);
        let now = ceneca_domain::clock::now();
        for (i, item) in items.iter().enumerate() {
            let at = |f: &str| {
                if single {
                    f.to_owned()
                } else {
                    format!("points[{i}].{f}")
                }
            };
            let vector = self.parse_vector(collection, item.get("vector"), &at("vector"))?;
            let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
            // The vector is checked above and stored from `bytes`: the other fields go
            // through the model's validation without copying thousands of numbers again.
            let mut input: Map<String, Json> = item
                .iter()
                .filter(|(k, _)| k.as_str() != "vector")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
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
                parse_object(&model::EMBEDDING_RECORDS, &input, Mode::Create, false, &[]).map_err(
                    |e| {
                        let mut renamed = ceneca_domain::ValidationError::new();
                        for (field, reason) in e.fields {
                            renamed.add(at(&field), reason);
                        }
                        ServiceError::Validation(renamed)
                    },
                )?;
            let workspace = record
                .id_of("workspace_id")
                .ok_or_else(|| ServiceError::invalid(&at("workspace_id"), "is required"))?;
            if !write.admits("workspace_id", workspace) {
                return Err(ServiceError::Forbidden(format!(
                    "{}: you may not write embeddings in this workspace",
                    at("workspace_id")
                )));
            }
            self.check_embedding_source(caller, collection, &record, &at("source_id"))
                .await?;
            record.set("vector", Value::Bytes(bytes));
            record.set("id", Value::Id(new_id()));
            record.set("created_at", Value::Time(now));
            record.set("updated_at", Value::Time(now));
            fill_defaults(&model::EMBEDDING_RECORDS, &mut record, now);
            records.push(record);
        }
        let count = records.len();
        let event = AuditEvent::new("embedding.upsert", "success")
            .by(caller)
            .on("embedding_records", None)
            .details(json!({ "collection": collection, "count": count }));
        let batch = WriteBatch::new(caller.actor())
            .push(WriteOp::Upsert {
                entity: &model::EMBEDDING_RECORDS,
                records,
                key: &["collection", "source_id", "model"],
                update: &["vector", "dims", "content_hash"],
            })
            .push(self.audit_op(event));
        let rows = self
            .store
            .apply(batch)
            .await
            .map_err(|e| from_store("embedding", false, e))?;
        let status = self.wait_for_index(wait).await?;
        let ids: Vec<Json> = rows
            .iter()
            .take(count)
            .filter_map(Record::id)
            .map(|id| json!(id.to_string()))
            .collect();
        Ok(json!({ "status": status, "ids": ids }))
    }

    /// The source of an embedding must be a row the caller can read in the same workspace.
    async fn check_embedding_source(
        &self,
        caller: &Caller,
        collection: &str,
        record: &Record,
        field: &str,
    ) -> Result<()> {
        let entity = match collection {
            "messages" => &model::MESSAGES,
            "documents" => &model::DOCUMENTS,
            _ => &model::ATTACHMENTS,
        };
        let (Some(source), Some(workspace)) =
            (record.id_of("source_id"), record.id_of("workspace_id"))
        else {
            return Err(ServiceError::invalid(field, "is required"));
        };
        let row = self
            .store
            .get(
                entity,
                source,
                caller.filter(entity, Access::Read),
                ceneca_store::Deleted::Exclude,
            )
            .await?;
        match row {
            Some(row) if row.id_of("workspace_id") == Some(workspace) => Ok(()),
            Some(_) => Err(ServiceError::invalid(field, "belongs to another workspace")),
            None => Err(ServiceError::invalid(
                field,
                format!("no {} with this id in your workspaces", entity.name),
            )),
        }
    }

    /// Called after a write committed: wakes the indexer; with `wait`, returns once a
    /// round that began after the commit has drained the outbox (`completed`), or
    /// `acknowledged` without waiting or on timeout.
    async fn wait_for_index(&self, wait: bool) -> Result<&'static str> {
        let v = self.vectors()?;
        let round = v.started.load(Ordering::Acquire);
        v.wake.notify_one();
        if !wait {
            return Ok("acknowledged");
        }
        let mut drained = v.drained.subscribe();
        let done = tokio::time::timeout(WAIT_TIMEOUT, drained.wait_for(|d| *d > round)).await;
        Ok(match done {
            Ok(Ok(_)) => "completed",
            _ => "acknowledged",
        })
    }

    /// Nearest neighbours of `vector` in `collection`, inside the caller's workspaces.
    pub async fn search_vectors(
        &self,
        caller: &Caller,
        collection: &str,
        body: &Json,
    ) -> Result<Json> {
        let hits = self.vector_hits(caller, collection, body).await?;
        Ok(json!({
            "items": hits.iter().map(|h| json!({
                "id": h.id.to_string(),
                "score": h.score,
                "source_id": h.source_id.to_string(),
                "workspace_id": h.workspace_id.to_string(),
                "kind": kind_of(collection),
            })).collect::<Vec<_>>()
        }))
    }

    async fn vector_hits(
        &self,
        caller: &Caller,
        collection: &str,
        body: &Json,
    ) -> Result<Vec<Hit>> {
        let object = body
            .as_object()
            .ok_or_else(|| ServiceError::bad_request("body", "expected a JSON object"))?;
        let vector = self.parse_vector(collection, object.get("vector"), "vector")?;
        let limit = parse_limit(object)?;
        let score_threshold =
            match object.get("score_threshold") {
                None | Some(Json::Null) => None,
                Some(t) => Some(t.as_f64().filter(|t| (-1.0..=1.0).contains(t)).ok_or_else(
                    || {
                        ServiceError::bad_request(
                            "score_threshold",
                            "score_threshold must be a number from -1 to 1",
                        )
                    },
                )? as f32),
            };
        let view = caller
            .filter(&model::EMBEDDING_RECORDS, Access::Read)
            .workspace_view();
        let (mut workspaces, denied) = (view.workspaces, view.denied);
        if let Some(ws) = object.get("workspace_id").filter(|w| !w.is_null()) {
            let ws = parse_uuid(ws, "workspace_id")?;
            if workspaces.as_ref().is_some_and(|all| !all.contains(&ws)) {
                return Err(ServiceError::NotFound("workspace"));
            }
            workspaces = Some(vec![ws]);
        }
        let source_ids = match object.get("source_ids") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(ids)) if ids.len() <= 1000 => ids
                .iter()
                .map(|i| parse_uuid(i, "source_ids"))
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(ServiceError::bad_request(
                    "source_ids",
                    "source_ids must be an array of up to 1000 UUIDs",
                ));
            }
        };
        let query = Query {
            vector,
            limit: limit + denied.len().min(MAX_LIMIT),
            workspaces,
            source_ids,
            score_threshold,
        };
        let mut hits = self
            .vectors()?
            .index
            .search(collection, query)
            .await
            .map_err(vector_error)?;
        hits.retain(|h| !denied.contains(&(h.workspace_id, h.id)));
        hits.truncate(limit);
        // A hit is shown only if its source (the message, document or attachment) is
        // readable too: a permission set denying a message must hide its embedding's
        // match as well. One query for the page's sources, inside the SQL scope.
        if let Some(source) = source_entity(collection)
            && !hits.is_empty()
        {
            let mut q = ListQuery::new(
                caller.filter(source, Access::Read),
                "id",
                false,
                hits.len() as u32,
            );
            q.ids = Some(hits.iter().map(|h| h.source_id).collect());
            let readable: Vec<Uuid> = self
                .store
                .list(source, q)
                .await?
                .iter()
                .filter_map(Record::id)
                .collect();
            hits.retain(|h| readable.contains(&h.source_id));
        }
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

    /// Deletes one point (its embedding row).
    pub async fn delete_vector(
        &self,
        caller: &Caller,
        collection: &str,
        id: Uuid,
        wait: bool,
    ) -> Result<Json> {
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
        let status = self.wait_for_index(wait).await?;
        Ok(json!({ "status": status }))
    }

    /// Deletes every point of a workspace in `collection` (workspace administrators).
    pub async fn clear_vectors(
        &self,
        caller: &Caller,
        collection: &str,
        body: &Json,
        wait: bool,
    ) -> Result<Json> {
        self.collection_dims(collection)?;
        let ws = parse_uuid(
            body.get("workspace_id").unwrap_or(&Json::Null),
            "workspace_id",
        )?;
        let delete = caller.filter(&model::EMBEDDING_RECORDS, Access::Delete);
        if !delete.admits("workspace_id", ws) {
            return Err(ServiceError::NotFound("workspace"));
        }
        let mut deleted = 0u64;
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
                    deleted += 1;
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
        let status = self.wait_for_index(wait).await?;
        Ok(json!({ "status": status, "deleted": deleted }))
    }

    /// A collection's settings and what the index holds.
    ///
    /// The outbox backlog (`pending_writes`, and the `status` derived from it) and the
    /// index totals count every tenant's writes: they tell an ordinary user how busy other
    /// tenants are, so only system administrators see them.
    pub async fn vector_collection(&self, caller: &Caller, collection: &str) -> Result<Json> {
        let dims = self.collection_dims(collection)?;
        let v = self.vectors()?;
        let stats = v.index.stats(collection).await.map_err(vector_error)?;
        let mut out = json!({
            "name": collection,
            "dimension": dims,
            "distance": "cosine",
            "engine": v.index.kind(),
        });
        if caller.system_admin {
            let pending = self
                .store
                .vector_outbox_pending()
                .await?
                .into_iter()
                .find(|(c, _)| c == collection)
                .map(|(_, n)| n)
                .unwrap_or(0);
            out["pending_writes"] = json!(pending);
            out["status"] = json!(if pending == 0 { "green" } else { "yellow" });
            out["points"] = json!(stats.points);
            out["indexed_points"] = json!(stats.indexed);
            out["segments"] = json!(stats.segments);
        }
        Ok(out)
    }

    /// Full-text and vector results fused by reciprocal-rank fusion (k = 60): for clients
    /// that send both a query string and an embedding.
    pub async fn hybrid_search(&self, caller: &Caller, body: &Json) -> Result<Json> {
        const K: f64 = 60.0;
        let object = body
            .as_object()
            .ok_or_else(|| ServiceError::bad_request("body", "expected a JSON object"))?;
        let q = object
            .get("q")
            .and_then(Json::as_str)
            .ok_or_else(|| ServiceError::bad_request("q", "q (the query text) is required"))?;
        let collection = object
            .get("collection")
            .and_then(Json::as_str)
            .unwrap_or("messages");
        let limit = parse_limit(object)?;
        let kind = match collection {
            "messages" => "messages",
            "documents" => "documents",
            _ => {
                return Err(ServiceError::bad_request(
                    "collection",
                    "hybrid search covers messages or documents",
                ));
            }
        };
        let mut pairs = vec![
            ("q".to_owned(), q.to_owned()),
            ("kind".to_owned(), kind.to_owned()),
            ("limit".to_owned(), (limit * 2).min(MAX_LIMIT).to_string()),
        ];
        if let Some(ws) = object.get("workspace_id").and_then(Json::as_str) {
            pairs.push(("workspace_id".to_owned(), ws.to_owned()));
        }
        let text = self.search(caller, &pairs).await?;
        let mut vector_body = object.clone();
        vector_body.insert("limit".into(), json!((limit * 2).min(MAX_LIMIT)));
        vector_body.remove("q");
        vector_body.remove("collection");
        let vector_hits = self
            .vector_hits(caller, collection, &Json::Object(vector_body))
            .await?;

        let mut fused: HashMap<String, (f64, Json)> = HashMap::new();
        for (rank, item) in text["items"].as_array().into_iter().flatten().enumerate() {
            let id = item["id"].as_str().unwrap_or_default().to_owned();
            let entry = fused.entry(id.clone()).or_insert((
                0.0,
                json!({"id": id, "kind": item["kind"], "workspace_id": item["workspace_id"]}),
            ));
            entry.0 += 1.0 / (K + rank as f64 + 1.0);
            entry.1["text_rank"] = json!(rank + 1);
            entry.1["snippet"] = item["snippet"].clone();
        }
        for (rank, hit) in vector_hits.iter().enumerate() {
            let id = hit.source_id.to_string();
            let entry = fused.entry(id.clone()).or_insert((0.0, json!({"id": id, "kind": kind_of(collection), "workspace_id": hit.workspace_id.to_string()})));
            entry.0 += 1.0 / (K + rank as f64 + 1.0);
            entry.1["vector_rank"] = json!(rank + 1);
            entry.1["similarity"] = json!(hit.score);
        }
        let mut items: Vec<(f64, Json)> = fused.into_values().collect();
        items.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.1["id"].as_str().cmp(&b.1["id"].as_str()))
        });
        items.truncate(limit);
        Ok(json!({
            "items": items.into_iter().map(|(score, mut item)| { item["score"] = json!(score); item }).collect::<Vec<_>>()
        }))
    }

    /// Applies the vector outbox to the index, forever: the indexer task `serve` runs.
    /// Entries are deleted only after the index made them durable; if the index fails,
    /// they stay and are retried. With several nodes on one database, only the holder of
    /// the indexer lease applies them; the others stand by and take over if it dies.
    pub async fn run_vector_indexer(self) {
        let Ok(v) = self.vectors().cloned() else {
            return;
        };
        let mut lease: Option<Box<dyn IndexerLease>> = None;
        let mut failures = 0u32;
        loop {
            let held = match lease.as_mut() {
                Some(l) => match l.check().await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "vector indexer: lost its lease");
                        lease = None;
                        false
                    }
                },
                None => match self.store.vector_indexer_lease().await {
                    Ok(Some(l)) => {
                        tracing::info!("vector indexer: this node applies the vector outbox");
                        lease = Some(l);
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "vector indexer: cannot take its lease");
                        false
                    }
                },
            };
            v.leader.store(held, Ordering::Relaxed);
            if !held {
                tokio::time::sleep(LEASE_RETRY).await;
                continue;
            }
            match self.index_round(&v).await {
                Ok(more) => {
                    if failures > 0 {
                        tracing::info!(failures, "vector indexer: the index is back, catching up");
                    }
                    failures = 0;
                    if !more {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), v.wake.notified()).await;
                    }
                }
                Err(e) => {
                    // Entries stay in the outbox; back off up to 30 s while the index is
                    // down, but a new write retries at once.
                    failures += 1;
                    let delay =
                        Duration::from_secs(1 << failures.min(5)).min(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in = ?delay, "vector indexer: will retry");
                    let _ = tokio::time::timeout(delay, v.wake.notified()).await;
                }
            }
        }
    }

    /// One round: returns whether there may be more to do at once.
    pub async fn index_round(&self, v: &Vectors) -> Result<bool> {
        let round = v.started.fetch_add(1, Ordering::AcqRel) + 1;
        let entries = self.store.vector_outbox(OUTBOX_ROUND).await?;
        let full = entries.len() as u32 == OUTBOX_ROUND;
        let mut by_collection: HashMap<String, RoundWork> = HashMap::new();
        for e in entries {
            let slot = by_collection.entry(e.collection.clone()).or_default();
            slot.2.push(e.seq);
            match e.current {
                Some(p) => slot.0.push(to_point(&e.collection, p)),
                None => slot.1.push(e.point_id),
            }
        }
        let mut deferred = false;
        for (collection, (upserts, deletes, seqs)) in by_collection {
            if !v.dims.contains_key(&collection) {
                self.store.vector_outbox_done(seqs).await?;
                continue;
            }
            // A point changed twice in a round appears twice with the same (current) state.
            let mut seen = std::collections::HashSet::new();
            let upserts: Vec<Point> = upserts
                .into_iter()
                .rev()
                .filter(|p| seen.insert(p.id))
                .collect();
            v.index
                .upsert(&collection, upserts)
                .await
                .map_err(vector_error)?;
            v.index
                .delete(&collection, deletes)
                .await
                .map_err(vector_error)?;
            if v.index.persist(&collection).await.map_err(vector_error)? {
                self.store.vector_outbox_done(seqs).await?;
            } else {
                deferred = true;
            }
            // Only an engine whose log passed the bound is asked for its full stats.
            let log = v.index.log_bytes(&collection).await.map_err(vector_error)?;
            if log > v.wal_limit {
                let stats = v.index.stats(&collection).await.map_err(vector_error)?;
                if wal_needs_rebuild(stats, v.dims[&collection], v.wal_limit) {
                    tracing::info!(
                        collection,
                        wal_bytes = stats.wal_bytes,
                        points = stats.points,
                        "vector index WAL over its bound: rebuilding from SQL"
                    );
                    self.rebuild_collection(v, &collection).await?;
                }
            }
        }
        if !full {
            v.drained.send_replace(round);
            if !deferred {
                v.caught_up_at_ms.store(unix_ms(), Ordering::Relaxed);
            }
        }
        if deferred {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(full)
    }

    /// Rebuilds one collection from SQL aside and swaps it in; returns the points.
    async fn rebuild_collection(&self, v: &Vectors, collection: &str) -> Result<u64> {
        let mut after = None;
        let mut total = 0u64;
        loop {
            let page = self
                .store
                .embeddings_page(collection.to_owned(), after, 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            total += page.len() as u64;
            let points = page.into_iter().map(|p| to_point(collection, p)).collect();
            v.index
                .rebuild(collection, Some(points))
                .await
                .map_err(vector_error)?;
        }
        v.index
            .rebuild(collection, None)
            .await
            .map_err(vector_error)?;
        Ok(total)
    }

    /// Rebuilds every collection of the index from SQL (`ceneca reindex --vectors`).
    pub async fn reindex_vectors(&self) -> Result<Vec<(String, u64)>> {
        let v = self.vectors()?.clone();
        let mut out = Vec::new();
        for (collection, _) in COLLECTIONS {
            out.push((
                collection.to_owned(),
                self.rebuild_collection(&v, collection).await?,
            ));
        }
        // Entries written before the rebuild read are in it; drain the rest.
        while self.index_round(&v).await? {}
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(points: u64, wal_bytes: u64) -> CollectionStats {
        CollectionStats {
            points,
            wal_bytes,
            ..Default::default()
        }
    }

    #[test]
    fn the_log_is_rebuilt_away_once_it_outgrows_the_bound_and_the_data() {
        const MB: u64 = 1024 * 1024;
        // Small collection, log past the bound: rebuild.
        assert!(wal_needs_rebuild(stats(1_000, 600 * MB), 1536, 512 * MB));
        // Under the bound: never.
        assert!(!wal_needs_rebuild(stats(10, 500 * MB), 1536, 512 * MB));
        // 100k × 1536 takes ~600 MB: a freshly rebuilt log of that size is not rebuilt
        // again (it would be, forever, on the bound alone)...
        assert!(!wal_needs_rebuild(stats(100_000, 640 * MB), 1536, 512 * MB));
        // ...until churn has doubled it.
        assert!(wal_needs_rebuild(stats(100_000, 1300 * MB), 1536, 512 * MB));
    }
}
