//! The end-to-end harness: a real Ceneca server on `127.0.0.1:0`, over a real SQLite file
//! in a temporary folder or a fresh database on the PostgreSQL server the test command
//! started, driven over HTTP with `reqwest`.
//!
//! Every story is written once as `async fn story(backend: Backend)` and run on both
//! engines with [`on_every_backend!`]. PostgreSQL is never skipped: without
//! `CENECA_TEST_DATABASE_URL` the PostgreSQL half fails and says how to run it.

use std::sync::Arc;

use ceneca_crypto::KeyRing;
use ceneca_service::{ServiceConfig, Services};
use ceneca_store::StoreOptions;
use ceneca_vector::VectorIndex;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as two tests, `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The vector dimension of every collection in tests (small, so requests stay readable).
pub const TEST_VECTOR_DIMS: usize = 8;

/// A running server and what it runs on.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub services: Services,
    pub backend: Backend,
    /// `sqlite://path` or `postgres://...`: for tests that reach past the API on purpose.
    pub database_url: String,
    /// The server's key ring, for a test that opens what it sealed (a backup).
    pub keys: Arc<KeyRing>,
    /// The PostgreSQL database, dropped with the server (declared after `services`, so the
    /// server's own pool is dropped first).
    _database: Option<ScratchDatabase>,
    /// The server's HTTP figures, for a test to serve on a metrics listener of its own.
    pub metrics: Arc<ceneca_server::metrics::Metrics>,
    _indexer: Option<ceneca_service::vectors::VectorIndexer>,
    _dir: tempfile::TempDir,
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
}

/// A response: status and JSON body (`Null` when there is none).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The body, after checking the status.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A database of its own on the test server for one test, dropped with it: a full run
/// makes hundreds of about 10 MB each, and the disk CI runs on is not ours to fill.
pub struct ScratchDatabase {
    /// `postgres://.../ceneca_test_...`
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    /// A fresh, empty database.
    pub async fn create() -> Self {
        let admin_url = std::env::var("CENECA_TEST_DATABASE_URL").unwrap_or_else(|_| {
            panic!(
                "CENECA_TEST_DATABASE_URL is not set: the PostgreSQL half of the suite needs a server. \
                 Run `scripts/test`, which installs and starts one, or point the variable at a \
                 PostgreSQL you can create databases on (postgres://user@host:port/postgres)."
            )
        });
        let name = format!("ceneca_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to CENECA_TEST_DATABASE_URL: {e}"));
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("database URL ends with /dbname");
        ScratchDatabase {
            url: format!("{base}/{name}"),
            admin_url,
            name,
        }
    }
}

impl Drop for ScratchDatabase {
    /// Best effort: a database left behind costs disk, not correctness, so a failure here
    /// never fails the test (or hides why it failed). `WITH (FORCE)` ends the connections
    /// the test's server still holds. Drop runs inside the test's runtime, so the blocking
    /// work gets a thread and a runtime of its own.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .ok()?;
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::Executor::execute(&mut conn, drop.as_str()).await.ok()
            })
        })
        .join();
    }
}

/// A 32-byte key for tests, random per run.
pub fn test_key_ring() -> KeyRing {
    let key =
        ceneca_crypto::keyring::decode_key_base64(&ceneca_crypto::keyring::generate_key_base64())
            .unwrap();
    KeyRing::new("test", &key).unwrap()
}

/// The vector index of a test server: the embedded engine in its data folder, or — when
/// the test command is given `CENECA_TEST_QDRANT_URL` — that Qdrant server, under a
/// collection prefix of the test's own.
pub fn default_vector_index(dir: &std::path::Path) -> Arc<dyn VectorIndex> {
    match std::env::var("CENECA_TEST_QDRANT_URL") {
        Ok(url) if !url.is_empty() => Arc::new(
            ceneca_vector::server::QdrantIndex::connect(&ceneca_vector::server::QdrantSettings {
                url,
                api_key: std::env::var("CENECA_TEST_QDRANT_API_KEY").ok(),
                collection_prefix: format!("e2e_{}_", uuid::Uuid::now_v7().simple()),
                timeout: std::time::Duration::from_secs(30),
                indexing_threshold_kb: None,
            })
            .unwrap(),
        ),
        _ => Arc::new(
            ceneca_vector::embedded::EdgeIndex::open(
                dir.join("vectors"),
                ceneca_vector::embedded::EdgeSettings::default(),
            )
            .unwrap(),
        ),
    }
}

