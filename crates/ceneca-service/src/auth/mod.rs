//! Accounts and sessions: register, log in and out, change password, and turn a bearer
//! token into a [`Caller`](crate::Caller).
//!
//! Tokens are 256 random bits; only their SHA-256 is stored, so the sessions table is
//! useless to a thief. Passwords are Argon2id-hashed on the blocking pool (the hash is
//! deliberately slow and must not stall the async workers).

//!
//! - `accounts.rs`: registering, creating accounts (`ceneca user create`), the caller's
//!   own account and changing a password;
//! - `login.rs`: checking a password to log in, and the lockout read from the audit trail;
//! - `sessions.rs`: opening sessions (with the per-user limit), turning a bearer token or
//!   a client certificate into a caller, and logging out;
//! - `cache.rs`: the callers kept between requests while the authentication counter
//!   stays where it was when they were read.

pub(crate) mod accounts;
pub(crate) mod cache;
mod login;
mod sessions;

use serde_json::{Value as Json, json};
use time::OffsetDateTime;

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Bounded so a huge "password" cannot make hashing a denial of service.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Consecutive failed log-ins after which an account waits before the next attempt.
const LOCKOUT_AFTER: usize = 5;
/// The longest wait between attempts once locked.
const MAX_LOCKOUT_SECS: u64 = 15 * 60;
/// Failed log-ins per account per hour after which the account is locked for the hour.
pub const MAX_FAILED_LOGINS_PER_HOUR: u32 = 100;

/// A new session: the token is shown once, here.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub expires_at: OffsetDateTime,
    pub user: Json,
}

impl Login {
    pub fn to_json(&self) -> Json {
        json!({
            "token": self.token,
            "token_type": "Bearer",
            "expires_at": ceneca_domain::output::format_time(self.expires_at),
            "user": self.user,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::audit::RequestMeta;
    use crate::error::ServiceError;
    use crate::testing::{services, sign_up};

    #[tokio::test]
    async fn an_account_logs_in_and_out_and_a_new_password_ends_its_sessions() {
        let t = services().await;
        let svc = &t.svc;
        let meta = RequestMeta::default();
        let (ann, first) = sign_up(svc, "ann@example.com").await;
        assert_eq!(svc.me(&ann).await.unwrap()["email"], "ann@example.com");
        assert!(matches!(
            svc.login(
                &serde_json::from_value(
                    json!({"email": "ann@example.com", "password": "wrong password"})
                )
                .unwrap(),
                &meta
            )
            .await,
            Err(ServiceError::Unauthorized(_))
        ));
        let second = svc
            .login(
                &serde_json::from_value(
                    json!({"email": "ann@example.com", "password": "correct horse battery"}),
                )
                .unwrap(),
                &meta,
            )
            .await
            .unwrap();
        let as_second = svc.authenticate(&second.token, &meta).await.unwrap();
        svc.logout(&as_second).await.unwrap();
        assert!(svc.authenticate(&second.token, &meta).await.is_err());
        // The first session is still alive until the password changes.
        let ann = svc.authenticate(&first, &meta).await.unwrap();
        svc.change_password(
            &ann,
            &serde_json::from_value(json!({"current_password": "correct horse battery", "new_password": "a new passphrase"})).unwrap(),
        )
        .await
        .unwrap();
        assert!(svc.authenticate(&first, &meta).await.is_err());
        svc.login(
            &serde_json::from_value(
                json!({"email": "ann@example.com", "password": "a new passphrase"}),
            )
            .unwrap(),
            &meta,
        )
        .await
        .unwrap();
    }
}
