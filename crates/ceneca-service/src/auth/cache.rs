//! Callers kept in memory between requests.
//!
//! Authenticating a bearer token reads the session, its user and the user's scope: five
//! queries on every request. What they found is kept here with the authentication counter
//! it was read at ([`ceneca_store::Store::auth_generation`]), so a later request with the
//! same credential asks for one row, the counter, and uses what is kept while the counter
//! has not moved. Every change that can alter a caller (a logout, a revoked token or
//! device, a suspension, a role, a membership, a workspace, a permission set) moves the
//! counter in its own transaction, whichever process or node makes it, so the very next
//! request after it reads everything again.
//!
//! The cache only ever admits. A kept session that looks expired or idle is read again
//! rather than refused from memory (another node may have used it since), and refusals are
//! never kept: a wrong token costs what it cost before. A use written by another node moves
//! `last_used_at` forward and the counter not at all (it cannot end a session sooner); the
//! column set back moves the counter, since it can.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::Caller;
use crate::audit::RequestMeta;

/// What a caller authenticated with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CacheKey {
    /// The SHA-256 of a bearer token.
    Token(Vec<u8>),
    /// The common name of a verified client certificate.
    Certificate(String),
}

/// A caller as authenticating found it, at one value of the counter.
#[derive(Debug)]
pub(crate) struct Grant {
    pub generation: i64,
    /// Without the request's source address, which each request brings.
    caller: Caller,
    /// A session's absolute end (none for a client certificate).
    expires_at: Option<OffsetDateTime>,
    /// How long the session may go unused (none: it may go unused until it expires).
    idle_timeout: Option<time::Duration>,
    /// When this server last knew the session used (Unix seconds): read from the row, then
    /// moved by each use this server records.
    last_used: AtomicI64,
}

impl Grant {
    pub fn new(
        generation: i64,
        mut caller: Caller,
        expires_at: Option<OffsetDateTime>,
        idle_timeout: Option<time::Duration>,
        last_used: OffsetDateTime,
    ) -> Self {
        caller.source_ip = None;
        Self {
            generation,
            caller,
            expires_at,
            idle_timeout,
            last_used: AtomicI64::new(last_used.unix_timestamp()),
        }
    }

    /// Whether, as far as this server knows, the session is neither expired nor idle at
    /// `now`. A `false` is not a refusal: the caller reads the session again.
    pub fn current_at(&self, now: OffsetDateTime) -> bool {
        let live = self.expires_at.is_none_or(|end| end > now);
        let idle = self
            .idle_timeout
            .is_some_and(|limit| now - self.last_used_at() > limit);
        live && !idle
    }

    pub fn last_used_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.last_used.load(Ordering::Relaxed))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Records that this server wrote a use of the session at `at`.
    pub fn used_at(&self, at: OffsetDateTime) {
        self.last_used
            .fetch_max(at.unix_timestamp(), Ordering::Relaxed);
    }

    pub fn session_id(&self) -> uuid::Uuid {
        self.caller.session_id
    }

    /// The caller, for a request from `meta`.
    pub fn caller(&self, meta: &RequestMeta) -> Caller {
        Caller {
            source_ip: meta.source_ip.clone(),
            ..self.caller.clone()
        }
    }
}

/// The kept callers, at most `capacity` of them (0 keeps none).
#[derive(Debug)]
pub(crate) struct SessionCache {
    capacity: usize,
    entries: Mutex<HashMap<CacheKey, Arc<Grant>>>,
    /// One reload per credential at a time (see [`SessionCache::reload_turn`]): only the
    /// credentials being read now are here.
    reloads: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// The right to read one credential's caller again; others asking for it wait, then find
/// what this reload kept.
pub(crate) struct ReloadTurn<'a> {
    cache: &'a SessionCache,
    key: CacheKey,
    gate: Arc<tokio::sync::Mutex<()>>,
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for ReloadTurn<'_> {
    /// Lets the next waiter in, and forgets the gate when nobody else holds it (also when
    /// the request was dropped while it waited or read).
    fn drop(&mut self) {
        self.turn.take();
        let mut reloads = self.cache.reloads.lock().unwrap_or_else(|p| p.into_inner());
        // The map's handle and this one: no other request waits for this gate.
        if Arc::strong_count(&self.gate) <= 2 {
            reloads.remove(&self.key);
        }
    }
}

