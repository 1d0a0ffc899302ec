//! JWT (HS256) authentication. Tokens are never logged; errors name the problem, not the token.

use std::time::Duration;

use chorus_core::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

/// Shortest secret accepted, in bytes: HS256 keys shorter than the hash are guessable.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("invalid token subject: {0}")]
    BadSubject(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes (got {0})")]
pub struct WeakSecret(pub usize);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: u64,
}

/// Who a connection is, and until when its token is valid (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    pub expires_at: u64,
}

/// Verifies and mints tokens with one shared secret.
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator { .. }")
    }
}

impl Authenticator {
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret(secret.len()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Authenticator {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
        })
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                ErrorKind::InvalidAlgorithm => AuthError::Invalid("algorithm must be HS256".into()),
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::Invalid(format!("missing claim {c}"))
                }
                _ => AuthError::Invalid("malformed token".into()),
            })?;
        let user =
            UserId::new(&data.claims.sub).map_err(|e| AuthError::BadSubject(e.to_string()))?;
        Ok(Identity {
            user,
            expires_at: data.claims.exp,
        })
    }

    /// A token for `user`, valid for `ttl` from now.
    pub fn mint(&self, user: &UserId, ttl: Duration) -> String {
        let now = chorus_core::time::now_ms() / 1000;
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + ttl.as_secs().max(1),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of a small claim set cannot fail")
    }
}

/// Parses durations like `90s`, `15m`, `1h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 1h, 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        "ms" => return Ok(Duration::from_millis(n)),
        _ => {
            return Err(format!(
                "invalid duration unit {unit:?}: use ms, s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn minted_tokens_verify_and_carry_the_user() {
        let auth = Authenticator::new(SECRET).unwrap();
        let token = auth.mint(&UserId::new("alice").unwrap(), Duration::from_secs(3600));
        let id = auth.verify(&token).unwrap();
        assert_eq!(id.user.as_str(), "alice");
    }

    #[test]
    fn other_secrets_expired_tokens_and_garbage_are_refused() {
        let auth = Authenticator::new(SECRET).unwrap();
        let other = Authenticator::new(b"another-secret-another-secret-xx!").unwrap();
        let token = other.mint(&UserId::new("alice").unwrap(), Duration::from_secs(60));
        assert_eq!(
            auth.verify(&token),
            Err(AuthError::Invalid("bad signature".into()))
        );
        assert!(matches!(
            auth.verify("not.a.token"),
            Err(AuthError::Invalid(_))
        ));
        let claims = Claims {
            sub: "alice".into(),
            exp: 1_000,
            iat: 0,
        };
        let old = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(auth.verify(&old), Err(AuthError::Expired));
    }

    #[test]
    fn short_secrets_and_bad_subjects_are_refused() {
        assert_eq!(Authenticator::new(b"short").unwrap_err(), WeakSecret(5));
        let auth = Authenticator::new(SECRET).unwrap();
        let claims = Claims {
            sub: "has space".into(),
            exp: u64::MAX / 2,
            iat: 0,
        };
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(auth.verify(&token), Err(AuthError::BadSubject(_))));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
    }
}
