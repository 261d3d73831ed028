//! The edition policy (DESIGN.md §3 rule 5), in one place instead of `if`s in handlers.

use serde::{Deserialize, Serialize};

use crate::network::InternalHosts;

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

    /// Whether a configured or stored URL may point where it does. In zero-sync only
    /// hosts of the deployment's own network qualify ([`InternalHosts`]: loopback, private
    /// networks, internal names, and what `internal_hosts` adds), read as clients read
    /// them.
    pub fn check_url(self, internal: &InternalHosts, url: &str) -> Result<(), String> {
        if self == Edition::Enterprise {
            return Ok(());
        }
        internal.check_url(url).map_err(|reason| {
            format!("the zero-sync edition refuses connections and references outside the network: {reason}")
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sync_accepts_only_internal_hosts() {
        let (z, internal) = (Edition::ZeroSync, InternalHosts::default());
        for ok in [
            "http://localhost:11434",
            "https://10.1.2.3/v1",
            "http://[::1]:80",
            "https://llm.internal",
            "http://ollama:11434",
            "https://192.168.1.5",
        ] {
            assert!(z.check_url(&internal, ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://api.openai.com/v1",
            "https://8.8.8.8",
            "http://example.com",
            // Attack findings: a decimal IPv4 has no dot, and the host a client connects
            // to is before the backslash.
            "http://134744072/",
            "http://api.openai.com\\@10.0.0.1/",
            "http://169.254.169.254/",
        ] {
            let err = z.check_url(&internal, bad).unwrap_err();
            assert!(err.contains("zero-sync"), "{bad}: {err}");
        }
        assert!(
            Edition::Enterprise
                .check_url(&internal, "https://api.openai.com")
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
