//! Client protocol v1: JSON text frames over a WebSocket at `GET /v1/ws`.
//!
//! Parsing is strict (unknown frame types, missing fields and wrong types are refused with
//! `bad_request`) but a refusal never ends the connection. The frame names here are fixed:
//! SDKs and load tests depend on them. The full specification with examples is
//! docs/protocol.md.

mod error;

pub use error::{ErrorCode, WireError, close};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    Attachment, Json, Message, Role, RoomId, UserId, Visibility,
    router::{MemberInfo, OnlinePage, RoomSummary},
};

/// The id a client may put on a request; echoed verbatim on the reply. A number or a string of
/// at most [`MAX_REQUEST_ID_LEN`] bytes.
pub type RequestId = Value;

/// Longest string request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 64;
/// Longest `client_msg_id` accepted, in bytes.
pub const MAX_CLIENT_MSG_ID_LEN: usize = 64;
/// Largest page a `history` request may ask for.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// Page size used when a `history` request gives no `limit`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 50;

/// A frame a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Auth {
        #[serde(default)]
        id: Option<RequestId>,
        token: String,
    },
    Join {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        since: Option<u64>,
    },
    Leave {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
    },
    Send {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        client_msg_id: Option<String>,
        body: String,
        #[serde(default)]
        reply_to: Option<u64>,
        #[serde(default)]
        attachments: Vec<Attachment>,
        /// The sending app's trace context (W3C `traceparent`); malformed values are ignored.
        #[serde(default)]
        traceparent: Option<String>,
    },
    Edit {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        client_msg_id: Option<String>,
        target: u64,
        body: String,
        /// The sending app's trace context (W3C `traceparent`); malformed values are ignored.
        #[serde(default)]
        traceparent: Option<String>,
    },
    Delete {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        client_msg_id: Option<String>,
        target: u64,
        /// The sending app's trace context (W3C `traceparent`); malformed values are ignored.
        #[serde(default)]
        traceparent: Option<String>,
    },
    /// An application event: relayed only (`persist: false`, the default) or stored in the
    /// room's order (`persist: true`).
    Event {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        event: String,
        data: Json,
        #[serde(default)]
        persist: bool,
        #[serde(default)]
        client_msg_id: Option<String>,
        /// The sending app's trace context (W3C `traceparent`); malformed values are ignored.
        #[serde(default)]
        traceparent: Option<String>,
    },
    CreateRoom {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        visibility: Option<Visibility>,
        #[serde(default)]
        members: Vec<UserId>,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    OpenDm {
        #[serde(default)]
        id: Option<RequestId>,
        user: UserId,
    },
    /// Membership and moderation of one user (`invite`, `remove`, `set_role`, `mute`,
    /// `unmute`, `ban`, `unban`, `disconnect`; see [`ClientFrame::member_action`]).
    Invite {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        #[serde(default)]
        role: Option<Role>,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Remove {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    SetRole {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        role: Role,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Mute {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        /// How long; absent: until unmuted.
        #[serde(default)]
        duration_ms: Option<u64>,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Unmute {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Ban {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Unban {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Disconnect {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        user: UserId,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    /// Leave a created room's membership (`leave` only unsubscribes).
    LeaveRoom {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    Typing {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        typing: bool,
    },
    Read {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        seq: u64,
    },
    Rooms {
        #[serde(default)]
        id: Option<RequestId>,
    },
    Members {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        after: Option<UserId>,
        #[serde(default)]
        limit: Option<u32>,
    },
    Who {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        after: Option<UserId>,
        #[serde(default)]
        limit: Option<u32>,
    },
    History {
        #[serde(default)]
        id: Option<RequestId>,
        room: RoomId,
        #[serde(default)]
        before: Option<u64>,
        #[serde(default)]
        after: Option<u64>,
        #[serde(default)]
        limit: Option<u32>,
    },
    Ping {
        #[serde(default)]
        id: Option<RequestId>,
    },
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<RequestId>,
}

/// Why a frame could not be accepted, with the request id when one could be recovered so the
/// error reply can carry it.
#[derive(Debug)]
pub struct FrameError {
    pub id: Option<RequestId>,
    pub error: WireError,
}

impl ClientFrame {
    /// Parses one text frame. On failure the request id is still recovered when the frame is
    /// at least a JSON object with an `id`.
    pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => {
                if let Some(id) = frame.id() {
                    check_request_id(id).map_err(|error| FrameError { id: None, error })?;
                }
                Ok(frame)
            }
            Err(e) => {
                let id = serde_json::from_str::<IdOnly>(text)
                    .ok()
                    .and_then(|x| x.id)
                    .filter(|id| check_request_id(id).is_ok());
                let message = if e.is_syntax() || e.is_eof() {
                    format!("malformed JSON: {e}")
                } else {
                    format!("invalid frame: {e}")
                };
                Err(FrameError {
                    id,
                    error: WireError::new(ErrorCode::BadRequest, message),
                })
            }
        }
    }

    /// The trace context a sending frame carries (`send`, `edit`, `delete`, `event`).
    pub fn traceparent(&self) -> Option<&str> {
        match self {
            ClientFrame::Send { traceparent, .. }
            | ClientFrame::Edit { traceparent, .. }
            | ClientFrame::Delete { traceparent, .. }
            | ClientFrame::Event { traceparent, .. } => traceparent.as_deref(),
            _ => None,
        }
    }

    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientFrame::Auth { id, .. }
            | ClientFrame::Join { id, .. }
            | ClientFrame::Leave { id, .. }
            | ClientFrame::Send { id, .. }
            | ClientFrame::Edit { id, .. }
            | ClientFrame::Delete { id, .. }
            | ClientFrame::Event { id, .. }
            | ClientFrame::CreateRoom { id, .. }
            | ClientFrame::OpenDm { id, .. }
            | ClientFrame::Invite { id, .. }
            | ClientFrame::Remove { id, .. }
            | ClientFrame::SetRole { id, .. }
            | ClientFrame::Mute { id, .. }
            | ClientFrame::Unmute { id, .. }
            | ClientFrame::Ban { id, .. }
            | ClientFrame::Unban { id, .. }
            | ClientFrame::Disconnect { id, .. }
            | ClientFrame::LeaveRoom { id, .. }
            | ClientFrame::Typing { id, .. }
            | ClientFrame::Read { id, .. }
            | ClientFrame::Rooms { id }
            | ClientFrame::Members { id, .. }
            | ClientFrame::Who { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::Ping { id } => id.as_ref(),
        }
    }

    /// The frame's `type`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Auth { .. } => "auth",
            ClientFrame::Join { .. } => "join",
            ClientFrame::Leave { .. } => "leave",
            ClientFrame::Send { .. } => "send",
            ClientFrame::Edit { .. } => "edit",
            ClientFrame::Delete { .. } => "delete",
            ClientFrame::Event { .. } => "event",
            ClientFrame::CreateRoom { .. } => "create_room",
            ClientFrame::OpenDm { .. } => "open_dm",
            ClientFrame::Invite { .. } => "invite",
            ClientFrame::Remove { .. } => "remove",
            ClientFrame::SetRole { .. } => "set_role",
            ClientFrame::Mute { .. } => "mute",
            ClientFrame::Unmute { .. } => "unmute",
            ClientFrame::Ban { .. } => "ban",
            ClientFrame::Unban { .. } => "unban",
            ClientFrame::Disconnect { .. } => "disconnect",
            ClientFrame::LeaveRoom { .. } => "leave_room",
            ClientFrame::Typing { .. } => "typing",
            ClientFrame::Read { .. } => "read",
            ClientFrame::Rooms { .. } => "rooms",
            ClientFrame::Members { .. } => "members",
            ClientFrame::Who { .. } => "who",
            ClientFrame::History { .. } => "history",
            ClientFrame::Ping { .. } => "ping",
        }
    }
}

fn check_request_id(id: &RequestId) -> Result<(), WireError> {
    match id {
        Value::Number(_) => Ok(()),
        Value::String(s) if s.len() <= MAX_REQUEST_ID_LEN => Ok(()),
        Value::String(_) => Err(WireError::new(
            ErrorCode::BadRequest,
            format!("id is longer than {MAX_REQUEST_ID_LEN} bytes"),
        )),
        _ => Err(WireError::new(
            ErrorCode::BadRequest,
            "id must be a number or a string",
        )),
    }
}

/// Limits announced to the client in `ready`, so SDKs can check before sending.
#[derive(Debug, Clone, Serialize)]
pub struct AnnouncedLimits {
    pub max_body_bytes: usize,
    pub max_frame_bytes: usize,
    pub max_rooms: usize,
    pub send_rate_per_sec: f64,
    pub send_burst: u32,
    pub max_history_limit: u32,
    pub max_attachment_bytes: usize,
}

/// Who is online, as `joined` and `online` frames carry it.
#[derive(Debug, Serialize)]
pub struct OnlineWire<'a> {
    pub count: u64,
    pub users: &'a [UserId],
    pub has_more: bool,
}

impl<'a> From<&'a OnlinePage> for OnlineWire<'a> {
    fn from(p: &'a OnlinePage) -> Self {
        OnlineWire {
            count: p.count,
            users: &p.users,
            has_more: p.has_more,
        }
    }
}

/// One room of a `rooms` reply.
#[derive(Debug, Serialize)]
pub struct RoomWire<'a> {
    pub room: &'a RoomId,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    pub last_seq: u64,
    pub read_seq: u64,
    pub unread: u64,
}

impl<'a> From<&'a RoomSummary> for RoomWire<'a> {
    fn from(r: &'a RoomSummary) -> Self {
        RoomWire {
            room: &r.room,
            role: r.role,
            visibility: r.visibility,
            last_seq: r.last_seq,
            read_seq: r.read_seq,
            unread: r.unread,
        }
    }
}

