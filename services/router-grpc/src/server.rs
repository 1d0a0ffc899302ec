//! The gRPC server in front of a router: decodes and validates each request
//! ([`convert`](crate::convert)), delegates to the wrapped [`RouterClient`], and encodes the
//! reply or the error ([`status`](crate::status)). It holds no state of its own.

use std::sync::Arc;

use chorus_core::{
    router::{EventRequest, HistoryAnchor, HistoryRequest, JoinRequest, RouterClient, RouterError},
    trace::TraceParent,
};
use chorus_telemetry::Kind;
use tonic::{Request, Response, Status};

use crate::{
    convert::{
        join_reply_to_pb, members_to_pb, message_to_pb, online_to_pb, opt_user, presence_from_pb,
        room, room_summary_to_pb, send_from_pb, user,
    },
    pb::{self, router_server},
    status::{to_pb_error, to_status},
    trace::{SEND_BATCH_SPAN, TRACEPARENT_KEY, rpc_attrs},
};

/// Serves `chorus.v1.Router` by delegating to a [`RouterClient`] (the in-process router).
#[derive(Clone)]
pub struct RouterGrpc {
    router: Arc<dyn RouterClient>,
}

impl std::fmt::Debug for RouterGrpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouterGrpc")
    }
}

impl RouterGrpc {
    pub fn new(router: Arc<dyn RouterClient>) -> Self {
        RouterGrpc { router }
    }

    /// The tonic service, to add to a `tonic::transport::Server`.
    pub fn into_service(self) -> router_server::RouterServer<RouterGrpc> {
        router_server::RouterServer::new(self)
    }
}

fn status(e: RouterError) -> Status {
    to_status(&e)
}

#[tonic::async_trait]
impl router_server::Router for RouterGrpc {
    async fn send_batch(
        &self,
        request: Request<pb::SendBatchRequest>,
    ) -> Result<Response<pb::SendBatchReply>, Status> {
        let caller = request
            .metadata()
            .get(TRACEPARENT_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        let mut reqs = request
            .into_inner()
            .sends
            .into_iter()
            .map(send_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let n = reqs.len();
        let mut span = match &caller {
            Some(parent) => {
                chorus_telemetry::start(SEND_BATCH_SPAN, Kind::Server, Some(parent), |a| {
                    rpc_attrs(a, "SendBatch", n)
                })
            }
            None => chorus_telemetry::Span::none(),
        };
        chorus_telemetry::adopt_into(&mut reqs, &span);
        let results: Vec<_> = self.router.send_batch(reqs).await;
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
            span.set(
                "chorus.refused",
                results.iter().filter(|r| r.is_err()).count() as i64,
            );
            if results.iter().all(|r| r.is_err()) {
                span.fail(e.label(), e.to_string());
            }
        }
        let results = results
            .into_iter()
            .map(|r| pb::SendResult {
                result: Some(match r {
                    Ok(ack) => pb::send_result::Result::Ack(pb::Ack {
                        seq: ack.seq,
                        ts: ack.ts,
                        duplicate: ack.duplicate,
                    }),
                    Err(e) => pb::send_result::Result::Error(to_pb_error(&e)),
                }),
            })
            .collect();
        Ok(Response::new(pb::SendBatchReply { results }))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinReply>, Status> {
        let j = request.into_inner();
        let reply = self
            .router
            .join(JoinRequest {
                room: room(&j.room).map_err(status)?,
                user: opt_user(&j.user).map_err(status)?,
                since: j.since,
                limit: j.limit,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(join_reply_to_pb(reply)))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryReply>, Status> {
        use pb::history_request::Anchor;
        let h = request.into_inner();
        let anchor = match h.anchor {
            Some(Anchor::Before(b)) => HistoryAnchor::Before(b),
            Some(Anchor::After(a)) => HistoryAnchor::After(a),
            Some(Anchor::Latest(_)) | None => HistoryAnchor::Latest,
        };
        let page = self
            .router
            .history(HistoryRequest {
                room: room(&h.room).map_err(status)?,
                user: opt_user(&h.user).map_err(status)?,
                anchor,
                limit: h.limit,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::HistoryReply {
            messages: page.messages.into_iter().map(message_to_pb).collect(),
            has_more: page.has_more,
        }))
    }

    async fn publish_event(
        &self,
        request: Request<pb::EventRequest>,
    ) -> Result<Response<pb::EventReply>, Status> {
        let e = request.into_inner();
        self.router
            .publish_event(EventRequest {
                room: room(&e.room).map_err(status)?,
                from: user(&e.from).map_err(status)?,
                event: e.event,
                data: e.data,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EventReply {}))
    }

    async fn typing(
        &self,
        request: Request<pb::TypingRequest>,
    ) -> Result<Response<pb::TypingReply>, Status> {
        let t = request.into_inner();
        self.router
            .typing(
                room(&t.room).map_err(status)?,
                user(&t.user).map_err(status)?,
                t.typing,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::TypingReply {}))
    }

    async fn mark_read(
        &self,
        request: Request<pb::MarkReadRequest>,
    ) -> Result<Response<pb::MarkReadReply>, Status> {
        let m = request.into_inner();
        self.router
            .mark_read(
                room(&m.room).map_err(status)?,
                user(&m.user).map_err(status)?,
                m.seq,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::MarkReadReply {}))
    }

    async fn presence_batch(
        &self,
        request: Request<pb::PresenceBatchRequest>,
    ) -> Result<Response<pb::PresenceBatchReply>, Status> {
        let reports = request
            .into_inner()
            .reports
            .into_iter()
            .map(presence_from_pb)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let results = self
            .router
            .presence_batch(reports)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(()) => pb::Error {
                    code: 0,
                    ..Default::default()
                },
                Err(e) => to_pb_error(&e),
            })
            .collect();
        Ok(Response::new(pb::PresenceBatchReply { results }))
    }

    async fn presence(
        &self,
        request: Request<pb::PresenceRequest>,
    ) -> Result<Response<pb::PresenceReply>, Status> {
        let (room, sync) = presence_from_pb(request.into_inner()).map_err(status)?;
        self.router.presence(room, sync).await.map_err(status)?;
        Ok(Response::new(pb::PresenceReply {}))
    }

    async fn online(
        &self,
        request: Request<pb::OnlineRequest>,
    ) -> Result<Response<pb::OnlineReply>, Status> {
        let o = request.into_inner();
        let page = self
            .router
            .online(
                room(&o.room).map_err(status)?,
                user(&o.user).map_err(status)?,
                opt_user(&o.after).map_err(status)?,
                o.limit,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::OnlineReply {
            page: Some(online_to_pb(page)),
        }))
    }

    async fn members(
        &self,
        request: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        let m = request.into_inner();
        let page = self
            .router
            .members(
                room(&m.room).map_err(status)?,
                user(&m.user).map_err(status)?,
                opt_user(&m.after).map_err(status)?,
                m.limit,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(members_to_pb(page)))
    }

    async fn user_rooms(
        &self,
        request: Request<pb::UserRoomsRequest>,
    ) -> Result<Response<pb::UserRoomsReply>, Status> {
        let u = request.into_inner();
        let rooms = self
            .router
            .user_rooms(user(&u.user).map_err(status)?)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UserRoomsReply {
            rooms: rooms.into_iter().map(room_summary_to_pb).collect(),
        }))
    }
}
