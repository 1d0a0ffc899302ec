//! A join that races a revocation does not get in: the router authorized it when the user
//! still had access, but the hub has since fanned out the entry that ended it, so the attach
//! is refused. The race is forced here by attaching with the join's authorization point
//! after the revocation was delivered.

use std::{sync::Arc, time::Duration};

use chorus_core::{
    Ext, Kind, MemberAction, MemberChange, RoomId, UserId, Visibility,
    bus::memory::MemoryBus,
    router::{RouterClient, RouterError, SendRequest},
};
use chorus_gateway::{
    hub::{Attach, Hub, JoinedInfo},
    metrics::GatewayMetrics,
    outbox::Outbox,
};
use chorus_router::Router;
use chorus_store_embedded::EmbeddedStore;

fn change(action: MemberAction, user: &str) -> MemberChange {
    MemberChange {
        action,
        user: UserId::new(user).unwrap(),
        role: None,
        until: None,
        visibility: None,
        members: Vec::new(),
        revoke: false,
    }
}

fn entry(from: &str, change: MemberChange) -> SendRequest {
    SendRequest {
        trace: None,
        room: RoomId::new("vault").unwrap(),
        from: UserId::new(from).unwrap(),
        client_msg_id: None,
        body: String::new(),
        ext: Ext {
            kind: Kind::Member,
            member: Some(change),
            ..Ext::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_authorized_before_a_revocation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path(), Default::default()).unwrap());
    let bus = Arc::new(MemoryBus::default());
    let router = Arc::new(Router::new(
        store.clone(),
        store,
        bus.clone(),
        Default::default(),
    ));
    let hub = Hub::new(
        router.clone(),
        bus,
        64,
        Duration::from_secs(10),
        GatewayMetrics::new(),
    );
    let room = RoomId::new("vault").unwrap();
    let mut create = change(MemberAction::Create, "alice");
    create.visibility = Some(Visibility::Private);
    create.members = vec![UserId::new("bob").unwrap()];
    router.send(entry("alice", create)).await.unwrap();

    // Alice watches the room, so the hub sees the removal.
    let alice_box = Arc::new(Outbox::new(1 << 20));
    let info = JoinedInfo {
        authorized_at: 1,
        ..Default::default()
    };
    let alice = UserId::new("alice").unwrap();
    let attached = hub
        .attach(&room, 1, &alice, &alice_box, &info, Some(1), None)
        .await;
    assert!(
        matches!(attached, Ok(Attach::Attached { .. })),
        "{attached:?}"
    );
    let removed = router
        .send(entry("alice", change(MemberAction::Remove, "bob")))
        .await
        .unwrap();
    // Wait until the hub has fanned the removal out (alice receives it).
    let mut frames = Vec::new();
    for _ in 0..100 {
        alice_box.drain(&mut frames);
        if frames
            .iter()
            .any(|f| f.as_str().contains(r#""action":"remove""#))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        frames
            .iter()
            .any(|f| f.as_str().contains(r#""revoke":true"#)),
        "{frames:?}"
    );

    // Bob's join was authorized at seq 1, before his removal at seq 2: refused.
    let bob = UserId::new("bob").unwrap();
    let bob_box = Arc::new(Outbox::new(1 << 20));
    let raced = hub
        .attach(&room, 2, &bob, &bob_box, &info, Some(1), None)
        .await;
    assert!(matches!(raced, Err(RouterError::Forbidden(_))), "{raced:?}");
    // Invited back, a join authorized after that attaches again.
    let invited = router
        .send(entry("alice", change(MemberAction::Invite, "bob")))
        .await
        .unwrap();
    assert_eq!(invited.seq, removed.seq + 1);
    for _ in 0..100 {
        let info = JoinedInfo {
            authorized_at: invited.seq,
            ..Default::default()
        };
        if let Ok(Attach::Attached { .. }) = hub
            .attach(&room, 3, &bob, &bob_box, &info, None, None)
            .await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("bob could not attach after his invitation");
}
