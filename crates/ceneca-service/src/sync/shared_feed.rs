//! Readers of the same feed at the same moment share one read of it.
//!
//! A commit wakes every change stream of the node at once, and each asks the store for
//! what came after its cursor through its own filters. Streams of one user (a browser's
//! tabs, an account's devices) and of users with the same reach ask the very same query:
//! it is read once per commit, and the others wait for that read. The answer is the same
//! as if each had read alone: the key is the whole query (cursor, limit and every filter),
//! and a read is shared only within one moment — the same count of local commits and the
//! same quarter second, so a commit of another node is seen within the streams' own poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ceneca_domain::Record;
use ceneca_store::changes::FeedQuery;
use tokio::sync::OnceCell;

use crate::Services;
use crate::error::Result;

/// How long a read may be shared when no local commit happens.
const MOMENT: Duration = Duration::from_millis(250);

/// One read of the feed: where the log ended before it, and the rows it found.
pub(crate) struct FeedRead {
    pub last: i64,
    pub rows: Vec<Record>,
}

/// The reads of the current moment.
#[derive(Default)]
pub struct SharedFeed {
    state: Mutex<Moment>,
}

#[derive(Default)]
struct Moment {
    /// (local commits, quarter seconds since the node started).
    at: (u64, u64),
    reads: HashMap<String, Arc<OnceCell<Arc<FeedRead>>>>,
}

/// When the node started (moments are counted from it).
fn started() -> Instant {
    static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *STARTED.get_or_init(Instant::now)
}

impl SharedFeed {
    /// Ends the moment: the next reads go to the store (the log changed without a commit
    /// of a change, as when it is compacted).
    pub(super) fn forget(&self) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reads
            .clear();
    }
}

impl Services {
    /// The feed for `query`, read once for every reader asking it at this moment.
    pub(super) async fn read_feed(&self, query: FeedQuery) -> Result<Arc<FeedRead>> {
        let commits = *self.store.change_signal().borrow();
        let quarter = (started().elapsed().as_millis() / MOMENT.as_millis()) as u64;
        let key = key_of(&query);
        let read = {
            let mut moment = self
                .shared_feed
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if moment.at != (commits, quarter) {
                moment.at = (commits, quarter);
                moment.reads.clear();
            }
            moment.reads.entry(key).or_default().clone()
        };
        let read = read
            .get_or_try_init(|| async {
                // Where the log ends, read before the feed: with `seq` in commit order,
                // every change up to it is visible to the feed query that follows.
                let last = self.store.last_change().await?;
                let rows = self.store.feed(query).await?;
                Ok::<_, crate::ServiceError>(Arc::new(FeedRead { last, rows }))
            })
            .await?;
        Ok(read.clone())
    }
}

/// The whole query, as text: two readers share a read only if every part is the same.
fn key_of(query: &FeedQuery) -> String {
    use std::fmt::Write;
    let mut key = format!(
        "{} {} {:?} {:?} {:?} {:?}",
        query.after,
        query.limit,
        query.revocations_of,
        query.memberships_of,
        query.made_on,
        query.until
    );
    for part in &query.parts {
        let _ = write!(key, " {}:{:?}", part.entity.table, part.filter);
    }
    key
}

#[cfg(test)]
mod tests {
    use ceneca_domain::model;
    use ceneca_domain::scope::ScopeFilter;
    use ceneca_store::changes::{FeedPart, FeedQuery};
    use uuid::Uuid;

    use super::key_of;

    fn query(workspaces: Vec<Uuid>, after: i64) -> FeedQuery {
        FeedQuery {
            after,
            limit: 101,
            parts: vec![FeedPart {
                entity: &model::THREADS,
                filter: ScopeFilter::AnyOf(vec![("workspace_id", workspaces)]),
            }],
            revocations_of: None,
            memberships_of: None,
            made_on: None,
            until: None,
        }
    }

    #[test]
    fn readers_share_a_read_only_when_every_part_of_their_query_is_the_same() {
        let (mine, theirs) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(key_of(&query(vec![mine], 5)), key_of(&query(vec![mine], 5)));
        assert_ne!(
            key_of(&query(vec![mine], 5)),
            key_of(&query(vec![theirs], 5))
        );
        assert_ne!(
            key_of(&query(vec![mine], 5)),
            key_of(&query(vec![mine, theirs], 5))
        );
        assert_ne!(key_of(&query(vec![mine], 5)), key_of(&query(vec![mine], 6)));
        let mut revoked = query(vec![mine], 5);
        revoked.revocations_of = Some(mine);
        assert_ne!(key_of(&query(vec![mine], 5)), key_of(&revoked));
    }
}
