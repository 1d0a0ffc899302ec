//! What the room state store does beyond the suite: listings that skip many rows without a
//! role, and the stored form of member and room-list rows.

use chorus_core::{
    Role,
    conformance::{room, user},
    state::{MemberRecord, ReadMark, RoomStateStore},
};
use chorus_store_cql::{CqlStore, DEFAULT_BUCKET_SIZE};

use super::support::{Keyspace, raw_session};

fn record(role: Option<Role>) -> MemberRecord {
    MemberRecord {
        role,
        banned: role.is_none(),
        muted_until: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_count_only_listed_rows_past_runs_of_unlisted_ones() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("mixed");
    // u00..u29: only every fifth one is a member, the rest are banned non-members.
    let all: Vec<_> = (0..30)
        .map(|i| {
            let role = (i % 5 == 0).then_some(Role::Member);
            (user(&format!("u{i:02}")), record(role))
        })
        .collect();
    store.put_members(&r, &all).await.unwrap();
    let names = |list: &[(chorus_core::UserId, MemberRecord)]| {
        list.iter()
            .map(|(u, _)| u.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let page = store.members(&r, None, 2).await.unwrap();
    assert_eq!(names(&page), ["u00", "u05"]);
    let next = store.members(&r, Some(&page[1].0), 3).await.unwrap();
    assert_eq!(names(&next), ["u10", "u15", "u20"]);
    let rest = store.members(&r, Some(&next[2].0), 10).await.unwrap();
    assert_eq!(names(&rest), ["u25"]);
    assert!(store.members(&r, None, 0).await.unwrap().is_empty());

    // A user marked in many rooms but a member of few.
    let alice = user("alice");
    let marks: Vec<_> = (0..20)
        .map(|i| ReadMark {
            user: alice.clone(),
            room: room(&format!("r{i:02}")),
            seq: i,
            count: i,
        })
        .collect();
    store.put_read_marks(&marks).await.unwrap();
    for i in [3, 11, 19] {
        store
            .put_members(
                &room(&format!("r{i:02}")),
                &[(alice.clone(), record(Some(Role::Owner)))],
            )
            .await
            .unwrap();
    }
    let rooms = store.rooms_of(&alice, 2).await.unwrap();
    let got: Vec<_> = rooms
        .iter()
        .map(|m| (m.room.as_str(), m.read_seq))
        .collect();
    assert_eq!(got, [("r03", 3), ("r11", 11)]);
    assert_eq!(store.rooms_of(&alice, 10).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_room_list_rows_are_whole_and_marks_stay_apart() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let (r, bob) = (room("rows"), user("bob"));
    store
        .put_members(&r, &[(bob.clone(), record(None))])
        .await
        .unwrap();
    store
        .put_read_marks(&[ReadMark {
            user: bob.clone(),
            room: r.clone(),
            seq: 4,
            count: 3,
        }])
        .await
        .unwrap();
    let session = raw_session(Some(&ks.config.keyspace)).await;
    let member: (Option<String>, Option<bool>, Option<i64>) = session
        .query_unpaged(
            "SELECT role, banned, muted_until FROM room_members WHERE room = 'rows' AND user_id = 'bob'",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(
        member,
        (Some(String::new()), Some(true), Some(0)),
        "no nulls"
    );
    let listed: (Option<String>, Option<i64>, Option<i64>) = session
        .query_unpaged(
            "SELECT role, read_seq, read_count FROM user_rooms WHERE user_id = 'bob' AND room = 'rows'",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(listed, (Some(String::new()), Some(4), Some(3)));
    // Of two records for one user in one call, the later one is kept.
    store
        .put_members(
            &r,
            &[
                (bob.clone(), record(Some(Role::Owner))),
                (bob.clone(), record(Some(Role::Member))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        store.member(&r, &bob).await.unwrap(),
        Some(record(Some(Role::Member)))
    );
    assert_eq!(
        store.rooms_of(&bob, 10).await.unwrap()[0].role,
        Role::Member
    );
}
