//! The stored form of a log entry: a `messages` row. Shared by appends, amends and reads.
//!
//! Every column is written on every insert, never null: a missing `client_msg_id` is `''`, an
//! empty [`Ext`] is `''` (else its JSON), and `ordinal` is [`Message::count`]. Rows written
//! before migration 0003 have null `ext` and `ordinal`, read as an empty [`Ext`] and 0.

use chorus_core::{Ext, Message, RoomId, UserId, store::StoreError};

use crate::error::corrupt;

/// A message's row values that need converting, converted once before anything is written:
/// an entry that cannot be stored fails its whole append or amend up front.
pub(crate) struct Row<'a> {
    pub(crate) message: &'a Message,
    seq: i64,
    ts: i64,
    ext: Option<String>,
    ordinal: i64,
}

/// The bound values of `insert_message`: `(room, bucket, seq, ts, sender, client_msg_id,
/// body, ext, ordinal, timestamp)`.
pub(crate) type RowValues<'a> = (
    &'a str,
    i64,
    i64,
    i64,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    i64,
    i64,
);

/// A read row: `seq, ts, sender, client_msg_id, body, ext, ordinal`
/// (`statements::MESSAGE_COLUMNS`).
pub(crate) type StoredRow<'a> = (
    i64,
    i64,
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<i64>,
);

impl<'a> Row<'a> {
    pub(crate) fn encode(message: &'a Message) -> Result<Row<'a>, StoreError> {
        let ext = if message.ext.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&message.ext).map_err(|e| {
                corrupt(format!(
                    "{}/{}: ext does not serialize: {e}",
                    message.room, message.seq
                ))
            })?)
        };
        Ok(Row {
            message,
            seq: to_i64(message.seq, "seq")?,
            ts: to_i64(message.ts, "ts")?,
            ext,
            ordinal: to_i64(message.count, "count")?,
        })
    }

    pub(crate) fn encode_all(messages: &'a [Message]) -> Result<Vec<Row<'a>>, StoreError> {
        messages.iter().map(Row::encode).collect()
    }

    /// Bytes this row adds to a batch, roughly: its text columns plus a per-row allowance.
    pub(crate) fn weight(&self) -> usize {
        let m = self.message;
        m.body.len()
            + m.from.as_str().len()
            + m.client_msg_id.as_ref().map_or(0, String::len)
            + self.ext.as_ref().map_or(0, String::len)
            + 64
    }

    pub(crate) fn values(&'a self, room: &'a str, bucket: i64, timestamp: i64) -> RowValues<'a> {
        let m = self.message;
        (
            room,
            bucket,
            self.seq,
            self.ts,
            m.from.as_str(),
            m.client_msg_id.as_deref().unwrap_or(""),
            m.body.as_str(),
            self.ext.as_deref().unwrap_or(""),
            self.ordinal,
            timestamp,
        )
    }
}

/// Decodes one row of `room`.
pub(crate) fn decode(room: &RoomId, row: StoredRow<'_>) -> Result<Message, StoreError> {
    let (seq, ts, sender, cmid, body, ext, ordinal) = row;
    let ext = match ext {
        None | Some("") => Ext::default(),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| corrupt(format!("{room}/{seq}: ext {json:?}: {e}")))?,
    };
    Ok(Message {
        room: room.clone(),
        seq: to_u64(seq, "seq")?,
        ts: to_u64(ts, "ts")?,
        from: UserId::new(sender).map_err(|e| corrupt(format!("{room}/{seq}: {e}")))?,
        client_msg_id: (!cmid.is_empty()).then(|| cmid.to_owned()),
        body: body.to_owned(),
        ext,
        count: ordinal.map_or(Ok(0), |n| to_u64(n, "ordinal"))?,
    })
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt(format!("{what} {v} does not fit a CQL bigint")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(format!("negative {what} {v}")))
}

#[cfg(test)]
mod tests {
    use chorus_core::{Json, Kind};

    use super::*;

    fn message() -> Message {
        Message::text(
            RoomId::new("r").unwrap(),
            7,
            1_700_000_000_000,
            UserId::new("alice").unwrap(),
            "hi",
        )
    }

    #[test]
    fn an_empty_ext_is_stored_as_an_empty_string_and_others_as_json() {
        let plain = message();
        let row = Row::encode(&plain).unwrap();
        assert_eq!(row.values("r", 0, 1).7, "");
        let mut event = message();
        event.ext.kind = Kind::Event;
        event.ext.event = Some("e".into());
        event.ext.data = Some(Json::parse(r#"{"a": [1, 2]}"#).unwrap());
        event.count = 3;
        let row = Row::encode(&event).unwrap();
        let (ext, ordinal) = (row.values("r", 0, 1).7, row.values("r", 0, 1).8);
        assert_eq!(ordinal, 3);
        let back = decode(
            &event.room,
            (7, 1_700_000_000_000, "alice", "", "hi", Some(ext), Some(3)),
        )
        .unwrap();
        assert_eq!(back, event, "the event payload keeps its exact text");
    }

    #[test]
    fn rows_from_before_migration_0003_read_as_plain_text() {
        let m = message();
        let back = decode(
            &m.room,
            (7, 1_700_000_000_000, "alice", "", "hi", None, None),
        )
        .unwrap();
        assert_eq!(back, m);
        let bad = decode(&m.room, (7, 1, "alice", "", "hi", Some("{"), Some(0)));
        assert!(matches!(bad, Err(StoreError::Corrupt(_))), "{bad:?}");
    }
}
