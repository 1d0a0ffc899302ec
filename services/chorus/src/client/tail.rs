//! `chorus tail`: prints one room's messages as they arrive, for as long as it runs.
//!
//! The only state is the last seq printed. Every (re)connection joins with `since` = that
//! seq, and frames at or below it are dropped, so a disconnect, a server restart or a drain
//! never prints a message twice or skips one. Without `--since` the first join is live only,
//! and its `last_seq` becomes the starting point.

use std::io::Write;

use super::{
    Backoff, ClientError, Credentials,
    conn::{Connection, Frame, Lost},
    format, ws_url,
};
use crate::cli::TailArgs;

/// Runs `chorus tail` until `--limit` messages are printed, stdout is closed, Ctrl-C, or a
/// refusal that retrying cannot fix.
pub async fn tail(args: TailArgs) -> Result<(), ClientError> {
    let mut follow = Follow {
        url: ws_url(&args.client.url)?,
        creds: Credentials::new(
            args.client.token.as_deref(),
            args.client.user.as_deref(),
            args.client.jwt_secret.as_deref(),
        )?,
        room: args.client.room,
        json: args.client.json,
        last: args.since,
        left: args.limit,
    };
    tokio::select! {
        done = follow.run() => done,
        Ok(()) = tokio::signal::ctrl_c() => Ok(()),
    }
}

struct Follow {
    url: String,
    creds: Credentials,
    room: String,
    json: bool,
    /// The last seq printed (or skipped over by a live-only start).
    last: Option<u64>,
    /// How many more messages to print, with `--limit`.
    left: Option<u64>,
}

/// The run is over, successfully.
struct Done;

impl Follow {
    async fn run(&mut self) -> Result<(), ClientError> {
        let mut backoff = Backoff::default();
        loop {
            let lost = match Connection::open(&self.url, &self.creds).await {
                Ok(mut conn) => match self.follow(&mut conn, &mut backoff).await {
                    Ok(Done) => {
                        conn.close().await;
                        return Ok(());
                    }
                    Err(lost) => lost,
                },
                Err(lost) => lost,
            };
            match lost {
                Lost::Drain => tracing::info!("the server is draining; reconnecting"),
                Lost::Transient(why) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%why, ?delay, "disconnected; reconnecting");
                    tokio::time::sleep(delay).await;
                }
                Lost::Unauthorized(why) if self.creds.renews() => {
                    tracing::info!(%why, "token refused; reconnecting with a new one");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Lost::Unauthorized(why) => {
                    return Err(ClientError::refused("unauthorized", why));
                }
                Lost::Fatal(e) => return Err(e),
            }
        }
    }

    /// Joins, then prints every new message of the room until the connection ends.
    async fn follow(&mut self, conn: &mut Connection, backoff: &mut Backoff) -> Result<Done, Lost> {
        let joined = conn.join(&self.room, self.last).await?;
        if self.last.is_none() {
            self.last = Some(joined["last_seq"].as_u64().unwrap_or(0));
        }
        backoff.reset();
        loop {
            let frame = conn.recv().await?;
            if frame.value["room"] != self.room.as_str() {
                continue;
            }
            match frame.kind() {
                "msg" => {
                    let Some(seq) = frame.value["seq"].as_u64() else {
                        continue;
                    };
                    if self.last.is_some_and(|last| seq <= last) {
                        continue;
                    }
                    if !self.print(&frame)? {
                        return Ok(Done);
                    }
                    self.last = Some(seq);
                    if let Some(left) = &mut self.left {
                        *left -= 1;
                        if *left == 0 {
                            return Ok(Done);
                        }
                    }
                }
                // Delivery of the room ended: removed, banned, disconnected by a moderator.
                "left" if frame.id().is_none() => {
                    let reason = frame.value["reason"].as_str().unwrap_or("no reason given");
                    return Err(Lost::Fatal(ClientError::refused(
                        "forbidden",
                        format!("no longer receiving {} ({reason})", self.room),
                    )));
                }
                _ => {}
            }
        }
    }

    /// Prints one message; false when stdout is closed (`chorus tail … | head`).
    fn print(&self, frame: &Frame) -> Result<bool, Lost> {
        let line = if self.json {
            frame.raw.clone()
        } else {
            format::render(&frame.value)
        };
        match writeln!(std::io::stdout().lock(), "{line}") {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(Lost::Fatal(ClientError::Output(e))),
        }
    }
}
