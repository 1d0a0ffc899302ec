//! Password authentication: the second Cassandra of scripts/with-test-services.sh requires a
//! login (CHORUS_TEST_CQL_LOGIN, with the role CHORUS_TEST_CQL_LOGIN_USER made for the tests).

use chorus_core::{
    Message, RoomId, UserId,
    store::{MessageStore, ReadRange},
};
use chorus_store_cql::{CqlConfig, CqlCredentials, CqlError, CqlStore, DEFAULT_BUCKET_SIZE};
use scylla::client::session_builder::SessionBuilder;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through scripts/with-test-services.sh \
             (`make test` does; it starts a Cassandra that requires a login)"
        )
    })
}

/// A config for a fresh keyspace on the login node, logging in with `credentials`.
fn config(credentials: Option<CqlCredentials>) -> CqlConfig {
    let id = getrandom::u64().expect("the OS has randomness");
    CqlConfig {
        contact_points: vec![var("CHORUS_TEST_CQL_LOGIN")],
        keyspace: format!("chorus_login_{id:016x}"),
        bucket_size: DEFAULT_BUCKET_SIZE,
        credentials,
        ..CqlConfig::default()
    }
}

fn login(password: &str) -> Option<CqlCredentials> {
    Some(CqlCredentials {
        username: var("CHORUS_TEST_CQL_LOGIN_USER"),
        password: password.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_right_login_the_store_migrates_writes_and_reads() {
    let config = config(login(&var("CHORUS_TEST_CQL_LOGIN_PASSWORD")));
    let report = chorus_store_cql::migrate(&config).await.expect("migrates");
    assert!(report.created_keyspace);
    let store = CqlStore::connect(&config).await.expect("connects");
    let room = RoomId::new("login-room").unwrap();
    let m = Message::text(
        room.clone(),
        1,
        1_700_000_000_000,
        UserId::new("alice").unwrap(),
        "hello",
    );
    store.append(&room, std::slice::from_ref(&m)).await.unwrap();
    let read = store.read(&room, ReadRange::After(0), 10).await.unwrap();
    assert_eq!(read, vec![m]);
    drop(store);
    let login = config.credentials.as_ref().unwrap();
    let admin = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .user(&login.username, &login.password)
        .build()
        .await
        .expect("a plain session logs in too");
    admin
        .query_unpaged(format!("DROP KEYSPACE {}", config.keyspace), ())
        .await
        .expect("the test keyspace drops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_login_the_error_says_one_is_required() {
    let config = config(None);
    let err = chorus_store_cql::migrate(&config).await.unwrap_err();
    assert!(matches!(err, CqlError::LoginRequired { .. }), "{err:?}");
    assert!(err.to_string().contains("requires a login"), "{err}");
    let err = CqlStore::connect(&config).await.unwrap_err();
    assert!(matches!(err, CqlError::LoginRequired { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_by_name_and_never_shown() {
    let config = config(login("not-the-password"));
    let err = chorus_store_cql::migrate(&config).await.unwrap_err();
    let user = var("CHORUS_TEST_CQL_LOGIN_USER");
    assert!(
        matches!(&err, CqlError::LoginRefused { username, .. } if *username == user),
        "{err:?}"
    );
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    assert!(
        !format!("{config:?}").contains("not-the-password"),
        "{config:?}"
    );
}
