//! A private certificate authority for an on-premise deployment: the CA, server
//! certificates and client certificates for mutual TLS between Ceneca and its callers (the
//! web tier, agents), so no OpenSSL commands are needed. ECDSA P-256 keys.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
#[error("certificate generation failed: {0}")]
pub struct PkiError(String);

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError(e.to_string())
    }
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A certificate authority that can issue certificates.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Ceneca");
    dn
}

impl Authority {
    /// A new self-signed CA valid for ten years.
    pub fn new(common_name: &str) -> Result<Self, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: CertifiedIssuer::self_signed(params, key)?,
            key_pem,
        })
    }

    pub fn pem(&self) -> Pem {
        Pem {
            cert: self.issuer.pem(),
            key: self.key_pem.clone(),
        }
    }

    fn issue(
        &self,
        common_name: &str,
        names: &[String],
        usage: ExtendedKeyUsagePurpose,
        valid: (OffsetDateTime, OffsetDateTime),
    ) -> Result<Pem, PkiError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        (params.not_before, params.not_after) = valid;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }

    /// A server certificate for these DNS names or IP addresses, valid for two years.
    pub fn server(&self, names: &[String]) -> Result<Pem, PkiError> {
        let now = OffsetDateTime::now_utc();
        let first = names.first().map(String::as_str).unwrap_or("ceneca");
        self.issue(
            first,
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            (now - Duration::hours(1), now + Duration::days(730)),
        )
    }

    /// A client certificate whose common name identifies the caller (`web`, `agent`),
    /// valid for two years.
    pub fn client(&self, common_name: &str) -> Result<Pem, PkiError> {
        let now = OffsetDateTime::now_utc();
        self.client_valid(
            common_name,
            now - Duration::hours(1),
            now + Duration::days(730),
        )
    }

    /// A client certificate with an explicit validity period (tests use an expired one).
    pub fn client_valid(
        &self,
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Pem, PkiError> {
        self.issue(
            common_name,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            (not_before, not_after),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_certificates() {
        let ca = Authority::new("Test CA").unwrap();
        let server = ca
            .server(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let client = ca.client("agent").unwrap();
        for pem in [ca.pem(), server, client] {
            assert!(pem.cert.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(pem.key.contains("PRIVATE KEY"));
            assert!(!format!("{pem:?}").contains("PRIVATE KEY"));
        }
    }
}
