//! A room log entry as the router sequences it, the store keeps it and clients receive it:
//! a chat message, or an edit, delete, application event or membership change (its [`Kind`]).

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
    /// Kind, reply, attachments, event payload, membership change and current state.
    #[serde(flatten)]
    pub ext: Ext,
    /// Entries counting as unread ([`Kind::counts_as_unread`]) up to and including this one.
    /// Kept by the store, used by the router for unread counts; never on the wire.
    #[serde(skip)]
    pub count: u64,
}

impl Message {
    /// A plain text message.
    pub fn text(room: RoomId, seq: u64, ts: u64, from: UserId, body: impl Into<String>) -> Self {
        Message {
            room,
            seq,
            ts,
            from,
            client_msg_id: None,
            body: body.into(),
            ext: Ext::default(),
            count: 0,
        }
    }
}

/// What a log entry is. Every entry takes a seq in the room's one order; only `text` and
/// `event` entries count as unread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A chat message (the default, left out of frames).
    #[default]
    Text,
    /// A new body for the sender's own message `target`.
    Edit,
    /// Removes message `target` (its sender, or a moderator): it becomes a tombstone.
    Delete,
    /// A persisted application event: `event` names it, `data` carries it.
    Event,
    /// A membership or moderation change, described by `member`.
    Member,
}

impl Kind {
    pub fn is_text(&self) -> bool {
        *self == Kind::Text
    }

    /// Entries a reader has to look at: they count towards unread.
    pub fn counts_as_unread(self) -> bool {
        matches!(self, Kind::Text | Kind::Event)
    }

    /// The name frames and metrics use (`text`, `edit`, `delete`, `event`, `member`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Edit => "edit",
            Kind::Delete => "delete",
            Kind::Event => "event",
            Kind::Member => "member",
        }
    }
}

/// A JSON value kept as its compact text (object keys sorted), relayed and stored without
/// being parsed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json(String);

impl Json {
    /// Parses `text` as one JSON value and keeps its canonical form.
    pub fn parse(text: &str) -> Result<Json, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        Ok(Json(v.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Json {
    // Through a Value, not a RawValue: a RawValue cannot come out of the buffered content of
    // an internally tagged enum (the client frames).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Json(v.to_string()))
    }
}

/// A small file sent with a message. `data` is its content in standard base64 (with padding),
/// kept encoded from the client to the store and back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: String,
}

impl Attachment {
    /// Decoded size in bytes of `data` (which must already be valid base64).
    pub fn size(&self) -> usize {
        let pad = self.data.bytes().rev().take_while(|b| *b == b'=').count();
        self.data.len() / 4 * 3 - pad.min(2)
    }

    /// Checks the name (1 to 255 bytes, no control characters or path separators), the
    /// content type (`type/subtype` of token characters, at most 127 bytes) and that `data`
    /// is standard padded base64.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 255
            && !self
                .name
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\');
        if !name_ok {
            return Err(
                "attachment name must be 1 to 255 bytes without control characters or slashes"
                    .into(),
            );
        }
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        let type_ok = self.content_type.len() <= 127
            && self
                .content_type
                .split_once('/')
                .is_some_and(|(t, sub)| token(t) && token(sub));
        if !type_ok {
            return Err("attachment content_type must look like type/subtype".into());
        }
        let d = self.data.as_bytes();
        let body = d
            .strip_suffix(b"==")
            .or_else(|| d.strip_suffix(b"="))
            .unwrap_or(d);
        let base64_ok = d.len().is_multiple_of(4)
            && body
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
        if !base64_ok {
            return Err("attachment data must be standard base64 with padding".into());
        }
        Ok(())
    }
}

/// A role in a created room, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Moderator,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "moderator" => Some(Role::Moderator),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Owners and moderators moderate.
    pub fn moderates(self) -> bool {
        self <= Role::Moderator
    }
}

/// Who may use a created room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Any authenticated user may join (and becomes a member by joining), unless banned.
    Public,
    /// Members only; owners and moderators invite.
    Private,
    /// A direct-message room of exactly two users; nobody else, ever.
    Direct,
    /// Never created: anyone may read and send, nobody moderates. Rooms without state are
    /// open; the state store keeps a record of one only for bookkeeping (pending effects).
    Open,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
            Visibility::Open => "open",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            "direct" => Some(Visibility::Direct),
            "open" => Some(Visibility::Open),
            _ => None,
        }
    }
}

/// A membership or moderation action, as recorded in a `member` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberAction {
    /// The room was created (`user` is its owner).
    Create,
    /// `user` joined a public room.
    Join,
    /// `user` was added by `from`.
    Invite,
    /// `user` left.
    Leave,
    /// `user` was removed by `from`.
    Remove,
    /// `user`'s role became `role`.
    SetRole,
    /// `user` may not send until `until` (ms since the epoch).
    Mute,
    Unmute,
    /// `user` was removed and may not come back.
    Ban,
    Unban,
    /// `user`'s subscriptions to the room were ended by `from` (membership unchanged).
    Disconnect,
}

impl MemberAction {
    /// Actions after which the gateways must stop delivering this room to `user`.
    pub fn revokes_delivery(self, visibility: Option<Visibility>) -> bool {
        match self {
            MemberAction::Ban | MemberAction::Disconnect => true,
            MemberAction::Remove | MemberAction::Leave => {
                matches!(visibility, Some(Visibility::Private | Visibility::Direct))
            }
            _ => false,
        }
    }
}

/// The body of a `member` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberChange {
    pub action: MemberAction,
    pub user: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Mute end, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// Set on `create`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// Other users added on `create` (the DM partner, initial members).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<UserId>,
    /// Set by the router when gateways must stop delivering the room to `user` from here on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoke: bool,
}

/// Everything a log entry carries beyond a plain text message, and its current state. Empty
/// (all defaults) for a plain text message, and then absent from frames and records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ext {
    #[serde(default, skip_serializing_if = "Kind::is_text")]
    pub kind: Kind,
    /// The seq this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// The message an `edit` or `delete` acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The application's event name (`event` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The application's event payload (`event` entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberChange>,
    /// Current state: when the body was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<u64>,
    /// Current state: the message was deleted (body and attachments are gone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Current state: the seqs of the edits applied to this message, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<u64>,
}

impl Ext {
    pub fn is_empty(&self) -> bool {
        *self == Ext::default()
    }
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
    #[serde(flatten)]
    ext: &'a Ext,
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
            ext: &self.ext,
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
            ext: Ext::default(),
            count: 3,
        };
        let v: serde_json::Value = serde_json::from_slice(&m.to_frame()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"msg","room":"general","seq":7,"from":"alice",
                "body":"hi \"there\"","client_msg_id":"c-1","ts":1_700_000_000_000u64})
        );
    }
}
