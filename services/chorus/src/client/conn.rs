//! One WebSocket connection of the client: the upgrade with the token in the header, `ready`,
//! requests with ids, frames in, and why the connection ended, sorted by what to do next.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{
        self, Message,
        client::IntoClientRequest,
        http::{HeaderValue, header::AUTHORIZATION},
    },
};

use super::{ClientError, Credentials};

/// How long the TCP connection, the upgrade and `ready` may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After this long without hearing from the server the client pings it; after twice this
/// long the connection is taken for dead. The server pings every 30 s by default.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// One JSON frame from the server, parsed and as it came (for `--json`).
pub(super) struct Frame {
    pub value: Value,
    pub raw: String,
}

impl Frame {
    pub fn kind(&self) -> &str {
        self.value["type"].as_str().unwrap_or("")
    }

    /// The request id this frame answers (the client's ids are numbers).
    pub fn id(&self) -> Option<u64> {
        self.value["id"].as_u64()
    }

    /// The code and message of an `error` frame.
    pub fn refusal(&self) -> ClientError {
        let v = &self.value;
        ClientError::refused(
            v["code"].as_str().unwrap_or("internal"),
            v["message"].as_str().unwrap_or("no message"),
        )
    }
}

/// Why a connection ended or could not be made, by what the client does next.
pub(super) enum Lost {
    /// The server is draining (`reconnect` frame, close 1001): reconnect at once.
    Drain,
    /// The network, a close to resume after (1011, 1013, 4008), the server busy or down:
    /// reconnect after a backoff.
    Transient(String),
    /// The token was refused or expired on an open connection (`unauthorized`, close 4001).
    Unauthorized(String),
    /// Retrying cannot help.
    Fatal(ClientError),
}

impl From<ClientError> for Lost {
    fn from(e: ClientError) -> Lost {
        Lost::Fatal(e)
    }
}

/// Error codes after which the same request may succeed later.
pub(super) fn retryable(code: &str) -> bool {
    matches!(code, "unavailable" | "rate_limited" | "internal")
}

pub(super) struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// A keepalive ping is out and nothing has come since.
    pinged: bool,
}

