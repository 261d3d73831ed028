//! A bounded in-memory cache of single-row reads, in front of a store (a local node's
//! `sync.max_cache_entries`): a device's apps read the same threads and documents again
//! and again between writes.
//!
//! What is cached is the answer the database gave to one whole query — the row, the
//! tenant filter and the deletion view — so who may read what is still decided in SQL
//! (DESIGN.md §3 rule 1); a hit only repeats an answer already given to the same
//! question. Every write through the store ends the cache's generation: the cache is
//! emptied after the write commits, and a read that began before is not kept. So a read
//! never sees a row older than one a write has already returned. The store must be this
//! process's own: writes made by another process (another server on the same database)
//! would not end the generation, which is why only a local node, the one writer of its
//! embedded database, uses it.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use ceneca_domain::scope::{Scope, ScopeFilter};
use ceneca_domain::{Entity, Record, Value};
use hashlink::LruCache;
use uuid::Uuid;

use crate::changes::FeedQuery;
use crate::{
    Deleted, EmbeddingPoint, Engine, Lease, ListQuery, MigrationStatus, OutboxEntry, PoolStats,
    Result, SearchHit, SearchQuery, Store, StoreError, WriteBatch,
};

/// One question a cached answer answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    table: &'static str,
    id: Uuid,
    deleted: Deleted,
    /// The tenant filter, whole.
    filter: String,
}

/// A store with a bounded cache of `get` answers.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    state: Arc<CacheState>,
}

