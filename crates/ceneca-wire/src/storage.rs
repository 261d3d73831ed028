//! Storage statistics: the query of `GET /storage/stats` and its answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ParamError;
use crate::params::refuse_repeats;

/// Whose storage a statistics request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatsScope {
    /// A user's own workspaces (those of no organization): the user's quota.
    User,
    /// Every workspace of an organization: its quota.
    Organization,
    /// One workspace (counted in its user's or organization's quota).
    Workspace,
}

/// `GET /storage/stats?scope=user|organization|workspace&id=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsParams {
    pub scope: StatsScope,
    /// The user, organization or workspace; for `user`, the caller when omitted.
    pub id: Option<Uuid>,
}

impl StatsParams {
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        refuse_repeats(pairs)?;
        let mut scope = StatsScope::User;
        let mut id = None;
        for (name, value) in pairs {
            match name.as_str() {
                "scope" => {
                    scope = match value.as_str() {
                        "user" => StatsScope::User,
                        "organization" => StatsScope::Organization,
                        "workspace" => StatsScope::Workspace,
                        _ => {
                            return Err(ParamError::new(
                                "scope",
                                "must be user, organization or workspace",
                            ));
                        }
                    }
                }
                "id" => {
                    id = Some(
                        value
                            .parse()
                            .map_err(|_| ParamError::new("id", "must be a UUID"))?,
                    )
                }
                other => return Err(ParamError::new(other, "is not a parameter of this route")),
            }
        }
        if id.is_none() && scope != StatsScope::User {
            return Err(ParamError::new(
                "id",
                "names the organization or workspace (only `user` defaults to the caller)",
            ));
        }
        Ok(Self { scope, id })
    }
}

/// What one category holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CategoryUsage {
    /// Rows (messages, documents, files, embeddings; threads and projects for metadata),
    /// those in the bin left out: the bin is not charged.
    pub count: u64,
    /// Bytes as stored: text in UTF-8, a file's content, a vector's floats.
    pub bytes: u64,
}

/// `GET /storage/stats`: what is stored, by category, from counters every write keeps,
/// with the quota it counts against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StorageStats {
    pub scope: StatsScope,
    pub id: Uuid,
    pub messages: CategoryUsage,
    pub documents: CategoryUsage,
    pub attachments: CategoryUsage,
    pub embeddings: CategoryUsage,
    /// Threads and projects.
    pub metadata: CategoryUsage,
    pub total_bytes: u64,
    /// The quota these bytes count against (a workspace counts against its user's or
    /// organization's, shared with their other workspaces); absent when there is none,
    /// or when the caller is not the quota's holder (the user, or an owner or
    /// administrator of the organization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_bytes: Option<u64>,
    /// What the quota's holder stores, all its workspaces together; shown with
    /// `quota_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_used_bytes: Option<u64>,
    /// `quota_used_bytes` as a percentage of `quota_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_used: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_query_names_a_scope_and_its_id() {
        let me = StatsParams::from_pairs(&[]).unwrap();
        assert_eq!((me.scope, me.id), (StatsScope::User, None));
        let id = Uuid::from_u128(7);
        let ws =
            StatsParams::from_pairs(&pairs(&[("scope", "workspace"), ("id", &id.to_string())]))
                .unwrap();
        assert_eq!((ws.scope, ws.id), (StatsScope::Workspace, Some(id)));
        for (bad, field) in [
            (vec![("scope", "planet")], "scope"),
            (vec![("scope", "organization")], "id"),
            (vec![("id", "7")], "id"),
            (vec![("scop", "user")], "scop"),
            (vec![("scope", "user"), ("scope", "user")], "scope"),
        ] {
            assert_eq!(
                StatsParams::from_pairs(&pairs(&bad)).unwrap_err().field,
                field
            );
        }
    }
}
