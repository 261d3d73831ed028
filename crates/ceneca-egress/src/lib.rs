//! # ceneca-egress
//!
//! Every outbound connection Ceneca makes — to PostgreSQL, to a Qdrant server, later to a
//! sync upstream — has its destination settled here. In the zero-sync edition the host is
//! resolved once, *every* address it resolves to must be internal
//! ([`ceneca_domain::network::InternalHosts`]), and the connection is then made to the
//! checked address, not to the name: a DNS answer that changes later (rebinding) cannot
//! send a reconnect outside. In the enterprise edition destinations are left to the
//! clients, as they are.
//!
//! The cost of pinning: a TLS connection is then verified against the address, so a
//! zero-sync deployment that verifies its database's certificate names the address in the
//! certificate (or connects by address).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ceneca_domain::network::InternalHosts;
use ceneca_domain::network::hosts::describe;

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error(
        "{setting}: '{host}' resolves to {address}, which is outside the network; the \
         zero-sync edition connects only to internal addresses (add the network to \
         network.internal_hosts if it is yours)"
    )]
    Outside {
        setting: String,
        host: String,
        address: String,
    },
    #[error("{setting}: cannot resolve '{host}': {reason}")]
    Unresolved {
        setting: String,
        host: String,
        reason: String,
    },
    #[error("{setting}: '{url}' is not a URL with a host: {reason}")]
    BadUrl {
        setting: String,
        url: String,
        reason: String,
    },
}

/// Where connections may go.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    /// `Some` in the zero-sync edition: only these hosts.
    internal_only: Option<Arc<InternalHosts>>,
}

impl Egress {
    /// Anywhere (the enterprise edition): clients resolve and connect as they do.
    pub fn unrestricted() -> Self {
        Self::default()
    }

    /// Only inside the network (the zero-sync edition).
    pub fn internal_only(hosts: Arc<InternalHosts>) -> Self {
        Self {
            internal_only: Some(hosts),
        }
    }

    pub fn is_restricted(&self) -> bool {
        self.internal_only.is_some()
    }

    /// The address to connect to for `host:port`, named after `setting` in errors. When
    /// restricted: `host` resolved, every address checked, the first returned (the
    /// connection is pinned to it). Unrestricted: `None`, connect by name.
    pub async fn resolve(
        &self,
        setting: &str,
        host: &str,
        port: u16,
    ) -> Result<Option<SocketAddr>, EgressError> {
        let Some(internal) = &self.internal_only else {
            return Ok(None);
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|e| EgressError::Unresolved {
                    setting: setting.to_owned(),
                    host: host.to_owned(),
                    reason: e.to_string(),
                })?
                .collect(),
        };
        if let Some(outside) = addresses.iter().find(|a| !internal.is_internal_ip(a.ip())) {
            return Err(EgressError::Outside {
                setting: setting.to_owned(),
                host: host.to_owned(),
                address: describe(outside.ip()),
            });
        }
        addresses
            .first()
            .copied()
            .map(Some)
            .ok_or_else(|| EgressError::Unresolved {
                setting: setting.to_owned(),
                host: host.to_owned(),
                reason: "no address".into(),
            })
    }

    /// `url` with its host replaced by the checked address (restricted), or as it is.
    pub async fn pin_url(&self, setting: &str, url: &str) -> Result<String, EgressError> {
        if !self.is_restricted() {
            return Ok(url.to_owned());
        }
        let bad = |reason: String| EgressError::BadUrl {
            setting: setting.to_owned(),
            url: url.to_owned(),
            reason,
        };
        let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad("no host".into()))?
            .to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| bad("no port".into()))?;
        if let Some(address) = self.resolve(setting, &host, port).await? {
            parsed
                .set_ip_host(address.ip())
                .map_err(|()| bad("cannot take an address as host".into()))?;
        }
        Ok(parsed.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zero_sync() -> Egress {
        Egress::internal_only(Arc::new(InternalHosts::default()))
    }

    #[tokio::test]
    async fn internal_destinations_are_pinned_to_their_address() {
        let pinned = zero_sync()
            .resolve("store.database_url", "localhost", 5432)
            .await
            .unwrap()
            .unwrap();
        assert!(pinned.ip().is_loopback());
        assert_eq!(
            zero_sync()
                .pin_url("vectors.qdrant_url", "http://127.0.0.1:6334")
                .await
                .unwrap(),
            "http://127.0.0.1:6334/"
        );
    }

    #[tokio::test]
    async fn outside_addresses_are_refused_naming_the_setting() {
        for host in ["8.8.8.8", "[2001:4860:4860::8888]", "169.254.169.254"] {
            let err = zero_sync()
                .resolve("vectors.qdrant_url", host, 6334)
                .await
                .unwrap_err();
            assert!(matches!(err, EgressError::Outside { .. }), "{host}");
            assert!(err.to_string().starts_with("vectors.qdrant_url: "), "{err}");
        }
        let err = zero_sync()
            .pin_url("vectors.qdrant_url", "http://134744072:6334")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("8.8.8.8"), "{err}");
    }

    #[tokio::test]
    async fn unrestricted_connects_by_name() {
        assert_eq!(
            Egress::unrestricted()
                .resolve("x", "db.example.com", 5432)
                .await
                .unwrap(),
            None
        );
    }
}