/// One member of a `members` reply.
#[derive(Debug, Serialize)]
pub struct MemberWire<'a> {
    pub user: &'a UserId,
    pub role: Role,
    #[serde(skip_serializing_if = "is_zero")]
    pub muted_until: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl<'a> From<&'a MemberInfo> for MemberWire<'a> {
    fn from(m: &'a MemberInfo) -> Self {
        MemberWire {
            user: &m.user,
            role: m.role,
            muted_until: m.muted_until,
        }
    }
}

/// A frame the server sends (every reply and event except `msg`, which is pre-serialized by
/// [`Message::to_frame`]).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Ready {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        user: &'a UserId,
        conn_id: u64,
        /// The session of an SSE stream, for its `POST /v1/sse/<session>` requests.
        #[serde(skip_serializing_if = "Option::is_none")]
        session: Option<&'a str>,
        protocol: u32,
        limits: &'a AnnouncedLimits,
    },
    Joined {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        room: &'a RoomId,
        last_seq: u64,
        /// Absent for an open room.
        #[serde(skip_serializing_if = "Option::is_none")]
        visibility: Option<Visibility>,
        online: OnlineWire<'a>,
    },
    Left {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        room: &'a RoomId,
        /// Set when the server ended the subscription (`ban`, `remove`, `leave`,
        /// `disconnect`): the member action that did.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'a str>,
    },
    /// The reply to a request that has no other result (typing, read, a relayed event).
    Ok {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
    },
    Rooms {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        rooms: Vec<RoomWire<'a>>,
    },
    Members {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        room: &'a RoomId,
        members: Vec<MemberWire<'a>>,
        has_more: bool,
    },
    Online {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        room: &'a RoomId,
        #[serde(flatten)]
        online: OnlineWire<'a>,
    },
    Ack {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        room: &'a RoomId,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
        seq: u64,
        ts: u64,
        /// True when this send repeated an earlier `client_msg_id`: nothing new was stored.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    History {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        room: &'a RoomId,
        messages: &'a [Message],
        has_more: bool,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
    },
    /// Sent before a draining server closes the connection (close code 1001): reconnect now,
    /// to the same address (another server answers it), and resume.
    Reconnect { reason: &'a str },
    /// The end of an SSE stream, where a WebSocket would get a close frame: the same codes.
    Close { code: u16, reason: &'a str },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a RequestId>,
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room: Option<&'a RoomId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames hold only serializable data")
    }

    /// The `error` frame for `error`, replying to request `id`.
    pub fn error<'a>(id: Option<&'a RequestId>, error: &'a WireError) -> ServerFrame<'a> {
        ServerFrame::Error {
            id,
            code: error.code,
            message: &error.message,
            room: error.room.as_ref(),
            retry_after_ms: error.retry_after_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sending_frames_carry_a_trace_context_and_others_refuse_one() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for frame in [
            format!(r#"{{"type":"send","room":"r","body":"hi","traceparent":"{tp}"}}"#),
            format!(r#"{{"type":"edit","room":"r","target":1,"body":"hi","traceparent":"{tp}"}}"#),
            format!(r#"{{"type":"delete","room":"r","target":1,"traceparent":"{tp}"}}"#),
            format!(
                r#"{{"type":"event","room":"r","event":"e","data":{{}},"traceparent":"{tp}"}}"#
            ),
        ] {
            let parsed = ClientFrame::parse(&frame).unwrap();
            assert_eq!(parsed.traceparent(), Some(tp), "{frame}");
        }
        let join = format!(r#"{{"type":"join","room":"r","traceparent":"{tp}"}}"#);
        assert!(ClientFrame::parse(&join).is_err());
    }

    fn bad(text: &str) -> FrameError {
        ClientFrame::parse(text).unwrap_err()
    }

    #[test]
    fn parses_the_documented_frames() {
        let f = ClientFrame::parse(r#"{"type":"join","id":1,"room":"general","since":0}"#).unwrap();
        assert!(matches!(f, ClientFrame::Join { since: Some(0), .. }));
        let f = ClientFrame::parse(
            r#"{"type":"send","id":"a","room":"general","client_msg_id":"c-1","body":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(f, ClientFrame::Send { .. }));
        assert_eq!(f.id(), Some(&Value::from("a")));
    }

    #[test]
    fn errors_keep_the_request_id_and_name_the_problem() {
        let e = bad(r#"{"type":"send","id":9,"room":"general"}"#);
        assert_eq!(e.id, Some(Value::from(9)));
        assert_eq!(e.error.code, ErrorCode::BadRequest);
        assert!(e.error.message.contains("body"), "{}", e.error.message);

        let e = bad(r#"{"type":"teleport","id":3}"#);
        assert_eq!(e.id, Some(Value::from(3)));
        assert!(e.error.message.contains("teleport"), "{}", e.error.message);

        let e = bad(r#"{"type":"join","id":4,"room":"no spaces"}"#);
        assert!(e.error.message.contains("room"), "{}", e.error.message);

        let e = bad("{not json");
        assert_eq!(e.id, None);
        assert!(e.error.message.starts_with("malformed JSON"));

        let e = bad(r#"{"type":"ping","id":[1]}"#);
        assert_eq!(e.id, None);
        assert_eq!(e.error.code, ErrorCode::BadRequest);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = bad(r#"{"type":"ping","id":1,"extra":true}"#);
        assert!(e.error.message.contains("extra"), "{}", e.error.message);
    }

    #[test]
    fn error_frames_carry_code_and_id() {
        let err = WireError::new(ErrorCode::RateLimited, "slow down").retry_after(250);
        let id = Value::from(5);
        let v: Value =
            serde_json::from_str(&ServerFrame::error(Some(&id), &err).to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"error","id":5,"code":"rate_limited","message":"slow down","retry_after_ms":250})
        );
    }
}
