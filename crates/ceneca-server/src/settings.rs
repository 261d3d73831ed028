//! The `[http]` and `[tls]` sections of `ceneca.toml`: what the HTTP edge needs, checked
//! here so that a bad origin, network or certificate mapping is refused at start with the
//! key that holds it.

use std::collections::HashMap;

use ceneca_domain::settings::InvalidSetting;
use serde::{Deserialize, Serialize};

use crate::HttpConfig;
use crate::limits::RateConfig;

/// `[http]`: the listening address, body limits, CORS, administrator networks and rate
/// limits (0 turns a limit off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: String,
    /// `ip:port` of a second listener serving only `GET /metrics`, without authentication,
    /// for an internal scrape network; empty: none (administrators can still read
    /// `/metrics` on `listen`).
    pub metrics_listen: String,
    pub max_body_bytes: usize,
    pub max_batch_body_bytes: usize,
    /// Browser origins allowed to call the API; empty turns CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// CIDRs (or single addresses) system administrators may work from; empty: anywhere.
    pub admin_allowed_networks: Vec<String>,
    pub rate_limit_per_ip_per_minute: u32,
    pub rate_limit_per_account_per_minute: u32,
    pub login_attempts_per_ip_per_minute: u32,
    pub registrations_per_ip_per_hour: u32,
}

impl Default for HttpSettings {
    /// The values [`HttpConfig::default`] and [`RateConfig::default`] hold, so the file's
    /// defaults and the library's cannot differ.
    fn default() -> Self {
        let http = HttpConfig::default();
        let rate = RateConfig::default();
        Self {
            listen: "127.0.0.1:8787".into(),
            metrics_listen: String::new(),
            max_body_bytes: http.max_body_bytes,
            max_batch_body_bytes: http.max_batch_body_bytes,
            cors_allowed_origins: http.cors_origins,
            admin_allowed_networks: Vec::new(),
            rate_limit_per_ip_per_minute: rate.per_ip_per_minute,
            rate_limit_per_account_per_minute: rate.per_account_per_minute,
            login_attempts_per_ip_per_minute: rate.logins_per_ip_per_minute,
            registrations_per_ip_per_hour: rate.registrations_per_ip_per_hour,
        }
    }
}

impl HttpSettings {
    /// The router's configuration; an origin or network that does not parse is an error
    /// naming it.
    pub fn http_config(&self) -> Result<HttpConfig, InvalidSetting> {
        if !self.metrics_listen.is_empty() {
            if self.metrics_listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(InvalidSetting::new(
                    "http.metrics_listen",
                    format!(
                        "must be an address and port such as 10.0.0.5:9464, not '{}'",
                        self.metrics_listen
                    ),
                ));
            }
            if self.metrics_listen == self.listen {
                return Err(InvalidSetting::new(
                    "http.metrics_listen",
                    "must differ from http.listen",
                ));
            }
        }
        for origin in &self.cors_allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.ends_with('/')
            {
                return Err(InvalidSetting::new(
                    "http.cors_allowed_origins",
                    format!("'{origin}' must be an origin such as https://app.example.com"),
                ));
            }
        }
        Ok(HttpConfig {
            max_body_bytes: self.max_body_bytes,
            max_batch_body_bytes: self.max_batch_body_bytes,
            rate: RateConfig {
                per_ip_per_minute: self.rate_limit_per_ip_per_minute,
                per_account_per_minute: self.rate_limit_per_account_per_minute,
                logins_per_ip_per_minute: self.login_attempts_per_ip_per_minute,
                registrations_per_ip_per_hour: self.registrations_per_ip_per_hour,
            },
            cors_origins: self.cors_allowed_origins.clone(),
            admin_networks: self.admin_networks()?,
        })
    }

    /// The parsed `admin_allowed_networks`.
    pub fn admin_networks(&self) -> Result<Vec<ipnet::IpNet>, InvalidSetting> {
        self.admin_allowed_networks
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        InvalidSetting::new(
                            "http.admin_allowed_networks",
                            format!("'{n}' is not a CIDR such as 10.0.0.0/8"),
                        )
                    })
            })
            .collect()
    }
}

