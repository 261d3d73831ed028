//! Search over what the caller may read: full-text (`text.rs`, `GET /search`) and
//! hybrid search fusing full-text with vector results (`hybrid.rs`).

mod hybrid;
mod text;

pub use text::*;

/// Full-text and hybrid search through the services, on a real store.
#[cfg(test)]
mod tests {
    use ceneca_domain::model;
    use serde_json::json;

    use crate::resources::ParentRef;
    use crate::testing::{id_of, refresh, services_with_vectors, sign_up};
    use crate::vectors::VectorIndexer;

    #[tokio::test]
    async fn text_search_finds_readable_messages_and_hybrid_search_fuses_both_rankings() {
        let t = services_with_vectors(4).await;
        let svc = &t.svc;
        let (ann, token) = sign_up(svc, "ann@example.com").await;
        let (bob, _) = sign_up(svc, "bob@example.com").await;
        let ws = svc
            .create(&ann, &model::WORKSPACES, &json!({"name": "Lab"}), None)
            .await
            .unwrap();
        let ann = refresh(svc, &token).await;
        let thread = svc
            .create(
                &ann,
                &model::THREADS,
                &json!({"workspace_id": ws["id"], "title": "t"}),
                None,
            )
            .await
            .unwrap();
        let message = svc
            .create(
                &ann,
                &model::MESSAGES,
                &json!({"role": "user", "content": "the zebra crossing"}),
                Some(ParentRef {
                    field: "thread_id",
                    id: id_of(&thread),
                }),
            )
            .await
            .unwrap();
        let q = |text: &str| {
            ceneca_wire::SearchParams::from_pairs([("q".to_owned(), text.to_owned())]).unwrap()
        };
        let found = svc.search(&ann, &q("zebra")).await.unwrap();
        assert_eq!(
            found.items[0].id.to_string(),
            message["id"].as_str().unwrap()
        );
        let hidden = svc.search(&bob, &q("zebra")).await.unwrap();
        assert!(hidden.items.is_empty());

        let worker = VectorIndexer::start(svc).expect("vector search is enabled");
        svc.upsert_vectors(
            &ann,
            "messages",
            &ceneca_wire::vectors::Points::One(ceneca_wire::vectors::PointInput::from_json(json!({"workspace_id": ws["id"], "source_id": message["id"], "vector": [0.0, 0.0, 1.0, 0.0]}))),
            true,
        )
        .await
        .unwrap();
        let fused = svc
            .hybrid_search(
                &ann,
                &ceneca_wire::search::HybridSearchRequest {
                    q: "zebra".into(),
                    vector: vec![0.0, 0.0, 1.0, 0.0],
                    collection: None,
                    workspace_id: None,
                    limit: None,
                    score_threshold: None,
                    source_ids: None,
                },
            )
            .await
            .unwrap();
        let top = &fused.items[0];
        assert_eq!(top.id.to_string(), message["id"]);
        assert_eq!(top.text_rank, Some(1));
        assert_eq!(top.vector_rank, Some(1));
        worker.shutdown().await;
    }
}