impl SessionCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
            reloads: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the turn to read `key`'s caller again. Without it, every request in flight
    /// with a credential whose kept caller went out of date read it again at once: with
    /// a large scope and the counter moved often (any user may create workspaces), that
    /// took the connections authentication reads on for everyone.
    pub async fn reload_turn(&self, key: &CacheKey) -> ReloadTurn<'_> {
        let gate = self
            .reloads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let turn = gate.clone().lock_owned().await;
        ReloadTurn {
            cache: self,
            key: key.clone(),
            gate,
            turn: Some(turn),
        }
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<Grant>> {
        self.lock().get(key).cloned()
    }

    /// Keeps `grant` for `key`. When full, what an older counter value holds goes first
    /// (it will be read again anyway); if that frees nothing, everything goes: a bound
    /// that costs one reload per caller, never a wrong answer.
    pub fn keep(&self, key: CacheKey, grant: Arc<Grant>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, kept| kept.generation >= grant.generation);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, grant);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<Grant>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceneca_domain::credential::Credential;
    use uuid::Uuid;

    fn caller() -> Caller {
        Caller {
            user_id: Uuid::now_v7(),
            email: "a@example.org".into(),
            system_admin: false,
            session_id: Uuid::now_v7(),
            device_id: None,
            scope: Default::default(),
            source_ip: Some("192.0.2.1".into()),
            credential: Credential::Session,
            replaying: None,
        }
    }

    fn grant(generation: i64, last_used: OffsetDateTime) -> Arc<Grant> {
        Arc::new(Grant::new(
            generation,
            caller(),
            Some(last_used + time::Duration::hours(1)),
            Some(time::Duration::minutes(10)),
            last_used,
        ))
    }

    #[test]
    fn a_kept_session_is_current_only_while_neither_expired_nor_idle() {
        let start = OffsetDateTime::now_utc();
        let kept = grant(1, start);
        assert!(kept.current_at(start + time::Duration::minutes(9)));
        assert!(!kept.current_at(start + time::Duration::minutes(11)));
        kept.used_at(start + time::Duration::minutes(9));
        assert!(kept.current_at(start + time::Duration::minutes(11)));
        // An older use recorded late does not move it back.
        kept.used_at(start);
        assert!(kept.current_at(start + time::Duration::minutes(11)));
        assert!(!kept.current_at(start + time::Duration::minutes(61)));
    }

    #[test]
    fn the_request_brings_its_own_address() {
        let kept = grant(1, OffsetDateTime::now_utc());
        let meta = RequestMeta {
            source_ip: Some("198.51.100.7".into()),
        };
        assert_eq!(
            kept.caller(&meta).source_ip.as_deref(),
            Some("198.51.100.7")
        );
        assert_eq!(kept.caller(&RequestMeta::default()).source_ip, None);
    }

    #[test]
    fn a_full_cache_drops_older_generations_first_then_everything() {
        let now = OffsetDateTime::now_utc();
        let cache = SessionCache::new(2);
        cache.keep(CacheKey::Token(vec![1]), grant(1, now));
        cache.keep(CacheKey::Token(vec![2]), grant(2, now));
        cache.keep(CacheKey::Token(vec![3]), grant(2, now));
        assert!(cache.get(&CacheKey::Token(vec![1])).is_none());
        assert_eq!(cache.len(), 2);
        cache.keep(CacheKey::Certificate("svc".into()), grant(2, now));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&CacheKey::Certificate("svc".into())).is_some());
        // Replacing a kept key never evicts.
        cache.keep(CacheKey::Token(vec![4]), grant(2, now));
        cache.keep(CacheKey::Token(vec![4]), grant(3, now));
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.get(&CacheKey::Token(vec![4])).map(|g| g.generation),
            Some(3)
        );
    }

    /// Found by the second attack: every request in flight with a token whose kept caller
    /// went out of date read it again at once. One turn per credential now.
    #[tokio::test]
    async fn regression_one_reload_per_credential_at_a_time() {
        let cache = Arc::new(SessionCache::new(10));
        let key = CacheKey::Token(vec![7]);
        let first = cache.reload_turn(&key).await;
        let waiter = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move {
                let _turn = cache.reload_turn(&key).await;
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second waits for the first");
        // Another credential does not wait.
        drop(cache.reload_turn(&CacheKey::Token(vec![8])).await);
        drop(first);
        waiter.await.unwrap();
        assert!(
            cache.reloads.lock().unwrap().is_empty(),
            "no gate is left behind"
        );
    }

    #[test]
    fn a_cache_of_no_entries_keeps_nothing() {
        let cache = SessionCache::new(0);
        cache.keep(
            CacheKey::Token(vec![1]),
            grant(1, OffsetDateTime::now_utc()),
        );
        assert_eq!(cache.len(), 0);
    }
}
