//! Domain types ⇄ protobuf messages. Inbound ids are validated here, so invalid input from the
//! network never reaches the router as a domain value.

use chorus_core::{Message, RoomId, UserId, router::RouterError};

use crate::pb;

pub fn room(s: &str) -> Result<RoomId, RouterError> {
    RoomId::new(s).map_err(|e| RouterError::BadRequest(e.to_string()))
}

pub fn user(s: &str) -> Result<UserId, RouterError> {
    UserId::new(s).map_err(|e| RouterError::BadRequest(e.to_string()))
}

pub fn message_to_pb(m: Message) -> pb::Message {
    pb::Message {
        room: m.room.to_string(),
        seq: m.seq,
        ts: m.ts,
        from: m.from.to_string(),
        client_msg_id: m.client_msg_id,
        body: m.body,
    }
}

/// A message coming back from a router: invalid ids mean a broken peer, not a bad request.
pub fn message_from_pb(m: pb::Message) -> Result<Message, RouterError> {
    let bad = |e: chorus_core::IdError| {
        RouterError::Internal(format!("router sent an invalid message: {e}"))
    };
    Ok(Message {
        room: RoomId::new(&m.room).map_err(bad)?,
        seq: m.seq,
        ts: m.ts,
        from: UserId::new(&m.from).map_err(bad)?,
        client_msg_id: m.client_msg_id,
        body: m.body,
    })
}
