//! The [`MessageStore`](crate::store::MessageStore) suite.

use super::{StoreUnderTest, msg, room, user};
use crate::store::{PriorSend, ReadRange, StoreError};

fn seqs(ms: &[crate::Message]) -> Vec<u64> {
    ms.iter().map(|m| m.seq).collect()
}

pub async fn empty_room_reads_nothing(t: &StoreUnderTest) {
    let r = room("empty");
    assert_eq!(t.store.last_seq(&r).await.unwrap(), 0);
    assert!(
        t.store
            .read(&r, ReadRange::After(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t.store
            .read(&r, ReadRange::Before(u64::MAX), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.store.find_prior_send(&r, &user("a"), "x").await.unwrap(),
        None
    );
}

pub async fn appends_read_back_in_order_both_ways(t: &StoreUnderTest) {
    let r = room("ordered");
    let first: Vec<_> = (1..=3).map(|s| msg("ordered", s, "a", None, "m")).collect();
    let second: Vec<_> = (4..=6).map(|s| msg("ordered", s, "b", None, "m")).collect();
    t.store.append(&r, &first).await.unwrap();
    t.store.append(&r, &second).await.unwrap();
    assert_eq!(t.store.last_seq(&r).await.unwrap(), 6);
    let s = &t.store;
    assert_eq!(
        seqs(&s.read(&r, ReadRange::After(0), 100).await.unwrap()),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        seqs(&s.read(&r, ReadRange::After(2), 2).await.unwrap()),
        [3, 4]
    );
    assert_eq!(
        seqs(&s.read(&r, ReadRange::After(6), 5).await.unwrap()),
        [0u64; 0]
    );
    assert_eq!(
        seqs(&s.read(&r, ReadRange::Before(6), 2).await.unwrap()),
        [4, 5]
    );
    assert_eq!(
        seqs(&s.read(&r, ReadRange::Before(u64::MAX), 2).await.unwrap()),
        [5, 6]
    );
    assert_eq!(
        seqs(&s.read(&r, ReadRange::Before(1), 5).await.unwrap()),
        [0u64; 0]
    );
}

pub async fn append_refuses_gaps_and_reuse_and_writes_nothing(t: &StoreUnderTest) {
    let r = room("fenced");
    let err = t
        .store
        .append(&r, &[msg("fenced", 2, "a", None, "x")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                last_seq: 0,
                first: 2,
                ..
            }
        ),
        "{err:?}"
    );
    t.store
        .append(&r, &[msg("fenced", 1, "a", None, "one")])
        .await
        .unwrap();
    let err = t
        .store
        .append(&r, &[msg("fenced", 1, "a", None, "again")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                last_seq: 1,
                first: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(t.store.last_seq(&r).await.unwrap(), 1);
    let all = t.store.read(&r, ReadRange::After(0), 10).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].body, "one", "a refused append must not overwrite");
}

pub async fn append_is_atomic_for_a_bad_batch(t: &StoreUnderTest) {
    let r = room("atomic");
    // 1 and 2 are fine, 4 skips 3: the whole batch is refused.
    let batch = [
        msg("atomic", 1, "a", Some("c1"), "x"),
        msg("atomic", 2, "a", Some("c2"), "x"),
        msg("atomic", 4, "a", Some("c4"), "x"),
    ];
    assert!(matches!(
        t.store.append(&r, &batch).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(t.store.last_seq(&r).await.unwrap(), 0);
    assert!(
        t.store
            .read(&r, ReadRange::After(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        t.store.find_prior_send(&r, &user("a"), "c1").await.unwrap(),
        None
    );
}

pub async fn idempotency_records_are_per_room_and_user(t: &StoreUnderTest) {
    let r = room("idem");
    let m = msg("idem", 1, "alice", Some("c-1"), "hi");
    t.store.append(&r, std::slice::from_ref(&m)).await.unwrap();
    assert_eq!(
        t.store
            .find_prior_send(&r, &user("alice"), "c-1")
            .await
            .unwrap(),
        Some(PriorSend { seq: 1, ts: m.ts })
    );
    assert_eq!(
        t.store
            .find_prior_send(&r, &user("bob"), "c-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.store
            .find_prior_send(&room("other"), &user("alice"), "c-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.store
            .find_prior_send(&r, &user("alice"), "c-2")
            .await
            .unwrap(),
        None
    );
}

pub async fn rooms_are_independent_under_concurrent_appends(t: &StoreUnderTest) {
    const ROOMS: u64 = 8;
    const PER_ROOM: u64 = 25;
    let mut tasks = Vec::new();
    for i in 0..ROOMS {
        let store = t.store.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("par-{i}");
            for s in 1..=PER_ROOM {
                let m = msg(
                    &name,
                    s,
                    "a",
                    Some(&format!("c{s}")),
                    &format!("{name}/{s}"),
                );
                store.append(&room(&name), &[m]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for i in 0..ROOMS {
        let name = format!("par-{i}");
        let all = t
            .store
            .read(&room(&name), ReadRange::After(0), 100)
            .await
            .unwrap();
        assert_eq!(seqs(&all), (1..=PER_ROOM).collect::<Vec<_>>());
        assert!(all.iter().all(|m| m.body.starts_with(&format!("{name}/"))));
    }
}

pub async fn reads_respect_limit(t: &StoreUnderTest) {
    let r = room("limited");
    let batch: Vec<_> = (1..=20)
        .map(|s| msg("limited", s, "a", None, "m"))
        .collect();
    t.store.append(&r, &batch).await.unwrap();
    assert_eq!(
        t.store
            .read(&r, ReadRange::After(0), 7)
            .await
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        t.store
            .read(&r, ReadRange::Before(21), 7)
            .await
            .unwrap()
            .len(),
        7
    );
    assert!(
        t.store
            .read(&r, ReadRange::After(0), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn messages_round_trip_exactly(t: &StoreUnderTest) {
    let r = room("exact");
    let a = msg(
        "exact",
        1,
        "alice",
        Some("ü-1"),
        "héllo \u{1F600} \"quoted\"\n\ttab",
    );
    let b = msg("exact", 2, "bob", None, "");
    t.store.append(&r, &[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(
        t.store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        vec![a, b]
    );
}

pub async fn entries_of_every_kind_round_trip(t: &StoreUnderTest) {
    use crate::{Attachment, Json, Kind, MemberAction, MemberChange, Role, Visibility};
    let r = room("kinds");
    let mut text = msg("kinds", 1, "alice", Some("c-1"), "hello");
    text.ext.reply_to = Some(1);
    text.ext.attachments = vec![Attachment {
        name: "a b.png".into(),
        content_type: "image/png".into(),
        data: "iVBORw0KGgo=".into(),
    }];
    text.count = 1;
    let mut event = msg("kinds", 2, "bob", None, "");
    event.ext.kind = Kind::Event;
    event.ext.event = Some("game.move".into());
    event.ext.data = Some(Json::parse(r#"{"x":1,"y":[true,null]}"#).unwrap());
    event.count = 2;
    let mut member = msg("kinds", 3, "alice", None, "");
    member.ext.kind = Kind::Member;
    member.ext.member = Some(MemberChange {
        action: MemberAction::Create,
        user: user("alice"),
        role: Some(Role::Owner),
        until: None,
        visibility: Some(Visibility::Private),
        members: vec![user("bob")],
        revoke: false,
    });
    member.count = 2;
    let mut edit = msg("kinds", 4, "alice", Some("c-2"), "hello!");
    edit.ext.kind = Kind::Edit;
    edit.ext.target = Some(1);
    edit.count = 2;
    let all = vec![text, event, member, edit];
    t.store.append(&r, &all).await.unwrap();
    assert_eq!(
        t.store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        all
    );
    assert_eq!(
        t.store.read(&r, ReadRange::Before(5), 1).await.unwrap()[0].count,
        2,
        "count is kept"
    );
}

pub async fn amend_replaces_entries_in_place(t: &StoreUnderTest) {
    let r = room("amended");
    let first: Vec<_> = (1..=3)
        .map(|s| msg("amended", s, "a", Some(&format!("c-{s}")), "m"))
        .collect();
    t.store.append(&r, &first).await.unwrap();
    let mut edited = first[0].clone();
    edited.body = "new".into();
    edited.ext.edited_ts = Some(9);
    edited.ext.edits = vec![3];
    let mut deleted = first[1].clone();
    deleted.body = String::new();
    deleted.ext.deleted = true;
    t.store
        .amend(&r, &[edited.clone(), deleted.clone()])
        .await
        .unwrap();
    t.store.amend(&r, &[edited.clone()]).await.unwrap();
    assert_eq!(
        t.store.read(&r, ReadRange::After(0), 10).await.unwrap(),
        vec![edited, deleted, first[2].clone()]
    );
    assert_eq!(t.store.last_seq(&r).await.unwrap(), 3);
    let next = msg("amended", 4, "a", None, "after");
    t.store.append(&r, &[next]).await.unwrap();
    assert_eq!(
        t.store
            .find_prior_send(&r, &user("a"), "c-1")
            .await
            .unwrap(),
        Some(PriorSend {
            seq: 1,
            ts: first[0].ts
        }),
        "amending keeps the idempotency record"
    );
}
