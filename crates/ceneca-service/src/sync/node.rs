//! A local node: the same server on a device, a replica of an upstream Ceneca. Its sync
//! loop (`ceneca-node`) keeps the state this file shows (`GET /sync/status`); what it
//! writes of the upstream's comes in through `replica.rs`.

use std::sync::Mutex;

use ceneca_domain::Entity;
use ceneca_domain::sync::pushable;
use ceneca_wire::sync::SyncStatus;
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// What makes a server a local node: the device it is upstream, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    pub upstream: String,
    pub device_id: Uuid,
    /// The enrolled user: the upstream's account, kept here for offline log-in.
    pub user_id: Uuid,
}

/// Tables a local node keeps for itself and never replicates: its own API tokens (for
/// scripts on the device).
const LOCAL_ONLY: &[&str] = &["api_tokens"];

/// The sync loop's view of the upstream, as it last saw it.
#[derive(Debug, Default)]
pub struct NodeStatusBoard {
    state: Mutex<NodeState>,
}

/// The state the loop reports; the pending count is read from the store when asked.
#[derive(Debug, Default, Clone)]
pub struct NodeState {
    pub online: bool,
    pub last_sync_at: Option<time::OffsetDateTime>,
    pub last_error: Option<String>,
    /// The upstream's cursor this node has applied up to.
    pub cursor: i64,
    /// This node's own changes pushed up to (its change log's `seq`).
    pub pushed: i64,
    /// Changes the upstream refused since the node started (kept here, not applied there).
    pub refused: u64,
}

impl NodeStatusBoard {
    pub fn update(&self, change: impl FnOnce(&mut NodeState)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
    }

    pub fn get(&self) -> NodeState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Services {
    /// The board a local node's sync loop writes its state on.
    pub fn node_status(&self) -> &NodeStatusBoard {
        &self.node_status
    }

    /// `GET /sync/status`: how this local node stands with its upstream.
    /// Any signed-in caller of the node may read it (the caller proves only that).
    pub async fn sync_status(&self, _caller: &Caller) -> Result<SyncStatus> {
        self.require_sync()?;
        let node = self.config.local_node.as_ref().ok_or_else(|| {
            ServiceError::NotLocalNode(
                "this server is not a local node (it has no upstream): sync status belongs \
                 to a device's node; this server is where devices sync to"
                    .into(),
            )
        })?;
        let state = self.node_status.get();
        Ok(SyncStatus {
            node: "local".into(),
            online: state.online,
            upstream: node.upstream.clone(),
            device_id: node.device_id,
            last_sync_at: state.last_sync_at.map(ceneca_domain::output::format_time),
            pending_changes: self.count_pending(state.pushed).await?,
            refused_changes: state.refused,
            last_error: state.last_error,
            cursor: state.cursor.to_string(),
        })
    }

    /// On a local node, what is the upstream's to change (accounts, organizations,
    /// workspaces, who has access) is refused: a change made here could never be pushed.
    pub(crate) fn require_local_write(&self, entity: &Entity) -> Result<()> {
        if self.config.local_node.is_none()
            || !entity.changelog
            || pushable(entity)
            || LOCAL_ONLY.contains(&entity.table)
        {
            return Ok(());
        }
        Err(ServiceError::UpstreamOnly(format!(
            "{} are changed on the upstream ({}), not on a local node: the change reaches \
             this device with the next sync",
            entity.path,
            self.config
                .local_node
                .as_ref()
                .map(|n| n.upstream.as_str())
                .unwrap_or_default()
        )))
    }
}
