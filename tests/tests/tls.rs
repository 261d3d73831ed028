//! HTTPS and mutual TLS: without a client certificate, with one from another CA, or with
//! an expired one the handshake is refused; a valid one is accepted. HSTS on TLS answers.

use ceneca_crypto::pki::{Authority, Pem};
use ceneca_e2e::{Backend, TestServer};
use ceneca_server::tls::{TlsFiles, serve_tls, server_config};
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
