//! The embedded store passes the store and room state conformance suites, keeps its data
//! across reopen, and opens files written before entries had kinds and rooms had state.

use std::sync::Arc;

use chorus_core::{
    Role,
    conformance::{StateUnderTest, StoreUnderTest, msg, room, user},
    state::{MemberRecord, Membership, ReadMark, RoomStateStore},
    store::{MessageStore, ReadRange, StoreError},
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

chorus_core::state_conformance_suite!(async {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap();
    StateUnderTest {
        state: Arc::new(store),
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
        let mut edited = msg("kept", 2, "a", None, "two, edited");
        edited.ext.edited_ts = Some(5);
        store.amend(&r, &[edited]).await.unwrap();
        store
            .put_members(&r, &[(user("a"), member(Role::Owner))])
            .await
            .unwrap();
        store.put_read_marks(&[mark("a", &r, 2, 2)]).await.unwrap();
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
        ["one", "two, edited"]
    );
    assert_eq!(all[1].ext.edited_ts, Some(5));
    assert_eq!(
        store.rooms_of(&user("a"), 10).await.unwrap(),
        [Membership {
            room: r.clone(),
            role: Role::Owner,
            read_seq: 2,
            read_count: 2,
        }]
    );
    assert!(
        store
            .find_prior_send(&r, &chorus_core::conformance::user("a"), "c1")
            .await
            .unwrap()
            .is_some()
    );
}

fn member(role: Role) -> MemberRecord {
    MemberRecord {
        role: Some(role),
        banned: false,
        muted_until: 0,
    }
}

fn mark(name: &str, r: &chorus_core::RoomId, seq: u64, count: u64) -> ReadMark {
    ReadMark {
        user: user(name),
        room: r.clone(),
        seq,
        count,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amend_of_an_entry_not_stored_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap();
    let r = room("amend-missing");
    let first = msg("amend-missing", 1, "a", None, "one");
    store
        .append(&r, std::slice::from_ref(&first))
        .await
        .unwrap();
    let mut edited = first.clone();
    edited.body = "edited".into();
    let err = store
        .amend(
            &r,
            &[edited.clone(), msg("amend-missing", 2, "a", None, "ghost")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                last_seq: 1,
                first: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let elsewhere = msg("other-room", 1, "a", None, "elsewhere");
    assert!(matches!(
        store.amend(&r, &[edited, elsewhere]).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        [first],
        "a refused amend changes nothing"
    );
    assert_eq!(store.last_seq(&r).await.unwrap(), 1);
}

/// A file from before `amend` and room state: only the log tables, records without `x`/`n`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_from_an_older_version_opens_and_gains_state() {
    const MESSAGES: redb::TableDefinition<(&str, u64), &[u8]> =
        redb::TableDefinition::new("messages");
    const ROOMS: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("rooms");
    const SENDS: redb::TableDefinition<(&str, &str, &str), (u64, u64)> =
        redb::TableDefinition::new("sends");
    let dir = tempfile::tempdir().unwrap();
    {
        let db = redb::Database::create(dir.path().join("chorus.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut messages = tx.open_table(MESSAGES).unwrap();
            messages
                .insert(
                    ("old", 1),
                    br#"{"t":1700000000001,"f":"a","c":"c1","b":"from before"}"#.as_slice(),
                )
                .unwrap();
            tx.open_table(ROOMS).unwrap().insert("old", 1).unwrap();
            tx.open_table(SENDS)
                .unwrap()
                .insert(("old", "a", "c1"), (1, 1_700_000_000_001))
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let r = room("old");
    let store = EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap();
    let mut before = msg("old", 1, "a", Some("c1"), "from before");
    before.count = 0;
    assert_eq!(
        store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        [before]
    );
    assert_eq!(store.member(&r, &user("a")).await.unwrap(), None);
    assert!(store.rooms_of(&user("a"), 10).await.unwrap().is_empty());
    store
        .append(&r, &[msg("old", 2, "a", None, "from after")])
        .await
        .unwrap();
    store
        .put_members(&r, &[(user("a"), member(Role::Member))])
        .await
        .unwrap();
    assert_eq!(store.rooms_of(&user("a"), 10).await.unwrap().len(), 1);
}
