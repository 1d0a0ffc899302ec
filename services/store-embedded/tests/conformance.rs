//! The embedded store passes the store conformance suite, and keeps its data across reopen.

use std::sync::Arc;

use chorus_core::{
    conformance::{StoreUnderTest, msg, room},
    store::{MessageStore, ReadRange},
};
use chorus_store_embedded::{EmbeddedConfig, EmbeddedStore};

chorus_core::store_conformance_suite!(async {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap();
    StoreUnderTest {
        store: Arc::new(store),
        guard: Box::new(dir),
    }
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let r = room("kept");
    {
        let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap();
        store
            .append(
                &r,
                &[
                    msg("kept", 1, "a", Some("c1"), "one"),
                    msg("kept", 2, "a", None, "two"),
                ],
            )
            .await
            .unwrap();
        store.close().await.unwrap();
        let err = store
            .append(&r, &[msg("kept", 3, "a", None, "late")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, chorus_core::store::StoreError::Unavailable(_)),
            "{err:?}"
        );
    }
    let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap();
    assert_eq!(store.last_seq(&r).await.unwrap(), 2);
    let all = store.read(&r, ReadRange::After(0), 10).await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(
        store
            .find_prior_send(&r, &chorus_core::conformance::user("a"), "c1")
            .await
            .unwrap()
            .is_some()
    );
}