/// `[tls]`: HTTPS, mutual TLS, and the services that authenticate by their client
/// certificate alone. All empty: plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain and its key.
    pub cert_file: String,
    pub key_file: String,
    /// PEM CA certificate: require client certificates from it (mutual TLS).
    pub client_ca_file: String,
    /// `"<certificate common name>=<account e-mail>"`.
    pub client_accounts: Vec<String>,
}

impl TlsSettings {
    /// Whether HTTPS is on.
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty()
    }

    /// The files go together: a key with its certificate, a client CA with both.
    pub fn check(&self) -> Result<(), InvalidSetting> {
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(InvalidSetting::new(
                "tls.cert_file",
                "tls.cert_file and tls.key_file go together",
            ));
        }
        if !self.client_ca_file.is_empty() && self.cert_file.is_empty() {
            return Err(InvalidSetting::new(
                "tls.client_ca_file",
                "mutual TLS needs tls.cert_file and tls.key_file",
            ));
        }
        let accounts = self.client_certificate_accounts()?;
        if !accounts.is_empty() && self.client_ca_file.is_empty() {
            return Err(InvalidSetting::new(
                "tls.client_accounts",
                "needs tls.client_ca_file (mutual TLS)",
            ));
        }
        Ok(())
    }

    /// The parsed `client_accounts`: common name → lower-cased e-mail.
    pub fn client_certificate_accounts(&self) -> Result<HashMap<String, String>, InvalidSetting> {
        let mut out = HashMap::new();
        for entry in &self.client_accounts {
            let parsed = entry
                .split_once('=')
                .map(|(name, email)| (name.trim(), email.trim()))
                .filter(|(name, email)| !name.is_empty() && email.contains('@'));
            let Some((name, email)) = parsed else {
                return Err(InvalidSetting::new(
                    "tls.client_accounts",
                    format!("'{entry}' must be '<common name>=<account e-mail>'"),
                ));
            };
            if out.insert(name.to_owned(), email.to_lowercase()).is_some() {
                return Err(InvalidSetting::new(
                    "tls.client_accounts",
                    format!("'{name}' is mapped twice"),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_origins_networks_and_mappings_name_their_key() {
        let http = HttpSettings {
            cors_allowed_origins: vec!["https://app.example.com/".into()],
            ..HttpSettings::default()
        };
        assert_eq!(
            http.http_config().unwrap_err().key,
            "http.cors_allowed_origins"
        );
        let http = HttpSettings {
            admin_allowed_networks: vec!["10.0.0.0/8".into(), "10.1.2.3".into(), "ten".into()],
            ..HttpSettings::default()
        };
        let err = http.http_config().unwrap_err();
        assert_eq!(err.key, "http.admin_allowed_networks");
        assert!(err.reason.contains("'ten'"), "{err}");
        let tls = TlsSettings {
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
            client_ca_file: "ca.pem".into(),
            client_accounts: vec![
                "web=svc@corp.example".into(),
                "web=other@corp.example".into(),
            ],
        };
        assert!(tls.check().unwrap_err().reason.contains("mapped twice"));
        let tls = TlsSettings {
            client_accounts: vec!["web=svc@corp.example".into()],
            ..tls
        };
        assert!(tls.check().is_ok());
        let tls = TlsSettings {
            client_ca_file: String::new(),
            ..tls
        };
        assert_eq!(tls.check().unwrap_err().key, "tls.client_accounts");
    }

    #[test]
    fn defaults_are_the_routers() {
        let config = HttpSettings::default().http_config().unwrap();
        let library = HttpConfig::default();
        assert_eq!(config.max_body_bytes, library.max_body_bytes);
        assert_eq!(config.max_batch_body_bytes, library.max_batch_body_bytes);
        assert_eq!(
            config.rate.per_ip_per_minute,
            RateConfig::default().per_ip_per_minute
        );
    }
}
