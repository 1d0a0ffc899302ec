//! Migrations and the checks `connect` makes before it serves anything.

use chorus_core::{
    conformance::{msg, room, user},
    state::RoomStateStore,
    store::{MessageStore, ReadRange},
};
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

/// A keyspace at schema 2 with messages in it, as a deployment before migration 0003 has it:
/// migrating adds the columns and the state tables, and the old rows read back as plain text
/// entries (no ext, count 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_0003_upgrades_a_keyspace_with_old_rows() {
    let ks = Keyspace::new(4).await;
    let session = raw_session(Some(&ks.config.keyspace)).await;
    // Back to schema 2: what 0003 added is gone, and a row is written the old way.
    for stmt in [
        "DROP TABLE rooms",
        "DROP TABLE room_members",
        "DROP TABLE user_rooms",
        "ALTER TABLE messages DROP ext",
        "ALTER TABLE messages DROP ordinal",
        "DELETE FROM schema_migrations WHERE version = 3",
        "INSERT INTO messages (room, bucket, seq, ts, sender, client_msg_id, body) \
         VALUES ('old', 0, 1, 1700000000001, 'alice', 'c-1', 'from before')",
        "INSERT INTO room_heads (room, bucket) VALUES ('old', 0)",
    ] {
        session.query_unpaged(stmt, ()).await.unwrap();
    }
    assert!(matches!(
        CqlStore::connect(&ks.config).await.unwrap_err(),
        CqlError::SchemaOutdated { found: 2, .. }
    ));

    let report = migrate(&ks.config).await.unwrap();
    assert_eq!(report.applied, [3]);
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("old");
    let mut old = msg("old", 1, "alice", Some("c-1"), "from before");
    old.count = 0;
    assert_eq!(
        store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        [old.clone()]
    );
    // New entries go on after it with everything they carry; the old one can be amended.
    let mut reply = msg("old", 2, "bob", None, "after");
    reply.ext.reply_to = Some(1);
    store
        .append(&r, std::slice::from_ref(&reply))
        .await
        .unwrap();
    old.ext.edited_ts = Some(5);
    old.body = "edited".into();
    store.amend(&r, std::slice::from_ref(&old)).await.unwrap();
    assert_eq!(
        store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        [old, reply]
    );
    assert!(store.room(&r).await.unwrap().is_none());
}

/// A migration interrupted after 0003 added its columns but before it was recorded: applying
/// it again skips the columns that exist instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_0003_is_applied_again() {
    let ks = Keyspace::new(4).await;
    let session = raw_session(Some(&ks.config.keyspace)).await;
    for stmt in [
        "DROP TABLE user_rooms",
        "ALTER TABLE messages DROP ordinal",
        "DELETE FROM schema_migrations WHERE version = 3",
    ] {
        session.query_unpaged(stmt, ()).await.unwrap();
    }
    let report = migrate(&ks.config).await.unwrap();
    assert_eq!(report.applied, [3]);
    let store = CqlStore::connect(&ks.config).await.unwrap();
    assert!(store.rooms_of(&user("alice"), 10).await.unwrap().is_empty());
}
