//! Crash safety of entry effects: when writing an entry's effects fails after the entry is
//! durable (the process could as well have died there), the entry is not acknowledged, and the
//! next load of the room applies the effects from the pending marker.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;
use chorus_core::{
    Ext, Kind, Message, RoomId, UserId,
    bus::memory::MemoryBus,
    router::{HistoryAnchor, HistoryRequest, RouterClient, RouterError, SendRequest},
    store::{MessageStore, PriorSend, ReadRange, StoreError},
};
use chorus_router::{Router, RouterConfig};
use chorus_store_embedded::{EmbeddedConfig, EmbeddedStore};

/// The embedded store, with `amend` failing while `fail_amends` is above zero.
struct FlakyAmends {
    inner: Arc<EmbeddedStore>,
    fail_amends: AtomicUsize,
}

#[async_trait]
impl MessageStore for FlakyAmends {
    async fn last_seq(&self, room: &RoomId) -> Result<u64, StoreError> {
        self.inner.last_seq(room).await
    }
    async fn append(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        self.inner.append(room, messages).await
    }
    async fn read(
        &self,
        room: &RoomId,
        range: ReadRange,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        self.inner.read(room, range, limit).await
    }
    async fn find_prior_send(
        &self,
        room: &RoomId,
        from: &UserId,
        client_msg_id: &str,
    ) -> Result<Option<PriorSend>, StoreError> {
        self.inner.find_prior_send(room, from, client_msg_id).await
    }
    async fn amend(&self, room: &RoomId, messages: &[Message]) -> Result<(), StoreError> {
        let failing = self
            .fail_amends
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StoreError::Unavailable("injected amend failure".into()));
        }
        self.inner.amend(room, messages).await
    }
    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}

fn req(from: &str, cmid: &str, body: &str, ext: Ext) -> SendRequest {
    SendRequest {
        trace: None,
        room: RoomId::new("r").unwrap(),
        from: UserId::new(from).unwrap(),
        client_msg_id: Some(cmid.into()),
        body: body.into(),
        ext,
    }
}

async fn log(router: &Router) -> Vec<Message> {
    router
        .history(HistoryRequest {
            room: RoomId::new("r").unwrap(),
            user: None,
            anchor: HistoryAnchor::After(0),
            limit: 100,
        })
        .await
        .unwrap()
        .messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effects_interrupted_after_the_append_are_applied_on_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap());
    let store = Arc::new(FlakyAmends {
        inner: embedded.clone(),
        fail_amends: AtomicUsize::new(0),
    });
    let router = Router::new(
        store.clone(),
        embedded,
        Arc::new(MemoryBus::default()),
        RouterConfig::default(),
    );
    router
        .send(req("alice", "c-1", "helo", Ext::default()))
        .await
        .unwrap();
    let edit = Ext {
        kind: Kind::Edit,
        target: Some(1),
        ..Ext::default()
    };
    store.fail_amends.store(1, Ordering::Release);
    let err = router
        .send(req("alice", "c-2", "hello", edit.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RouterError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    // The edit is durable but was not acknowledged, and its effect is missing for now.
    let now = log(&router).await;
    assert_eq!(now.len(), 2);
    assert_eq!(now[0].body, "helo");

    // Any next entry loads the room again: the marker makes it apply the edit first.
    router
        .send(req("bob", "c-3", "next", Ext::default()))
        .await
        .unwrap();
    let after = log(&router).await;
    assert_eq!(after[0].body, "hello", "{after:?}");
    assert_eq!(after[0].ext.edits, [2]);
    assert!(after[0].ext.edited_ts.is_some());
    // The client's retry of the edit finds it: acknowledged once, as a duplicate.
    let retry = router
        .send(req("alice", "c-2", "hello", edit))
        .await
        .unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.seq, 2);
    assert_eq!(log(&router).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_act_only_on_messages_already_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), EmbeddedConfig::default()).unwrap());
    let router = Router::new(
        store.clone(),
        store,
        Arc::new(MemoryBus::default()),
        RouterConfig::default(),
    );
    let edit = |target| Ext {
        kind: Kind::Edit,
        target: Some(target),
        ..Ext::default()
    };
    // A guessed seq of a message in the same batch is not a message yet.
    let results = router
        .send_batch(vec![
            req("alice", "c-1", "first", Ext::default()),
            req("alice", "c-2", "guess", edit(1)),
        ])
        .await;
    assert_eq!(results[0].as_ref().unwrap().seq, 1);
    assert!(
        matches!(results[1], Err(RouterError::NotFound(_))),
        "{results:?}"
    );
    // Once acknowledged it can be edited, twice in one batch, the later edit winning.
    let results = router
        .send_batch(vec![
            req("alice", "c-3", "one", edit(1)),
            req("alice", "c-4", "two", edit(1)),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let now = log(&router).await;
    assert_eq!(now[0].body, "two");
    assert_eq!(now[0].ext.edits, [2, 3]);
}
