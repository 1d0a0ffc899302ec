//! Router errors ⇄ gRPC status codes, in one place. The code carries the category; the
//! message carries the human-readable detail.

use chorus_core::{router::RouterError, store::StoreError};
use prost::Message as _;
use tonic::{Code, Status};

use crate::pb;

pub fn to_status(e: &RouterError) -> Status {
    if let RouterError::NotOwner { .. } = e {
        let detail = not_owner_to_pb(e)
            .map(|n| n.encode_to_vec())
            .unwrap_or_default();
        return Status::with_details(Code::FailedPrecondition, e.to_string(), detail.into());
    }
    let code = match e {
        RouterError::BadRequest(_) => Code::InvalidArgument,
        RouterError::Forbidden(_) => Code::PermissionDenied,
        RouterError::NotFound(_) => Code::NotFound,
        RouterError::Overloaded(_) => Code::ResourceExhausted,
        RouterError::Unavailable(_)
        | RouterError::Unreachable(_)
        | RouterError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
        RouterError::Store(StoreError::Conflict { .. }) => Code::Aborted,
        RouterError::Timeout => Code::DeadlineExceeded,
        RouterError::Store(StoreError::Corrupt(_)) | RouterError::Internal(_) => Code::Internal,
        RouterError::NotOwner { .. } => Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

pub fn from_code(code: Code, message: String) -> RouterError {
    match code {
        Code::InvalidArgument => RouterError::BadRequest(message),
        Code::PermissionDenied => RouterError::Forbidden(message),
        Code::NotFound => RouterError::NotFound(message),
        Code::ResourceExhausted => RouterError::Overloaded(message),
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
    if s.code() == Code::FailedPrecondition
        && let Ok(n) = pb::NotOwner::decode(s.details())
    {
        return not_owner_from_pb(n);
    }
    from_code(s.code(), s.message().to_owned())
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

/// A per-send failure inside a `SendBatch` reply.
pub fn to_pb_error(e: &RouterError) -> pb::Error {
    let s = to_status(e);
    pb::Error {
        code: s.code() as i32,
        message: s.message().to_owned(),
        not_owner: not_owner_to_pb(e),
    }
}

pub fn from_pb_error(e: pb::Error) -> RouterError {
    match e.not_owner {
        Some(n) => not_owner_from_pb(n),
        None => from_code(Code::from_i32(e.code), e.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_round_trip_by_category() {
        let cases = [
            RouterError::BadRequest("x".into()),
            RouterError::Forbidden("x".into()),
            RouterError::NotFound("x".into()),
            RouterError::Overloaded("x".into()),
            RouterError::Unavailable("x".into()),
            RouterError::Timeout,
            RouterError::Internal("x".into()),
            RouterError::NotOwner {
                ring_version: 0xfeed,
                owner: Some("router-2".into()),
            },
            RouterError::NotOwner {
                ring_version: 7,
                owner: None,
            },
        ];
        for e in cases {
            let back = from_status(&to_status(&e));
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e:?} came back as {back:?}"
            );
        }
        for e in [
            RouterError::NotOwner {
                ring_version: 0xfeed,
                owner: Some("router-2".into()),
            },
            RouterError::NotOwner {
                ring_version: 7,
                owner: None,
            },
        ] {
            assert_eq!(
                from_status(&to_status(&e)),
                e,
                "status details keep the version"
            );
            assert_eq!(
                from_pb_error(to_pb_error(&e)),
                e,
                "batch errors keep it too"
            );
        }
        let stored = from_status(&to_status(&RouterError::Store(StoreError::Unavailable(
            "disk".into(),
        ))));
        assert!(matches!(stored, RouterError::Unavailable(_)));
    }
}
