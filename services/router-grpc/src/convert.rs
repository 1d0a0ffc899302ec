//! Domain types ⇄ protobuf messages.
//!
//! Two directions, two kinds of failure: what arrives at the server comes from the network,
//! so invalid input is refused with [`RouterError::BadRequest`] and never reaches the router
//! as a domain value; what arrives at the client comes from a router, so anything malformed
//! there is a broken peer ([`RouterError::Internal`]).
//!
//! Optional ids and enums travel as strings, `""` for none; [`Ext`] travels as its JSON text,
//! `""` for a plain text message.

use chorus_core::{
    Ext, Message, Role, RoomId, UserId, Visibility,
    router::{
        JoinReply, MemberInfo, MembersPage, OnlinePage, PresenceSync, RoomSummary, RouterError,
        SendRequest,
    },
    trace::TraceParent,
};

use crate::pb;

// ---- Requests, as the server receives them: bad input is a bad request. ----

pub fn room(s: &str) -> Result<RoomId, RouterError> {
    RoomId::new(s).map_err(|e| RouterError::BadRequest(e.to_string()))
}

pub fn user(s: &str) -> Result<UserId, RouterError> {
    UserId::new(s).map_err(|e| RouterError::BadRequest(e.to_string()))
}

/// `""` is none.
pub fn opt_user(s: &str) -> Result<Option<UserId>, RouterError> {
    if s.is_empty() {
        Ok(None)
    } else {
        user(s).map(Some)
    }
}

pub fn send_from_pb(s: pb::SendRequest) -> Result<SendRequest, RouterError> {
    Ok(SendRequest {
        // A malformed context only loses the trace, never the send.
        trace: TraceParent::parse(&s.traceparent),
        room: room(&s.room)?,
        from: user(&s.from)?,
        client_msg_id: s.client_msg_id,
        body: s.body,
        ext: ext_from_json(&s.ext_json)
            .map_err(|e| RouterError::BadRequest(format!("invalid ext: {e}")))?,
    })
}

pub fn presence_from_pb(p: pb::PresenceRequest) -> Result<(RoomId, PresenceSync), RouterError> {
    let users = p
        .users
        .into_iter()
        .map(|u| Ok((user(&u.user)?, u.connections)))
        .collect::<Result<_, RouterError>>()?;
    Ok((
        room(&p.room)?,
        PresenceSync {
            gateway: p.gateway,
            full: p.full,
            users,
        },
    ))
}

// ---- Requests, as the client sends them. ----

pub fn opt_user_to_pb(u: Option<&UserId>) -> String {
    u.map(UserId::to_string).unwrap_or_default()
}

pub fn send_to_pb(r: SendRequest) -> pb::SendRequest {
    pb::SendRequest {
        room: r.room.to_string(),
        from: r.from.to_string(),
        client_msg_id: r.client_msg_id,
        body: r.body,
        ext_json: ext_to_json(&r.ext),
        traceparent: r.trace.map(|t| t.to_string()).unwrap_or_default(),
    }
}

pub fn presence_to_pb(room: &RoomId, sync: PresenceSync) -> pb::PresenceRequest {
    pb::PresenceRequest {
        room: room.to_string(),
        gateway: sync.gateway,
        full: sync.full,
        users: sync
            .users
            .into_iter()
            .map(|(user, connections)| pb::PresenceUser {
                user: user.to_string(),
                connections,
            })
            .collect(),
    }
}

// ---- Replies, as the server sends them. ----

pub fn message_to_pb(m: Message) -> pb::Message {
    pb::Message {
        room: m.room.to_string(),
        seq: m.seq,
        ts: m.ts,
        from: m.from.to_string(),
        client_msg_id: m.client_msg_id,
        body: m.body,
        ext_json: ext_to_json(&m.ext),
        count: m.count,
    }
}

pub fn visibility_to_pb(v: Option<Visibility>) -> String {
    v.map(|v| v.as_str().to_owned()).unwrap_or_default()
}

pub fn online_to_pb(o: OnlinePage) -> pb::OnlinePage {
    pb::OnlinePage {
        count: o.count,
        users: o.users.iter().map(UserId::to_string).collect(),
        has_more: o.has_more,
    }
}

pub fn join_reply_to_pb(r: JoinReply) -> pb::JoinReply {
    pb::JoinReply {
        last_seq: r.last_seq,
        backlog: r.backlog.into_iter().map(message_to_pb).collect(),
        has_more: r.has_more,
        visibility: visibility_to_pb(r.visibility),
        online: Some(online_to_pb(r.online)),
    }
}