/// A real index with an off switch: while off, every call fails as an unreachable Qdrant
/// server does, so tests can take the vector store away and bring it back.
pub struct Switchable {
    inner: Arc<dyn VectorIndex>,
    up: std::sync::atomic::AtomicBool,
}

impl Switchable {
    pub fn new(inner: Arc<dyn VectorIndex>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            up: std::sync::atomic::AtomicBool::new(true),
        })
    }

    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
    }

    fn check(&self) -> ceneca_vector::Result<()> {
        if self.up.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ceneca_vector::VectorError::Unavailable(
                "switched off by the test".into(),
            ))
        }
    }
}

#[async_trait::async_trait]
impl VectorIndex for Switchable {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn open_collection(
        &self,
        collection: &str,
        dims: usize,
        other: ceneca_vector::OnOtherDimensions,
    ) -> ceneca_vector::Result<()> {
        self.inner.open_collection(collection, dims, other).await
    }
    async fn retrieve(
        &self,
        collection: &str,
        ids: Vec<uuid::Uuid>,
    ) -> ceneca_vector::Result<Vec<ceneca_vector::Point>> {
        self.check()?;
        self.inner.retrieve(collection, ids).await
    }
    async fn ids(
        &self,
        collection: &str,
        from: Option<uuid::Uuid>,
        limit: usize,
    ) -> ceneca_vector::Result<(Vec<uuid::Uuid>, Option<uuid::Uuid>)> {
        self.check()?;
        self.inner.ids(collection, from, limit).await
    }
    async fn upsert(
        &self,
        collection: &str,
        points: Vec<ceneca_vector::Point>,
    ) -> ceneca_vector::Result<()> {
        self.check()?;
        self.inner.upsert(collection, points).await
    }
    async fn delete(&self, collection: &str, ids: Vec<uuid::Uuid>) -> ceneca_vector::Result<()> {
        self.check()?;
        self.inner.delete(collection, ids).await
    }
    async fn search(
        &self,
        collection: &str,
        query: ceneca_vector::Query,
    ) -> ceneca_vector::Result<Vec<ceneca_vector::Hit>> {
        self.check()?;
        self.inner.search(collection, query).await
    }
    async fn stats(
        &self,
        collection: &str,
    ) -> ceneca_vector::Result<ceneca_vector::CollectionStats> {
        self.check()?;
        self.inner.stats(collection).await
    }
    async fn log_bytes(&self, collection: &str) -> ceneca_vector::Result<u64> {
        self.check()?;
        self.inner.log_bytes(collection).await
    }
    async fn persist(&self, collection: &str) -> ceneca_vector::Result<bool> {
        self.check()?;
        self.inner.persist(collection).await
    }
    async fn rebuild(
        &self,
        collection: &str,
        points: Option<Vec<ceneca_vector::Point>>,
    ) -> ceneca_vector::Result<()> {
        self.check()?;
        self.inner.rebuild(collection, points).await
    }
}

