//! Router errors ⇄ gRPC status codes, in one place. The code carries the category; the
//! message carries the human-readable detail.

use chorus_core::{router::RouterError, store::StoreError};
use tonic::{Code, Status};

pub fn to_status(e: &RouterError) -> Status {
    let code = match e {
        RouterError::BadRequest(_) => Code::InvalidArgument,
        RouterError::Forbidden(_) => Code::PermissionDenied,
        RouterError::NotFound(_) => Code::NotFound,
        RouterError::Overloaded(_) => Code::ResourceExhausted,
        RouterError::Unavailable(_) | RouterError::Store(StoreError::Unavailable(_)) => {
            Code::Unavailable
        }
        RouterError::Store(StoreError::Conflict { .. }) => Code::Aborted,
        RouterError::Timeout => Code::DeadlineExceeded,
        RouterError::Store(StoreError::Corrupt(_)) | RouterError::Internal(_) => Code::Internal,
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
    from_code(s.code(), s.message().to_owned())
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
        ];
        for e in cases {
            let back = from_status(&to_status(&e));
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e:?} came back as {back:?}"
            );
        }
        let stored = from_status(&to_status(&RouterError::Store(StoreError::Unavailable(
            "disk".into(),
        ))));
        assert!(matches!(stored, RouterError::Unavailable(_)));
    }
}
