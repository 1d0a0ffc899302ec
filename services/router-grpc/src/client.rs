//! A [`RouterClient`] that calls a router over gRPC, with a deadline on every call.

use std::time::Duration;

use async_trait::async_trait;
use chorus_core::{
    RoomId, UserId,
    router::{
        EventRequest, HistoryAnchor, HistoryPage, HistoryRequest, JoinReply, JoinRequest,
        MembersPage, OnlinePage, PresenceSync, RoomSummary, RouterClient, RouterError, SendAck,
        SendRequest,
    },
};
use chorus_telemetry::Kind;
use tonic::transport::Channel;

use crate::{
    convert::{
        join_reply_from_pb, members_from_pb, message_from_pb, online_from_pb, opt_user_to_pb,
        presence_to_pb, room_summary_from_pb, send_to_pb,
    },
    pb::{self, router_client},
    status::{from_pb_error, from_status},
    trace::{SEND_BATCH_SPAN, TRACEPARENT_KEY, rpc_attrs},
};

/// Calls one router. Cheap to clone (the channel multiplexes calls on one HTTP/2 connection).
#[derive(Debug, Clone)]
pub struct GrpcRouterClient {
    inner: router_client::RouterClient<Channel>,
    deadline: Duration,
}

impl GrpcRouterClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:7001`); every call is bounded by
    /// `deadline` (sent to the server as grpc-timeout, and enforced here too).
    pub async fn connect(endpoint: String, deadline: Duration) -> Result<Self, RouterError> {
        let channel = Channel::from_shared(endpoint.clone())
            .map_err(|e| {
                RouterError::BadRequest(format!("invalid router endpoint {endpoint:?}: {e}"))
            })?
            .connect_timeout(deadline)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| RouterError::Unavailable(format!("connecting to {endpoint}: {e}")))?;
        Ok(Self::new(channel, deadline))
    }

    /// Like [`connect`](Self::connect), but connects on first use (and reconnects after
    /// failures) instead of now: for pools of routers that come and go.
    pub fn lazy(endpoint: String, deadline: Duration) -> Result<Self, RouterError> {
        let channel = Channel::from_shared(endpoint.clone())
            .map_err(|e| {
                RouterError::BadRequest(format!("invalid router endpoint {endpoint:?}: {e}"))
            })?
            .connect_timeout(deadline)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self::new(channel, deadline))
    }

    pub fn new(channel: Channel, deadline: Duration) -> Self {
        GrpcRouterClient {
            inner: router_client::RouterClient::new(channel),
            deadline,
        }
    }

    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.deadline);
        req
    }

    /// Runs one call of `method` within the deadline, and records its latency and outcome
    /// (`chorus_grpc_client_seconds`, `chorus_grpc_client_errors_total`).
    async fn bounded<T>(
        &self,
        method: &'static str,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, RouterError> {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(self.deadline, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(from_status(&status)),
            Err(_) => Err(RouterError::Timeout),
        };
        metrics::histogram!("chorus_grpc_client_seconds", "method" => method)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics::counter!(
                "chorus_grpc_client_errors_total",
                "method" => method,
                "error" => e.label()
            )
            .increment(1);
        }
        result
    }
}

#[async_trait]
impl RouterClient for GrpcRouterClient {
    async fn send_batch(&self, mut reqs: Vec<SendRequest>) -> Vec<Result<SendAck, RouterError>> {
        let n = reqs.len();
        let mut span =
            chorus_telemetry::batch_span(SEND_BATCH_SPAN, Kind::Client, &mut reqs, |a| {
                rpc_attrs(a, "SendBatch", n)
            });
        let mut request = self.request(pb::SendBatchRequest {
            sends: reqs.into_iter().map(send_to_pb).collect(),
        });
        if let Some(tp) = span.traceparent()
            && let Ok(v) = tp.as_str().parse()
        {
            request.metadata_mut().insert(TRACEPARENT_KEY, v);
        }
        let mut client = self.inner.clone();
        let call = client.send_batch(request);
        let reply = match self.bounded("send_batch", call).await {
            Ok(reply) => reply,
            Err(e) => {
                span.fail(e.label(), e.to_string());
                return vec![Err(e); n];
            }
        };
        if reply.results.len() != n {
            let e = RouterError::Internal(format!(
                "router answered {} of {n} sends",
                reply.results.len()
            ));
            span.fail(e.label(), e.to_string());
            return vec![Err(e); n];
        }
        reply
            .results
            .into_iter()
            .map(|r| match r.result {
                Some(pb::send_result::Result::Ack(a)) => Ok(SendAck {
                    seq: a.seq,
                    ts: a.ts,
                    duplicate: a.duplicate,
                }),
                Some(pb::send_result::Result::Error(e)) => Err(from_pb_error(e)),
                None => Err(RouterError::Internal("router sent an empty result".into())),
            })
            .collect()
    }

    async fn join(&self, req: JoinRequest) -> Result<JoinReply, RouterError> {
        let msg = pb::JoinRequest {
            room: req.room.to_string(),
            user: opt_user_to_pb(req.user.as_ref()),
            since: req.since,
            limit: req.limit,
        };
        let mut client = self.inner.clone();
        let reply = self.bounded("join", client.join(self.request(msg))).await?;
        join_reply_from_pb(reply)
    }

    async fn history(&self, req: HistoryRequest) -> Result<HistoryPage, RouterError> {
        use pb::history_request::Anchor;
        let anchor = match req.anchor {
            HistoryAnchor::Before(b) => Anchor::Before(b),
            HistoryAnchor::After(a) => Anchor::After(a),
            HistoryAnchor::Latest => Anchor::Latest(true),
        };
        let msg = pb::HistoryRequest {
            room: req.room.to_string(),
            user: opt_user_to_pb(req.user.as_ref()),
            anchor: Some(anchor),
            limit: req.limit,
        };
        let mut client = self.inner.clone();
        let reply = self
            .bounded("history", client.history(self.request(msg)))
            .await?;
        Ok(HistoryPage {
            messages: reply
                .messages
                .into_iter()
                .map(message_from_pb)
                .collect::<Result<_, _>>()?,
            has_more: reply.has_more,
        })
    }

    async fn publish_event(&self, req: EventRequest) -> Result<(), RouterError> {
        let msg = pb::EventRequest {
            room: req.room.to_string(),
            from: req.from.to_string(),
            event: req.event,
            data: req.data,
        };
        let mut client = self.inner.clone();
        self.bounded("publish_event", client.publish_event(self.request(msg)))
            .await
            .map(|_| ())
    }

    async fn typing(&self, room: RoomId, user: UserId, typing: bool) -> Result<(), RouterError> {
        let msg = pb::TypingRequest {
            room: room.to_string(),
            user: user.to_string(),
            typing,
        };
        let mut client = self.inner.clone();
        self.bounded("typing", client.typing(self.request(msg)))
            .await
            .map(|_| ())
    }

    async fn mark_read(&self, room: RoomId, user: UserId, seq: u64) -> Result<(), RouterError> {
        let msg = pb::MarkReadRequest {
            room: room.to_string(),
            user: user.to_string(),
            seq,
        };
        let mut client = self.inner.clone();
        self.bounded("mark_read", client.mark_read(self.request(msg)))
            .await
            .map(|_| ())
    }

    async fn presence_batch(
        &self,
        reports: Vec<(RoomId, PresenceSync)>,
    ) -> Vec<Result<(), RouterError>> {
        let n = reports.len();
        let msg = pb::PresenceBatchRequest {
            reports: reports
                .into_iter()
                .map(|(room, sync)| presence_to_pb(&room, sync))
                .collect(),
        };
        let mut client = self.inner.clone();
        match self
            .bounded("presence_batch", client.presence_batch(self.request(msg)))
            .await
        {
            Ok(reply) if reply.results.len() == n => reply
                .results
                .into_iter()
                .map(|e| {
                    if e.code == 0 {
                        Ok(())
                    } else {
                        Err(from_pb_error(e))
                    }
                })
                .collect(),
            Ok(_) => vec![
                Err(RouterError::Internal(
                    "presence batch reply of the wrong length".into()
                ));
                n
            ],
            Err(e) => vec![Err(e); n],
        }
    }

    async fn presence(&self, room: RoomId, sync: PresenceSync) -> Result<(), RouterError> {
        let msg = presence_to_pb(&room, sync);
        let mut client = self.inner.clone();
        self.bounded("presence", client.presence(self.request(msg)))
            .await
            .map(|_| ())
    }

    async fn online(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<OnlinePage, RouterError> {
        let msg = pb::OnlineRequest {
            room: room.to_string(),
            user: user.to_string(),
            after: opt_user_to_pb(after.as_ref()),
            limit,
        };
        let mut client = self.inner.clone();
        let reply = self
            .bounded("online", client.online(self.request(msg)))
            .await?;
        online_from_pb(reply.page.unwrap_or_default())
    }

    async fn members(
        &self,
        room: RoomId,
        user: UserId,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<MembersPage, RouterError> {
        let msg = pb::MembersRequest {
            room: room.to_string(),
            user: user.to_string(),
            after: opt_user_to_pb(after.as_ref()),
            limit,
        };
        let mut client = self.inner.clone();
        let reply = self
            .bounded("members", client.members(self.request(msg)))
            .await?;
        members_from_pb(reply)
    }

    async fn user_rooms(&self, user: UserId) -> Result<Vec<RoomSummary>, RouterError> {
        let msg = pb::UserRoomsRequest {
            user: user.to_string(),
        };
        let mut client = self.inner.clone();
        let reply = self
            .bounded("user_rooms", client.user_rooms(self.request(msg)))
            .await?;
        reply.rooms.into_iter().map(room_summary_from_pb).collect()
    }
}
