//! A Qdrant server as the vector index, through `qdrant-client` (gRPC), for deployments
//! that outgrow one machine.
//!
//! Each Ceneca collection is a Qdrant **alias** (`<prefix><collection>`, `ceneca_messages`
//! by default) over a physical collection (`<alias>_<id>`). A rebuild fills a new physical
//! collection while searches keep using the old one, then re-points the alias — one atomic
//! operation on the server — and drops the old collection.
//!
//! Writes are sent with `wait=true`: when `upsert` returns, the server has applied and
//! logged them, so [`VectorIndex::persist`] has nothing left to do. If the server cannot
//! be reached, operations fail with [`VectorError::Unavailable`]; the service keeps its
//! outbox entries and retries, so nothing is lost and the index catches up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfigKind;
use qdrant_client::qdrant::{
    Condition, CreateAliasBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, GetPointsBuilder,
    OptimizersConfigDiffBuilder, PointId, PointStruct, PointsIdsList, QueryPointsBuilder,
    RetrievedPoint, ScrollPointsBuilder, SearchParamsBuilder, UpsertPointsBuilder, Value,
    VectorParamsBuilder,
};
use qdrant_client::{Qdrant, QdrantError};
use uuid::Uuid;

use crate::{
    CollectionStats, Hit, OnOtherDimensions, Point, Query, Result, VectorError, VectorIndex,
    kind_named,
};

/// Same beam width as the embedded engine: recall ≥ 0.95 at top-10 on real-looking data.
const SEARCH_EF: u64 = 128;
/// Points per upsert request: large enough to amortise the round trip, small enough to
/// stay well under gRPC's message limit at 4096 dimensions.
const UPSERT_CHUNK: usize = 256;

/// Where the server is and how to reach it.
#[derive(Clone, Default)]
pub struct QdrantSettings {
    /// `http://host:6334` or `https://host:6334` (gRPC port). With https the server's
    /// certificate is checked against the system's roots (`SSL_CERT_FILE` adds a private CA).
    pub url: String,
    /// Sent as the `api-key` header when set.
    pub api_key: Option<String>,
    /// Prepended to collection names, so several deployments can share one server.
    pub collection_prefix: String,
    pub timeout: Duration,
    /// The size (kB) of a segment past which the server builds its HNSW index, for the
    /// collections Ceneca creates; `None` keeps the server's default (20,000 kB, so a
    /// small collection is searched exactly). The recall test sets it low enough that
    /// HNSW is really built.
    pub indexing_threshold_kb: Option<u64>,
}

impl std::fmt::Debug for QdrantSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantSettings")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("collection_prefix", &self.collection_prefix)
            .finish()
    }
}

/// A collection as this index knows it: its dimensions, and whether it exists on the
/// server yet (it is created lazily, so Ceneca starts while Qdrant is down).
struct Known {
    dims: usize,
    ready: bool,
    other: OnOtherDimensions,
}

/// The Qdrant-server vector index.
pub struct QdrantIndex {
    client: Qdrant,
    prefix: String,
    indexing_threshold_kb: Option<u64>,
    known: tokio::sync::Mutex<HashMap<String, Known>>,
    /// The physical collection a rebuild is filling, per collection.
    shadows: Mutex<HashMap<String, String>>,
}

fn classify(e: QdrantError) -> VectorError {
    use tonic::Code;
    match &e {
        QdrantError::ResponseError { status } => match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
                VectorError::Unavailable(format!("Qdrant server: {}", status.message()))
            }
            // qdrant-client reports a failed connection as `internal`.
            Code::Internal | Code::Unknown
                if status.message().starts_with("Failed to connect")
                    || status.message().contains("transport error") =>
            {
                VectorError::Unavailable(format!("Qdrant server: {}", status.message()))
            }
            Code::Unauthenticated | Code::PermissionDenied => VectorError::Engine(format!(
                "Qdrant server refused the credentials (check qdrant_api_key): {}",
                status.message()
            )),
            _ => VectorError::Engine(format!("Qdrant server: {}", status.message())),
        },
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => {
            VectorError::Unavailable(e.to_string())
        }
        _ => VectorError::Engine(e.to_string()),
    }
}

