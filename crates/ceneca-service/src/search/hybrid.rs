//! Hybrid search: full-text and vector results fused by reciprocal-rank fusion.

use std::collections::HashMap;

use serde_json::{Value as Json, json};

use crate::error::{Result, ServiceError};
use crate::vectors::points::parse_uuid;
use crate::vectors::{MAX_LIMIT, kind_of, parse_limit};
use crate::{Caller, Services};

impl Services {
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
        let workspace_id = match object.get("workspace_id") {
            None | Some(Json::Null) => None,
            Some(ws) => Some(parse_uuid(ws, "workspace_id")?),
        };
        let text = self
            .search(
                caller,
                &ceneca_wire::SearchParams {
                    q: q.to_owned(),
                    kind: if kind == "documents" {
                        ceneca_wire::SearchKind::Documents
                    } else {
                        ceneca_wire::SearchKind::Messages
                    },
                    workspace_id,
                    project_id: None,
                    thread_id: None,
                    author_id: None,
                    created_after: None,
                    created_before: None,
                    include_deleted: false,
                    limit: (limit * 2).min(MAX_LIMIT) as u32,
                    cursor: None,
                },
            )
            .await?;
        let mut vector_body = object.clone();
        vector_body.insert("limit".into(), json!((limit * 2).min(MAX_LIMIT)));
        vector_body.remove("q");
        vector_body.remove("collection");
        let vector_hits = self
            .vector_hits(caller, collection, &Json::Object(vector_body))
            .await?;

        let mut fused: HashMap<String, (f64, Json)> = HashMap::new();
        for (rank, item) in text.items.iter().enumerate() {
            let id = item.id.to_string();
            let entry = fused.entry(id.clone()).or_insert((
                0.0,
                json!({"id": id, "kind": item.kind, "workspace_id": item.workspace_id.to_string()}),
            ));
            entry.0 += 1.0 / (K + rank as f64 + 1.0);
            entry.1["text_rank"] = json!(rank + 1);
            entry.1["snippet"] = json!(item.snippet);
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
}
