//! HTTPS and mutual TLS: without a client certificate, with one from another CA, or with
//! an expired one the handshake is refused; a valid one is accepted. HSTS on TLS answers.
//! A client certificate mapped to an account authenticates a service by itself.

use ceneca_crypto::pki::{Authority, Pem};
use ceneca_e2e::{Backend, TestServer, on_every_backend};
use ceneca_server::tls::{TlsFiles, serve_tls, server_config};
use ceneca_service::ServiceConfig;
use time::{Duration, OffsetDateTime};

struct Tls {
    base: String,
    ca: Pem,
}

async fn start(s: &TestServer, authority: &Authority, mutual: bool) -> Tls {
    let server = authority
        .server(&["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    let files = TlsFiles {
        cert_chain: server.cert.into_bytes(),
        key: server.key.into_bytes(),
        client_ca: mutual.then(|| authority.pem().cert.into_bytes()),
    };
    let config = server_config(&files).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let router = ceneca_server::router(s.services.clone(), ceneca_server::HttpConfig::default());
    tokio::spawn(serve_tls(listener, router, config, std::future::pending()));
    Tls {
        base,
        ca: authority.pem(),
    }
}

fn client(ca: &Pem, identity: Option<&Pem>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert.as_bytes()).unwrap())
        .tls_built_in_root_certs(false);
    if let Some(id) = identity {
        builder = builder.identity(
            reqwest::Identity::from_pem(format!("{}{}", id.cert, id.key).as_bytes()).unwrap(),
        );
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_accepts_only_valid_client_certificates() {
    let s = TestServer::start(Backend::Sqlite).await;
    let authority = Authority::new("Ceneca test CA").unwrap();
    let tls = start(&s, &authority, true).await;
    let healthz = format!("{}/healthz", tls.base);

    let agent = authority.client("agent").unwrap();
    let ok = client(&tls.ca, Some(&agent))
        .get(&healthz)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );

    assert!(
        client(&tls.ca, None).get(&healthz).send().await.is_err(),
        "no client certificate"
    );
    let stranger = Authority::new("Another CA")
        .unwrap()
        .client("agent")
        .unwrap();
    assert!(
        client(&tls.ca, Some(&stranger))
            .get(&healthz)
            .send()
            .await
            .is_err(),
        "certificate from another CA"
    );
    let now = OffsetDateTime::now_utc();
    let expired = authority
        .client_valid("agent", now - Duration::days(30), now - Duration::days(1))
        .unwrap();
    assert!(
        client(&tls.ca, Some(&expired))
            .get(&healthz)
            .send()
            .await
            .is_err(),
        "expired certificate"
    );
    // The API works over mutual TLS as over plain HTTP.
    let r = client(&tls.ca, Some(&agent))
        .post(format!("{}/api/v1/auth/register", tls.base))
        .json(&serde_json::json!({"email": "tls@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tls_needs_no_client_certificate() {
    let s = TestServer::start(Backend::Sqlite).await;
    let authority = Authority::new("Ceneca test CA").unwrap();
    let tls = start(&s, &authority, false).await;
    let res = client(&tls.ca, None)
        .get(format!("{}/healthz", tls.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A client that does not trust the CA refuses the server.
    let untrusting = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    assert!(
        untrusting
            .get(format!("{}/healthz", tls.base))
            .send()
            .await
            .is_err()
    );
}

on_every_backend!(a_mapped_client_certificate_authenticates_a_service);

async fn a_mapped_client_certificate_authenticates_a_service(backend: Backend) {
    let service_email = format!("svc-web-{}@example.com", uuid::Uuid::now_v7().simple());
    let config = ServiceConfig {
        client_certificate_accounts: [("web-tier".to_owned(), service_email.clone())].into(),
        ..ServiceConfig::default()
    };
    let s = TestServer::start_with(backend, config).await;
    let authority = Authority::new("Ceneca test CA").unwrap();
    let tls = start(&s, &authority, true).await;
    let me = format!("{}/api/v1/auth/me", tls.base);

    // The service account exists and owns a workspace; a bystander has one too.
    let registered = s
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&serde_json::json!({"email": service_email, "password": "correct horse battery"})),
        )
        .await
        .expect(201);
    let service_token = registered["token"].as_str().unwrap().to_owned();
    let service = ceneca_e2e::User {
        id: registered["user"]["id"].as_str().unwrap().to_owned(),
        email: service_email.clone(),
        token: service_token,
    };
    let service_world = ceneca_e2e::world(&s, &service).await;
    let bystander = s.user("bystander").await;
    let bystander_world = ceneca_e2e::world(&s, &bystander).await;

    let web_tier = client(&tls.ca, Some(&authority.client("web-tier").unwrap()));
    let res = web_tier.get(&me).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["email"], service_email.as_str());

    // It acts with its account's roles: its own workspace yes, another tenant's no.
    let own = web_tier
        .get(format!(
            "{}/api/v1/workspaces/{}",
            tls.base, service_world.workspace
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let other = web_tier
        .get(format!(
            "{}/api/v1/workspaces/{}",
            tls.base, bystander_world.workspace
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // A bearer token takes precedence: the web tier relays an end user's session.
    let relayed = web_tier
        .get(&me)
        .bearer_auth(&bystander.token)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = relayed.json().await.unwrap();
    assert_eq!(body["email"], bystander.email.as_str());

    // A valid certificate whose name is not mapped authenticates nobody.
    let agent = client(&tls.ca, Some(&authority.client("agent").unwrap()));
    let res = agent.get(&me).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not mapped to an account"),
        "{body}"
    );

    // Suspending the account stops the certificate at once.
    let admin = s.admin().await;
    s.patch(
        &admin,
        &format!("/api/v1/users/{}", service.id),
        serde_json::json!({"status": "suspended"}),
    )
    .await
    .expect(200);
    let res = web_tier.get(&me).send().await.unwrap();
    assert_eq!(res.status(), 401);
}
