//! `chorus send` and `chorus tail`: a command-line client of protocol v1 (docs/protocol.md),
//! for scripts and for watching a room from a terminal.
//!
//! Each run opens one WebSocket at a time to one gateway, authenticated with the
//! `Authorization: Bearer` header, and keeps the protocol's promises on its side:
//! - every send carries a `client_msg_id` and is retried with the same one after a lost
//!   connection, `unavailable` or `rate_limited`, so a retry never posts twice;
//! - `tail` resumes with `since` = the last seq it printed after any disconnect, so nothing is
//!   printed twice or skipped; a `reconnect` frame or close 1001 (a draining server) means
//!   reconnect at once, anything else reconnects with exponential backoff and full jitter.
//!
//! It deliberately does not keep state between runs, follow more than one room, send edits,
//! events or attachments, or speak the SSE transport. The token is never printed or logged.

mod conn;
mod format;
mod send;
mod tail;

use std::time::Duration;

use chorus_core::UserId;
use chorus_gateway::Authenticator;

pub use send::send;
pub use tail::tail;

/// Why a command failed. Displayed after `error: ` by the binary.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused: a protocol `error` frame (its code and message), or an HTTP
    /// refusal of the upgrade.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// `--timeout` passed before every message was acknowledged.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The command line or the environment cannot work (a bad URL, no token).
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout failed (other than a closed pipe, which ends the command quietly).
    #[error("writing to stdout: {0}")]
    Output(std::io::Error),
}

impl ClientError {
    fn refused(code: impl Into<String>, message: impl Into<String>) -> ClientError {
        ClientError::Refused {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The WebSocket URL of a gateway base URL: http(s):// becomes ws(s):// with `/v1/ws`
/// appended to the path (a prefix behind a reverse proxy is kept); a ws(s):// URL is taken as
/// it is.
pub fn ws_url(base: &str) -> Result<String, ClientError> {
    let bad = |why: &str| ClientError::Usage(format!("invalid --url {base:?}: {why}"));
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| bad("expected http://, https://, ws:// or wss://"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "wss" => return Ok(base.to_owned()),
        "http" => "ws",
        "https" => "wss",
        _ => return Err(bad("expected http://, https://, ws:// or wss://")),
    };
    if rest.contains(['?', '#']) {
        return Err(bad("a base URL has no query or fragment"));
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("no host"));
    }
    Ok(format!("{scheme}://{rest}/v1/ws"))
}

/// How long a token minted for `--user` is valid. A fresh one is minted for every
/// connection, so a long `tail` outlives any one of them.
const MINTED_TTL: Duration = Duration::from_secs(3600);

/// The token each connection presents.
pub(crate) enum Credentials {
    /// `--token` / `CHORUS_TOKEN`, as given.
    Token(String),
    /// `--user` with the server's secret: minted like `chorus token`, anew for each
    /// connection.
    Mint {
        auth: Box<Authenticator>,
        user: UserId,
    },
}

impl Credentials {
    fn new(
        token: Option<&str>,
        user: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Credentials, ClientError> {
        match (user, token) {
            (Some(user), _) => {
                let secret = secret.ok_or_else(|| {
                    ClientError::Usage(
                        "--user needs the server's secret in CHORUS_JWT_SECRET (or --jwt-secret)"
                            .into(),
                    )
                })?;
                let auth = Authenticator::new(secret.as_bytes())
                    .map_err(|e| ClientError::Usage(format!("CHORUS_JWT_SECRET: {e}")))?;
                let user = UserId::new(user)
                    .map_err(|e| ClientError::Usage(format!("invalid --user {user:?}: {e}")))?;
                Ok(Credentials::Mint {
                    auth: Box::new(auth),
                    user,
                })
            }
            (None, Some(token)) if !token.trim().is_empty() => {
                Ok(Credentials::Token(token.trim().to_owned()))
            }
            (None, _) => Err(ClientError::Usage(
                "no token: give --token or CHORUS_TOKEN, or --user with CHORUS_JWT_SECRET".into(),
            )),
        }
    }

    fn token(&self) -> String {
        match self {
            Credentials::Token(t) => t.clone(),
            Credentials::Mint { auth, user } => auth.mint(user, MINTED_TTL),
        }
    }

    /// Whether a new connection presents a new token (so an expired one is no dead end).
    fn renews(&self) -> bool {
        matches!(self, Credentials::Mint { .. })
    }
}

/// Exponential backoff with full jitter: the n-th wait in a row is uniform in
/// [0, min(30 s, 100 ms × 2ⁿ)]. Reset after progress.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(30);

    /// The largest the next wait can be.
    fn ceiling(&self) -> Duration {
        Self::BASE
            .saturating_mul(1 << self.attempt.min(16))
            .min(Self::CAP)
    }

    fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random_u64() % nanos.saturating_add(1))
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // Without an OS random source, the clock still spreads clients apart.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into())
    })
}

/// A prefix that makes this run's `client_msg_id`s its own: `cli-` and 48 random bits.
fn run_prefix() -> String {
    format!("cli-{:012x}", random_u64() >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_become_websocket_urls() {
        let cases = [
            ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/v1/ws"),
            ("http://127.0.0.1:8080/", "ws://127.0.0.1:8080/v1/ws"),
            ("https://chat.example.com", "wss://chat.example.com/v1/ws"),
            (
                "HTTPS://chat.example.com/chorus/",
                "wss://chat.example.com/chorus/v1/ws",
            ),
            ("ws://10.0.0.1:9000/v1/ws", "ws://10.0.0.1:9000/v1/ws"),
            (
                "wss://chat.example.com/custom",
                "wss://chat.example.com/custom",
            ),
        ];
        for (base, ws) in cases {
            assert_eq!(ws_url(base).unwrap(), ws, "{base}");
        }
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "http://",
            "http:///v1",
            "http://x/?a=1",
        ] {
            let e = ws_url(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --url"), "{bad}: {e}");
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::default();
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            let ceiling = b.ceiling();
            ceilings.push(ceiling);
            assert!(b.next_delay() <= ceiling);
        }
        assert_eq!(ceilings[0], Duration::from_millis(100));
        assert_eq!(ceilings[3], Duration::from_millis(800));
        assert_eq!(ceilings[11], Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn credentials_need_a_token_or_a_user_and_secret() {
        let e = Credentials::new(None, None, None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("no token"), "{e}");
        let e = Credentials::new(None, Some("alice"), None).err().unwrap();
        assert!(e.to_string().contains("CHORUS_JWT_SECRET"), "{e}");
        let secret = "0123456789abcdef0123456789abcdef";
        let minted = Credentials::new(Some("ignored"), Some("alice"), Some(secret)).unwrap();
        assert!(minted.renews());
        let auth = Authenticator::new(secret.as_bytes()).unwrap();
        assert_eq!(auth.verify(&minted.token()).unwrap().user.as_str(), "alice");
        let given = Credentials::new(Some(" t0k3n\n"), None, None).unwrap();
        assert_eq!(given.token(), "t0k3n");
        assert!(!given.renews());
    }
}
