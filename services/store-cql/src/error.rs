//! Errors of setting the store up ([`migrate`](crate::migrate),
//! [`CqlStore::connect`](crate::CqlStore::connect)). Once connected, operations report
//! [`StoreError`]; [`unavailable`] and [`corrupt`] are the one place driver errors become
//! store errors.

use std::time::Duration;

use chorus_core::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CqlError {
    #[error("invalid cql store config: {0}")]
    Config(String),
    #[error("cannot reach cql contact points {contact_points:?}: {reason}")]
    Unreachable {
        contact_points: Vec<String>,
        reason: String,
    },
    #[error(
        "the database at {contact_points:?} requires a login: set a CQL username and password (--cql-username with CHORUS_CQL_PASSWORD or --cql-password-file)"
    )]
    LoginRequired { contact_points: Vec<String> },
    #[error("the database refused the login of CQL user {username:?}: {reason}")]
    LoginRefused { username: String, reason: String },
    #[error("keyspace {keyspace} has no chorus schema: run `chorus migrate`")]
    SchemaMissing { keyspace: String },
    #[error(
        "keyspace {keyspace} is at schema version {found}, this binary needs {required}: run `chorus migrate`"
    )]
    SchemaOutdated {
        keyspace: String,
        found: u32,
        required: u32,
    },
    #[error(
        "keyspace {keyspace} was created with bucket size {stored}, not the configured {configured}: a keyspace's bucket size can never change"
    )]
    BucketSizeMismatch {
        keyspace: String,
        stored: u64,
        configured: u64,
    },
    #[error("cql {context} failed: {reason}")]
    Query { context: String, reason: String },
    #[error("cql {context} timed out after {timeout:?}")]
    Timeout { context: String, timeout: Duration },
}

impl CqlError {
    pub(crate) fn query(context: impl Into<String>, e: impl std::fmt::Display) -> CqlError {
        CqlError::Query {
            context: context.into(),
            reason: e.to_string(),
        }
    }
}

/// Runs one set-up step under `timeout`.
pub(crate) async fn setup_step<T, E: std::fmt::Display>(
    context: &str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, CqlError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CqlError::query(context, e)),
        Err(_) => Err(CqlError::Timeout {
            context: context.to_owned(),
            timeout,
        }),
    }
}

pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cql: {e}"))
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("cql: {e}"))
}