/// A connection of its own to a SQLite database, with the functions its schema calls
/// (a trigger that reads message bodies fails to prepare without them).
fn raw_sqlite(path: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    ceneca_store::sqlite::register_functions(&conn).unwrap();
    conn
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, ServiceConfig::default()).await
    }

    pub async fn start_with(backend: Backend, config: ServiceConfig) -> Self {
        Self::start_full(backend, config, ceneca_server::HttpConfig::default()).await
    }

    pub async fn start_full(
        backend: Backend,
        config: ServiceConfig,
        http: ceneca_server::HttpConfig,
    ) -> Self {
        Self::start_on(backend, config, http, default_vector_index, |_| {}).await
    }

    /// A server whose vector index `index_in(data folder)` makes.
    pub async fn start_with_index(
        backend: Backend,
        index_in: impl FnOnce(&std::path::Path) -> Arc<dyn VectorIndex>,
    ) -> Self {
        Self::start_on(
            backend,
            ServiceConfig::default(),
            ceneca_server::HttpConfig::default(),
            index_in,
            |_| {},
        )
        .await
    }

    async fn start_on(
        backend: Backend,
        config: ServiceConfig,
        http: ceneca_server::HttpConfig,
        index_in: impl FnOnce(&std::path::Path) -> Arc<dyn VectorIndex>,
        tweak: impl FnOnce(&mut StoreOptions),
    ) -> Self {
        // Server-side errors show in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(ScratchDatabase::create().await),
        };
        let url = match &database {
            None => format!("sqlite://{}", dir.path().join("ceneca.db").display()),
            Some(database) => database.url.clone(),
        };
        Self::start_in(
            dir,
            backend,
            url,
            database,
            (config, http),
            index_in,
            tweak,
            true,
        )
        .await
    }

    /// A server on a store opened with `options` changed by `tweak`.
    pub async fn start_with_store(backend: Backend, tweak: impl FnOnce(&mut StoreOptions)) -> Self {
        Self::start_on(
            backend,
            ServiceConfig::default(),
            ceneca_server::HttpConfig::default(),
            default_vector_index,
            tweak,
        )
        .await
    }

    /// Another node on this server's database (PostgreSQL): a data folder and an embedded
    /// vector index of its own, the same keys, and no vector indexer (as a command run on
    /// another machine's folder: it feeds its index only when a rebuild runs there). The
    /// database stays this server's: keep this one alive while the other runs.
    pub async fn second_node(&self) -> Self {
        assert_eq!(
            self.backend,
            Backend::Postgres,
            "nodes share a PostgreSQL database"
        );
        Self::start_in(
            tempfile::tempdir().unwrap(),
            self.backend,
            self.database_url.clone(),
            None,
            (
                ServiceConfig::default(),
                ceneca_server::HttpConfig::default(),
            ),
            default_vector_index,
            |_| {},
            false,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_in(
        dir: tempfile::TempDir,
        backend: Backend,
        url: String,
        database: Option<ScratchDatabase>,
        (config, http): (ServiceConfig, ceneca_server::HttpConfig),
        index_in: impl FnOnce(&std::path::Path) -> Arc<dyn VectorIndex>,
        tweak: impl FnOnce(&mut StoreOptions),
        indexer: bool,
    ) -> Self {
        let mut options = StoreOptions::new(url.clone());
        options.pg_max_connections = 5;
        tweak(&mut options);
        let store = ceneca_store::open(&options).await.expect("open store");
        store.migrate_up().await.expect("migrate");
        let index = index_in(dir.path());
        let dims = ["messages", "documents", "attachments"]
            .map(|c| (c.to_owned(), TEST_VECTOR_DIMS))
            .into();
        let blobs = ceneca_store::FsBlobs::open(dir.path().join("blobs")).expect("blob folder");
        let keys = Arc::new(test_key_ring());
        let services = Services::new(store, keys.clone(), config)
            .with_blobs(Arc::new(blobs))
            .with_backups(dir.path().join("backups"), dir.path().to_owned())
            .with_export_jobs(dir.path().join("exports"))
            .expect("export folder")
            .with_audit_head(dir.path().join(ceneca_service::audit_head::FILE_NAME))
            .await
            .expect("anchor the audit chain")
            .with_vectors(
                index,
                dims,
                64 * 1024 * 1024,
                ceneca_vector::OnOtherDimensions::Refuse,
            )
            .await
            .expect("open vector collections");
        // Stopped with the server (its handle is dropped with it), so it does not go on
        // writing into a folder the test has removed.
        let indexer = if indexer {
            ceneca_service::vectors::VectorIndexer::start(&services)
        } else {
            None
        };
        tokio::spawn(services.clone().run_thumbnails());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = ceneca_server::app(services.clone(), http);
        tokio::spawn(ceneca_server::serve(
            listener,
            app.router,
            std::future::pending(),
        ));
        TestServer {
            base,
            http: reqwest::Client::new(),
            services,
            backend,
            database_url: url,
            keys,
            _database: database,
            metrics: app.metrics,
            _indexer: indexer,
            _dir: dir,
        }
    }

    /// Runs SQL straight on the database, as an attacker with file or database access
    /// would (or a test checking what is stored).
    pub async fn raw_execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || raw_sqlite(&path).execute_batch(&sql).unwrap())
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut conn = self.raw_postgres().await;
                sqlx::Executor::execute(&mut conn, sql).await.unwrap();
            }
        }
    }

    /// The first column of the first row `sql` returns, as text, read straight from the
    /// database (`NULL` as `None`).
    pub async fn raw_text(&self, sql: &str) -> Option<String> {
        match self.backend {
            Backend::Sqlite => {
                let path = self.sqlite_path();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    raw_sqlite(&path)
                        .query_row(&sql, [], |row| row.get::<_, Option<String>>(0))
                        .unwrap()
                })
                .await
                .unwrap()
            }
            Backend::Postgres => {
                let mut conn = self.raw_postgres().await;
                let row = sqlx::query(sql).fetch_one(&mut conn).await.unwrap();
                sqlx::Row::get::<Option<String>, _>(&row, 0)
            }
        }
    }

    /// Uploads `bytes` as the content of `attachment` (`PUT …/content`); the status.
    pub async fn put_content(&self, user: &User, attachment: &str, bytes: Vec<u8>) -> u16 {
        self.http
            .put(format!(
                "{}/api/v1/attachments/{attachment}/content",
                self.base
            ))
            .bearer_auth(&user.token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    /// Makes every blob file older than the sweep's grace: a maintenance run deletes
    /// only files written before it (another process's upload may be about to name a
    /// newer one), and the tests' files were written a moment ago.
    pub fn age_blobs(&self) {
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for path in files_under(&self.data_dir().join("blobs")) {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(then).unwrap();
        }
    }

    fn sqlite_path(&self) -> String {
        self.database_url
            .strip_prefix("sqlite://")
            .unwrap()
            .to_owned()
    }

    async fn raw_postgres(&self) -> sqlx::PgConnection {
        <sqlx::PgConnection as sqlx::Connection>::connect(&self.database_url)
            .await
            .unwrap()
    }

    /// Sends a request with an optional token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        // A success in another format (an export's archive) is its bytes as text; an
        // error, or anything that says it is JSON, must be JSON.
        let other_format = status.is_success()
            && res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| !t.starts_with("application/json"));
        let bytes = res.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else if other_format {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Reply { status, body }
    }

    pub async fn get(&self, user: &User, path: &str) -> Reply {
        self.call(Method::GET, path, Some(&user.token), None).await
    }
    /// The server's data folder (its blob folder is `blobs/`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }
    pub async fn post(&self, user: &User, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&user.token), Some(&body))
            .await
    }
    pub async fn patch(&self, user: &User, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(&user.token), Some(&body))
            .await
    }
    /// Serves `GET /metrics` without authentication on a listener of its own, as
    /// `metrics_listen` does; returns its base URL.
    pub async fn metrics_listener(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(ceneca_server::serve(
            listener,
            ceneca_server::metrics::open_router(self.services.clone(), self.metrics.clone()),
            std::future::pending(),
        ));
        base
    }

    pub async fn delete(&self, user: &User, path: &str) -> Reply {
        self.call(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// `POST /api/v1/auth/register` with `body`, signed out.
    pub async fn register(&self, body: Value) -> Reply {
        self.call(Method::POST, "/api/v1/auth/register", None, Some(&body))
            .await
    }

    /// Registers a new account with a unique e-mail and returns it signed in.
    pub async fn user(&self, name: &str) -> User {
        let email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
        let body = self
            .register(json!({"email": email, "password": "correct horse battery"}))
            .await
            .expect(201);
        User {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a system administrator (as `ceneca user create --admin` does), enrols MFA
    /// (required before administrator powers apply) and logs in with a one-time code.
    pub async fn admin(&self) -> User {
        self.admin_with_mfa().await.0
    }

    /// [`TestServer::admin`], with the base32 secret of its MFA (for codes it sends later).
    pub async fn admin_with_mfa(&self) -> (User, String) {
        let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
        self.services
            .create_user(&email, "Admin", "correct horse battery", true)
            .await
            .unwrap();
        let password = json!({"email": email, "password": "correct horse battery"});
        let first = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(&password))
            .await
            .expect(200);
        let token = first["token"].as_str().unwrap().to_owned();
        let secret = self.enable_mfa(&token).await;
        let body = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&json!({"email": email, "password": "correct horse battery", "mfa_code": mfa_code(&secret)})),
            )
            .await
            .expect(200);
        let admin = User {
            id: body["user"]["id"].as_str().unwrap().to_owned(),
            email,
            token: body["token"].as_str().unwrap().to_owned(),
        };
        (admin, secret)
    }

    /// Enrols and confirms MFA for the token's account; returns the base32 secret.
    pub async fn enable_mfa(&self, token: &str) -> String {
        let enrolled = self
            .call(Method::POST, "/api/v1/auth/mfa/enroll", Some(token), None)
            .await
            .expect(200);
        let secret = enrolled["secret"].as_str().unwrap().to_owned();
        self.call(
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            Some(token),
            Some(&json!({"code": mfa_code(&secret)})),
        )
        .await
        .expect(200);
        secret
    }

    /// The audit entries matching `query` (`action=dlp.finding`, or empty for all), oldest
    /// first, as `admin` reads them.
    pub async fn audit_log(&self, admin: &User, query: &str) -> Vec<Value> {
        let mut all = self
            .list_all(admin, &format!("/api/v1/audit-log?{query}"))
            .await;
        all.sort_by_key(|e| e["sequence"].as_i64());
        all
    }

    /// All items of a list, following cursors.
    pub async fn list_all(&self, user: &User, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}cursor={c}"),
                None => path.to_owned(),
            };
            let page = self.get(user, &url).await.expect(200);
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
    }
}

