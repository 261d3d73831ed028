//! One secret check at a time per account on this node.
//!
//! Attempt limits count earlier failures in the audit trail and then check the secret;
//! without a gate, a burst of parallel guesses all pass the count before any of them is
//! recorded. Holding the account's gate from the count to the recorded outcome makes each
//! attempt see every earlier one. Across several nodes each node has its own gate, so a
//! burst spread over N nodes gets at most N times the limit; single-use secrets (TOTP
//! steps, recovery codes) are also consumed by conditional updates in the store, which
//! hold across nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

#[derive(Default)]
pub(crate) struct AccountGate {
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl AccountGate {
    /// Waits until no other secret check of `account` runs here, and holds the gate until
    /// the guard is dropped.
    pub(crate) async fn enter(&self, account: Uuid) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget gates nobody holds or waits for, so the map stays small.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            locks.entry(account).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_check_at_a_time_per_account() {
        let gate = Arc::new(AccountGate::default());
        let account = Uuid::from_u128(1);
        let held = gate.enter(account).await;
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(account).await })
        };
        // Another account is not held up.
        drop(gate.enter(Uuid::from_u128(2)).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "the second check waits for the first"
        );
        drop(held);
        waiting.await.unwrap();
    }
}
