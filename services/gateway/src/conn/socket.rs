//! The transports a connection runs on. A connection's protocol loop is the same over both:
//! it reads whole client frames and writes whole server frames, in batches with one flush.
//!
//! - [`WebSocket`]: `GET /v1/ws`, frames as WebSocket text messages, close codes as close
//!   frames, and transport pings that the client answers.
//! - [`crate::sse::SseSocket`]: `GET /v1/sse` for the server's frames (Server-Sent Events)
//!   and `POST /v1/sse/<session>` for the client's. Its close is a `close` frame.

use std::future::Future;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::SinkExt;

/// What a read from the client produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One whole text frame.
    Text(Utf8Bytes),
    /// One whole binary frame of this many bytes (not part of the protocol).
    Binary(usize),
    /// A transport ping or pong: proof of life, nothing to handle.
    Control,
    /// The client closed, or the transport ended cleanly.
    Closed,
    /// The transport failed.
    Failed(String),
}

/// One client transport, owned by its connection task.
pub(crate) trait Socket: Send + 'static {
    /// Whether the client answers [`Socket::ping`], so that silence means a dead peer.
    const ANSWERS_PINGS: bool;

    /// The next thing the client sent.
    fn recv(&mut self) -> impl Future<Output = Incoming> + Send;
    /// Queues one frame for the next [`Socket::flush`].
    fn feed(&mut self, frame: Utf8Bytes) -> impl Future<Output = Result<(), String>> + Send;
    /// Writes everything fed so far.
    fn flush(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// A keep-alive (WebSocket ping, SSE comment).
    fn ping(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Tells the client the connection ends, with a close code of docs/protocol.md.
    fn close(
        &mut self,
        code: u16,
        reason: &'static str,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// After [`Socket::close`]: reads briefly until the client's close reply, so frames it had
    /// in flight do not turn the close into a reset that loses it.
    fn linger(&mut self) -> impl Future<Output = ()> + Send;
}

impl Socket for WebSocket {
    const ANSWERS_PINGS: bool = true;

    async fn recv(&mut self) -> Incoming {
        match WebSocket::recv(self).await {
            None | Some(Ok(WsMessage::Close(_))) => Incoming::Closed,
            Some(Err(e)) => Incoming::Failed(e.to_string()),
            Some(Ok(WsMessage::Text(t))) => Incoming::Text(t),
            Some(Ok(WsMessage::Binary(b))) => Incoming::Binary(b.len()),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Incoming::Control,
        }
    }

    async fn feed(&mut self, frame: Utf8Bytes) -> Result<(), String> {
        SinkExt::feed(self, WsMessage::Text(frame))
            .await
            .map_err(|e| e.to_string())
    }

    async fn flush(&mut self) -> Result<(), String> {
        SinkExt::flush(self).await.map_err(|e| e.to_string())
    }

    async fn ping(&mut self) -> Result<(), String> {
        self.send(WsMessage::Ping(Default::default()))
            .await
            .map_err(|e| e.to_string())
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> Result<(), String> {
        let frame = WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        self.send(frame).await.map_err(|e| e.to_string())
    }

    async fn linger(&mut self) {
        while let Some(Ok(m)) = WebSocket::recv(self).await {
            if matches!(m, WsMessage::Close(_)) {
                break;
            }
        }
    }
}
