//! The chat feature requests of a connection: content entries (messages with replies and
//! attachments, edits, deletes, events), membership and moderation, typing, read marks and the
//! room, member and presence queries.
//!
//! Everything that becomes a log entry goes through the connection's sender task (in order,
//! acknowledged with `ack`); everything else is a request task with its own reply. The router
//! authorizes every one of them; the checks here only refuse early what can be refused
//! without it (syntax, sizes, rates, "join first").

use std::{future::Future, time::Instant};

use chorus_core::{
    Attachment, Ext, Kind, MemberAction, MemberChange, RoomId, UserId, Visibility, dm_room,
    protocol::{
        ClientFrame, ErrorCode, MAX_HISTORY_LIMIT, MemberWire, RequestId, RoomWire, ServerFrame,
        WireError,
    },
    router::{RouterError, validate_event},
    time::now_ms,
};

use super::{Conn, End, Socket};

/// A typing start is forwarded at most this often per room (repeats refresh nothing the
/// router does not already time out).
pub(crate) const TYPING_THROTTLE: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest mute, and the mute of a `mute` without `duration_ms`.
const MAX_MUTE_MS: u64 = 365 * 24 * 3600 * 1000;
/// Default page of `members` and `who`.
const DEFAULT_PAGE: u32 = 100;

fn member(action: MemberAction, user: UserId) -> MemberChange {
    MemberChange {
        action,
        user,
        role: None,
        until: None,
        visibility: None,
        members: Vec::new(),
        revoke: false,
    }
}

fn member_ext(change: MemberChange) -> Ext {
    Ext {
        kind: Kind::Member,
        member: Some(change),
        ..Ext::default()
    }
}

