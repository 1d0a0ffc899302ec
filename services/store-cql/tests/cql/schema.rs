//! Migrations and the checks `connect` makes before it serves anything.

use chorus_store_cql::{CqlError, CqlStore, SCHEMA_VERSION, migrate};

use super::support::{Keyspace, config, raw_session};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_again_applies_nothing() {
    let ks = Keyspace::new(4).await; // the first migrate created it and applied everything
    let again = migrate(&ks.config).await.unwrap();
    assert!(!again.created_keyspace);
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(
        again.already_present,
        (1..=SCHEMA_VERSION).collect::<Vec<_>>()
    );
    CqlStore::connect(&ks.config).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_a_keyspace_that_was_not_migrated() {
    let config = config(4);
    // No keyspace at all.
    let err = CqlStore::connect(&config).await.unwrap_err();
    assert_eq!(
        err,
        CqlError::SchemaMissing {
            keyspace: config.keyspace.clone()
        }
    );
    assert!(err.to_string().contains("run `chorus migrate`"), "{err}");

    // A keyspace someone created by hand, without the tables.
    let session = raw_session(None).await;
    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {} WITH replication = {}",
                config.keyspace, config.replication
            ),
            (),
        )
        .await
        .unwrap();
    let guard = Keyspace {
        config: config.clone(),
    };
    let err = CqlStore::connect(&config).await.unwrap_err();
    assert!(matches!(err, CqlError::SchemaMissing { .. }), "{err:?}");

    // Migrating it makes it usable.
    let report = migrate(&config).await.unwrap();
    assert!(!report.created_keyspace);
    assert_eq!(report.applied, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    CqlStore::connect(&config).await.unwrap();
    drop(guard);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refuses_an_older_schema_until_migrated() {
    let ks = Keyspace::new(4).await;
    let session = raw_session(Some(&ks.config.keyspace)).await;
    session
        .query_unpaged(
            "DELETE FROM schema_migrations WHERE version = ?",
            (SCHEMA_VERSION as i32,),
        )
        .await
        .unwrap();
    let err = CqlStore::connect(&ks.config).await.unwrap_err();
    assert_eq!(
        err,
        CqlError::SchemaOutdated {
            keyspace: ks.config.keyspace.clone(),
            found: SCHEMA_VERSION - 1,
            required: SCHEMA_VERSION,
        }
    );
    assert!(err.to_string().contains("run `chorus migrate`"), "{err}");
    let report = migrate(&ks.config).await.unwrap();
    assert_eq!(report.applied, [SCHEMA_VERSION]);
    CqlStore::connect(&ks.config).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyspace_keeps_its_bucket_size() {
    let ks = Keyspace::new(4).await;
    let mut other = ks.config.clone();
    other.bucket_size = 10_000;
    let mismatch = CqlError::BucketSizeMismatch {
        keyspace: ks.config.keyspace.clone(),
        stored: 4,
        configured: 10_000,
    };
    assert_eq!(CqlStore::connect(&other).await.unwrap_err(), mismatch);
    assert_eq!(migrate(&other).await.unwrap_err(), mismatch);
    CqlStore::connect(&ks.config).await.unwrap();
}
