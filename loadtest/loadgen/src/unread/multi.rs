//! The many-rooms part of `unread`: one user who is a member of R private rooms, and how fast
//! and how right their `rooms` reply is.
//!
//! A poster creates each room `<room>-r<j>` with the user as a member and sends a few messages
//! before and after the user's own: in every third room the user sends one (which marks the
//! room read up to it), in every second room the user marks one of the poster's messages read,
//! sometimes below their own message (marks only move forward). The expected `read_seq` and
//! `unread` of every room follow from the acknowledged seqs.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use super::{UnreadArgs, entry, ms};
use crate::{
    conn::Target,
    members,
    peer::{self, Counts, Peer},
    stats::Out,
};

/// What `rooms` must say about one room.
struct Expect {
    room: String,
    last_seq: u64,
    read_seq: u64,
    unread: u64,
}

/// Builds room `j` (see the module docs) and returns what the user's `rooms` must show.
async fn build(
    poster: &Peer,
    user: &Peer,
    room: String,
    j: usize,
    body: &str,
) -> anyhow::Result<Expect> {
    let post = |i: usize| {
        let room = room.as_str();
        async move {
            let cmid = format!("p-{i}");
            members::seq_of(&poster.call("ack", members::send(room, &cmid, body)).await?)
        }
    };
    members::create_room(poster, &room, "private", &[user.user.as_str()]).await?;
    poster.call("joined", members::join(&room)).await?;
    let mut posts = Vec::new();
    for i in 0..1 + j % 5 {
        posts.push(post(i).await?);
    }
    let mut own = 0;
    if j.is_multiple_of(3) {
        user.call("joined", members::join(&room)).await?;
        own = members::seq_of(&user.call("ack", members::send(&room, "own", body)).await?)?;
        user.call("left", members::leave(&room)).await?;
    }
    for i in 0..j % 4 {
        posts.push(post(10 + i).await?);
    }
    poster.call("left", members::leave(&room)).await?;
    let mut read = 0;
    if j.is_multiple_of(2) {
        read = posts[(j / 2) % posts.len()];
        user.call("ok", members::read(&room, read)).await?;
    }
    let mark = own.max(read);
    Ok(Expect {
        last_seq: own.max(*posts.last().expect("at least one post")),
        read_seq: mark,
        unread: posts.iter().filter(|&&p| p > mark).count() as u64,
        room,
    })
}

/// Every room of a `rooms` reply that is not as expected (at most a few named).
fn mismatches(v: &Value, want: &[Expect]) -> Option<String> {
    let listed = v["rooms"].as_array().map_or(0, Vec::len);
    let mut bad: Vec<String> = want
        .iter()
        .filter_map(|e| {
            let got = entry(v, &e.room).map(|r| {
                (
                    r["last_seq"].as_u64(),
                    r["read_seq"].as_u64(),
                    r["unread"].as_u64(),
                )
            });
            let expect = Some((Some(e.last_seq), Some(e.read_seq), Some(e.unread)));
            (got != expect).then(|| {
                format!(
                    "{}: (last_seq, read_seq, unread) = {got:?}, want {expect:?}",
                    e.room
                )
            })
        })
        .collect();
    if listed != want.len() {
        bad.insert(0, format!("{listed} rooms listed, want {}", want.len()));
    }
    let n = bad.len();
    bad.truncate(3);
    (n > 0).then(|| format!("{n} wrong: {}", bad.join("; ")))
}

pub(super) async fn run(
    target: &Arc<Target>,
    args: &UnreadArgs,
    prefix: &str,
    ctl: &Arc<Counts>,
    out: &mut Out,
) -> anyhow::Result<()> {
    let r = args.multi_rooms;
    let limit = Duration::from_secs(args.run.timeout_secs.max(1));
    let poster = members::connect_one(target, &format!("{prefix}-poster"), ctl, None).await?;
    let user = members::connect_one(target, &format!("{prefix}-multi"), ctl, None).await?;
    let body = "y".repeat(args.body_bytes.max(1));
    let t = Instant::now();
    let want: Vec<Expect> = futures_util::stream::iter(0..r)
        .map(|j| build(&poster, &user, format!("{}-r{j}", args.room), j, &body))
        .buffered(10)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("building the many-rooms user's rooms")?;
    out.kv("multi_rooms", r);
    out.kv("multi_setup_ms", ms(t.elapsed()));

    // Marks are written once per tick: wait until the reply is right once.
    let t = Instant::now();
    loop {
        let v = user.call("rooms", members::rooms()).await?;
        match mismatches(&v, &want) {
            None => break,
            Some(why) if t.elapsed() > limit => bail!("not right after {limit:?}: {why}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    out.kv("multi_settled_ms", ms(t.elapsed()));

    let t = Instant::now();
    let mut lat = Vec::with_capacity(args.multi_requests);
    let (mut wrong, mut first_wrong) = (0u64, None);
    for _ in 0..args.multi_requests {
        let t = Instant::now();
        let reply = user.request(members::rooms()).await?;
        lat.push(peer::micros(t.elapsed()));
        let v = reply.expect("rooms")?;
        if let Some(why) = mismatches(&v, &want) {
            wrong += 1;
            first_wrong.get_or_insert(why);
        }
    }
    lat.sort_unstable();
    out.latency("multi_rooms", &lat);
    out.kv("multi_rooms_wrong", wrong);
    out.kv("multi_rooms_ms", ms(t.elapsed()));
    peer::close_all(vec![poster, user]).await;
    if let Some(w) = first_wrong {
        bail!(
            "{wrong} of {} replies wrong, first: {w}",
            args.multi_requests
        );
    }
    Ok(())
}