fn keyword(value: &Value) -> Option<&str> {
    match &value.kind {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn uuid_of(id: &Option<PointId>) -> Option<Uuid> {
    match id.as_ref()?.point_id_options.as_ref()? {
        PointIdOptions::Uuid(s) => Uuid::parse_str(s).ok(),
        PointIdOptions::Num(_) => None,
    }
}

fn to_point(p: Point) -> PointStruct {
    let payload: HashMap<&str, Value> = HashMap::from([
        ("workspace_id", Value::from(p.workspace_id.to_string())),
        ("source_id", Value::from(p.source_id.to_string())),
        ("kind", Value::from(p.kind.to_owned())),
    ]);
    PointStruct::new(p.id.to_string(), p.vector, payload)
}

/// A point as the server answered it (Qdrant keeps cosine vectors normalised, so the
/// vector's direction is what compares); `None` for what Ceneca never writes.
fn from_retrieved(p: RetrievedPoint) -> Option<Point> {
    use qdrant_client::qdrant::vector_output::Vector as Stored;
    use qdrant_client::qdrant::vectors_output::VectorsOptions;
    let vector = match p.vectors?.vectors_options? {
        VectorsOptions::Vector(v) => match v.into_vector() {
            Stored::Dense(d) => d.data,
            _ => return None,
        },
        VectorsOptions::Vectors(_) => return None,
    };
    let text = |key: &str| p.payload.get(key).and_then(keyword);
    Some(Point {
        id: uuid_of(&p.id)?,
        vector,
        workspace_id: Uuid::parse_str(text("workspace_id")?).ok()?,
        source_id: Uuid::parse_str(text("source_id")?).ok()?,
        kind: kind_named(text("kind").unwrap_or_default()),
    })
}

fn any_of(field: &str, ids: &[Uuid]) -> Condition {
    Condition::matches(
        field,
        ids.iter().map(Uuid::to_string).collect::<Vec<String>>(),
    )
}

impl QdrantIndex {
    /// A client for the server; nothing is sent until a collection is opened.
    pub fn connect(settings: &QdrantSettings) -> Result<Self> {
        let mut builder = Qdrant::from_url(&settings.url)
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(5))
            .skip_compatibility_check();
        if let Some(key) = settings.api_key.as_ref().filter(|k| !k.is_empty()) {
            builder = builder.api_key(key.clone());
        }
        let client = builder
            .build()
            .map_err(|e| VectorError::Engine(format!("Qdrant URL '{}': {e}", settings.url)))?;
        Ok(Self {
            client,
            prefix: settings.collection_prefix.clone(),
            indexing_threshold_kb: settings.indexing_threshold_kb,
            known: tokio::sync::Mutex::new(HashMap::new()),
            shadows: Mutex::new(HashMap::new()),
        })
    }

    /// The alias searches and writes go through.
    fn alias(&self, collection: &str) -> String {
        format!("{}{collection}", self.prefix)
    }

    /// The physical collection `alias` points to, if any.
    async fn target(&self, alias: &str) -> Result<Option<String>> {
        let aliases = self.client.list_aliases().await.map_err(classify)?;
        Ok(aliases
            .aliases
            .into_iter()
            .find(|a| a.alias_name == alias)
            .map(|a| a.collection_name))
    }

    /// Creates a new, empty physical collection for `collection`, with keyword indexes on
    /// the payload every search filters on.
    async fn create_physical(&self, collection: &str, dims: usize) -> Result<String> {
        let name = format!("{}_{}", self.alias(collection), Uuid::now_v7().simple());
        let mut create = CreateCollectionBuilder::new(&name)
            .vectors_config(VectorParamsBuilder::new(dims as u64, Distance::Cosine));
        if let Some(kb) = self.indexing_threshold_kb {
            create = create
                .optimizers_config(OptimizersConfigDiffBuilder::default().indexing_threshold(kb));
        }
        self.client
            .create_collection(create)
            .await
            .map_err(classify)?;
        for field in ["workspace_id", "source_id"] {
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(&name, field, FieldType::Keyword)
                        .wait(true),
                )
                .await
                .map_err(classify)?;
        }
        Ok(name)
    }

    async fn dims_of(&self, physical: &str) -> Result<Option<usize>> {
        let info = self
            .client
            .collection_info(physical)
            .await
            .map_err(classify)?;
        Ok(info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .and_then(|c| match c {
                VectorsConfigKind::Params(p) => Some(p.size as usize),
                VectorsConfigKind::ParamsMap(_) => None,
            }))
    }

    /// Makes sure `collection` exists on the server with the right dimensions; returns
    /// its alias.
    async fn ensure(&self, collection: &str) -> Result<String> {
        let alias = self.alias(collection);
        let mut known = self.known.lock().await;
        let entry = known
            .get_mut(collection)
            .ok_or_else(|| VectorError::UnknownCollection(collection.to_owned()))?;
        if entry.ready {
            return Ok(alias);
        }
        match self.target(&alias).await? {
            Some(physical) => {
                let stored = self.dims_of(&physical).await?;
                if let Some(stored) = stored.filter(|s| *s != entry.dims) {
                    // The collection may be another deployment's (a shared prefix): it is
                    // replaced only by an explicit rebuild, which refills it from SQL.
                    if entry.other == OnOtherDimensions::Refuse {
                        return Err(VectorError::OtherDimensions {
                            collection: alias,
                            stored,
                            configured: entry.dims,
                        });
                    }
                    // The rebuild fills a new collection of the new dimensions aside and
                    // re-points the alias: until then this one stays, so a rebuild that
                    // fails leaves it as it was.
                    tracing::warn!(
                        collection,
                        stored,
                        dims = entry.dims,
                        "Qdrant collection has other dimensions: the rebuild replaces it"
                    );
                }
            }
            None => {
                if self
                    .client
                    .collection_exists(&alias)
                    .await
                    .map_err(classify)?
                {
                    return Err(VectorError::Engine(format!(
                        "the Qdrant server has a collection named '{alias}' that Ceneca did not create; \
                         set qdrant_collection_prefix to use other names"
                    )));
                }
                let fresh = self.create_physical(collection, entry.dims).await?;
                self.point_alias(&alias, &fresh).await?;
            }
        }
        entry.ready = true;
        Ok(alias)
    }

    /// Points `alias` at `physical`: one atomic operation on the server (a create on an
    /// existing alias replaces it).
    async fn point_alias(&self, alias: &str, physical: &str) -> Result<()> {
        self.client
            .create_alias(CreateAliasBuilder::new(physical, alias))
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn drop_collection(&self, physical: &str) {
        if let Err(e) = self.client.delete_collection(physical).await {
            tracing::warn!(collection = physical, error = %e, "could not drop an old Qdrant collection");
        }
    }

    async fn upsert_into(&self, name: &str, points: Vec<Point>) -> Result<()> {
        let mut points = points.into_iter().map(to_point).collect::<Vec<_>>();
        while !points.is_empty() {
            let rest = points.split_off(points.len().min(UPSERT_CHUNK));
            self.client
                .upsert_points(UpsertPointsBuilder::new(name, points).wait(true))
                .await
                .map_err(classify)?;
            points = rest;
        }
        Ok(())
    }
}

#[async_trait]
impl VectorIndex for QdrantIndex {
    fn kind(&self) -> &'static str {
        "qdrant"
    }

    async fn open_collection(
        &self,
        collection: &str,
        dims: usize,
        other: OnOtherDimensions,
    ) -> Result<()> {
        {
            let mut known = self.known.lock().await;
            if let Some(existing) = known.get(collection)
                && existing.dims == dims
            {
                return Ok(());
            }
            known.insert(
                collection.to_owned(),
                Known {
                    dims,
                    ready: false,
                    other,
                },
            );
        }
        match self.ensure(collection).await {
            // Ceneca starts while Qdrant is down; the first operation retries.
            Err(VectorError::Unavailable(e)) => {
                tracing::warn!(collection, error = %e, "Qdrant server unreachable: will retry");
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let alias = self.ensure(collection).await?;
        self.upsert_into(&alias, points).await
    }

    async fn delete(&self, collection: &str, ids: Vec<Uuid>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let alias = self.ensure(collection).await?;
        let ids: Vec<PointId> = ids.iter().map(|id| PointId::from(id.to_string())).collect();
        self.client
            .delete_points(
                DeletePointsBuilder::new(alias)
                    .points(PointsIdsList { ids })
                    .wait(true),
            )
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn search(&self, collection: &str, query: Query) -> Result<Vec<Hit>> {
        let alias = self.ensure(collection).await?;
        let mut must = Vec::new();
        if let Some(ws) = &query.workspaces {
            if ws.is_empty() {
                return Ok(Vec::new());
            }
            must.push(any_of("workspace_id", ws));
        }
        if !query.source_ids.is_empty() {
            must.push(any_of("source_id", &query.source_ids));
        }
        let mut request = QueryPointsBuilder::new(alias)
            .query(query.vector)
            .limit(query.limit as u64)
            .with_payload(true)
            .params(SearchParamsBuilder::default().hnsw_ef(SEARCH_EF.max(query.limit as u64)));
        if !must.is_empty() {
            request = request.filter(Filter::must(must));
        }
        if let Some(t) = query.score_threshold {
            request = request.score_threshold(t);
        }
        let reply = self.client.query(request).await.map_err(classify)?;
        Ok(reply
            .result
            .into_iter()
            .filter_map(|p| {
                let ws = p.payload.get("workspace_id").and_then(keyword)?;
                let source = p.payload.get("source_id").and_then(keyword)?;
                Some(Hit {
                    id: uuid_of(&p.id)?,
                    score: p.score,
                    workspace_id: Uuid::parse_str(ws).ok()?,
                    source_id: Uuid::parse_str(source).ok()?,
                })
            })
            .collect())
    }

    async fn retrieve(&self, collection: &str, ids: Vec<Uuid>) -> Result<Vec<Point>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let alias = self.ensure(collection).await?;
        let ids: Vec<PointId> = ids.iter().map(|id| PointId::from(id.to_string())).collect();
        let reply = self
            .client
            .get_points(
                GetPointsBuilder::new(alias, ids)
                    .with_payload(true)
                    .with_vectors(true),
            )
            .await
            .map_err(classify)?;
        Ok(reply
            .result
            .into_iter()
            .filter_map(from_retrieved)
            .collect())
    }

    async fn ids(
        &self,
        collection: &str,
        from: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<Uuid>)> {
        let alias = self.ensure(collection).await?;
        let mut request = ScrollPointsBuilder::new(alias)
            .limit(limit.clamp(1, u32::MAX as usize) as u32)
            .with_payload(false)
            .with_vectors(false);
        if let Some(from) = from {
            request = request.offset(PointId::from(from.to_string()));
        }
        let reply = self.client.scroll(request).await.map_err(classify)?;
        Ok((
            reply.result.iter().filter_map(|p| uuid_of(&p.id)).collect(),
            uuid_of(&reply.next_page_offset),
        ))
    }

    async fn stats(&self, collection: &str) -> Result<CollectionStats> {
        let alias = self.ensure(collection).await?;
        let info = self
            .client
            .collection_info(alias)
            .await
            .map_err(classify)?
            .result
            .unwrap_or_default();
        Ok(CollectionStats {
            points: info.points_count.unwrap_or(0),
            indexed: info.indexed_vectors_count.unwrap_or(0),
            segments: info.segments_count,
            wal_bytes: 0,
        })
    }

    async fn persist(&self, collection: &str) -> Result<bool> {
        // Every write was acknowledged with wait=true: it is in the server's WAL.
        self.ensure(collection).await?;
        Ok(true)
    }

    async fn rebuild(&self, collection: &str, points: Option<Vec<Point>>) -> Result<()> {
        let alias = self.ensure(collection).await?;
        let dims = self
            .known
            .lock()
            .await
            .get(collection)
            .map(|k| k.dims)
            .ok_or_else(|| VectorError::UnknownCollection(collection.to_owned()))?;
        let shadow = self
            .shadows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .cloned();
        let shadow = match shadow {
            Some(s) => s,
            None => {
                let s = self.create_physical(collection, dims).await?;
                self.shadows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(collection.to_owned(), s.clone());
                s
            }
        };
        match points {
            Some(points) => self.upsert_into(&shadow, points).await,
            None => {
                let old = self.target(&alias).await?;
                self.point_alias(&alias, &shadow).await?;
                self.shadows
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(collection);
                if let Some(old) = old.filter(|o| *o != shadow) {
                    self.drop_collection(&old).await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_and_refused_are_told_apart() {
        let down = classify(QdrantError::ResponseError {
            status: tonic::Status::unavailable("connection refused"),
        });
        assert!(matches!(down, VectorError::Unavailable(_)));
        let refused_connection = classify(QdrantError::ResponseError {
            status: tonic::Status::internal("Failed to connect to http://q:6334/: tcp connect"),
        });
        assert!(matches!(refused_connection, VectorError::Unavailable(_)));
        let refused = classify(QdrantError::ResponseError {
            status: tonic::Status::unauthenticated("bad api key"),
        });
        assert!(matches!(refused, VectorError::Engine(m) if m.contains("qdrant_api_key")));
    }

    #[test]
    fn points_carry_the_payload_searches_filter_on() {
        let p = Point {
            id: Uuid::now_v7(),
            vector: vec![1.0, 0.0],
            workspace_id: Uuid::now_v7(),
            source_id: Uuid::now_v7(),
            kind: "document",
        };
        let s = to_point(p.clone());
        assert_eq!(uuid_of(&s.id), Some(p.id));
        assert_eq!(
            s.payload.get("workspace_id").and_then(keyword),
            Some(p.workspace_id.to_string().as_str())
        );
        assert_eq!(s.payload.get("kind").and_then(keyword), Some("document"));
    }

    #[test]
    fn settings_never_print_the_api_key() {
        let s = QdrantSettings {
            url: "https://q.internal:6334".into(),
            api_key: Some("sekrit".into()),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("sekrit"));
    }
}