impl Connection {
    /// Connects and waits for `ready`. A refused token is fatal here: presenting it again
    /// would not help.
    pub async fn open(url: &str, creds: &Credentials) -> Result<Connection, Lost> {
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, Self::open_ready(url, creds)).await;
        match opened {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(Lost::Unauthorized(message))) => {
                Err(Lost::Fatal(ClientError::refused("unauthorized", message)))
            }
            Ok(Err(lost)) => Err(lost),
            Err(_) => Err(Lost::Transient(format!(
                "{url}: no ready within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    async fn open_ready(url: &str, creds: &Credentials) -> Result<Connection, Lost> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::Usage(format!("invalid --url: {e}")))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", creds.token()))
            .map_err(|_| ClientError::Usage("the token is not a valid HTTP header value".into()))?;
        request.headers_mut().insert(AUTHORIZATION, bearer);
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| upgrade_failed(url, e))?;
        let mut conn = Connection {
            ws,
            next_id: 0,
            pinged: false,
        };
        loop {
            if conn.recv().await?.kind() == "ready" {
                tracing::debug!(url, "connected");
                return Ok(conn);
            }
        }
    }

    /// Sends `request` with a fresh id, which it returns.
    pub async fn request(&mut self, mut request: Value) -> Result<u64, Lost> {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        self.send(&request).await?;
        Ok(self.next_id)
    }

    async fn send(&mut self, frame: &Value) -> Result<(), Lost> {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|e| Lost::Transient(format!("sending: {e}")))
    }

    /// Joins `room` (from `since` when given) and returns the `joined` reply.
    pub async fn join(&mut self, room: &str, since: Option<u64>) -> Result<Value, Lost> {
        let mut join = json!({"type": "join", "room": room});
        if let Some(since) = since {
            join["since"] = json!(since);
        }
        let id = self.request(join).await?;
        loop {
            let frame = self.recv().await?;
            if frame.id() != Some(id) {
                continue;
            }
            return match frame.kind() {
                "joined" => Ok(frame.value),
                "error" if retryable(frame.value["code"].as_str().unwrap_or("")) => {
                    Err(Lost::Transient(frame.refusal().to_string()))
                }
                "error" => Err(Lost::Fatal(frame.refusal())),
                other => Err(Lost::Fatal(ClientError::refused(
                    "internal",
                    format!("unexpected {other:?} reply to join"),
                ))),
            };
        }
    }

    /// The next frame. Pings, pongs and non-JSON frames are skipped; a `reconnect` frame, an
    /// `unauthorized` error and every close end the connection with the matching [`Lost`].
    pub async fn recv(&mut self) -> Result<Frame, Lost> {
        loop {
            let next = match tokio::time::timeout(KEEPALIVE, self.ws.next()).await {
                Ok(next) => next,
                Err(_) if self.pinged => {
                    return Err(Lost::Transient(format!(
                        "nothing from the server for {:?}",
                        KEEPALIVE * 2
                    )));
                }
                Err(_) => {
                    self.pinged = true;
                    self.send(&json!({"type": "ping", "id": "keepalive"}))
                        .await?;
                    continue;
                }
            };
            self.pinged = false;
            let text = match next {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(closed(code, reason));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Lost::Transient(format!("connection lost: {e}"))),
                None => return Err(Lost::Transient("connection lost".into())),
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else {
                tracing::debug!("skipping a frame that is not JSON");
                continue;
            };
            let frame = Frame {
                value,
                raw: text.to_string(),
            };
            match frame.kind() {
                "reconnect" => return Err(Lost::Drain),
                "error" if frame.value["code"] == "unauthorized" => {
                    return Err(Lost::Unauthorized(
                        frame.value["message"]
                            .as_str()
                            .unwrap_or("unauthorized")
                            .to_owned(),
                    ));
                }
                _ => return Ok(frame),
            }
        }
    }

    /// Closes with 1000, not waiting long for the server's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            self.ws.close(None).await?;
            while self.ws.next().await.is_some() {}
            Ok::<_, tungstenite::Error>(())
        })
        .await;
    }
}

/// What a close code asks of the client (docs/protocol.md, "Close codes").
fn closed(code: u16, reason: String) -> Lost {
    match code {
        1001 => Lost::Drain,
        4001 => Lost::Unauthorized(if reason.is_empty() {
            "closed with 4001".into()
        } else {
            reason
        }),
        1009 => Lost::Fatal(ClientError::refused(
            "too_large",
            "a frame was over the server's max_frame_bytes (closed with 1009)",
        )),
        _ => Lost::Transient(format!("closed by the server with {code} {reason}")),
    }
}

/// Sorts a failed connect or upgrade.
fn upgrade_failed(url: &str, e: tungstenite::Error) -> Lost {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let body: Option<Value> = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok());
            let message = body
                .as_ref()
                .and_then(|b| b["message"].as_str())
                .map_or_else(|| format!("{url}: HTTP {status}"), str::to_owned);
            if status.is_server_error() || status.as_u16() == 429 {
                return Lost::Transient(message);
            }
            let code = body
                .as_ref()
                .and_then(|b| b["code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| match status.as_u16() {
                    401 => "unauthorized".into(),
                    403 => "forbidden".into(),
                    404 => "not_found".into(),
                    _ => "bad_request".into(),
                });
            let hint = if status.as_u16() == 404 {
                " (is --url the gateway's base URL?)"
            } else {
                ""
            };
            Lost::Fatal(ClientError::refused(code, format!("{message}{hint}")))
        }
        tungstenite::Error::Url(e) => {
            Lost::Fatal(ClientError::Usage(format!("invalid --url {url}: {e}")))
        }
        tungstenite::Error::Tls(e) => Lost::Fatal(ClientError::refused(
            "unavailable",
            format!("{url}: TLS: {e}"),
        )),
        e => Lost::Transient(format!("cannot connect to {url}: {e}")),
    }
}
