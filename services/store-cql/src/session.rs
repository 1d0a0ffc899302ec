//! Opening a driver session from a [`CqlConfig`], shared by [`migrate`](crate::migrate) and
//! [`CqlStore::connect`](crate::CqlStore::connect).

use std::time::Duration;

use scylla::{
    client::{
        execution_profile::ExecutionProfile, session::Session, session_builder::SessionBuilder,
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
    let builder = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .connection_timeout(config.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .keyspaces_to_fetch([config.keyspace.clone()])
        .schema_agreement_interval(schema_poll)
        .tcp_nodelay(true);
    let unreachable = |reason: String| CqlError::Unreachable {
        contact_points: config.contact_points.clone(),
        reason,
    };
    match tokio::time::timeout(config.connect_timeout, builder.build()).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no connection within {:?}",
            config.connect_timeout
        ))),
    }
}
