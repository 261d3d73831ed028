//! # ceneca-crypto
//!
//! The cryptography Ceneca relies on, behind small typed APIs:
//! - [`password`]: Argon2id hashing with OWASP parameters or stronger;
//! - [`token`]: opaque random bearer tokens, of which only a SHA-256 digest is stored;
//! - [`keyring`]: AES-256-GCM with key ids, binding each ciphertext to the record it
//!   belongs to;
//! - [`sealed_file`]: files encrypted at rest in chunks (STREAM over AES-256-GCM).
//!
//! It does not decide *what* to encrypt or where keys live on disk beyond the key file
//! format: the service and the binary do.

pub mod keyring;
pub mod password;
pub mod pki;
pub mod sealed_file;
pub mod token;
pub mod totp;

pub use keyring::{KeyRing, KeyRingError};