struct CacheState {
    rows: Mutex<LruCache<Key, Option<Record>>>,
    /// Ended by every write: an answer read during an older one is not kept.
    generation: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CacheState {
    fn rows(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Option<Record>>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After a write: a new generation, nothing cached from the old one.
    fn written(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.rows().clear();
    }
}

impl CachedStore {
    /// `inner` with a cache of at most `capacity` answers.
    pub fn new(inner: Arc<dyn Store>, capacity: usize) -> Self {
        Self {
            inner,
            state: Arc::new(CacheState {
                rows: Mutex::new(LruCache::new(capacity.max(1))),
                generation: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// (hits, misses) since start.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.state.hits.load(Ordering::Relaxed),
            self.state.misses.load(Ordering::Relaxed),
        )
    }

    /// Runs a write to its end, then ends the generation (whether it succeeded or not).
    /// The write runs as a task of its own: a caller that goes away (a client that
    /// disconnects) does not stop it committing, so it must not stop the cache learning
    /// of it either.
    async fn write<T, Work>(
        &self,
        work: impl FnOnce(Arc<dyn Store>) -> Work + Send + 'static,
    ) -> Result<T>
    where
        Work: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (inner, state) = (self.inner.clone(), self.state.clone());
        tokio::spawn(async move {
            let out = work(inner).await;
            state.written();
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("a write stopped: {e}")))?
    }
}

#[async_trait]
impl Store for CachedStore {
    fn engine(&self) -> Engine {
        self.inner.engine()
    }
    fn database_encrypted(&self) -> bool {
        self.inner.database_encrypted()
    }

    async fn apply(&self, batch: WriteBatch) -> Result<Vec<Record>> {
        self.write(move |s| async move { s.apply(batch).await })
            .await
    }

    async fn get(
        &self,
        entity: &'static Entity,
        id: Uuid,
        filter: ScopeFilter,
        deleted: Deleted,
    ) -> Result<Option<Record>> {
        let key = Key {
            table: entity.table,
            id,
            deleted,
            filter: format!("{filter:?}"),
        };
        if let Some(answer) = self.state.rows().get(&key) {
            self.state.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(answer.clone());
        }
        self.state.misses.fetch_add(1, Ordering::Relaxed);
        let generation = self.state.generation.load(Ordering::SeqCst);
        let answer = self.inner.get(entity, id, filter, deleted).await?;
        let mut rows = self.state.rows();
        // Checked under the lock `written` clears under: a write that ended meanwhile
        // is either seen here or clears this entry after.
        if self.state.generation.load(Ordering::SeqCst) == generation {
            rows.insert(key, answer.clone());
        }
        Ok(answer)
    }

    async fn list(&self, entity: &'static Entity, query: ListQuery) -> Result<Vec<Record>> {
        self.inner.list(entity, query).await
    }

    async fn load_scope(&self, user_id: Uuid, system_admin: bool) -> Result<Scope> {
        self.inner.load_scope(user_id, system_admin).await
    }

    async fn load_session(&self, token_hash: Vec<u8>) -> Result<Option<crate::LoadedSession>> {
        self.inner.load_session(token_hash).await
    }

    async fn auth_generation(&self) -> Result<i64> {
        self.inner.auth_generation().await
    }

    async fn lookup_unscoped(
        &self,
        entity: &'static Entity,
        column: &'static str,
        value: Value,
    ) -> Result<Option<Record>> {
        self.inner.lookup_unscoped(entity, column, value).await
    }

    async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool> {
        self.write(move |s| async move { s.claim_totp_step(user_id, step).await })
            .await
    }

    async fn consume_recovery_code(
        &self,
        user_id: Uuid,
        expected: Vec<String>,
        remaining: Vec<String>,
    ) -> Result<bool> {
        self.write(
            move |s| async move { s.consume_recovery_code(user_id, expected, remaining).await },
        )
        .await
    }

    async fn touch_session(&self, session_id: Uuid, at: time::OffsetDateTime) -> Result<()> {
        self.write(move |s| async move { s.touch_session(session_id, at).await })
            .await
    }

    async fn search(&self, query: SearchQuery) -> Result<Vec<SearchHit>> {
        self.inner.search(query).await
    }

    async fn reindex_text(&self) -> Result<()> {
        self.write(|s| async move { s.reindex_text().await }).await
    }

    async fn migration_status(&self) -> Result<Vec<MigrationStatus>> {
        self.inner.migration_status().await
    }

    async fn migrate_up(&self) -> Result<Vec<i64>> {
        self.write(|s| async move { s.migrate_up().await }).await
    }

    async fn migrate_down(&self) -> Result<Option<i64>> {
        self.write(|s| async move { s.migrate_down().await }).await
    }

    async fn vector_outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>> {
        self.inner.vector_outbox(limit).await
    }

    async fn vector_outbox_done(&self, seqs: Vec<i64>) -> Result<()> {
        self.write(move |s| async move { s.vector_outbox_done(seqs).await })
            .await
    }

    async fn vector_outbox_pending(&self) -> Result<Vec<(String, u64)>> {
        self.inner.vector_outbox_pending().await
    }

    async fn vector_outbox_holds(&self, collection: String, ids: Vec<Uuid>) -> Result<Vec<Uuid>> {
        self.inner.vector_outbox_holds(collection, ids).await
    }

    async fn vector_index_owner(&self) -> Result<Option<(String, String)>> {
        self.inner.vector_index_owner().await
    }

    async fn set_vector_index_owner(&self, index_id: String, fed: String) -> Result<()> {
        self.inner.set_vector_index_owner(index_id, fed).await
    }

    async fn vector_indexer_lease(&self) -> Result<Option<Box<dyn Lease>>> {
        self.inner.vector_indexer_lease().await
    }

    async fn vector_rebuild_lease(
        &self,
        wait: std::time::Duration,
    ) -> Result<Option<Box<dyn Lease>>> {
        self.inner.vector_rebuild_lease(wait).await
    }

    async fn embeddings_page(
        &self,
        collection: String,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<EmbeddingPoint>> {
        self.inner.embeddings_page(collection, after, limit).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn feed(&self, query: FeedQuery) -> Result<Vec<Record>> {
        self.inner.feed(query).await
    }

    async fn count_feed(&self, query: FeedQuery) -> Result<i64> {
        self.inner.count_feed(query).await
    }

    async fn change_history(&self, ids: Vec<Uuid>) -> Result<Vec<Record>> {
        self.inner.change_history(ids).await
    }

    async fn last_change(&self) -> Result<i64> {
        self.inner.last_change().await
    }

    async fn storage_usage(&self, of: crate::UsageOf) -> Result<Vec<crate::Usage>> {
        self.inner.storage_usage(of).await
    }

    async fn maintenance_lease(&self) -> Result<Option<Box<dyn Lease>>> {
        self.inner.maintenance_lease().await
    }

    async fn archive_policies(&self) -> Result<Vec<(Uuid, i64)>> {
        self.inner.archive_policies().await
    }

    async fn archive_candidates(
        &self,
        query: crate::ArchiveQuery,
    ) -> Result<Vec<crate::ArchiveCandidate>> {
        self.inner.archive_candidates(query).await
    }

    async fn scrub_deleted(&self) -> Result<()> {
        self.inner.scrub_deleted().await
    }

    async fn erasure_work(&self, user: Uuid, limit: u32) -> Result<crate::ErasureWork> {
        self.inner.erasure_work(user, limit).await
    }

    async fn snapshot_into(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead> {
        self.inner.snapshot_into(path).await
    }

    async fn restore_snapshot(
        &self,
        path: std::path::PathBuf,
    ) -> Result<ceneca_domain::audit::ChainHead> {
        self.inner.restore_snapshot(path).await
    }

    async fn check_restore_target(&self) -> Result<()> {
        self.inner.check_restore_target().await
    }

    async fn pending_erasures(&self) -> Result<Vec<Uuid>> {
        self.inner.pending_erasures().await
    }

    async fn created_by(&self, user: Uuid, entity: &'static Entity) -> Result<Vec<Uuid>> {
        self.inner.created_by(user, entity).await
    }

    async fn purge_candidates(
        &self,
        query: crate::PurgeQuery,
    ) -> Result<Vec<crate::PurgeCandidate>> {
        self.inner.purge_candidates(query).await
    }

    async fn purge_footprint(
        &self,
        entity: &'static Entity,
        ids: Vec<Uuid>,
    ) -> Result<crate::PurgeFootprint> {
        self.inner.purge_footprint(entity, ids).await
    }

    async fn archive_footprint(&self, threads: Vec<Uuid>) -> Result<crate::Footprint> {
        self.inner.archive_footprint(threads).await
    }

    async fn pack_candidates(&self, query: crate::PackQuery) -> Result<Vec<crate::PackCandidate>> {
        self.inner.pack_candidates(query).await
    }

    async fn message_bodies(&self, messages: Vec<Uuid>) -> Result<Vec<(Uuid, String)>> {
        self.inner.message_bodies(messages).await
    }

    async fn thumbnails_waiting(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, Record)>> {
        self.inner.thumbnails_waiting(after, limit).await
    }

    async fn thumbnail_of_blob(
        &self,
        storage_key: String,
        workspace: Uuid,
    ) -> Result<Option<crate::MadeThumbnail>> {
        self.inner.thumbnail_of_blob(storage_key, workspace).await
    }

    async fn reconcile_storage(&self, fix: bool) -> Result<Vec<crate::UsageDrift>> {
        // The counters are no row this cache holds.
        self.inner.reconcile_storage(fix).await
    }

    fn clock(&self) -> Arc<ceneca_domain::clock::HybridClock> {
        self.inner.clock()
    }

    fn change_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.change_signal()
    }

    fn pool_stats(&self) -> PoolStats {
        self.inner.pool_stats()
    }
}

#[cfg(test)]
mod tests {
    use ceneca_domain::model;

    use super::*;
    use crate::{Actor, WriteOp};

    async fn store() -> (tempfile::TempDir, Arc<CachedStore>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let inner = crate::open(&crate::StoreOptions::new(url)).await.unwrap();
        inner.migrate_up().await.unwrap();
        (dir, Arc::new(CachedStore::new(inner, 2)))
    }

    fn user(email: &str) -> Record {
        let mut r = Record::new();
        let now = ceneca_domain::clock::now();
        r.set("id", Value::Id(ceneca_domain::new_id()));
        r.set("created_at", Value::Time(now));
        r.set("updated_at", Value::Time(now));
        r.set("email", Value::Text(email.into()));
        r.set("display_name", Value::Text("N".into()));
        r.set("password_hash", Value::Text("x".into()));
        ceneca_domain::validate::fill_defaults(&model::USERS, &mut r, now);
        r
    }

    const NOBODY: Actor = Actor {
        user_id: None,
        device_id: None,
        replay: None,
    };

    #[tokio::test]
    async fn a_write_is_seen_by_the_next_read_and_each_filter_is_its_own_question() {
        let (_dir, store) = store().await;
        let row = user("a@example.com");
        let id = row.id().unwrap();
        store
            .apply(WriteBatch::new(NOBODY).push(WriteOp::Insert {
                entity: &model::USERS,
                record: row,
            }))
            .await
            .unwrap();
        let read = |filter: ScopeFilter| {
            let store = store.clone();
            async move {
                store
                    .get(&model::USERS, id, filter, Deleted::Exclude)
                    .await
                    .unwrap()
            }
        };
        let mine = ScopeFilter::AnyOf(vec![("id", vec![id])]);
        assert!(read(mine.clone()).await.is_some());
        assert!(read(mine.clone()).await.is_some());
        assert_eq!(store.hits_and_misses(), (1, 1));
        // Another tenant's filter is another question, answered by SQL: not this row.
        let theirs = ScopeFilter::AnyOf(vec![("id", vec![Uuid::now_v7()])]);
        assert!(read(theirs.clone()).await.is_none());
        assert!(read(theirs).await.is_none());

        let mut set = Record::new();
        set.set("display_name", Value::Text("Renamed".into()));
        store
            .apply(WriteBatch::new(NOBODY).push(WriteOp::Update {
                entity: &model::USERS,
                id,
                filter: ScopeFilter::All,
                set,
            }))
            .await
            .unwrap();
        let after = read(mine).await.unwrap();
        assert_eq!(
            after.get("display_name").and_then(Value::as_str),
            Some("Renamed")
        );
    }

    #[tokio::test]
    async fn it_holds_at_most_its_capacity() {
        let (_dir, store) = store().await;
        for _ in 0..5 {
            store
                .get(
                    &model::USERS,
                    Uuid::now_v7(),
                    ScopeFilter::All,
                    Deleted::Exclude,
                )
                .await
                .unwrap();
        }
        assert_eq!(store.state.rows().len(), 2);
    }
}