pub fn members_to_pb(p: MembersPage) -> pb::MembersReply {
    pb::MembersReply {
        members: p
            .members
            .into_iter()
            .map(|m| pb::Member {
                user: m.user.to_string(),
                role: m.role.as_str().to_owned(),
                muted_until: m.muted_until,
            })
            .collect(),
        has_more: p.has_more,
    }
}

pub fn room_summary_to_pb(s: RoomSummary) -> pb::RoomSummary {
    pb::RoomSummary {
        room: s.room.to_string(),
        role: s.role.as_str().to_owned(),
        visibility: visibility_to_pb(s.visibility),
        last_seq: s.last_seq,
        read_seq: s.read_seq,
        unread: s.unread,
    }
}

// ---- Replies, as the client receives them: bad input is a broken router. ----

fn broken(what: &str, e: impl std::fmt::Display) -> RouterError {
    RouterError::Internal(format!("router sent an invalid {what}: {e}"))
}

fn reply_room(s: &str) -> Result<RoomId, RouterError> {
    RoomId::new(s).map_err(|e| broken("room", e))
}

fn reply_user(s: &str) -> Result<UserId, RouterError> {
    UserId::new(s).map_err(|e| broken("user", e))
}

pub fn message_from_pb(m: pb::Message) -> Result<Message, RouterError> {
    Ok(Message {
        room: reply_room(&m.room)?,
        seq: m.seq,
        ts: m.ts,
        from: reply_user(&m.from)?,
        client_msg_id: m.client_msg_id,
        body: m.body,
        ext: ext_from_json(&m.ext_json).map_err(|e| broken("ext", e))?,
        count: m.count,
    })
}

pub fn visibility_from_pb(s: &str) -> Result<Option<Visibility>, RouterError> {
    if s.is_empty() {
        return Ok(None);
    }
    Visibility::parse(s)
        .map(Some)
        .ok_or_else(|| broken("visibility", format_args!("{s:?}")))
}

pub fn role_from_pb(s: &str) -> Result<Role, RouterError> {
    Role::parse(s).ok_or_else(|| broken("role", format_args!("{s:?}")))
}

pub fn online_from_pb(o: pb::OnlinePage) -> Result<OnlinePage, RouterError> {
    Ok(OnlinePage {
        count: o.count,
        users: o
            .users
            .iter()
            .map(|u| reply_user(u))
            .collect::<Result<_, _>>()?,
        has_more: o.has_more,
    })
}

pub fn join_reply_from_pb(r: pb::JoinReply) -> Result<JoinReply, RouterError> {
    Ok(JoinReply {
        last_seq: r.last_seq,
        backlog: r
            .backlog
            .into_iter()
            .map(message_from_pb)
            .collect::<Result<_, _>>()?,
        has_more: r.has_more,
        visibility: visibility_from_pb(&r.visibility)?,
        online: online_from_pb(r.online.unwrap_or_default())?,
    })
}

pub fn members_from_pb(r: pb::MembersReply) -> Result<MembersPage, RouterError> {
    Ok(MembersPage {
        members: r
            .members
            .into_iter()
            .map(|m| {
                Ok(MemberInfo {
                    user: reply_user(&m.user)?,
                    role: role_from_pb(&m.role)?,
                    muted_until: m.muted_until,
                })
            })
            .collect::<Result<_, RouterError>>()?,
        has_more: r.has_more,
    })
}

pub fn room_summary_from_pb(s: pb::RoomSummary) -> Result<RoomSummary, RouterError> {
    Ok(RoomSummary {
        room: reply_room(&s.room)?,
        role: role_from_pb(&s.role)?,
        visibility: visibility_from_pb(&s.visibility)?,
        last_seq: s.last_seq,
        read_seq: s.read_seq,
        unread: s.unread,
    })
}

// ---- Ext as JSON text. ----

fn ext_to_json(ext: &Ext) -> String {
    if ext.is_empty() {
        return String::new();
    }
    serde_json::to_string(ext)
        .expect("an Ext always serializes: its only free-form value, Json, is checked when built")
}

fn ext_from_json(s: &str) -> Result<Ext, serde_json::Error> {
    if s.is_empty() {
        Ok(Ext::default())
    } else {
        serde_json::from_str(s)
    }
}

#[cfg(test)]
mod tests;
