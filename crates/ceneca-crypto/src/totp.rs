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
    verify_step(secret, code, unix_time).is_some()
}

/// The time step (`unix_time / 30`) whose code `code` is, within one step of `unix_time`
/// either way. Callers remember the last step used per account and accept only later
/// ones, so a code works once (RFC 6238 §5.2).
pub fn verify_step(secret: &[u8], code: &str, unix_time: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let generator = totp(secret, "x");
    let now = unix_time / STEP;
    // Every candidate is compared, so timing does not tell which step matched.
    (now.saturating_sub(SKEW as u64)..=now + SKEW as u64).fold(None, |found, step| {
        let expected = generator.generate(step * STEP).to_string();
        let equal = expected.len() == code.len()
            && expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if equal && found.is_none() {
            Some(step)
        } else {
            found
        }
    })
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

fn normalize_recovery_code(code: &str) -> String {
    code.trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .collect()
}

/// The legacy stored form of a recovery code: unsalted SHA-256 (still accepted, so codes
/// issued before salting keep working until used).
pub fn recovery_code_digest(code: &str) -> String {
    crate::token::sha256_hex(normalize_recovery_code(code).as_bytes())
}

/// A new random salt for one account's recovery codes (hex).
pub fn new_recovery_salt() -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    salt.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a recovery code: `s1$<salt>$<sha256(salt || code)>`. The salt is per
/// account, so one table of precomputed digests does not open every account's codes.
pub fn recovery_code_salted(code: &str, salt: &str) -> String {
    let mut input = salt.as_bytes().to_vec();
    input.push(b'$');
    input.extend_from_slice(normalize_recovery_code(code).as_bytes());
    format!("s1${salt}${}", crate::token::sha256_hex(&input))
}

/// Whether `code` is the recovery code stored as `stored` (salted or legacy form).
pub fn recovery_code_matches(code: &str, stored: &str) -> bool {
    let expected = match stored.strip_prefix("s1$").and_then(|r| r.split_once('$')) {
        Some((salt, _)) => recovery_code_salted(code, salt),
        None => recovery_code_digest(code),
    };
    expected.len() == stored.len()
        && expected
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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

    #[test]
    fn recovery_codes_are_salted_per_account() {
        let code = "abcde-fghjk";
        let (a, b) = (new_recovery_salt(), new_recovery_salt());
        assert_ne!(
            recovery_code_salted(code, &a),
            recovery_code_salted(code, &b)
        );
        let stored = recovery_code_salted(code, &a);
        assert!(recovery_code_matches("ABCDEFGHJK", &stored));
        assert!(!recovery_code_matches("abcde-fghjm", &stored));
        assert!(
            recovery_code_matches(code, &recovery_code_digest(code)),
            "legacy"
        );
    }

    #[test]
    fn verify_step_names_the_step_used() {
        let secret = b"12345678901234567890";
        assert_eq!(verify_step(secret, "287082", 59), Some(1));
        assert_eq!(verify_step(secret, "287082", 59 + 30), Some(1));
        assert_eq!(verify_step(secret, "287082", 59 + 90), None);
        assert_eq!(verify_step(secret, "28708a", 59), None);
    }
}
