//! The gRPC server in front of a router.

use std::sync::Arc;

use chorus_core::router::{
    EventRequest, HistoryAnchor, HistoryRequest, JoinRequest, RouterClient, RouterError,
    SendRequest,
};
use tonic::{Request, Response, Status};

use crate::{
    convert::{message_to_pb, room, user},
    pb::{self, router_server},
    status::{to_pb_error, to_status},
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
        let mut reqs = Vec::new();
        for s in request.into_inner().sends {
            reqs.push(SendRequest {
                room: room(&s.room).map_err(status)?,
                from: user(&s.from).map_err(status)?,
                client_msg_id: s.client_msg_id,
                body: s.body,
            });
        }
        let results = self
            .router
            .send_batch(reqs)
            .await
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
                user: user(&j.user).map_err(status)?,
                since: j.since,
                limit: j.limit,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::JoinReply {
            last_seq: reply.last_seq,
            backlog: reply.backlog.into_iter().map(message_to_pb).collect(),
            has_more: reply.has_more,
        }))
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
                user: user(&h.user).map_err(status)?,
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
                kind: e.kind,
                data: e.data,
            })
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EventReply {}))
    }
}