impl<S: Socket> Conn<S> {
    /// Handles every frame of the chat features (see the module docs).
    pub(super) async fn on_feature(&mut self, frame: ClientFrame) -> Result<(), End> {
        let me = self.user.clone();
        // The action of the moderation frames that carry nothing but a user.
        let simple_action = match frame {
            ClientFrame::Remove { .. } => MemberAction::Remove,
            ClientFrame::Unmute { .. } => MemberAction::Unmute,
            ClientFrame::Ban { .. } => MemberAction::Ban,
            ClientFrame::Unban { .. } => MemberAction::Unban,
            _ => MemberAction::Disconnect,
        };
        match frame {
            ClientFrame::Send {
                id,
                room,
                client_msg_id,
                body,
                reply_to,
                attachments,
                ..
            } => {
                if let Err(e) = self.check_attachments(&attachments) {
                    return self.reply_error(id.as_ref(), e.in_room(&room)).await;
                }
                let ext = Ext {
                    reply_to,
                    attachments,
                    ..Ext::default()
                };
                // The router ends the sender's typing with the message.
                self.typing_sent.remove(&room);
                self.submit(id, room, client_msg_id, body, ext, true).await
            }
            ClientFrame::Edit {
                id,
                room,
                client_msg_id,
                target,
                body,
                ..
            } => {
                let ext = Ext {
                    kind: Kind::Edit,
                    target: Some(target),
                    ..Ext::default()
                };
                self.submit(id, room, client_msg_id, body, ext, true).await
            }
            ClientFrame::Delete {
                id,
                room,
                client_msg_id,
                target,
                ..
            } => {
                let ext = Ext {
                    kind: Kind::Delete,
                    target: Some(target),
                    ..Ext::default()
                };
                self.submit(id, room, client_msg_id, String::new(), ext, true)
                    .await
            }
            ClientFrame::Event {
                id,
                room,
                event,
                data,
                persist,
                client_msg_id,
                ..
            } => {
                if let Err(e) = validate_event(&event, data.as_str()) {
                    let e = WireError::from(&e).in_room(&room);
                    return self.reply_error(id.as_ref(), e).await;
                }
                if persist {
                    self.typing_sent.remove(&room);
                    let ext = Ext {
                        kind: Kind::Event,
                        event: Some(event),
                        data: Some(data),
                        ..Ext::default()
                    };
                    return self
                        .submit(id, room, client_msg_id, String::new(), ext, true)
                        .await;
                }
                if client_msg_id.is_some() {
                    let e = WireError::new(
                        ErrorCode::BadRequest,
                        "client_msg_id is only for persisted events",
                    );
                    return self.reply_error(id.as_ref(), e.in_room(&room)).await;
                }
                self.ephemeral(id, room, true, move |router, room| async move {
                    let req = chorus_core::router::EventRequest {
                        room,
                        from: me,
                        event,
                        data: data.as_str().to_owned(),
                    };
                    router.publish_event(req).await
                })
                .await
            }
            ClientFrame::CreateRoom {
                id,
                room,
                visibility,
                members,
                client_msg_id,
            } => {
                let visibility = visibility.unwrap_or(Visibility::Public);
                if !matches!(visibility, Visibility::Public | Visibility::Private) {
                    let e = WireError::new(
                        ErrorCode::BadRequest,
                        "visibility must be public or private (open_dm makes direct rooms)",
                    );
                    return self.reply_error(id.as_ref(), e.in_room(&room)).await;
                }
                let mut change = member(MemberAction::Create, me);
                change.visibility = Some(visibility);
                change.members = members;
                self.submit(
                    id,
                    room,
                    client_msg_id,
                    String::new(),
                    member_ext(change),
                    false,
                )
                .await
            }
            ClientFrame::OpenDm { id, user } => {
                let room = dm_room(&me, &user);
                let mut change = member(MemberAction::Create, me);
                change.visibility = Some(Visibility::Direct);
                change.members = vec![user];
                self.submit(id, room, None, String::new(), member_ext(change), false)
                    .await
            }
            ClientFrame::Invite {
                id,
                room,
                user,
                role,
                client_msg_id,
            } => {
                let mut change = member(MemberAction::Invite, user);
                change.role = role;
                self.submit_member(id, room, client_msg_id, change).await
            }
            ClientFrame::SetRole {
                id,
                room,
                user,
                role,
                client_msg_id,
            } => {
                let mut change = member(MemberAction::SetRole, user);
                change.role = Some(role);
                self.submit_member(id, room, client_msg_id, change).await
            }
            ClientFrame::Mute {
                id,
                room,
                user,
                duration_ms,
                client_msg_id,
            } => {
                let duration = duration_ms.unwrap_or(MAX_MUTE_MS);
                if duration == 0 || duration > MAX_MUTE_MS {
                    let e = WireError::new(
                        ErrorCode::BadRequest,
                        format!("duration_ms must be 1 to {MAX_MUTE_MS}"),
                    );
                    return self.reply_error(id.as_ref(), e.in_room(&room)).await;
                }
                let mut change = member(MemberAction::Mute, user);
                change.until = Some(now_ms() + duration);
                self.submit_member(id, room, client_msg_id, change).await
            }
            ClientFrame::Remove {
                id,
                room,
                user,
                client_msg_id,
            }
            | ClientFrame::Unmute {
                id,
                room,
                user,
                client_msg_id,
            }
            | ClientFrame::Ban {
                id,
                room,
                user,
                client_msg_id,
            }
            | ClientFrame::Unban {
                id,
                room,
                user,
                client_msg_id,
            }
            | ClientFrame::Disconnect {
                id,
                room,
                user,
                client_msg_id,
            } => {
                let change = member(simple_action, user);
                self.submit_member(id, room, client_msg_id, change).await
            }
            ClientFrame::LeaveRoom {
                id,
                room,
                client_msg_id,
            } => {
                let change = member(MemberAction::Leave, me);
                self.submit_member(id, room, client_msg_id, change).await
            }
            ClientFrame::Typing { id, room, typing } => self.typing(id, room, typing).await,
            ClientFrame::Read { id, room, seq } => {
                self.ephemeral(id, room, false, move |router, room| async move {
                    router.mark_read(room, me, seq).await
                })
                .await
            }
            ClientFrame::Rooms { id } => {
                self.query(id, None, move |router| async move {
                    let rooms = router.user_rooms(me).await?;
                    Ok(ServerFrame::Rooms {
                        id: None,
                        rooms: rooms.iter().map(RoomWire::from).collect(),
                    }
                    .to_json())
                })
                .await
            }
            ClientFrame::Members {
                id,
                room,
                after,
                limit,
            } => {
                let limit = limit.unwrap_or(DEFAULT_PAGE);
                let r = room.clone();
                self.query(id, Some(room), move |router| async move {
                    check_page(limit)?;
                    let page = router.members(r.clone(), me, after, limit).await?;
                    Ok(ServerFrame::Members {
                        id: None,
                        room: &r,
                        members: page.members.iter().map(MemberWire::from).collect(),
                        has_more: page.has_more,
                    }
                    .to_json())
                })
                .await
            }
            ClientFrame::Who {
                id,
                room,
                after,
                limit,
            } => {
                let limit = limit.unwrap_or(DEFAULT_PAGE);
                let r = room.clone();
                self.query(id, Some(room), move |router| async move {
                    check_page(limit)?;
                    let page = router.online(r.clone(), me, after, limit).await?;
                    Ok(ServerFrame::Online {
                        id: None,
                        room: &r,
                        online: (&page).into(),
                    }
                    .to_json())
                })
                .await
            }
            other => {
                // Every other frame is handled by the connection itself.
                let e = WireError::new(ErrorCode::Internal, "internal error");
                tracing::error!(frame = other.kind(), "frame routed to the wrong handler");
                self.reply_error(other.id(), e).await
            }
        }
    }

