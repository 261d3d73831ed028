//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps, one
//! step of clock skew either way) and one-use recovery codes.

use rand::RngCore;
use totp_rs::{Algorithm, Builder, Secret, Totp};

const DIGITS: usize = 6;
const SKEW: u16 = 1;
const STEP: u64 = 30;
/// 160-bit secrets, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
pub const RECOVERY_CODES: usize = 10;

/// A new random TOTP secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], account: &str) -> Totp {
    // Account names may not contain ':' in otpauth URIs. The RFC 4226 test secret is
    // shorter than the 128 bits `build` insists on, hence the non-compliant builder; our
    // own secrets are 160 bits.
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW)
        .with_step_duration(STEP)
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some("Ceneca"))
        .build_noncompliant()
}

/// The secret in base32, for typing into an authenticator app.
pub fn secret_base32(secret: &[u8]) -> String {
    Secret::new(secret.to_vec().into_boxed_slice()).to_base32()
}

/// The `otpauth://` URI an authenticator app reads (usually from a QR code).
pub fn otpauth_uri(secret: &[u8], account: &str) -> String {
    totp(secret, account).to_url().unwrap_or_default()
}

/// Whether `code` is valid at `unix_time` (within one step either way).
pub fn verify(secret: &[u8], code: &str, unix_time: u64) -> bool {
    let code = code.trim().replace(' ', "");
    code.len() == DIGITS && totp(secret, "x").check(&code, unix_time).is_some()
}

/// The code at `unix_time` (for tests and tools).
pub fn code_at(secret: &[u8], unix_time: u64) -> String {
    totp(secret, "x").generate(unix_time).to_string()
}

/// The code at `unix_time` for a base32 secret (what a client holds).
pub fn code_from_base32(secret_base32: &str, unix_time: u64) -> Option<String> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    Some(code_at(secret.as_bytes(), unix_time))
}

/// New recovery codes (`xxxxx-xxxxx`, ~50 bits each): shown once, stored as SHA-256.
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect()
}

/// The stored form of a recovery code (normalized: case and dashes do not matter).
pub fn recovery_code_digest(code: &str) -> String {
    let normal: String = code
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect();
    crate::token::sha256_hex(normal.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890", T = 59 -> 94287082
        // (8 digits); the 6-digit code is its last six digits.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert!(verify(secret, "287082", 59));
        assert!(verify(secret, "287 082", 59 + 30), "one step of skew");
        assert!(!verify(secret, "287082", 59 + 120));
        assert!(!verify(secret, "28708", 59));
    }

    #[test]
    fn secrets_uris_and_recovery_codes() {
        let s = new_secret();
        assert_eq!(s.len(), 20);
        let uri = otpauth_uri(&s, "ada@example.com");
        assert!(
            uri.starts_with("otpauth://totp/Ceneca:ada%40example.com?secret="),
            "{uri}"
        );
        assert_eq!(
            code_from_base32(&secret_base32(&s), 1_000_000).unwrap(),
            code_at(&s, 1_000_000)
        );
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(
            recovery_code_digest(&codes[0]),
            recovery_code_digest(&codes[0].to_uppercase().replace('-', ""))
        );
    }
}
