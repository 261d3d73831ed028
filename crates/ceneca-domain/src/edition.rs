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

    /// Checks a data-sharing scope as a client sent it and returns its one spelling.
    ///
    /// The scope is normalised (trimmed, lower-cased) and must be one of the closed list
    /// [`SHARING_SCOPES`]: an exact, case-sensitive match against a list of *forbidden*
    /// names let `Telemetry` or ` telemetry ` be granted in zero-sync, and an unknown name
    /// is consent to nothing any code checks for. Zero-sync never sends telemetry or
    /// training data anywhere, so those scopes cannot be granted there.
    pub fn check_sharing_scope(self, scope: &str, granted: bool) -> Result<&'static str, String> {
        let known = sharing_scope(scope)?;
        if self == Edition::ZeroSync && granted && known.external {
            Err(format!(
                "the zero-sync edition cannot share '{}' outside the network",
                known.name
            ))
        } else {
            Ok(known.name)
        }
    }
}

/// A kind of data sharing a user or organization can consent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharingScope {
    pub name: &'static str,
    /// Whether sharing it sends data outside the network (refused in zero-sync).
    pub external: bool,
}

/// Every data-sharing scope a policy may name, in their only spelling. Consent checks
/// (`telemetry` for the telemetry export) compare against these names, so a policy
/// naming anything else would be consent to nothing.
pub const SHARING_SCOPES: &[SharingScope] = &[
    SharingScope {
        name: "export",
        external: false,
    },
    SharingScope {
        name: "model_training",
        external: true,
    },
    SharingScope {
        name: "telemetry",
        external: true,
    },
    SharingScope {
        name: "telemetry_export",
        external: true,
    },
];

/// The known scope `text` names once trimmed and lower-cased; else an error that lists
/// the allowed scopes.
pub fn sharing_scope(text: &str) -> Result<SharingScope, String> {
    let normalised = text.trim().to_lowercase();
    SHARING_SCOPES
        .iter()
        .find(|s| s.name == normalised)
        .copied()
        .ok_or_else(|| {
            let names: Vec<&str> = SHARING_SCOPES.iter().map(|s| s.name).collect();
            format!(
                "'{}' is not a known sharing scope; must be one of: {}",
                text.trim(),
                names.join(", ")
            )
        })
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
    fn sharing_scopes_are_normalised_and_closed() {
        for spelling in [
            "Telemetry",
            " telemetry ",
            "TELEMETRY",
            "telemetry",
            "\ttelemetry\n",
        ] {
            assert!(
                Edition::ZeroSync
                    .check_sharing_scope(spelling, true)
                    .is_err(),
                "{spelling:?}"
            );
            assert_eq!(
                Edition::Enterprise.check_sharing_scope(spelling, true),
                Ok("telemetry")
            );
        }
        assert_eq!(
            Edition::ZeroSync.check_sharing_scope(" Export", true),
            Ok("export")
        );
        let err = Edition::Enterprise
            .check_sharing_scope("telemetrie", false)
            .unwrap_err();
        for s in SHARING_SCOPES {
            assert!(err.contains(s.name), "{err}");
        }
        assert!(Edition::Enterprise.check_sharing_scope("", true).is_err());
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
