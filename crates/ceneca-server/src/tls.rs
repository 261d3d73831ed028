//! HTTPS and mutual TLS (rustls). With a client CA configured, a connection without a
//! valid client certificate from that CA (missing, from another CA, expired) is refused
//! during the handshake, before any HTTP is read.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum_server::tls_rustls::RustlsConfig;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {reason}")]
    Load { what: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn load_err(what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Load {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

/// PEM contents of the server's certificate chain and key, and optionally the CA whose
/// client certificates are required.
pub struct TlsFiles {
    pub cert_chain: Vec<u8>,
    pub key: Vec<u8>,
    pub client_ca: Option<Vec<u8>>,
}

/// A rustls server configuration (ring provider; TLS 1.2 and 1.3; HTTP/2 and 1.1).
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.cert_chain)
        .collect::<Result<_, _>>()
        .map_err(|e| load_err("server certificate", e))?;
    if certs.is_empty() {
        return Err(load_err(
            "server certificate",
            "no certificate in the PEM file",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|e| load_err("server key", e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots
                    .add(cert.map_err(|e| load_err("client CA", e))?)
                    .map_err(|e| load_err("client CA", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| load_err("client CA", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The common name of the client certificate the request's connection presented (mutual
/// TLS). The handshake has verified the certificate against the client CA; a connection
/// without a client CA configured has none to offer.
pub(crate) fn client_common_name(parts: &axum::http::request::Parts) -> Option<String> {
    let info = parts.extensions.get::<Arc<axum_server::tls::TlsInfo>>()?;
    let der = info.peer_certificates.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(name)
}

/// Serves `router` over TLS on `listener` until `shutdown`, with HSTS on every answer.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    router: Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let router = router.layer(SetResponseHeaderLayer::overriding(
        HeaderName::from_static("strict-transport-security"),
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    ));
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(config))?
        .handle(handle)
        .serve(router.into_make_service_with_connect_info::<SocketAddr>())
        .await
}
