//! The replication protocol (`/api/v1/sync/...`): the change feed, pushed changes and
//! their outcomes, recorded conflicts.
//!
//! Clock values and cursors travel as decimal strings: a hybrid-logical-clock value is a
//! 64-bit integer (milliseconds shifted left 16 bits), beyond the 53 bits a JavaScript
//! number holds exactly.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ParamError;
use crate::params::refuse_repeats;

/// The most changes one pull answers, and one push may carry.
pub const MAX_PULL: u32 = 10_000;
pub const MAX_PUSH: usize = 10_000;
/// What a pull answers when `limit` is not given.
pub const DEFAULT_PULL: u32 = 1_000;

/// `GET /sync/pull?cursor=…&limit=…` (and the stream's `cursor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullParams {
    /// The last change the client holds (`0`, or omitted: from the start).
    pub cursor: i64,
    pub limit: u32,
}

impl PullParams {
    /// Parses the query string; `limit` is refused where the route takes none.
    pub fn from_pairs(pairs: &[(String, String)], takes_limit: bool) -> Result<Self, ParamError> {
        refuse_repeats(pairs)?;
        let mut out = PullParams {
            cursor: 0,
            limit: DEFAULT_PULL,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "cursor" => out.cursor = parse_cursor(value)?,
                "limit" if takes_limit => {
                    out.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PULL).contains(n))
                        .ok_or_else(|| {
                            ParamError::new(
                                "limit",
                                format!("must be a whole number from 1 to {MAX_PULL}"),
                            )
                        })?
                }
                other => {
                    return Err(ParamError::new(other, "is not a parameter of this route"));
                }
            }
        }
        Ok(out)
    }
}

/// `GET /sync/snapshot?as_of=…&cursor=…&limit=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotParams {
    /// The log position the snapshot shows (omitted on the first page: the newest).
    pub as_of: Option<i64>,
    /// Where the previous page ended (0, or omitted: the first page).
    pub cursor: i64,
    pub limit: u32,
}

impl SnapshotParams {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        refuse_repeats(pairs)?;
        let as_of = pairs
            .iter()
            .find(|(name, _)| name == "as_of")
            .map(|(_, value)| {
                parse_cursor(value).map_err(|_| {
                    ParamError::new(
                        "as_of",
                        "must be the as_of of the snapshot's first page (a whole number)",
                    )
                })
            })
            .transpose()?;
        let rest: Vec<(String, String)> = pairs
            .iter()
            .filter(|(name, _)| name != "as_of")
            .cloned()
            .collect();
        let PullParams { cursor, limit } = PullParams::from_pairs(&rest, true)?;
        if let Some(as_of) = as_of
            && cursor > as_of
        {
            return Err(ParamError::new(
                "cursor",
                "is beyond the snapshot's as_of: pass back the cursor of its previous page",
            ));
        }
        if as_of.is_none() && cursor != 0 {
            return Err(ParamError::new(
                "as_of",
                "is required after the first page: pass back the as_of it answered",
            ));
        }
        Ok(SnapshotParams {
            as_of,
            cursor,
            limit,
        })
    }
}

/// A cursor as a client sends it: the decimal `seq` of the last change it holds.
pub fn parse_cursor(value: &str) -> Result<i64, ParamError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ParamError::new(
                "cursor",
                "must be a cursor this server gave (a whole number, 0 or more)",
            )
        })
}

/// What a change does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOperation {
    Create,
    Update,
    Delete,
    Restore,
    /// In the feed only: the user lost access to this workspace (or organization); a
    /// device drops its copy and lists again what it may read.
    Revoke,
    /// In the feed only: the row was deleted for good upstream (it was in the bin past
    /// the purge rule), with everything below it; a device deletes its copy. Its earlier
    /// changes are no longer in the feed.
    Purge,
}

