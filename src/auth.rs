//! JWT authentication of Socket.IO connections.
//!
//! Tokens are HS256 JWTs signed with the secret shared with the Next.js app, carrying the
//! user id in the `userId` claim and a required `exp`. Verification follows Node's
//! `jwt.verify(token, secret)` as the Node socket server uses it: only HS256 (so `none` and
//! every other algorithm are refused), `exp` enforced with the configured leeway (default 0),
//! `nbf` enforced when present, and an `aud` claim accepted without being checked.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[auth]`
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub secret: String,
    pub leeway: u64,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("secret", &"<redacted>")
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl AuthSettings {
    /// Whether the secret can be used (production's rules on it are the composer's).
    pub(crate) fn validate(&self) -> crate::setting::Checked {
        if self.secret.trim().is_empty() {
            return Err(crate::setting::invalid("auth.secret", "must not be empty"));
        }
        Ok(())
    }
}

/// The error message the Node server sends when no token is given.
pub const NO_TOKEN: &str = "Authentication error: No token";
/// The error message the Node server sends when the token does not verify.
pub(crate) const INVALID_TOKEN: &str = "Authentication error: Invalid token";

/// The log reason of a token whose `exp` has passed.
const EXPIRED: &str = "token expired";

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `auth.token` (absent, null or empty).
    NoToken,
    /// A token that does not verify; the reason is for the logs only.
    InvalidToken(String),
}

impl AuthError {
    /// The message sent to the client, the Node server's strings.
    pub(crate) fn client_message(&self) -> &'static str {
        match self {
            AuthError::NoToken => NO_TOKEN,
            AuthError::InvalidToken(_) => INVALID_TOKEN,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(rename = "userId")]
    user_id: Value,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Verifies and (for development tools) issues tokens.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    /// The same without `exp` (connection state recovery: a genuine token that expired).
    expired_ok: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("leeway", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `secret`, tolerating `leeway_secs` of clock skew.
    pub fn new(secret: &str, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Node's jwt.verify without an `audience` option accepts any `aud`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let mut expired_ok = validation.clone();
        expired_ok.validate_exp = false;
        Authenticator {
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            validation,
            expired_ok,
        }
    }

    /// Reads `auth.token` from a CONNECT payload and verifies it; returns the user id.
    pub(crate) fn authenticate(&self, auth: Option<&Value>) -> Result<String, AuthError> {
        let token = match auth.and_then(|a| a.get("token")) {
            None | Some(Value::Null) => return Err(AuthError::NoToken),
            Some(Value::String(s)) if s.is_empty() => return Err(AuthError::NoToken),
            Some(Value::Bool(false)) => return Err(AuthError::NoToken),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(AuthError::InvalidToken("token is not a string".into())),
        };
        self.verify(token)
    }

    /// Like [`Authenticator::authenticate`], but a genuine token that has expired is
    /// accepted too, telling so: `(userId, expired)`. Only for connection state recovery,
    /// where a valid `pid` of the same user must stand beside it.
    pub(crate) fn authenticate_allowing_expiry(
        &self,
        auth: Option<&Value>,
    ) -> Result<(String, bool), AuthError> {
        match self.authenticate(auth) {
            Ok(user) => Ok((user, false)),
            Err(AuthError::InvalidToken(reason)) => {
                let token = auth.and_then(|a| a.get("token")).and_then(Value::as_str);
                match token {
                    Some(token) if reason == EXPIRED => self
                        .verify_with(token, &self.expired_ok)
                        .map(|user| (user, true)),
                    _ => Err(AuthError::InvalidToken(reason)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Verifies a token; returns its `userId`.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.verify_with(token, &self.validation)
    }

    fn verify_with(&self, token: &str, validation: &Validation) -> Result<String, AuthError> {
        let data =
            decode::<Claims>(token, &self.decoding, validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    AuthError::InvalidToken(EXPIRED.into())
                }
                _ => AuthError::InvalidToken(e.to_string()),
            })?;
        match data.claims.user_id {
            Value::String(id) if !id.is_empty() => Ok(id),
            _ => Err(AuthError::InvalidToken(
                "userId claim is not a non-empty string".into(),
            )),
        }
    }

    /// Signs a token for `user_id` valid for `ttl` (development tooling and tests).
    pub fn issue(
        &self,
        user_id: &str,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            user_id: Value::String(user_id.to_string()),
            exp: now + ttl.as_secs(),
            iat: Some(now),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use serde_json::json;

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn sign(secret: &str, claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn issued_token_verifies() {
        let auth = Authenticator::new("secret", 0);
        let token = auth.issue("user-1", Duration::from_secs(60)).unwrap();
        assert_eq!(auth.verify(&token), Ok("user-1".to_string()));
        assert_eq!(
            auth.authenticate(Some(&json!({ "token": token }))),
            Ok("user-1".to_string())
        );
    }

    #[test]
    fn missing_token_is_no_token() {
        let auth = Authenticator::new("secret", 0);
        for payload in [
            None,
            Some(json!({})),
            Some(json!({"token": null})),
            Some(json!({"token": ""})),
        ] {
            assert_eq!(auth.authenticate(payload.as_ref()), Err(AuthError::NoToken));
        }
    }

    #[test]
    fn refuses_bad_tokens() {
        let auth = Authenticator::new("secret", 0);
        let exp = now() + 60;
        let cases = [
            (
                "wrong signature",
                sign("other", json!({"userId": "u", "exp": exp})),
            ),
            (
                "expired",
                sign("secret", json!({"userId": "u", "exp": now() - 5})),
            ),
            ("no exp", sign("secret", json!({"userId": "u"}))),
            ("no userId", sign("secret", json!({"exp": exp}))),
            (
                "numeric userId",
                sign("secret", json!({"userId": 5, "exp": exp})),
            ),
            (
                "not yet valid",
                sign("secret", json!({"userId": "u", "exp": exp, "nbf": exp})),
            ),
            ("garbage", "not.a.jwt".to_string()),
        ];
        for (what, token) in cases {
            assert!(
                matches!(auth.verify(&token), Err(AuthError::InvalidToken(_))),
                "{what} should be refused"
            );
        }
        assert!(matches!(
            auth.authenticate(Some(&json!({"token": 42}))),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn refuses_alg_none_and_other_algorithms() {
        let auth = Authenticator::new("secret", 0);
        let claims = URL_SAFE_NO_PAD.encode(json!({"userId": "u", "exp": now() + 60}).to_string());
        for header in [
            json!({"alg": "none", "typ": "JWT"}),
            json!({"alg": "HS512", "typ": "JWT"}),
        ] {
            let header = URL_SAFE_NO_PAD.encode(header.to_string());
            for token in [
                format!("{header}.{claims}."),
                format!("{header}.{claims}.AAAA"),
            ] {
                assert!(matches!(
                    auth.verify(&token),
                    Err(AuthError::InvalidToken(_))
                ));
            }
        }
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"userId": "u", "exp": now() + 60}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(matches!(
            auth.verify(&hs512),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn accepts_aud_and_honours_leeway() {
        let strict = Authenticator::new("secret", 0);
        let aud = sign(
            "secret",
            json!({"userId": "u", "exp": now() + 60, "aud": "app"}),
        );
        assert_eq!(strict.verify(&aud), Ok("u".into()));
        let recent = sign("secret", json!({"userId": "u", "exp": now() - 5}));
        assert!(strict.verify(&recent).is_err());
        let lenient = Authenticator::new("secret", 30);
        assert_eq!(lenient.verify(&recent), Ok("u".into()));
    }
}