    async fn submit_member(
        &mut self,
        id: Option<RequestId>,
        room: RoomId,
        client_msg_id: Option<String>,
        change: MemberChange,
    ) -> Result<(), End> {
        self.submit(
            id,
            room,
            client_msg_id,
            String::new(),
            member_ext(change),
            false,
        )
        .await
    }

    /// Size and syntax of attachments, before they travel further.
    fn check_attachments(&self, attachments: &[Attachment]) -> Result<(), WireError> {
        let config = &self.shared.config;
        if attachments.len() > config.max_attachments {
            return Err(WireError::new(
                ErrorCode::LimitExceeded,
                format!("at most {} attachments per message", config.max_attachments),
            ));
        }
        let mut total = 0;
        for a in attachments {
            a.validate()
                .map_err(|why| WireError::new(ErrorCode::BadRequest, why))?;
            total += a.size();
        }
        if total > config.max_attachment_bytes {
            return Err(WireError::new(
                ErrorCode::TooLarge,
                format!(
                    "attachments are larger than {} bytes in total",
                    config.max_attachment_bytes
                ),
            ));
        }
        Ok(())
    }

    async fn typing(
        &mut self,
        id: Option<RequestId>,
        room: RoomId,
        typing: bool,
    ) -> Result<(), End> {
        let now = Instant::now();
        let last = self.typing_sent.get(&room).copied();
        let forward = match (typing, last) {
            // Throttled: the router already knows, and times the start out by itself.
            (true, Some(at)) if now.duration_since(at) < TYPING_THROTTLE => false,
            (true, _) => true,
            // A stop matters only after a start went out.
            (false, last) => last.is_some(),
        };
        if !self.rooms.contains(&room) {
            let e = WireError::new(ErrorCode::Forbidden, "join the room first").in_room(&room);
            return self.reply_error(id.as_ref(), e).await;
        }
        if !forward {
            return match id {
                Some(id) => {
                    self.write(ServerFrame::Ok { id: Some(&id) }.to_json())
                        .await
                }
                None => Ok(()),
            };
        }
        if typing {
            if self.typing_sent.len() >= self.shared.config.max_rooms_per_conn {
                self.typing_sent.clear();
            }
            self.typing_sent.insert(room.clone(), now);
        } else {
            self.typing_sent.remove(&room);
        }
        let me = self.user.clone();
        self.ephemeral(id, room, true, move |router, room| async move {
            router.typing(room, me, typing).await
        })
        .await
    }

