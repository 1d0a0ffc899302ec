//! The few pieces of protocol v1 the load generator speaks, and cheap parsing of the frames it
//! receives in bulk (`msg` and `ack`).
//!
//! The hot path never allocates: `msg` frames are serialized by the server with a fixed field
//! order (`type, room, seq, from, body, client_msg_id, ts`), so `seq` and the send time embedded
//! in `body` are found with two substring searches. Anything that does not match that shape falls
//! back to a full JSON parse.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

/// Every body the load generator sends starts with this marker, then the send time in
/// nanoseconds since the run's shared `Instant` base, then `;`, then padding.
pub const BODY_MARK: &str = "lg:";

/// What a received text frame is, as far as the load generator cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A live message. `sent_ns` is `None` when the body was not written by a load generator.
    Msg { seq: u64, sent_ns: Option<u64> },
    /// A send was stored. `id` is the request id when it was a number.
    Ack { id: Option<u64> },
    /// A refusal.
    Error {
        id: Option<u64>,
        code: String,
        message: String,
    },
    /// `ready`, `joined`, `pong`, ...: `kind` is the frame's `type`.
    Other { kind: String },
    /// Not a JSON object with a string `type`.
    Malformed,
}

/// Classifies a frame, cheaply for `msg` and `ack`.
pub fn classify(text: &str) -> Frame {
    if let Some(rest) = text.strip_prefix(r#"{"type":""#) {
        let fast = if rest.starts_with(r#"msg","#) {
            fast_msg(text)
        } else if rest.starts_with(r#"ack","#) {
            fast_ack(rest)
        } else {
            None
        };
        if let Some(frame) = fast {
            return frame;
        }
    }
    slow(text)
}

fn fast_msg(text: &str) -> Option<Frame> {
    const SEQ: &str = r#","seq":"#;
    const BODY: &str = r#","body":""#;
    let at = text.find(SEQ)? + SEQ.len();
    let (seq, _) = leading_u64(&text[at..])?;
    let body_at = at + text[at..].find(BODY)? + BODY.len();
    let sent_ns = text[body_at..]
        .strip_prefix(BODY_MARK)
        .and_then(leading_u64)
        .filter(|(_, rest)| rest.starts_with(';'))
        .map(|(v, _)| v);
    Some(Frame::Msg { seq, sent_ns })
}

fn fast_ack(rest: &str) -> Option<Frame> {
    let id = rest.strip_prefix(r#"ack","id":"#)?;
    let (id, tail) = leading_u64(id)?;
    tail.starts_with(',').then_some(Frame::Ack { id: Some(id) })
}

/// The decimal number at the start of `s` and what follows it.
pub fn leading_u64(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    let v = s[..digits].parse().ok()?;
    Some((v, &s[digits..]))
}

fn slow(text: &str) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Frame::Malformed;
    };
    let Some(kind) = v.get("type").and_then(Value::as_str) else {
        return Frame::Malformed;
    };
    let id = v.get("id").and_then(Value::as_u64);
    match kind {
        "msg" => match v.get("seq").and_then(Value::as_u64) {
            Some(seq) => Frame::Msg {
                seq,
                sent_ns: v
                    .get("body")
                    .and_then(Value::as_str)
                    .and_then(|b| b.strip_prefix(BODY_MARK))
                    .and_then(leading_u64)
                    .filter(|(_, rest)| rest.starts_with(';'))
                    .map(|(n, _)| n),
            },
            None => Frame::Malformed,
        },
        "ack" => Frame::Ack { id },
        "error" => Frame::Error {
            id,
            code: v
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned(),
            message: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        },
        other => Frame::Other {
            kind: other.to_owned(),
        },
    }
}

/// A `send` frame whose body carries `sent_ns`, padded with `x` to `body_bytes` (never shorter
/// than the marker and the number).
pub fn send_frame(
    out: &mut String,
    id: u64,
    room: &str,
    client_msg_id: &str,
    sent_ns: u64,
    body_bytes: usize,
) {
    write_send(
        out,
        id,
        room,
        Some(client_msg_id),
        sent_ns,
        None,
        body_bytes,
    );
}

