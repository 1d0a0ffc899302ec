//! Router errors ⇄ gRPC status codes, in one place. The code carries the category; the
//! message carries the human-readable detail; the status details (grpc-status-details-bin)
//! carry what a caller acts on where one code stands for several errors:
//!
//! | error                                           | code                  | details    |
//! |-------------------------------------------------|-----------------------|------------|
//! | `BadRequest`                                    | `INVALID_ARGUMENT`    |            |
//! | `Forbidden`                                     | `PERMISSION_DENIED`   |            |
//! | `NotFound`                                      | `NOT_FOUND`           |            |
//! | `Conflict`                                      | `ALREADY_EXISTS`      |            |
//! | `TooLarge`                                      | `OUT_OF_RANGE`        |            |
//! | `Overloaded`                                    | `RESOURCE_EXHAUSTED`  | `Refusal`  |
//! | `LimitExceeded`                                 | `RESOURCE_EXHAUSTED`  | `Refusal`  |
//! | `RateLimited`                                   | `RESOURCE_EXHAUSTED`  | `Refusal`  |
//! | `NotOwner`                                      | `FAILED_PRECONDITION` | `NotOwner` |
//! | `Unavailable`, `Unreachable`, store unavailable | `UNAVAILABLE`         |            |
//! | store conflict (another writer)                 | `ABORTED`             |            |
//! | `Timeout`                                       | `DEADLINE_EXCEEDED`   |            |
//! | `Internal`, store corrupt                       | `INTERNAL`            |            |
//!
//! A per-send error inside a `SendBatch` reply carries the same code and details. The caller
//! gets back the variant it was sent, except for store errors and `Unreachable`, which come
//! back as the category their code names (`Unavailable`, `Internal`): the caller's own
//! transport failures are its only `Unreachable`.

use chorus_core::{router::RouterError, store::StoreError};
use prost::Message as _;
use tonic::{Code, Status};

use crate::pb::{self, refusal::Kind as RefusalKind};

fn code(e: &RouterError) -> Code {
    match e {
        RouterError::BadRequest(_) => Code::InvalidArgument,
        RouterError::Forbidden(_) => Code::PermissionDenied,
        RouterError::NotFound(_) => Code::NotFound,
        RouterError::Conflict(_) => Code::AlreadyExists,
        RouterError::TooLarge(_) => Code::OutOfRange,
        RouterError::Overloaded(_)
        | RouterError::LimitExceeded(_)
        | RouterError::RateLimited { .. } => Code::ResourceExhausted,
        RouterError::Unavailable(_)
        | RouterError::Unreachable(_)
        | RouterError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
        RouterError::Store(StoreError::Conflict { .. }) => Code::Aborted,
        RouterError::Timeout => Code::DeadlineExceeded,
        RouterError::Store(StoreError::Corrupt(_)) | RouterError::Internal(_) => Code::Internal,
        RouterError::NotOwner { .. } => Code::FailedPrecondition,
    }
}

pub fn to_status(e: &RouterError) -> Status {
    let details = not_owner_to_pb(e)
        .map(|n| n.encode_to_vec())
        .or_else(|| refusal_to_pb(e).map(|r| r.encode_to_vec()));
    match details {
        Some(d) => Status::with_details(code(e), e.to_string(), d.into()),
        None => Status::new(code(e), e.to_string()),
    }
}

/// The error a code stands for, with the details that came with it.
fn from_parts(
    code: Code,
    message: String,
    not_owner: Option<pb::NotOwner>,
    refusal: Option<pb::Refusal>,
) -> RouterError {
    match code {
        Code::InvalidArgument => RouterError::BadRequest(message),
        Code::PermissionDenied => RouterError::Forbidden(message),
        Code::NotFound => RouterError::NotFound(message),
        Code::AlreadyExists => RouterError::Conflict(message),
        Code::OutOfRange => RouterError::TooLarge(message),
        Code::ResourceExhausted => {
            let refusal = refusal.unwrap_or_default();
            match refusal.kind() {
                RefusalKind::RateLimited => RouterError::RateLimited {
                    retry_after_ms: refusal.retry_after_ms,
                },
                RefusalKind::LimitExceeded => RouterError::LimitExceeded(message),
                // Routers that predate `Refusal` sent none: they only ever meant this.
                RefusalKind::Overloaded | RefusalKind::Unspecified => {
                    RouterError::Overloaded(message)
                }
            }
        }
        Code::FailedPrecondition => {
            // FAILED_PRECONDITION means only this; a missing detail leaves the owner unknown.
            not_owner_from_pb(not_owner.unwrap_or_default())
        }
        // Aborted: another writer took the room; nothing was written, a retry is safe.
        Code::Unavailable | Code::Aborted => RouterError::Unavailable(message),
        Code::DeadlineExceeded | Code::Cancelled => RouterError::Timeout,
        _ => RouterError::Internal(format!("{code:?}: {message}")),
    }
}

