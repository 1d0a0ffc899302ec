//! Fresh keyspaces for tests, and raw CQL access for checking what the store wrote.

use std::{
    sync::{OnceLock, mpsc},
    time::Duration,
};

use chorus_store_cql::{CqlConfig, migrate};
use scylla::client::{session::Session, session_builder::SessionBuilder};

/// Where the test Cassandra listens.
pub fn contact_point() -> String {
    std::env::var("CHORUS_TEST_CQL").expect(
        "CHORUS_TEST_CQL is not set: run the tests through scripts/with-test-services.sh \
         (`make test` does; it starts Cassandra on a test port), or start one with \
         `scripts/cassandra.sh start` and export CHORUS_TEST_CQL=127.0.0.1:9042",
    )
}

/// A migrated keyspace of its own, dropped when this guard is.
pub struct Keyspace {
    pub config: CqlConfig,
}

impl Keyspace {
    /// Creates and migrates `chorus_test_<random>` with `bucket_size`.
    pub async fn new(bucket_size: u64) -> Keyspace {
        let config = config(bucket_size);
        let report = migrate(&config).await.expect("test keyspace migrates");
        assert!(report.created_keyspace);
        Keyspace { config }
    }
}

/// A config for a keyspace name no other test uses (not created).
pub fn config(bucket_size: u64) -> CqlConfig {
    let id = getrandom::u64().expect("the OS has randomness");
    CqlConfig {
        contact_points: vec![contact_point()],
        keyspace: format!("chorus_test_{id:016x}"),
        bucket_size,
        ..CqlConfig::default()
    }
}

/// A plain driver session on the test cluster.
pub async fn raw_session(keyspace: Option<&str>) -> Session {
    let mut b = SessionBuilder::new()
        .known_node(contact_point())
        .schema_agreement_interval(Duration::from_millis(20))
        .fetch_schema_metadata(false);
    if let Some(ks) = keyspace {
        b = b.use_keyspace(ks, false);
    }
    b.build().await.expect("test cassandra is reachable")
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        let (reply, dropped) = mpsc::channel();
        let sent = dropper().send((self.config.keyspace.clone(), reply));
        let result = sent
            .map_err(|e| e.to_string())
            .and_then(|()| dropped.recv().map_err(|e| e.to_string()))
            .and_then(|r| r);
        if !std::thread::panicking() {
            result.expect("test keyspace drops");
        }
    }
}

type DropRequest = (String, mpsc::Sender<Result<(), String>>);

/// One thread, with its own runtime and session, drops the keyspaces of every test: a guard
/// is dropped inside its test's runtime, which cannot run async work to completion itself,
/// and a session kept for the whole run saves connecting once per test.
fn dropper() -> tokio::sync::mpsc::UnboundedSender<DropRequest> {
    static DROPPER: OnceLock<tokio::sync::mpsc::UnboundedSender<DropRequest>> = OnceLock::new();
    DROPPER
        .get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DropRequest>();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime starts");
                rt.block_on(async {
                    let session = SessionBuilder::new()
                        .known_node(contact_point())
                        .fetch_schema_metadata(false)
                        // Every keyspace has its own name: nothing waits for this drop.
                        .auto_await_schema_agreement(false)
                        .build()
                        .await;
                    while let Some((ks, reply)) = rx.recv().await {
                        let result = match &session {
                            Ok(s) => s
                                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {ks}"), ())
                                .await
                                .map(drop)
                                .map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        };
                        let _ = reply.send(result);
                    }
                });
            });
            tx
        })
        .clone()
}