    /// An ephemeral request (no log entry), answered with `ok` (when it has an id) or an
    /// error.
    async fn ephemeral<F, Fut>(
        &mut self,
        id: Option<RequestId>,
        room: RoomId,
        need_join: bool,
        call: F,
    ) -> Result<(), End>
    where
        F: FnOnce(std::sync::Arc<dyn chorus_core::router::RouterClient>, RoomId) -> Fut
            + Send
            + 'static,
        Fut: Future<Output = Result<(), RouterError>> + Send,
    {
        if need_join && !self.rooms.contains(&room) {
            let e = WireError::new(ErrorCode::Forbidden, "join the room first").in_room(&room);
            return self.reply_error(id.as_ref(), e).await;
        }
        let r = room.clone();
        self.query(id, Some(room), move |router| async move {
            call(router, r).await?;
            Ok(String::new())
        })
        .await
    }

    /// Runs a request in its own task (rate limited by the connection's event bucket, bounded
    /// by the in-flight limit) and queues its reply: the frame `call` builds (its `id` filled
    /// in here), `ok` for an empty one, or an error.
    pub(super) async fn query<F, Fut>(
        &mut self,
        id: Option<RequestId>,
        room: Option<RoomId>,
        call: F,
    ) -> Result<(), End>
    where
        F: FnOnce(std::sync::Arc<dyn chorus_core::router::RouterClient>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<String, RouterError>> + Send,
    {
        if let Err(wait) = self.events.try_take(Instant::now()) {
            self.shared.metrics.rate_limited.increment(1);
            let mut e = WireError::new(ErrorCode::RateLimited, "event rate exceeded")
                .retry_after(wait.as_millis().max(1) as u64);
            e.room = room;
            return self.reply_error(id.as_ref(), e).await;
        }
        let max = self.shared.config.max_in_flight;
        if !self.outbox.try_begin_request(max) {
            let mut e = WireError::new(
                ErrorCode::LimitExceeded,
                format!("at most {max} requests may be in flight"),
            );
            e.room = room;
            return self.reply_error(id.as_ref(), e).await;
        }
        let (shared, outbox) = (self.shared.clone(), self.outbox.clone());
        tokio::spawn(async move {
            let frame = match call(shared.router.clone()).await {
                Ok(json) if json.is_empty() => id
                    .as_ref()
                    .map(|id| ServerFrame::Ok { id: Some(id) }.to_json()),
                Ok(json) => Some(with_id(json, id.as_ref())),
                Err(e) => {
                    let mut e = WireError::from(&e);
                    e.room = room;
                    shared.metrics.error(e.code);
                    Some(ServerFrame::error(id.as_ref(), &e).to_json())
                }
            };
            outbox.end_request();
            if let Some(frame) = frame {
                outbox.push(frame.into());
            }
        });
        Ok(())
    }
}

fn check_page(limit: u32) -> Result<(), RouterError> {
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(RouterError::BadRequest(format!(
            "limit must be between 1 and {MAX_HISTORY_LIMIT}"
        )));
    }
    Ok(())
}

/// Puts the request id into a reply built without one, right after its `"type"` (server
/// frames serialize their tag first: `{"type":"<name>",…`).
fn with_id(json: String, id: Option<&RequestId>) -> String {
    const TAG: &str = "{\"type\":\"";
    let (Some(id), true) = (id, json.starts_with(TAG)) else {
        return json;
    };
    let Some(end) = json[TAG.len()..].find('"').map(|i| TAG.len() + i + 1) else {
        return json;
    };
    let id = serde_json::to_string(id).expect("a request id is a number or a string");
    let rest = &json[end..];
    match rest.strip_prefix(',') {
        Some(fields) => format!("{},\"id\":{id},{fields}", &json[..end]),
        None => format!("{},\"id\":{id}{rest}", &json[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_goes_right_after_the_type() {
        let id = serde_json::json!(7);
        assert_eq!(
            with_id(
                r#"{"type":"online","room":"r","count":1}"#.into(),
                Some(&id)
            ),
            r#"{"type":"online","id":7,"room":"r","count":1}"#
        );
        let id = serde_json::json!("a\"b");
        assert_eq!(
            with_id(r#"{"type":"rooms"}"#.into(), Some(&id)),
            r#"{"type":"rooms","id":"a\"b"}"#
        );
        assert_eq!(
            with_id(r#"{"type":"rooms"}"#.into(), None),
            r#"{"type":"rooms"}"#
        );
    }
}
