//! A room with many members, as the `presence` and `unread` modes build it: an owner creates
//! a public room, and every member joins it once (which makes them a member), several joins
//! in flight at a time. Also the request frames those modes send.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    conn::{self, Target},
    peer::{self, Counts, Kind, Peer},
};

/// User ids of the members: `{prefix}-m0`, `{prefix}-m1`, ...
pub fn member_users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-m{i}")).collect()
}

/// Opens one peer as `user`, in no room yet, whose pushes of kind `watch.0` also go to
/// `watch.1`.
pub async fn connect_one(
    target: &Arc<Target>,
    user: &str,
    counts: &Arc<Counts>,
    watch: Option<(Kind, mpsc::UnboundedSender<(Instant, String)>)>,
) -> anyhow::Result<Peer> {
    let j = conn::connect_joined_rooms(target, user, &[], conn::small_config())
        .await
        .with_context(|| format!("connecting {user}"))?;
    Ok(Peer::spawn(user.to_owned(), j.ws, counts.clone(), watch))
}

/// Creates `room` with `owner` as its owner; returns the seq of the creation entry.
pub async fn create_room(
    owner: &Peer,
    room: &str,
    visibility: &str,
    members: &[&str],
) -> anyhow::Result<u64> {
    let v = owner
        .call("ack", |id| {
            json!({"type": "create_room", "id": id, "room": room, "visibility": visibility,
                   "members": members})
            .to_string()
        })
        .await
        .with_context(|| format!("creating room {room}"))?;
    seq_of(&v)
}

pub fn seq_of(ack: &Value) -> anyhow::Result<u64> {
    ack["seq"]
        .as_u64()
        .with_context(|| format!("reply without seq: {ack}"))
}

pub fn join(room: &str) -> impl Fn(u64) -> String + '_ {
    move |id| json!({"type": "join", "id": id, "room": room}).to_string()
}

pub fn leave(room: &str) -> impl Fn(u64) -> String + '_ {
    move |id| json!({"type": "leave", "id": id, "room": room}).to_string()
}

pub fn rooms() -> impl Fn(u64) -> String {
    |id| json!({"type": "rooms", "id": id}).to_string()
}

pub fn send<'a>(room: &'a str, client_msg_id: &'a str, body: &'a str) -> impl Fn(u64) -> String {
    move |id| {
        json!({"type": "send", "id": id, "room": room, "client_msg_id": client_msg_id,
               "body": body})
        .to_string()
    }
}

pub fn read(room: &str, seq: u64) -> impl Fn(u64) -> String + '_ {
    move |id| json!({"type": "read", "id": id, "room": room, "seq": seq}).to_string()
}

/// The outcome of a window of requests: latencies (sorted, µs), refusals, and how long the
/// whole window took.
pub struct Batch {
    pub latencies: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub took: Duration,
}

impl Batch {
    pub fn report(&self, out: &mut crate::stats::Out, k: &str) {
        out.latency(k, &self.latencies);
        out.kv(&format!("{k}_errors"), self.errors);
        out.kv(&format!("{k}_ms"), self.took.as_millis());
        let per_sec =
            (self.latencies.len() as f64 + self.errors as f64) / self.took.as_secs_f64().max(1e-9);
        out.kv(&format!("{k}_per_sec"), format!("{per_sec:.0}"));
    }

    /// An error unless every request got the reply it wanted.
    pub fn check(&self, what: &str) -> anyhow::Result<()> {
        if self.errors > 0 {
            bail!(
                "{} of {} {what} failed, first: {}",
                self.errors,
                self.errors as usize + self.latencies.len(),
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        Ok(())
    }
}

/// Sends `build` as one request from each of `peers` (by index in `which`), at most `window`
/// at a time, each expecting a reply of type `want` (a refusal counts as an error).
pub async fn each<F>(peers: &[Peer], which: &[usize], window: usize, want: &str, build: F) -> Batch
where
    F: Fn(usize, u64) -> String,
{
    let (results, took) = peer::run_window(which.len(), window, |n| {
        let i = which[n];
        let build = &build;
        async move {
            let t = Instant::now();
            let reply = peers[i].request(|id| build(i, id)).await?;
            reply.expect(want).with_context(|| peers[i].user.clone())?;
            Ok(peer::micros(t.elapsed()))
        }
    })
    .await;
    let (latencies, errors, first_error) = peer::latencies(results);
    Batch {
        latencies,
        errors,
        first_error,
        took,
    }
}

/// Joins `room` from each of `peers`, at most `window` at a time; with `then_leave`, each
/// member leaves again right after its join (a member not subscribed). The latency is the
/// join's.
pub async fn join_all(peers: &[Peer], window: usize, room: &str, then_leave: bool) -> Batch {
    let (results, took) = peer::run_window(peers.len(), window, |i| async move {
        let p = &peers[i];
        let t = Instant::now();
        p.request(join(room))
            .await?
            .expect("joined")
            .with_context(|| p.user.clone())?;
        let us = peer::micros(t.elapsed());
        if then_leave {
            p.request(leave(room))
                .await?
                .expect("left")
                .with_context(|| p.user.clone())?;
        }
        Ok(us)
    })
    .await;
    let (latencies, errors, first_error) = peer::latencies(results);
    Batch {
        latencies,
        errors,
        first_error,
        took,
    }
}

/// What the member benches check at the end: connections lost, and error frames nobody asked
/// for, over the members' connections and the control ones.
pub struct Ending {
    pub lost: u64,
    pub first_lost: Option<String>,
    pub stray: u64,
}

/// Prints the closing figures both member benches share (server and own CPU, lost
/// connections, stray errors) and returns what they found.
pub fn report_end(
    out: &mut crate::stats::Out,
    server: &crate::stats::ServerProc,
    own_cpu0: Option<u64>,
    counts: &crate::peer::Counts,
    ctl: &crate::peer::Counts,
) -> Ending {
    server.report(out, "end", Some(0));
    if let (Some(a), Some(b)) = (own_cpu0, server.own_cpu_ms()) {
        out.kv("loadgen_cpu_ms", b - a);
    }
    let (lost, first_lost) = counts.lost();
    let (ctl_lost, ctl_first) = ctl.lost();
    out.kv("lost_connections", lost + ctl_lost);
    let stray = counts.stray_errors() + ctl.stray_errors();
    out.kv("stray_errors", stray);
    Ending {
        lost: lost + ctl_lost,
        first_lost: first_lost.or(ctl_first),
        stray,
    }
}
