//! The [`RoomStateStore`](crate::state::RoomStateStore) suite.

use super::{StateUnderTest, room, user};
use crate::{
    Role, UserId, Visibility,
    state::{MemberRecord, Membership, ReadMark, RoomInfo},
};

fn info(visibility: Visibility) -> RoomInfo {
    RoomInfo {
        visibility,
        created_by: user("owner"),
        created_ts: 1_700_000_000_000,
        pending_from: 0,
    }
}

fn member(role: Role) -> MemberRecord {
    MemberRecord {
        role: Some(role),
        banned: false,
        muted_until: 0,
    }
}

fn names(list: &[(UserId, MemberRecord)]) -> Vec<&str> {
    list.iter().map(|(u, _)| u.as_str()).collect()
}

pub async fn rooms_are_created_and_updated(t: &StateUnderTest) {
    let r = room("created");
    assert_eq!(t.state.room(&r).await.unwrap(), None);
    let mut i = info(Visibility::Private);
    t.state.put_room(&r, &i).await.unwrap();
    assert_eq!(t.state.room(&r).await.unwrap(), Some(i.clone()));
    i.pending_from = 17;
    t.state.put_room(&r, &i).await.unwrap();
    t.state.put_room(&r, &i).await.unwrap();
    assert_eq!(t.state.room(&r).await.unwrap(), Some(i.clone()));
    i.pending_from = 0;
    t.state.put_room(&r, &i).await.unwrap();
    assert_eq!(t.state.room(&r).await.unwrap().unwrap().pending_from, 0);
}

pub async fn members_list_in_order_and_page(t: &StateUnderTest) {
    let r = room("big");
    let mut all: Vec<(UserId, MemberRecord)> = (0..25)
        .map(|i| (user(&format!("u{i:03}")), member(Role::Member)))
        .collect();
    all[3].1.role = Some(Role::Owner);
    all[7].1.role = Some(Role::Moderator);
    // Written out of order and in two calls.
    t.state.put_members(&r, &all[10..]).await.unwrap();
    t.state.put_members(&r, &all[..10]).await.unwrap();
    let page = t.state.members(&r, None, 10).await.unwrap();
    assert_eq!(page, all[..10].to_vec());
    let next = t.state.members(&r, Some(&page[9].0), 10).await.unwrap();
    assert_eq!(next, all[10..20].to_vec());
    let last = t.state.members(&r, Some(&next[9].0), 10).await.unwrap();
    assert_eq!(names(&last), names(&all[20..]));
    assert_eq!(
        t.state.member(&r, &user("u007")).await.unwrap(),
        Some(member(Role::Moderator))
    );
    assert_eq!(t.state.member(&r, &user("nobody")).await.unwrap(), None);
}

pub async fn removal_keeps_bans_mutes_and_read_marks(t: &StateUnderTest) {
    let r = room("moderated");
    let (bob, carol) = (user("bob"), user("carol"));
    t.state
        .put_members(
            &r,
            &[
                (bob.clone(), member(Role::Member)),
                (carol.clone(), member(Role::Member)),
            ],
        )
        .await
        .unwrap();
    t.state
        .put_read_marks(&[ReadMark {
            user: bob.clone(),
            room: r.clone(),
            seq: 5,
            count: 4,
        }])
        .await
        .unwrap();
    let banned = MemberRecord {
        role: None,
        banned: true,
        muted_until: 0,
    };
    let muted = MemberRecord {
        muted_until: 1_900_000_000_000,
        ..member(Role::Member)
    };
    t.state
        .put_members(&r, &[(bob.clone(), banned), (carol.clone(), muted)])
        .await
        .unwrap();
    assert_eq!(t.state.member(&r, &bob).await.unwrap(), Some(banned));
    assert_eq!(t.state.member(&r, &carol).await.unwrap(), Some(muted));
    assert_eq!(
        names(&t.state.members(&r, None, 10).await.unwrap()),
        ["carol"],
        "a record without a role is not listed"
    );
    assert!(t.state.rooms_of(&bob, 10).await.unwrap().is_empty());
    // Back in: the read mark survived the removal.
    t.state
        .put_members(&r, &[(bob.clone(), member(Role::Member))])
        .await
        .unwrap();
    assert_eq!(
        t.state.rooms_of(&bob, 10).await.unwrap(),
        vec![Membership {
            room: r.clone(),
            role: Role::Member,
            read_seq: 5,
            read_count: 4,
        }]
    );
}

pub async fn room_lists_follow_membership(t: &StateUnderTest) {
    let alice = user("alice");
    for (name, role) in [
        ("r-b", Role::Owner),
        ("r-a", Role::Member),
        ("r-c", Role::Moderator),
    ] {
        t.state
            .put_members(&room(name), &[(alice.clone(), member(role))])
            .await
            .unwrap();
    }
    t.state
        .put_members(&room("r-d"), &[(user("bob"), member(Role::Member))])
        .await
        .unwrap();
    let list = t.state.rooms_of(&alice, 10).await.unwrap();
    let got: Vec<(&str, Role)> = list.iter().map(|m| (m.room.as_str(), m.role)).collect();
    assert_eq!(
        got,
        [
            ("r-a", Role::Member),
            ("r-b", Role::Owner),
            ("r-c", Role::Moderator)
        ]
    );
    assert!(list.iter().all(|m| m.read_seq == 0 && m.read_count == 0));
    assert_eq!(t.state.rooms_of(&alice, 2).await.unwrap().len(), 2);
}

pub async fn read_marks_for_anyone(t: &StateUnderTest) {
    let (alice, r) = (user("alice"), room("marked"));
    let mark = |seq, count| ReadMark {
        user: alice.clone(),
        room: r.clone(),
        seq,
        count,
    };
    // Not a member: kept, but not listed.
    t.state.put_read_marks(&[mark(3, 2)]).await.unwrap();
    assert!(t.state.rooms_of(&alice, 10).await.unwrap().is_empty());
    t.state
        .put_members(&r, &[(alice.clone(), member(Role::Member))])
        .await
        .unwrap();
    t.state.put_read_marks(&[mark(9, 7)]).await.unwrap();
    let list = t.state.rooms_of(&alice, 10).await.unwrap();
    assert_eq!((list[0].read_seq, list[0].read_count), (9, 7));
    // Marking does not make anyone a member, nor change a role.
    assert_eq!(list[0].role, Role::Member);
}

pub async fn rooms_are_independent(t: &StateUnderTest) {
    let (a, b) = (room("ind-a"), room("ind-b"));
    t.state
        .put_room(&a, &info(Visibility::Public))
        .await
        .unwrap();
    t.state
        .put_members(&a, &[(user("x"), member(Role::Owner))])
        .await
        .unwrap();
    assert_eq!(t.state.room(&b).await.unwrap(), None);
    assert_eq!(t.state.member(&b, &user("x")).await.unwrap(), None);
    assert!(t.state.members(&b, None, 10).await.unwrap().is_empty());
}
