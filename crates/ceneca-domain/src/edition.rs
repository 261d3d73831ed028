//! The edition policy (DESIGN.md §3 rule 5), in one place instead of `if`s in handlers.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::validate::url_host;

/// Which product the binary runs as; one setting chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Edition {
    /// Devices sync to an on-premise Ceneca.
    #[default]
    Enterprise,
    /// Air-gapped: nothing leaves the network, and data that points outside is refused.
    ZeroSync,
}

impl Edition {
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Enterprise => "enterprise",
            Edition::ZeroSync => "zero-sync",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "enterprise" => Some(Edition::Enterprise),
            "zero-sync" | "zero_sync" | "zerosync" => Some(Edition::ZeroSync),
            _ => None,
        }
    }

    /// Whether data may reference this URL (a provider's base URL, a webhook). In zero-sync
    /// only hosts on the internal network qualify: loopback, private and link-local
    /// addresses, and names that cannot be public (single-label, `.local`, `.internal`,
    /// `.lan`, `.home.arpa`, `.corp`).
    pub fn check_url(self, url: &str) -> Result<(), String> {
        if self == Edition::Enterprise {
            return Ok(());
        }
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let host = url_host(rest).to_ascii_lowercase();
        if is_internal_host(&host) {
            Ok(())
        } else {
            Err(format!(
                "the zero-sync edition refuses references to external services; '{host}' is not an internal host"
            ))
        }
    }

    /// Whether a data-sharing scope may be granted: zero-sync never sends telemetry or
    /// training data anywhere, so it cannot be consented to.
    pub fn check_sharing_scope(self, scope: &str, granted: bool) -> Result<(), String> {
        let external = matches!(scope, "telemetry" | "model_training" | "telemetry_export");
        if self == Edition::ZeroSync && granted && external {
            Err(format!(
                "the zero-sync edition cannot share '{scope}' outside the network"
            ))
        } else {
            Ok(())
        }
    }
}

fn is_internal_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
    }
    const INTERNAL_SUFFIXES: &[&str] = &[
        ".local",
        ".internal",
        ".lan",
        ".home.arpa",
        ".corp",
        ".localhost",
    ];
    host == "localhost"
        || !host.contains('.') && !host.is_empty()
        || INTERNAL_SUFFIXES.iter().any(|s| host.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sync_accepts_only_internal_hosts() {
        let z = Edition::ZeroSync;
        for ok in [
            "http://localhost:11434",
            "https://10.1.2.3/v1",
            "http://[::1]:80",
            "https://llm.internal",
            "http://ollama:11434",
            "https://192.168.1.5",
        ] {
            assert!(z.check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://api.openai.com/v1",
            "https://8.8.8.8",
            "http://example.com",
        ] {
            assert!(z.check_url(bad).is_err(), "{bad}");
        }
        assert!(
            Edition::Enterprise
                .check_url("https://api.openai.com")
                .is_ok()
        );
    }

    #[test]
    fn zero_sync_refuses_external_sharing() {
        assert!(
            Edition::ZeroSync
                .check_sharing_scope("telemetry", true)
                .is_err()
        );
        assert!(
            Edition::ZeroSync
                .check_sharing_scope("telemetry", false)
                .is_ok()
        );
        assert!(
            Edition::Enterprise
                .check_sharing_scope("telemetry", true)
                .is_ok()
        );
    }
}