/// Ids of a small world one user owns: a personal workspace with a project, a thread with
/// two messages, a document; an organization with an org-owned workspace; a plan.
#[derive(Debug, Clone)]
pub struct World {
    pub workspace: String,
    pub project: String,
    pub thread: String,
    pub message: String,
    pub document: String,
    pub organization: String,
    pub org_workspace: String,
    pub flow: String,
}

pub async fn world(s: &TestServer, owner: &User) -> World {
    let workspace = s
        .post(owner, "/api/v1/workspaces", json!({"name": "Personal"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = s
        .post(
            owner,
            "/api/v1/projects",
            json!({"workspace_id": workspace, "name": "Apollo"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let thread = s
        .post(
            owner,
            "/api/v1/threads",
            json!({"workspace_id": workspace, "project_id": project, "title": "Launch"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let batch = s
        .post(
            owner,
            &format!("/api/v1/threads/{thread}/messages/batch"),
            json!({"items": [{"role": "user", "content": "When do we launch?"}, {"role": "assistant", "content": "At dawn.", "model": "m1"}]}),
        )
        .await
        .expect(201);
    let message = batch["items"][0]["id"].as_str().unwrap().to_owned();
    let document = s
        .post(owner, "/api/v1/documents", json!({"workspace_id": workspace, "project_id": project, "title": "Plan", "body": "Step one"}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let slug = format!("org-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let organization = s
        .post(
            owner,
            "/api/v1/organizations",
            json!({"name": "Acme", "slug": slug}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let org_workspace = s
        .post(
            owner,
            "/api/v1/workspaces",
            json!({"name": "Team", "organization_id": organization}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let flow = s
        .post(
            owner,
            "/api/v1/orchestration-flows",
            json!({"workspace_id": workspace, "name": "Summarize", "definition": {"steps": [
                {"key": "draft", "provider": "openai", "model": "m", "prompt_template": "{{input}}"},
                {"key": "review", "provider": "anthropic", "model": "c", "prompt_template": "{{draft}}", "depends_on": ["draft"]}
            ]}}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    World {
        flow,
        workspace,
        project,
        thread,
        message,
        document,
        organization,
        org_workspace,
    }
}

/// A SHA-256-shaped hex string.
pub fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// One resource's create body and a patch body (when it has patchable fields), for tests
/// that go over every resource.
#[derive(Debug, Clone)]
pub struct Sample {
    pub path: &'static str,
    pub create: Value,
    pub patch: Option<Value>,
    pub soft_delete: bool,
}

/// A sample of every resource a workspace owner can create, inside `w`.
pub fn samples(w: &World) -> Vec<Sample> {
    let s = |path, create, patch: Option<Value>, soft_delete| Sample {
        path,
        create,
        patch,
        soft_delete,
    };
    let slug = format!("s-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    vec![
        s(
            "organizations",
            json!({"name": "Org", "slug": slug}),
            Some(json!({"name": "Org 2"})),
            true,
        ),
        s(
            "devices",
            json!({"name": "laptop", "platform": "desktop"}),
            Some(json!({"name": "work laptop"})),
            false,
        ),
        s(
            "settings",
            json!({"key": "theme", "value": {"mode": "dark"}}),
            Some(json!({"value": "light"})),
            false,
        ),
        s(
            "workspaces",
            json!({"name": "Another"}),
            Some(json!({"description": "d"})),
            true,
        ),
        s(
            "projects",
            json!({"workspace_id": w.workspace, "name": "P"}),
            Some(json!({"name": "P2"})),
            true,
        ),
        s(
            "documents",
            json!({"workspace_id": w.workspace, "title": "Doc", "body": "text"}),
            Some(json!({"body": "more"})),
            true,
        ),
        s(
            "threads",
            json!({"workspace_id": w.workspace, "title": "T"}),
            Some(json!({"pinned": true})),
            true,
        ),
        s(
            "messages",
            json!({"thread_id": w.thread, "role": "user", "content": "hi"}),
            Some(json!({"content": "edited"})),
            true,
        ),
        s(
            "attachments",
            json!({"workspace_id": w.workspace, "message_id": w.message, "file_name": "a.png"}),
            Some(json!({"file_name": "b.png"})),
            false,
        ),
        s(
            "provider-configs",
            json!({"provider": "openai", "name": "Mine", "api_key": "sk-test-0123456789abcd", "models": ["gpt-x"]}),
            Some(json!({"enabled": false})),
            false,
        ),
        s(
            "ai-interactions",
            json!({"workspace_id": w.workspace, "thread_id": w.thread, "provider": "openai", "model": "gpt-x", "prompt_tokens": 10, "completion_tokens": 5, "cost_micros": 42, "latency_ms": 120}),
            None,
            false,
        ),
        s(
            "orchestration-flows",
            json!({"workspace_id": w.workspace, "name": "F", "definition": {"steps": [{"key": "a", "provider": "p", "model": "m", "prompt_template": "x"}]}}),
            Some(json!({"status": "active"})),
            false,
        ),
        s(
            "orchestration-step-results",
            json!({"flow_id": w.flow, "run_id": uuid::Uuid::now_v7().to_string(), "step_key": "draft", "input": {"q": 1}}),
            Some(json!({"status": "succeeded", "output": "done"})),
            false,
        ),
        s(
            "embeddings",
            json!({"collection": "messages", "source_id": w.message, "workspace_id": w.workspace, "model": "e5", "dims": TEST_VECTOR_DIMS, "vector": vec![0.1; TEST_VECTOR_DIMS], "content_hash": sha(2)}),
            None,
            false,
        ),
        s(
            "permission-sets",
            json!({"workspace_id": w.workspace, "subject_type": "role", "subject_role": "editor", "resource_type": "threads", "actions": ["read", "write"], "effect": "allow"}),
            Some(json!({"effect": "deny"})),
            false,
        ),
        s(
            "sharing-policies",
            json!({"scope": "export", "granted": true, "policy_version": "2026-01"}),
            Some(json!({"granted": false})),
            false,
        ),
        s(
            "telemetry",
            json!({"name": "app.opened", "properties": {"v": 1}}),
            None,
            false,
        ),
    ]
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The current one-time code for a base32 TOTP secret, as an authenticator app shows it.
pub fn current_mfa_code(secret_base32: &str) -> String {
    ceneca_crypto::totp::code_from_base32(secret_base32, unix_now()).expect("valid base32 secret")
}

/// A one-time code the server has not seen yet for this secret. A code works once (its
/// 30-second step is remembered, and only later steps are accepted), so successive calls
/// walk the steps the server accepts (now and one after; one before still passes when a
/// request crosses a step boundary) and wait for the clock when they are used up.
pub fn mfa_code(secret_base32: &str) -> String {
    static USED: std::sync::Mutex<Vec<(String, u64)>> = std::sync::Mutex::new(Vec::new());
    let mut used = USED.lock().unwrap();
    let last = used
        .iter()
        .find(|(s, _)| s == secret_base32)
        .map(|(_, step)| *step);
    let step = match last {
        Some(last) => (last + 1).max(unix_now() / 30),
        None => unix_now() / 30,
    };
    // The server accepts steps up to one after the current one.
    while step > unix_now() / 30 + 1 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    used.retain(|(s, _)| s != secret_base32);
    used.push((secret_base32.to_owned(), step));
    ceneca_crypto::totp::code_from_base32(secret_base32, step * 30).expect("valid base32 secret")
}

/// Every file below `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
