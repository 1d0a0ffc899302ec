//! Opening a driver session from a [`CqlConfig`], shared by [`migrate`](crate::migrate) and
//! [`CqlStore::connect`](crate::CqlStore::connect).

use std::time::Duration;

use scylla::{
    client::{
        execution_profile::ExecutionProfile, session::Session, session_builder::SessionBuilder,
    },
    errors::{
        ConnectionError, ConnectionPoolError, ConnectionSetupRequestErrorKind, DbError,
        MetadataError, NewSessionError,
    },
    statement::{Consistency, SerialConsistency},
};

use crate::{CqlConfig, CqlError};

/// The serial consistency that matches `consistency`: lightweight transactions stay in the
/// local datacenter exactly when plain requests do.
pub(crate) fn serial_for(consistency: Consistency) -> SerialConsistency {
    match consistency {
        Consistency::LocalQuorum | Consistency::LocalOne | Consistency::LocalSerial => {
            SerialConsistency::LocalSerial
        }
        _ => SerialConsistency::Serial,
    }
}

/// The consistency of a read that must see every completed lightweight transaction.
pub(crate) fn serial_read(consistency: Consistency) -> Consistency {
    match serial_for(consistency) {
        SerialConsistency::LocalSerial => Consistency::LocalSerial,
        SerialConsistency::Serial => Consistency::Serial,
    }
}

/// Connects to the cluster (no keyspace selected). `keyspace` limits the schema metadata the
/// driver keeps (it needs that keyspace's replication for token-aware routing).
pub(crate) async fn open(config: &CqlConfig, schema_poll: Duration) -> Result<Session, CqlError> {
    let profile = ExecutionProfile::builder()
        .consistency(config.consistency)
        .serial_consistency(Some(serial_for(config.consistency)))
        .request_timeout(Some(config.request_timeout))
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .connection_timeout(config.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .keyspaces_to_fetch([config.keyspace.clone()])
        .schema_agreement_interval(schema_poll)
        .tcp_nodelay(true);
    if let Some(login) = &config.credentials {
        builder = builder.user(&login.username, &login.password);
    }
    let unreachable = |reason: String| CqlError::Unreachable {
        contact_points: config.contact_points.clone(),
        reason,
    };
    match tokio::time::timeout(config.connect_timeout, builder.build()).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(match login_problem(&e) {
            Some(LoginProblem::Required) => CqlError::LoginRequired {
                contact_points: config.contact_points.clone(),
            },
            Some(LoginProblem::Refused(reason)) => CqlError::LoginRefused {
                username: config
                    .credentials
                    .as_ref()
                    .map(|c| c.username.clone())
                    .unwrap_or_default(),
                reason,
            },
            None => unreachable(e.to_string()),
        }),
        Err(_) => Err(unreachable(format!(
            "no connection within {:?}",
            config.connect_timeout
        ))),
    }
}

enum LoginProblem {
    /// The server asks for a login and none was configured.
    Required,
    /// The server rejected the configured login, with its message.
    Refused(String),
}

/// Whether a failed connect was the server refusing to let this client in: the driver reports
/// it as the last error of the control connection.
fn login_problem(e: &NewSessionError) -> Option<LoginProblem> {
    let NewSessionError::MetadataError(MetadataError::ConnectionPoolError(
        ConnectionPoolError::Broken {
            last_connection_error: ConnectionError::ConnectionSetupRequestError(setup),
        },
    )) = e
    else {
        return None;
    };
    match &setup.error {
        ConnectionSetupRequestErrorKind::MissingAuthentication => Some(LoginProblem::Required),
        ConnectionSetupRequestErrorKind::DbError(DbError::AuthenticationError, message) => {
            Some(LoginProblem::Refused(message.clone()))
        }
        _ => None,
    }
}
