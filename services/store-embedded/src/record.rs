//! The stored form of a message. Room and seq live in the key; the value is a small JSON
//! object with short field names, so new optional fields can be added without a migration.

use chorus_core::{Message, RoomId, UserId, store::StoreError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    t: u64,
    f: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<&'a str>,
    #[serde(borrow)]
    b: std::borrow::Cow<'a, str>,
}

pub fn encode(m: &Message) -> Vec<u8> {
    serde_json::to_vec(&Record {
        t: m.ts,
        f: m.from.as_str(),
        c: m.client_msg_id.as_deref(),
        b: std::borrow::Cow::Borrowed(&m.body),
    })
    .expect("a record of strings and integers always serializes")
}

pub fn decode(room: &RoomId, seq: u64, bytes: &[u8]) -> Result<Message, StoreError> {
    let r: Record<'_> = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("{room}/{seq}: {e}")))?;
    Ok(Message {
        room: room.clone(),
        seq,
        ts: r.t,
        from: UserId::new(r.f).map_err(|e| StoreError::Corrupt(format!("{room}/{seq}: {e}")))?,
        client_msg_id: r.c.map(str::to_owned),
        body: r.b.into_owned(),
    })
}