pub fn from_status(s: &Status) -> RouterError {
    // Statuses tonic makes up from a failed connection carry the transport error as their
    // source; statuses a router sent do not.
    if std::error::Error::source(s).is_some() || s.code() == Code::Unknown {
        return RouterError::Unreachable(s.message().to_owned());
    }
    let (not_owner, refusal) = match s.code() {
        Code::FailedPrecondition => (pb::NotOwner::decode(s.details()).ok(), None),
        Code::ResourceExhausted => (None, pb::Refusal::decode(s.details()).ok()),
        _ => (None, None),
    };
    from_parts(s.code(), s.message().to_owned(), not_owner, refusal)
}

fn not_owner_to_pb(e: &RouterError) -> Option<pb::NotOwner> {
    match e {
        RouterError::NotOwner {
            ring_version,
            owner,
        } => Some(pb::NotOwner {
            ring_version: *ring_version,
            owner: owner.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

fn not_owner_from_pb(n: pb::NotOwner) -> RouterError {
    RouterError::NotOwner {
        ring_version: n.ring_version,
        owner: Some(n.owner).filter(|o| !o.is_empty()),
    }
}

fn refusal_to_pb(e: &RouterError) -> Option<pb::Refusal> {
    let (kind, retry_after_ms) = match e {
        RouterError::Overloaded(_) => (RefusalKind::Overloaded, 0),
        RouterError::LimitExceeded(_) => (RefusalKind::LimitExceeded, 0),
        RouterError::RateLimited { retry_after_ms } => (RefusalKind::RateLimited, *retry_after_ms),
        _ => return None,
    };
    Some(pb::Refusal {
        kind: kind as i32,
        retry_after_ms,
    })
}

/// A per-send failure inside a `SendBatch` reply.
pub fn to_pb_error(e: &RouterError) -> pb::Error {
    pb::Error {
        code: code(e) as i32,
        message: e.to_string(),
        not_owner: not_owner_to_pb(e),
        refusal: refusal_to_pb(e),
    }
}

pub fn from_pb_error(e: pb::Error) -> RouterError {
    from_parts(Code::from_i32(e.code), e.message, e.not_owner, e.refusal)
}

#[cfg(test)]
mod tests {
    use chorus_core::RoomId;

    use super::*;

    /// Every variant, with the error it comes back as from the other side.
    fn cases() -> Vec<(RouterError, RouterError)> {
        let same = |e: RouterError| (e.clone(), e);
        vec![
            same(RouterError::BadRequest("bad".into())),
            same(RouterError::Forbidden("no".into())),
            same(RouterError::NotFound("gone".into())),
            same(RouterError::Conflict("taken".into())),
            same(RouterError::TooLarge("big".into())),
            same(RouterError::LimitExceeded("too many edits".into())),
            same(RouterError::RateLimited {
                retry_after_ms: 1234,
            }),
            same(RouterError::RateLimited { retry_after_ms: 0 }),
            same(RouterError::Timeout),
            same(RouterError::NotOwner {
                ring_version: 0xfeed,
                owner: Some("router-2".into()),
            }),
            same(RouterError::NotOwner {
                ring_version: 7,
                owner: None,
            }),
            // The rest come back with the message as displayed on the router.
            (
                RouterError::Overloaded("queue full".into()),
                RouterError::Overloaded("room is overloaded: queue full".into()),
            ),
            (
                RouterError::Unavailable("db".into()),
                RouterError::Unavailable("router unavailable: db".into()),
            ),
            // A router that says it could not reach something is unavailable to its caller;
            // only the caller's own transport failures are unreachable.
            (
                RouterError::Unreachable("peer".into()),
                RouterError::Unavailable("router unreachable: peer".into()),
            ),
            (
                RouterError::Internal("bug".into()),
                RouterError::Internal("Internal: internal error: bug".into()),
            ),
            (
                RouterError::Store(StoreError::Unavailable("disk".into())),
                RouterError::Unavailable("store unavailable: disk".into()),
            ),
            (
                RouterError::Store(StoreError::Conflict {
                    room: RoomId::new("general").unwrap(),
                    last_seq: 3,
                    first: 5,
                }),
                RouterError::Unavailable(
                    "append out of order in room general: log ends at 3, batch starts at 5".into(),
                ),
            ),
            (
                RouterError::Store(StoreError::Corrupt("bits".into())),
                RouterError::Internal("Internal: corrupt record: bits".into()),
            ),
        ]
    }

    #[test]
    fn every_error_survives_a_status() {
        for (sent, expected) in cases() {
            assert_eq!(from_status(&to_status(&sent)), expected, "sent {sent:?}");
        }
    }

    #[test]
    fn every_error_survives_a_batch_error() {
        for (sent, expected) in cases() {
            assert_eq!(from_pb_error(to_pb_error(&sent)), expected, "sent {sent:?}");
        }
    }

    #[test]
    fn resource_exhausted_without_a_refusal_is_overload() {
        let s = Status::new(Code::ResourceExhausted, "busy");
        assert_eq!(from_status(&s), RouterError::Overloaded("busy".into()));
        let garbage = Status::with_details(Code::ResourceExhausted, "busy", vec![0xff].into());
        assert_eq!(
            from_status(&garbage),
            RouterError::Overloaded("busy".into())
        );
    }

    #[test]
    fn transport_failures_are_unreachable() {
        let s = Status::new(Code::Unknown, "connection reset");
        assert_eq!(
            from_status(&s),
            RouterError::Unreachable("connection reset".into())
        );
    }
}
