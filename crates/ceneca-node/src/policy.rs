//! Where an upstream may be. The zero-sync edition has none: it connects nowhere and
//! replicates nothing. The enterprise edition syncs with its own network: the upstream's
//! host must resolve only to internal addresses (`network.internal_hosts`), or be named
//! in `sync.allowed_upstreams`. Replicated content travels opened (each node seals it
//! under its own keys), so plain HTTP is allowed on loopback only.

use std::net::SocketAddr;

use ceneca_domain::Edition;
use ceneca_domain::network::InternalHosts;
use ceneca_egress::{Egress, EgressError};

use crate::NodeError;

/// An upstream URL that passed the policy, and the address to connect to when the host
/// was checked by its addresses (pinned, so a later DNS answer cannot move it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedUpstream {
    /// Without a trailing slash: `https://sync.corp.example:8787`.
    pub base: String,
    pub host: String,
    pub pinned: Option<SocketAddr>,
}

/// Checks `url` against the edition, the network and the allowlist.
pub async fn check_upstream(
    url: &str,
    edition: Edition,
    internal: &InternalHosts,
    allowed: &[String],
) -> Result<CheckedUpstream, NodeError> {
    let refuse = |reason: String| NodeError::Policy(format!("sync.upstream_url: {reason}"));
    if edition == Edition::ZeroSync {
        return Err(refuse(
            "the zero-sync edition replicates nothing and connects nowhere: a local node \
             needs the enterprise edition"
                .into(),
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| refuse(format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
        || parsed.path() != "/"
    {
        return Err(refuse(format!(
            "'{url}' must be the upstream's address alone: https://host[:port]"
        )));
    }
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if parsed.scheme() == "http" && !loopback {
        return Err(refuse(format!(
            "'{url}' is plain HTTP: replicated content travels opened, so an upstream \
             that is not on this machine must use https"
        )));
    }
    let base = url.trim_end_matches('/').to_owned();
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&bare)) {
        return Ok(CheckedUpstream {
            base,
            host: bare,
            pinned: None,
        });
    }
    let egress = Egress::internal_only(std::sync::Arc::new(internal.clone()));
    match egress.resolve("sync.upstream_url", &host, port).await {
        Ok(pinned) => Ok(CheckedUpstream {
            base,
            host: bare,
            pinned,
        }),
        Err(EgressError::Outside { address, .. }) => Err(refuse(format!(
            "'{host}' resolves to {address}, outside the network: an upstream must be an \
             internal host (network.internal_hosts) or named in sync.allowed_upstreams"
        ))),
        Err(e) => Err(NodeError::Policy(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(
        url: &str,
        edition: Edition,
        allowed: &[&str],
    ) -> Result<CheckedUpstream, String> {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        check_upstream(url, edition, &InternalHosts::default(), &allowed)
            .await
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn zero_sync_has_no_upstream() {
        let err = check("http://127.0.0.1:8787", Edition::ZeroSync, &[])
            .await
            .unwrap_err();
        assert!(err.contains("zero-sync"), "{err}");
    }

    #[tokio::test]
    async fn an_internal_upstream_is_pinned_and_loopback_may_be_plain_http() {
        let ok = check("http://127.0.0.1:8787/", Edition::Enterprise, &[])
            .await
            .unwrap();
        assert_eq!(ok.base, "http://127.0.0.1:8787");
        assert_eq!(ok.pinned.unwrap().port(), 8787);
        assert!(
            check("https://10.1.2.3", Edition::Enterprise, &[])
                .await
                .is_ok()
        );
        let err = check("http://10.1.2.3:8787", Edition::Enterprise, &[])
            .await
            .unwrap_err();
        assert!(err.contains("https"), "{err}");
    }

    #[tokio::test]
    async fn outside_the_network_only_when_allowed_by_name() {
        let err = check("https://203.0.113.7", Edition::Enterprise, &[])
            .await
            .unwrap_err();
        assert!(err.contains("allowed_upstreams"), "{err}");
        let ok = check("https://203.0.113.7", Edition::Enterprise, &["203.0.113.7"])
            .await
            .unwrap();
        assert_eq!(ok.pinned, None);
        for bad in [
            "ftp://10.0.0.1",
            "https://user:pw@10.0.0.1",
            "https://10.0.0.1/api",
            "https://10.0.0.1/?x=1",
            "not a url",
        ] {
            assert!(check(bad, Edition::Enterprise, &[]).await.is_err(), "{bad}");
        }
    }
}
