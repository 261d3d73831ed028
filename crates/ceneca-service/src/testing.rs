//! Services over a real store for the unit tests of each use case: a SQLite database in
//! a temporary folder, migrated, with a fresh key ring (and, on request, the embedded
//! vector engine). End-to-end tests over HTTP and PostgreSQL live in `tests/`.

use std::collections::HashMap;
use std::sync::Arc;

use ceneca_crypto::KeyRing;
use ceneca_crypto::keyring::{decode_key_base64, generate_key_base64};
use ceneca_store::StoreOptions;
use serde_json::{Value as Json, json};
use tempfile::TempDir;

use crate::audit::RequestMeta;
use crate::{Caller, ServiceConfig, Services};

/// Services and the folder their database lives in (deleted on drop).
pub(crate) struct TestServices {
    pub svc: Services,
    pub dir: TempDir,
    /// The material of the ring's one key (`test`), to build rings that extend it.
    pub key: Vec<u8>,
}

/// Services over a fresh, migrated SQLite store.
pub(crate) async fn services() -> TestServices {
    services_with(ServiceConfig::default()).await
}

/// The same, with `config`.
pub(crate) async fn services_with(config: ServiceConfig) -> TestServices {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("ceneca.db").display());
    let store = ceneca_store::open(&StoreOptions::new(url))
        .await
        .expect("open the store");
    store.migrate_up().await.expect("migrate");
    let key = decode_key_base64(&generate_key_base64()).expect("a key");
    let keys = KeyRing::new("test", &key).expect("a key ring");
    let svc = Services::new(store, Arc::new(keys), config);
    TestServices { svc, dir, key }
}

/// The same, with the embedded vector engine in the folder (`dims` for every collection).
pub(crate) async fn services_with_vectors(dims: usize) -> TestServices {
    let TestServices { svc, dir, key } = services().await;
    let index = ceneca_vector::embedded::EdgeIndex::open(
        dir.path().join("vectors"),
        ceneca_vector::embedded::EdgeSettings::default(),
    )
    .expect("open the vector index");
    let all: HashMap<String, usize> = crate::vectors::COLLECTIONS
        .iter()
        .map(|(c, _)| ((*c).to_owned(), dims))
        .collect();
    let svc = svc
        .with_vectors(
            Arc::new(index),
            all,
            64 * 1024 * 1024,
            ceneca_vector::OnOtherDimensions::Refuse,
        )
        .await
        .expect("open the collections");
    TestServices { svc, dir, key }
}

/// Registers an account and returns its caller and bearer token.
pub(crate) async fn sign_up(svc: &Services, email: &str) -> (Caller, String) {
    let login = svc
        .register(
            &serde_json::from_value(json!({"email": email, "password": "correct horse battery"}))
                .unwrap(),
            &RequestMeta::default(),
        )
        .await
        .expect("register");
    let caller = svc
        .authenticate(&login.token, &RequestMeta::default())
        .await
        .expect("authenticate");
    (caller, login.token)
}

/// The caller again, with the roles its latest writes gave it (scope is loaded per
/// request).
pub(crate) async fn refresh(svc: &Services, token: &str) -> Caller {
    svc.authenticate(token, &RequestMeta::default())
        .await
        .expect("authenticate")
}

/// The `id` of a JSON row.
pub(crate) fn id_of(row: &Json) -> uuid::Uuid {
    row["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a row with an id")
}