/// One change of the feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Change {
    /// Its position in this server's log: a cursor.
    pub cursor: String,
    pub change_id: Uuid,
    /// The table of the row (`messages`).
    pub entity: String,
    pub entity_id: Uuid,
    pub operation: ChangeOperation,
    /// The change's hybrid-logical-clock stamp, which every field it wrote carries.
    pub hlc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<Uuid>,
    /// The new values of the fields written (every replicated field for a create; none
    /// for a delete or restore). A revoke carries `role` when it is a demotion (an
    /// organization's administrator made a plain member: the membership stays, the
    /// workspaces it opened go); none when the membership itself is gone.
    #[schema(value_type = Object)]
    pub values: Map<String, Json>,
}

/// `GET /sync/pull`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PullPage {
    pub changes: Vec<Change>,
    /// Pass back as `cursor` for the next page.
    pub cursor: String,
    pub has_more: bool,
}

/// `GET /sync/snapshot`: the state the caller may read, as of one log position, as the
/// changes that make it: each row's creation, and each later change that still holds one
/// of the row's registers (a field's value, the deletion), with only the fields it holds.
/// Applying every page and then pulling from `as_of` gives what pulling from the start
/// gives, without the history in between.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SnapshotPage {
    pub changes: Vec<Change>,
    /// Pass back as `cursor` (with `as_of`) for the next page.
    pub cursor: String,
    /// The log position the snapshot shows: after the last page, pull from here.
    pub as_of: String,
    pub has_more: bool,
}

/// One change a device sends.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushedChange {
    /// Chosen by the device (a UUIDv7): a retried change is recognised by it.
    pub change_id: Uuid,
    pub entity: String,
    pub entity_id: Uuid,
    pub operation: ChangeOperation,
    /// The device's hybrid-logical-clock stamp of the change, as a decimal string.
    pub hlc: String,
    /// The fields written (create, update).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub values: Map<String, Json>,
}

/// `POST /sync/push`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// The device the changes were made on: one of the caller's devices (a device token
    /// may name only its own).
    pub device_id: Uuid,
    #[schema(max_items = 10000)]
    pub changes: Vec<PushedChange>,
}

/// What became of one pushed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PushOutcome {
    /// Every field it wrote is now the row's (or it had been applied before: a retry).
    Applied,
    /// Some of its fields won; others lost to later writes (see the conflict).
    Merged,
    /// None of it won: later writes or a deletion stand (see the conflict).
    Conflict,
    /// Not accepted: the reason says why; nothing of it was stored.
    Refused,
}

/// The result of one pushed change, in the order sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushResult {
    pub change_id: Uuid,
    pub outcome: PushOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The field a refusal is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `POST /sync/push`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PushResponse {
    pub results: Vec<PushResult>,
}

/// A recorded conflict: what lost, to what, so nothing disappears silently.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictRecord {
    pub id: Uuid,
    pub created_at: String,
    /// `concurrent_edit`, `edit_lost_to_delete` or `unique_key`.
    pub kind: String,
    pub entity: String,
    pub entity_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    /// Whose change lost, and from which device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    pub change_id: Uuid,
    pub hlc: String,
    /// The values that lost.
    #[schema(value_type = Object)]
    pub lost_values: Json,
    pub winner_change_id: Uuid,
    pub winner_hlc: String,
}

/// `GET /sync/conflicts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConflictPage {
    pub items: Vec<ConflictRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /sync/status`, on a local node: how it stands with its upstream.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    /// `local`.
    pub node: String,
    /// Whether the last exchange with the upstream succeeded.
    pub online: bool,
    pub upstream: String,
    /// This node's device, as registered upstream.
    pub device_id: Uuid,
    /// When the last complete exchange (push, then pull) ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<String>,
    /// Changes made here that the upstream has not acknowledged yet.
    pub pending_changes: i64,
    /// Changes the upstream refused since the node started (see the log for why).
    pub refused_changes: u64,
    /// What went wrong last, while it stays wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The upstream's cursor this node has applied up to.
    pub cursor: String,
}