/// A `send` frame like [`send_frame`] whose body also carries `tag` (the sender's message
/// number) after the send time: `lg:<sent_ns>;<tag>;` and then padding. Without
/// `client_msg_id`, the send is not deduplicated by the server.
pub fn tagged_send_frame(
    out: &mut String,
    id: u64,
    room: &str,
    client_msg_id: Option<&str>,
    sent_ns: u64,
    tag: u64,
    body_bytes: usize,
) {
    write_send(out, id, room, client_msg_id, sent_ns, Some(tag), body_bytes);
}

fn write_send(
    out: &mut String,
    id: u64,
    room: &str,
    client_msg_id: Option<&str>,
    sent_ns: u64,
    tag: Option<u64>,
    body_bytes: usize,
) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(out, r#"{{"type":"send","id":{id},"room":"{room}","#);
    if let Some(cmid) = client_msg_id {
        let _ = write!(out, r#""client_msg_id":"{cmid}","#);
    }
    let _ = write!(out, r#""body":"{BODY_MARK}{sent_ns};"#);
    let mut head = BODY_MARK.len() + decimal_len(sent_ns) + 1;
    if let Some(tag) = tag {
        let _ = write!(out, "{tag};");
        head += decimal_len(tag) + 1;
    }
    for _ in head..body_bytes {
        out.push('x');
    }
    out.push_str("\"}");
}

/// The tag of a `msg` frame whose body [`tagged_send_frame`] wrote; `None` for any other.
pub fn msg_tag(text: &str) -> Option<u64> {
    const BODY: &str = r#","body":""#;
    let at = text.find(BODY)? + BODY.len();
    let (_, rest) = leading_u64(text[at..].strip_prefix(BODY_MARK)?)?;
    let (tag, rest) = leading_u64(rest.strip_prefix(';')?)?;
    rest.starts_with(';').then_some(tag)
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// A `join` frame.
pub fn join_frame(id: u64, room: &str) -> String {
    serde_json::json!({"type": "join", "id": id, "room": room}).to_string()
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

/// An HS256 token for `user`, valid for `ttl_secs`.
pub fn mint(key: &jsonwebtoken::EncodingKey, user: &str, ttl_secs: u64) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user,
        iat: now,
        exp: now + ttl_secs,
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        key,
    )?)
}

/// Checks a user id the way the server does (1–64 chars of `[A-Za-z0-9_.@-]`).
pub fn valid_user(user: &str) -> bool {
    (1..=64).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_fast_path_reads_seq_and_send_time() {
        let f = r#"{"type":"msg","room":"bench","seq":42,"from":"lg-sender","body":"lg:123456789;xxxx","client_msg_id":"c-1","ts":1700000000000}"#;
        assert_eq!(
            fast_msg(f),
            Some(Frame::Msg {
                seq: 42,
                sent_ns: Some(123_456_789)
            })
        );
        assert_eq!(fast_msg(f), Some(slow(f)));
        assert_eq!(classify(f), slow(f));
    }

    #[test]
    fn msg_from_someone_else_has_no_send_time() {
        let f = r#"{"type":"msg","room":"r","seq":7,"from":"alice","body":"lg:12x","ts":1}"#;
        assert_eq!(
            classify(f),
            Frame::Msg {
                seq: 7,
                sent_ns: None
            }
        );
        let f = r#"{"type":"msg","room":"r","seq":8,"from":"alice","body":"hello","ts":1}"#;
        assert_eq!(
            classify(f),
            Frame::Msg {
                seq: 8,
                sent_ns: None
            }
        );
    }

    #[test]
    fn other_field_orders_fall_back_to_a_full_parse() {
        let f = r#"{"seq":9,"type":"msg","body":"lg:55;","room":"r"}"#;
        assert_eq!(
            classify(f),
            Frame::Msg {
                seq: 9,
                sent_ns: Some(55)
            }
        );
        let f = r#"{"type":"ack","room":"r","id":3,"seq":1,"ts":2}"#;
        assert_eq!(classify(f), Frame::Ack { id: Some(3) });
        let f = r#"{"type":"ack","id":"x-3","room":"r","seq":1,"ts":2}"#;
        assert_eq!(classify(f), Frame::Ack { id: None });
    }

    #[test]
    fn acks_errors_and_others() {
        let f = r#"{"type":"ack","id":3,"room":"bench","client_msg_id":"c-1","seq":9,"ts":1}"#;
        assert_eq!(classify(f), Frame::Ack { id: Some(3) });
        let f = r#"{"type":"error","id":4,"code":"rate_limited","message":"slow down"}"#;
        assert_eq!(
            classify(f),
            Frame::Error {
                id: Some(4),
                code: "rate_limited".into(),
                message: "slow down".into()
            }
        );
        assert_eq!(
            classify(r#"{"type":"joined","id":1,"room":"r","last_seq":0}"#),
            Frame::Other {
                kind: "joined".into()
            }
        );
        assert_eq!(classify("nope"), Frame::Malformed);
        assert_eq!(classify(r#"{"type":"msg","room":"r"}"#), Frame::Malformed);
    }

    #[test]
    fn send_frames_are_valid_json_of_the_requested_body_size() {
        let mut s = String::new();
        for (ns, bytes) in [(0u64, 64usize), (987_654_321, 64), (u64::MAX, 8), (5, 1000)] {
            send_frame(&mut s, 7, "bench", "ab-7", ns, bytes);
            let v: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["type"], "send");
            assert_eq!(v["id"], 7);
            assert_eq!(v["client_msg_id"], "ab-7");
            let body = v["body"].as_str().unwrap();
            let head = format!("{BODY_MARK}{ns};");
            assert!(body.starts_with(&head));
            assert_eq!(body.len(), bytes.max(head.len()));
            // What the server will echo back parses to the same send time.
            let echoed = format!(
                r#"{{"type":"msg","room":"bench","seq":1,"from":"u","body":"{body}","client_msg_id":"ab-7","ts":1}}"#
            );
            assert_eq!(
                classify(&echoed),
                Frame::Msg {
                    seq: 1,
                    sent_ns: Some(ns)
                }
            );
        }
    }

    #[test]
    fn tagged_sends_carry_the_send_time_and_the_tag() {
        let mut s = String::new();
        for (cmid, tag, bytes) in [(Some("n-1"), 0u64, 64usize), (None, 123_456, 8)] {
            tagged_send_frame(&mut s, 9, "r-1", cmid, 777, tag, bytes);
            let v: Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["id"], 9);
            assert_eq!(v.get("client_msg_id").and_then(Value::as_str), cmid);
            let body = v["body"].as_str().unwrap();
            let head = format!("{BODY_MARK}777;{tag};");
            assert!(body.starts_with(&head));
            assert_eq!(body.len(), bytes.max(head.len()));
            let echoed = format!(
                r#"{{"type":"msg","room":"r-1","seq":3,"from":"u","body":"{body}","ts":1}}"#
            );
            assert_eq!(
                classify(&echoed),
                Frame::Msg {
                    seq: 3,
                    sent_ns: Some(777)
                }
            );
            assert_eq!(msg_tag(&echoed), Some(tag));
        }
        let untagged = r#"{"type":"msg","room":"r","seq":1,"from":"u","body":"lg:5;xxxx","ts":1}"#;
        assert_eq!(msg_tag(untagged), None);
    }

    #[test]
    fn leading_numbers() {
        assert_eq!(leading_u64("12,x"), Some((12, ",x")));
        assert_eq!(leading_u64("x"), None);
        assert_eq!(leading_u64("99999999999999999999"), None);
        assert_eq!(decimal_len(0), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(decimal_len(u64::MAX), 20);
    }

    #[test]
    fn tokens_verify_with_the_same_secret() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let t = mint(&jsonwebtoken::EncodingKey::from_secret(secret), "lg-1", 60).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            &t,
            &jsonwebtoken::DecodingKey::from_secret(secret),
            &validation,
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "lg-1");
        assert!(valid_user("lg-sub-999"));
        assert!(!valid_user("a b"));
        assert!(!valid_user(""));
    }
}
