//! A chat message as the router sequences it, the store keeps it and clients receive it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{RoomId, UserId};

/// One entry of a room's log. `seq` is the room's total order (gapless from 1); `ts` is the
/// sequencing time in milliseconds since the epoch, never lower than the previous message's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub room: RoomId,
    pub seq: u64,
    pub ts: u64,
    pub from: UserId,
    /// The sender's idempotency key, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub body: String,
}

#[derive(Serialize)]
struct MsgFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    room: &'a RoomId,
    seq: u64,
    from: &'a UserId,
    body: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
    ts: u64,
}

impl Message {
    /// The protocol v1 `msg` frame for this message. Serialized once per message and shared by
    /// every recipient.
    pub fn to_frame(&self) -> Bytes {
        let frame = MsgFrame {
            kind: "msg",
            room: &self.room,
            seq: self.seq,
            from: &self.from,
            body: &self.body,
            client_msg_id: self.client_msg_id.as_deref(),
            ts: self.ts,
        };
        Bytes::from(
            serde_json::to_vec(&frame).expect("a struct of strings and integers always serializes"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_frame_has_the_documented_fields() {
        let m = Message {
            room: RoomId::new("general").unwrap(),
            seq: 7,
            ts: 1_700_000_000_000,
            from: UserId::new("alice").unwrap(),
            client_msg_id: Some("c-1".into()),
            body: "hi \"there\"".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&m.to_frame()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"msg","room":"general","seq":7,"from":"alice",
                "body":"hi \"there\"","client_msg_id":"c-1","ts":1_700_000_000_000u64})
        );
    }
}
