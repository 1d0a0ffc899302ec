//! The wire error vocabulary and the one place where internal errors become wire codes.
//!
//! Every error a client can see is an [`ErrorCode`] plus a human-readable message. Internal
//! error types ([`RouterError`], [`StoreError`]) are mapped here and nowhere else; the gateway
//! never invents codes of its own.

use serde::Serialize;

use crate::{RoomId, router::RouterError, store::StoreError};

/// The documented error codes of protocol v1 (docs/protocol.md, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is malformed or breaks the protocol's rules; fix the request.
    BadRequest,
    /// Missing, invalid or expired token. Before `ready` this also closes with 4001.
    Unauthorized,
    /// Authenticated, but not allowed to do this (e.g. send to a room not joined).
    Forbidden,
    /// The thing named does not exist (e.g. leaving a room not joined).
    NotFound,
    /// The thing to create exists already (a room name taken).
    Conflict,
    /// A body or frame above its size limit.
    TooLarge,
    /// A count limit was reached (rooms per connection, requests in flight).
    LimitExceeded,
    /// Too many requests; `retry_after_ms` says when to try again.
    RateLimited,
    /// A dependency (store, router) is down or overloaded; safe to retry with the same
    /// `client_msg_id`.
    Unavailable,
    /// A bug on our side.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::LimitExceeded,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// WebSocket close codes Chorus uses (docs/protocol.md, "Close codes").
pub mod close {
    /// The client closed normally.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down or draining; reconnect (to another gateway) and resume.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame above `max_frame_bytes`.
    pub const TOO_BIG: u16 = 1009;
    /// An internal error ended the connection.
    pub const INTERNAL: u16 = 1011;
    /// The gateway lost a room's delivery order and could not recover it from the log (router
    /// unreachable); reconnect and resume with `since`.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Authentication failed, timed out, or the token expired.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The client read too slowly and its outbound queue overflowed; reconnect and resume with
    /// `since` (nothing is lost: the room log has every message).
    pub const SLOW_CONSUMER: u16 = 4008;
}

/// An error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub room: Option<RoomId>,
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            room: None,
            retry_after_ms: None,
        }
    }

    pub fn in_room(mut self, room: &RoomId) -> Self {
        self.room = Some(room.clone());
        self
    }

    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

impl From<&RouterError> for WireError {
    fn from(e: &RouterError) -> Self {
        let code = match e {
            RouterError::BadRequest(_) => ErrorCode::BadRequest,
            RouterError::Forbidden(_) => ErrorCode::Forbidden,
            RouterError::NotFound(_) => ErrorCode::NotFound,
            RouterError::Conflict(_) => ErrorCode::Conflict,
            RouterError::TooLarge(_) => ErrorCode::TooLarge,
            RouterError::LimitExceeded(_) => ErrorCode::LimitExceeded,
            RouterError::RateLimited { .. } => ErrorCode::RateLimited,
            RouterError::Overloaded(_) => ErrorCode::Unavailable,
            // The gateway retries at the owner first; this is what is left when it could not.
            RouterError::Unavailable(_)
            | RouterError::Unreachable(_)
            | RouterError::Timeout
            | RouterError::NotOwner { .. } => ErrorCode::Unavailable,
            // A conflict means another writer got there first (a router taking over the room):
            // nothing was written, and a retry with the same client_msg_id is safe.
            RouterError::Store(StoreError::Unavailable(_) | StoreError::Conflict { .. }) => {
                ErrorCode::Unavailable
            }
            RouterError::Store(_) | RouterError::Internal(_) => ErrorCode::Internal,
        };
        // Internal details stay in the server log; the client gets the category only.
        let message = match code {
            ErrorCode::Internal => "internal error".to_string(),
            _ => e.to_string(),
        };
        let error = WireError::new(code, message);
        match e {
            RouterError::RateLimited { retry_after_ms } => error.retry_after(*retry_after_ms),
            _ => error,
        }
    }
}

impl From<RouterError> for WireError {
    fn from(e: RouterError) -> Self {
        WireError::from(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_documented_names() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
    }

    #[test]
    fn store_outages_become_unavailable_and_internals_stay_hidden() {
        let e = WireError::from(&RouterError::Store(StoreError::Unavailable(
            "disk gone".into(),
        )));
        assert_eq!(e.code, ErrorCode::Unavailable);
        let e = WireError::from(&RouterError::Internal("secret detail".into()));
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.message.contains("secret"));
    }
}
