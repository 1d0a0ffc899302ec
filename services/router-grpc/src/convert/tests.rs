//! Each conversion both ways, and what either side refuses.

use chorus_core::{Attachment, Json, Kind, MemberAction, MemberChange};

use super::*;

fn r(s: &str) -> RoomId {
    RoomId::new(s).unwrap()
}

fn u(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn rich_ext() -> Ext {
    Ext {
        kind: Kind::Member,
        reply_to: Some(3),
        target: Some(2),
        attachments: vec![Attachment {
            name: "a.txt".into(),
            content_type: "text/plain".into(),
            data: "aGk=".into(),
        }],
        event: Some("poll.vote".into()),
        data: Some(Json::parse(r#"{"choice":[1,2]}"#).unwrap()),
        member: Some(MemberChange {
            action: MemberAction::Create,
            user: u("alice"),
            role: Some(Role::Owner),
            until: Some(9),
            visibility: Some(Visibility::Private),
            members: vec![u("bob")],
            revoke: true,
        }),
        edited_ts: Some(17),
        deleted: true,
        edits: vec![4, 5],
    }
}

#[test]
fn a_sends_trace_context_survives_the_wire_and_a_malformed_one_is_dropped() {
    let tp = chorus_core::trace::TraceParent::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .unwrap();
    let mut send = SendRequest::text(r("general"), u("alice"), None, "hi".into());
    send.trace = Some(tp.clone());
    let wire = send_to_pb(send.clone());
    assert_eq!(wire.traceparent, tp.as_str());
    assert_eq!(send_from_pb(wire.clone()).unwrap(), send);
    let garbled = pb::SendRequest {
        traceparent: "00-garbage".into(),
        ..wire
    };
    let decoded = send_from_pb(garbled).expect("a bad trace context never refuses a send");
    assert_eq!(decoded.trace, None);
    assert_eq!(decoded.body, "hi");
}

#[test]
fn a_send_survives_the_wire_with_its_ext() {
    for ext in [Ext::default(), rich_ext()] {
        let send = SendRequest {
            trace: None,
            room: r("general"),
            from: u("alice"),
            client_msg_id: Some("c-1".into()),
            body: "hi".into(),
            ext,
        };
        assert_eq!(send_from_pb(send_to_pb(send.clone())).unwrap(), send);
    }
    let plain = send_to_pb(SendRequest::text(
        r("general"),
        u("alice"),
        None,
        "x".into(),
    ));
    assert_eq!(plain.ext_json, "", "a plain text message carries no ext");
}

#[test]
fn bad_sends_are_bad_requests() {
    let good = send_to_pb(SendRequest::text(
        r("general"),
        u("alice"),
        None,
        "x".into(),
    ));
    let bad = [
        pb::SendRequest {
            ext_json: "{not json".into(),
            ..good.clone()
        },
        pb::SendRequest {
            ext_json: r#"{"kind":"no-such-kind"}"#.into(),
            ..good.clone()
        },
        pb::SendRequest {
            room: "".into(),
            ..good.clone()
        },
        pb::SendRequest {
            from: "not a user".into(),
            ..good
        },
    ];
    for s in bad {
        let e = send_from_pb(s.clone()).unwrap_err();
        assert!(matches!(e, RouterError::BadRequest(_)), "{s:?} gave {e:?}");
    }
}

#[test]
fn a_message_survives_the_wire_with_its_ext_and_count() {
    let m = Message {
        client_msg_id: Some("c-1".into()),
        ext: rich_ext(),
        count: 42,
        ..Message::text(r("general"), 7, 1_700_000_000_000, u("alice"), "hi")
    };
    assert_eq!(message_from_pb(message_to_pb(m.clone())).unwrap(), m);
    let plain = Message::text(r("general"), 1, 2, u("bob"), "yo");
    assert_eq!(
        message_from_pb(message_to_pb(plain.clone())).unwrap(),
        plain
    );
}

#[test]
fn a_broken_message_from_a_router_is_internal() {
    let good = message_to_pb(Message::text(r("general"), 1, 2, u("bob"), "yo"));
    for m in [
        pb::Message {
            ext_json: r#"{"kind":"nope"}"#.into(),
            ..good.clone()
        },
        pb::Message {
            from: "".into(),
            ..good
        },
    ] {
        let e = message_from_pb(m).unwrap_err();
        assert!(matches!(e, RouterError::Internal(_)), "{e:?}");
    }
}

#[test]
fn optional_users_travel_as_empty_strings() {
    assert_eq!(opt_user_to_pb(None), "");
    assert_eq!(opt_user(&opt_user_to_pb(None)).unwrap(), None);
    assert_eq!(
        opt_user(&opt_user_to_pb(Some(&u("bob")))).unwrap(),
        Some(u("bob"))
    );
    assert!(matches!(opt_user("b o b"), Err(RouterError::BadRequest(_))));
}

#[test]
fn a_join_reply_survives_the_wire() {
    for visibility in [
        None,
        Some(Visibility::Public),
        Some(Visibility::Private),
        Some(Visibility::Direct),
    ] {
        let reply = JoinReply {
            last_seq: 9,
            backlog: vec![Message::text(r("general"), 9, 10, u("bob"), "yo")],
            has_more: true,
            visibility,
            online: OnlinePage {
                count: 3,
                users: vec![u("alice"), u("bob")],
                has_more: true,
            },
        };
        assert_eq!(
            join_reply_from_pb(join_reply_to_pb(reply.clone())).unwrap(),
            reply
        );
    }
    let bare = pb::JoinReply {
        online: None,
        ..Default::default()
    };
    assert_eq!(
        join_reply_from_pb(bare).unwrap().online,
        OnlinePage::default()
    );
}

#[test]
fn members_and_room_lists_survive_the_wire() {
    let page = MembersPage {
        members: [Role::Owner, Role::Moderator, Role::Member]
            .into_iter()
            .enumerate()
            .map(|(i, role)| MemberInfo {
                user: u(&format!("u{i}")),
                role,
                muted_until: i as u64,
            })
            .collect(),
        has_more: true,
    };
    assert_eq!(members_from_pb(members_to_pb(page.clone())).unwrap(), page);
    let summary = RoomSummary {
        room: r("dm:alice:bob"),
        role: Role::Member,
        visibility: Some(Visibility::Direct),
        last_seq: 10,
        read_seq: 4,
        unread: 5,
    };
    assert_eq!(
        room_summary_from_pb(room_summary_to_pb(summary.clone())).unwrap(),
        summary
    );
}

#[test]
fn unknown_roles_and_visibilities_from_a_router_are_internal() {
    let summary = room_summary_to_pb(RoomSummary {
        room: r("general"),
        role: Role::Owner,
        visibility: None,
        last_seq: 0,
        read_seq: 0,
        unread: 0,
    });
    for s in [
        pb::RoomSummary {
            role: "king".into(),
            ..summary.clone()
        },
        pb::RoomSummary {
            role: "".into(),
            ..summary.clone()
        },
        pb::RoomSummary {
            visibility: "secret".into(),
            ..summary
        },
    ] {
        let e = room_summary_from_pb(s).unwrap_err();
        assert!(matches!(e, RouterError::Internal(_)), "{e:?}");
    }
    let e = members_from_pb(pb::MembersReply {
        members: vec![pb::Member {
            user: "alice".into(),
            role: "Owner".into(),
            muted_until: 0,
        }],
        has_more: false,
    })
    .unwrap_err();
    assert!(matches!(e, RouterError::Internal(_)), "{e:?}");
}

#[test]
fn presence_survives_the_wire_and_bad_users_are_refused() {
    let sync = PresenceSync {
        gateway: "gw-1/abc".into(),
        full: true,
        users: vec![(u("alice"), 2), (u("bob"), 0)],
    };
    let (room, back) = presence_from_pb(presence_to_pb(&r("general"), sync.clone())).unwrap();
    assert_eq!((room, back), (r("general"), sync));
    let mut bad = presence_to_pb(
        &r("general"),
        PresenceSync {
            gateway: "gw".into(),
            full: false,
            users: vec![],
        },
    );
    bad.users.push(pb::PresenceUser {
        user: "".into(),
        connections: 1,
    });
    assert!(matches!(
        presence_from_pb(bad),
        Err(RouterError::BadRequest(_))
    ));
}
