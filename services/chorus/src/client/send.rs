//! `chorus send`: posts messages to one room in order, each exactly once.
//!
//! Messages go one at a time: the next is sent when the previous one is acknowledged, so a
//! retry can never overtake a later message and the room shows them in input order. (The
//! server's send rate, 10/s by default, bounds a pipelined sender just the same.) A message
//! whose connection is lost, or that is refused with `unavailable`, `rate_limited` or
//! `internal`, is sent again with the same `client_msg_id`: if the first attempt did reach the
//! log, the server answers `duplicate` with the original seq. Any other refusal ends the run.

use std::{io::Write, time::Duration};

use serde_json::json;

use super::{
    Backoff, ClientError, Credentials,
    conn::{Connection, Frame, Lost, retryable},
    run_prefix, ws_url,
};
use crate::cli::SendArgs;

/// One message to post.
struct Outgoing {
    client_msg_id: String,
    body: String,
}

/// Runs `chorus send`.
pub async fn send(args: SendArgs) -> Result<(), ClientError> {
    let url = ws_url(&args.client.url)?;
    let creds = Credentials::new(
        args.client.token.as_deref(),
        args.client.user.as_deref(),
        args.client.jwt_secret.as_deref(),
    )?;
    let messages = if args.text.is_empty() {
        let input = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin()))
            .await
            .expect("reading stdin does not panic")
            .map_err(|e| ClientError::Usage(format!("reading stdin: {e}")))?;
        lines(&input, args.client_msg_id.as_deref())
    } else {
        vec![Outgoing {
            client_msg_id: args
                .client_msg_id
                .unwrap_or_else(|| format!("{}-1", run_prefix())),
            body: args.text.join(" "),
        }]
    };
    let mut run = Run {
        url,
        creds,
        room: args.client.room,
        json: args.client.json,
        acked: 0,
        problem: None,
    };
    let total = messages.len();
    match tokio::time::timeout(args.timeout, run.post_all(&messages)).await {
        Ok(done) => done,
        Err(_) => Err(ClientError::Timeout(format!(
            "{} of {total} messages acknowledged after {:?}{}",
            run.acked,
            args.timeout,
            run.problem
                .map(|p| format!("; last problem: {p}"))
                .unwrap_or_default()
        ))),
    }
}

/// The non-empty lines of `input`, keyed `<prefix>-<line number>`.
fn lines(input: &str, prefix: Option<&str>) -> Vec<Outgoing> {
    let prefix = prefix.map_or_else(run_prefix, str::to_owned);
    input
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| Outgoing {
            client_msg_id: format!("{prefix}-{}", i + 1),
            body: line.to_owned(),
        })
        .collect()
}

/// The state of one `chorus send`, kept outside the timed future so that a timeout can say
/// how far it got.
struct Run {
    url: String,
    creds: Credentials,
    room: String,
    json: bool,
    acked: usize,
    /// Why the last attempt failed, for the timeout message.
    problem: Option<String>,
}

/// What to do after a refusal that is worth retrying.
enum Retry {
    /// Send again on the same connection after this long.
    After(Duration),
    /// Reconnect.
    Lost(Lost),
}

impl From<Lost> for Retry {
    fn from(lost: Lost) -> Retry {
        Retry::Lost(lost)
    }
}

impl Run {
    async fn post_all(&mut self, messages: &[Outgoing]) -> Result<(), ClientError> {
        let mut backoff = Backoff::default();
        'connect: loop {
            let mut conn = match Connection::open(&self.url, &self.creds).await {
                Ok(conn) => conn,
                Err(lost) => {
                    self.pause(lost, &mut backoff).await?;
                    continue;
                }
            };
            // A connection may send only to rooms it has joined; live only, since the
            // messages of the room are not this command's business.
            if let Err(lost) = conn.join(&self.room, None).await {
                self.pause(lost, &mut backoff).await?;
                continue;
            }
            while let Some(message) = messages.get(self.acked) {
                match self.post(&mut conn, message, &mut backoff).await {
                    Ok(ack) => {
                        self.print(&ack);
                        self.acked += 1;
                        self.problem = None;
                        backoff.reset();
                    }
                    Err(Retry::After(delay)) => tokio::time::sleep(delay).await,
                    Err(Retry::Lost(lost)) => {
                        self.pause(lost, &mut backoff).await?;
                        continue 'connect;
                    }
                }
            }
            conn.close().await;
            return Ok(());
        }
    }

    /// Sends one message and waits for its reply.
    async fn post(
        &mut self,
        conn: &mut Connection,
        message: &Outgoing,
        backoff: &mut Backoff,
    ) -> Result<Frame, Retry> {
        let id = conn
            .request(json!({
                "type": "send",
                "room": self.room,
                "client_msg_id": message.client_msg_id,
                "body": message.body,
            }))
            .await?;
        loop {
            let reply = conn.recv().await?;
            if reply.id() != Some(id) {
                continue;
            }
            if reply.kind() == "ack" {
                return Ok(reply);
            }
            if reply.kind() != "error" {
                return Err(Lost::Fatal(ClientError::refused(
                    "internal",
                    format!("unexpected {:?} reply to send", reply.kind()),
                ))
                .into());
            }
            let code = reply.value["code"].as_str().unwrap_or("");
            if !retryable(code) {
                return Err(Lost::Fatal(reply.refusal()).into());
            }
            self.problem = Some(reply.refusal().to_string());
            let delay = match reply.value["retry_after_ms"].as_u64() {
                Some(ms) if code == "rate_limited" => Duration::from_millis(ms),
                _ => backoff.next_delay(),
            };
            tracing::debug!(code, ?delay, "send refused for now; retrying");
            return Err(Retry::After(delay));
        }
    }

    /// Waits before the next connection as `lost` asks, or gives up.
    async fn pause(&mut self, lost: Lost, backoff: &mut Backoff) -> Result<(), ClientError> {
        match lost {
            Lost::Drain => {
                self.problem = Some("the server is draining".into());
                Ok(())
            }
            Lost::Transient(why) => {
                let delay = backoff.next_delay();
                tracing::debug!(%why, ?delay, "connection lost; reconnecting");
                self.problem = Some(why);
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Lost::Unauthorized(why) if self.creds.renews() => {
                self.problem = Some(format!("unauthorized: {why}"));
                tokio::time::sleep(backoff.next_delay()).await;
                Ok(())
            }
            Lost::Unauthorized(why) => Err(ClientError::refused("unauthorized", why)),
            Lost::Fatal(e) => Err(e),
        }
    }

    /// `room seq [duplicate]`, or the ack frame as it came with `--json`. A closed stdout
    /// does not stop the sending.
    fn print(&self, ack: &Frame) {
        let line = if self.json {
            ack.raw.clone()
        } else {
            let room = ack.value["room"].as_str().unwrap_or(&self.room);
            let seq = ack.value["seq"].as_u64().unwrap_or(0);
            if ack.value["duplicate"] == true {
                format!("{room} {seq} duplicate")
            } else {
                format!("{room} {seq}")
            }
        };
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_non_empty_line_is_a_message_keyed_by_its_line_number() {
        let got = lines("one\n\n  \ntwo\r\nthree", Some("run"));
        let got: Vec<(&str, &str)> = got
            .iter()
            .map(|m| (m.client_msg_id.as_str(), m.body.as_str()))
            .collect();
        assert_eq!(
            got,
            [("run-1", "one"), ("run-4", "two"), ("run-5", "three")]
        );
        let a = lines("x", None);
        let b = lines("x", None);
        assert_ne!(a[0].client_msg_id, b[0].client_msg_id, "a prefix per run");
    }
}
