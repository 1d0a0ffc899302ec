//! The stored form of a message. Room and seq live in the key; the value is a small JSON
//! object with short field names, so new optional fields can be added without a migration.
//!
//! A plain text message is `{t, f, c?, b, n?}`: its [`Ext`] is left out while empty, so the
//! common case encodes no more than it did before entries had kinds. Records written before
//! `x` and `n` existed read back with an empty `Ext` and a count of 0.

use std::borrow::Cow;

use chorus_core::{Ext, Message, RoomId, UserId, store::StoreError};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    t: u64,
    f: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<&'a str>,
    #[serde(borrow)]
    b: Cow<'a, str>,
    /// [`Message::count`].
    #[serde(default, skip_serializing_if = "is_zero")]
    n: u64,
    /// [`Message::ext`], only when not empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<Cow<'a, Ext>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub fn encode(m: &Message) -> Vec<u8> {
    serde_json::to_vec(&Record {
        t: m.ts,
        f: m.from.as_str(),
        c: m.client_msg_id.as_deref(),
        b: Cow::Borrowed(&m.body),
        n: m.count,
        x: (!m.ext.is_empty()).then_some(Cow::Borrowed(&m.ext)),
    })
    .expect("a record of strings, integers and already validated JSON always serializes")
}

pub fn decode(room: &RoomId, seq: u64, bytes: &[u8]) -> Result<Message, StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{room}/{seq}: {e}"));
    let r: Record<'_> = serde_json::from_slice(bytes).map_err(|e| corrupt(&e))?;
    Ok(Message {
        room: room.clone(),
        seq,
        ts: r.t,
        from: UserId::new(r.f).map_err(|e| corrupt(&e))?,
        client_msg_id: r.c.map(str::to_owned),
        body: r.b.into_owned(),
        ext: r.x.map(Cow::into_owned).unwrap_or_default(),
        count: r.n,
    })
}

#[cfg(test)]
mod tests {
    use chorus_core::{Json, Kind};

    use super::*;

    fn text(body: &str) -> Message {
        Message {
            count: 7,
            ..Message::text(
                RoomId::new("r").unwrap(),
                3,
                1_700_000_000_000,
                UserId::new("alice").unwrap(),
                body,
            )
        }
    }

    #[test]
    fn plain_text_records_carry_no_ext() {
        let bytes = encode(&text("hi"));
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"t":1700000000000,"f":"alice","b":"hi","n":7}"#
        );
    }

    #[test]
    fn records_from_before_ext_and_count_still_read() {
        let room = RoomId::new("r").unwrap();
        let old = br#"{"t":1700000000000,"f":"alice","c":"c-1","b":"old"}"#;
        let m = decode(&room, 3, old).unwrap();
        assert_eq!(m.body, "old");
        assert_eq!(m.client_msg_id.as_deref(), Some("c-1"));
        assert!(m.ext.is_empty());
        assert_eq!(m.count, 0);
    }

    #[test]
    fn ext_round_trips() {
        let mut m = text("");
        m.ext.kind = Kind::Event;
        m.ext.event = Some("game.move".into());
        m.ext.data = Some(Json::parse(r#"{"x": [1, "two"]}"#).unwrap());
        m.ext.edits = vec![4, 9];
        assert_eq!(decode(&m.room, m.seq, &encode(&m)).unwrap(), m);
    }
}
