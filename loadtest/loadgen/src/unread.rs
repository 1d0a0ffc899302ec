//! `unread`: read marks and unread counts in one public room with N members, and for one
//! user who is a member of many rooms.
//!
//! An owner creates the room and joins it; N members, one connection each, join it (which
//! makes them members) and stay subscribed (or each leaves right after its join with
//! `--unsubscribe`: members who receive nothing). The owner
//! sends M messages. Then:
//! - **read marks**: every member sends one `read` with the seq of a random one of the M
//!   messages: how fast they are accepted (`ok`), and how long until `rooms` shows them for a
//!   sample of members (marks are written once per tick);
//! - **`rooms` for members**: latency over random members, each reply checked: `read_seq` is
//!   the member's mark and `unread` the messages after it;
//! - **`rooms` for a user in many rooms** ([`multi`]): a user who is a member of 100 rooms
//!   with their own messages and marks in some of them; every reply checked room by room;
//! - the frames every member received by type (the messages, and the `receipts` relaying
//!   every mark to everyone subscribed), and the server's CPU time and memory per phase.
//!
//! A wrong count, a refused request or a lost connection fails the run (non-zero exit).
//! Not here: starting the server, its limits (scripts/bench.sh).

mod multi;

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::{
    conn::Target,
    members,
    peer::{self, Counts, Peer},
    stats::{self, Out, Rng, ServerProc},
};

#[derive(Debug, clap::Args)]
pub struct UnreadArgs {
    /// Members: one connection each, joining the room once (users `<prefix>-m0`, ...).
    #[arg(long, default_value_t = 10_000)]
    pub members: usize,
    /// Messages the owner sends before the members mark them read.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Room to create; must not exist yet (the many-rooms user's rooms are `<room>-r<j>`).
    #[arg(long, default_value = "unread")]
    pub room: String,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 200)]
    pub join_window: usize,
    /// The owner's un-acknowledged sends in flight.
    #[arg(long, default_value_t = 64)]
    pub send_window: usize,
    /// `read` requests in flight at once (one per member).
    #[arg(long, default_value_t = 500)]
    pub read_window: usize,
    /// Members whose `rooms` are polled until their mark shows (and checked before the marks).
    #[arg(long, default_value_t = 100)]
    pub sample: usize,
    /// `rooms` requests of random members, one at a time.
    #[arg(long, default_value_t = 2000)]
    pub rooms_requests: usize,
    /// Rooms of the many-rooms user (0 skips that part).
    #[arg(long, default_value_t = 100)]
    pub multi_rooms: usize,
    /// `rooms` requests of the many-rooms user, one at a time.
    #[arg(long, default_value_t = 500)]
    pub multi_requests: usize,
    /// Each member leaves the room right after its join: members who receive nothing (no
    /// join entries, messages or receipts).
    #[arg(long)]
    pub unsubscribe: bool,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    #[command(flatten)]
    pub run: stats::RunArgs,
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

/// The one room of a `rooms` reply that is `room`.
fn entry<'a>(v: &'a Value, room: &str) -> Option<&'a Value> {
    v["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["room"].as_str() == Some(room))
}

/// Checks a member's `rooms` reply: `read_seq` and `unread` as expected.
fn check_member(
    v: &Value,
    room: &str,
    last_seq: u64,
    read_seq: u64,
    unread: u64,
) -> Option<String> {
    let Some(r) = entry(v, room) else {
        return Some(format!("{room} missing from {v}"));
    };
    let got = (
        r["last_seq"].as_u64(),
        r["read_seq"].as_u64(),
        r["unread"].as_u64(),
    );
    let want = (Some(last_seq), Some(read_seq), Some(unread));
    (got != want).then(|| format!("(last_seq, read_seq, unread) = {got:?}, want {want:?}"))
}

pub async fn run(target: Arc<Target>, args: UnreadArgs, prefix: &str) -> anyhow::Result<()> {
    if args.members == 0 || args.messages == 0 {
        bail!("--members and --messages must be at least 1");
    }
    let (n, m) = (args.members, args.messages);
    let limit = Duration::from_secs(args.run.timeout_secs.max(1));
    let quiet = Duration::from_millis(args.run.quiet_ms);
    let seed = args.run.seed.unwrap_or_else(stats::clock_seed);
    let mut rng = Rng::new(seed);
    let server = ServerProc::new(args.run.server_pid, args.run.clk_tck);
    let own_cpu0 = server.own_cpu_ms();
    let room = args.room.as_str();
    let mut out = Out::default();
    out.kv("members", n);
    out.kv("messages", m);
    out.kv("subscribed", !args.unsubscribe);
    out.kv("seed", seed);
    server.report(&mut out, "start", None);

    // The owner creates the room and joins it to send; the members join.
    let ctl = Arc::new(Counts::default());
    let owner = members::connect_one(&target, &format!("{prefix}-owner"), &ctl, None).await?;
    members::create_room(&owner, room, "public", &[]).await?;
    owner.call("joined", members::join(room)).await?;
    let counts = Arc::new(Counts::default());
    let users = members::member_users(prefix, n);
    let t = Instant::now();
    let peers = peer::connect(&target, users, &counts)
        .await
        .context("connecting the members")?;
    out.kv("connect_ms", ms(t.elapsed()));
    server.report(&mut out, "connected", None);
    let all: Vec<usize> = (0..n).collect();
    let (cpu, tally, t0) = (server.cpu_ms(), counts.tally(), Instant::now());
    let joins = members::join_all(&peers, args.join_window, room, args.unsubscribe).await;
    joins.report(&mut out, "join");
    joins.check("joins")?;
    let last = counts.settle(quiet, Instant::now() + limit).await;
    out.kv(
        "join_deliveries_done_ms",
        ms(last.saturating_duration_since(t0)),
    );
    out.tally("join_fanout", &counts.tally().since(&tally));
    server.report(&mut out, "join", cpu);

    // The owner's messages; every subscribed member must receive each.
    let v = owner.call("rooms", members::rooms()).await?;
    let before = entry(&v, room)
        .and_then(|r| r["last_seq"].as_u64())
        .with_context(|| format!("the owner's rooms do not list {room}: {v}"))?;
    let watched = if args.unsubscribe {
        0
    } else {
        n as u64 * m as u64
    };
    counts.watch_seqs(before + 1, before + m as u64);
    let body = "x".repeat(args.body_bytes.max(1));
    let (cpu, tally, t1) = (server.cpu_ms(), counts.tally(), Instant::now());
    let mut seqs: Vec<u64> = futures_util::stream::iter(0..m)
        .map(|i| {
            let (owner, body) = (&owner, &body);
            async move {
                let cmid = format!("u-{i}");
                let ack = owner.call("ack", members::send(room, &cmid, body)).await?;
                members::seq_of(&ack)
            }
        })
        .buffer_unordered(args.send_window.max(1))
        .collect::<Vec<anyhow::Result<u64>>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()
        .context("the owner's sends")?;
    seqs.sort_unstable();
    let last_seq = *seqs.last().expect("at least one message");
    out.kv("send_ms", ms(t1.elapsed()));
    let deadline = Instant::now() + limit;
    while counts.in_window() < watched && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    out.kv("send_delivered", counts.in_window());
    out.kv("send_expected_deliveries", watched);
    out.kv("send_deliveries_done_ms", ms(t1.elapsed()));
    if counts.in_window() != watched {
        bail!(
            "members received {} of the {watched} messages' deliveries",
            counts.in_window()
        );
    }
    counts.settle(quiet, Instant::now() + limit).await;
    out.tally("send_fanout", &counts.tally().since(&tally));
    server.report(&mut out, "send", cpu);

    // Before any mark, every sampled member has all M unread.
    let sample = rng.sample(n, args.sample.max(1));
    for &i in &sample {
        let v = peers[i].call("rooms", members::rooms()).await?;
        let r = entry(&v, room).with_context(|| format!("{room} missing: {v}"))?;
        if r["unread"].as_u64() != Some(m as u64) {
            bail!(
                "{} has {} unread before any mark, want {m}",
                peers[i].user,
                r["unread"]
            );
        }
    }

    // 2. One read mark per member, at a random one of the messages.
    let marks: Vec<usize> = (0..n).map(|_| 1 + rng.below(m)).collect();
    let (cpu, tally) = (server.cpu_ms(), counts.tally());
    let reads = members::each(&peers, &all, args.read_window, "ok", |i, id| {
        members::read(room, seqs[marks[i] - 1])(id)
    })
    .await;
    let reads_done = Instant::now();
    reads.report(&mut out, "read");
    reads.check("read marks")?;
    // How long until `rooms` shows the sampled members' marks.
    let stored: Vec<anyhow::Result<Duration>> = futures_util::stream::iter(&sample)
        .map(|&i| {
            let (p, want) = (&peers[i], seqs[marks[i] - 1]);
            async move {
                loop {
                    let v = p.call("rooms", members::rooms()).await?;
                    if entry(&v, room).and_then(|r| r["read_seq"].as_u64()) == Some(want) {
                        return Ok(reads_done.elapsed());
                    }
                    if reads_done.elapsed() > limit {
                        bail!("{}'s mark {want} not shown after {limit:?}: {v}", p.user);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
        .buffer_unordered(sample.len())
        .collect()
        .await;
    let stored: Vec<Duration> = stored.into_iter().collect::<anyhow::Result<_>>()?;
    let stored_max = stored.iter().max().copied().unwrap_or_default();
    out.kv("read_stored_sample", stored.len());
    out.kv("read_stored_max_ms", ms(stored_max));
    let last = counts.settle(quiet, Instant::now() + limit).await;
    out.kv(
        "read_deliveries_done_ms",
        ms(last.saturating_duration_since(reads_done)),
    );
    out.tally("read_fanout", &counts.tally().since(&tally));
    server.report(&mut out, "read", cpu);

    // 3. `rooms` of random members, each checked.
    let (cpu, t2) = (server.cpu_ms(), Instant::now());
    let mut lat = Vec::with_capacity(args.rooms_requests);
    let (mut wrong, mut first_wrong) = (0u64, None);
    for _ in 0..args.rooms_requests {
        let i = rng.below(n);
        let t = Instant::now();
        let reply = peers[i].request(members::rooms()).await?;
        lat.push(peer::micros(t.elapsed()));
        let v = reply.expect("rooms").context("rooms")?;
        let k = marks[i];
        if let Some(why) = check_member(&v, room, last_seq, seqs[k - 1], (m - k) as u64) {
            wrong += 1;
            first_wrong.get_or_insert_with(|| format!("{}: {why}", peers[i].user));
        }
    }
    lat.sort_unstable();
    out.latency("rooms", &lat);
    out.kv("rooms_wrong", wrong);
    out.kv("rooms_ms", ms(t2.elapsed()));
    server.report(&mut out, "rooms", cpu);
    // The owner's own messages are read.
    let v = owner.call("rooms", members::rooms()).await?;
    if let Some(why) = check_member(&v, room, last_seq, last_seq, 0) {
        wrong += 1;
        first_wrong.get_or_insert_with(|| format!("the owner: {why}"));
    }

    // 4. One user in many rooms.
    let mut multi_wrong = None;
    if args.multi_rooms > 0 {
        let cpu = server.cpu_ms();
        match multi::run(&target, &args, prefix, &ctl, &mut out).await {
            Ok(()) => {}
            Err(e) => multi_wrong = Some(format!("{e:#}")),
        }
        server.report(&mut out, "multi", cpu);
    }

    let end = members::report_end(&mut out, &server, own_cpu0, &counts, &ctl);
    let stray = end.stray;
    out.print()?;

    let mut all_peers: Vec<Peer> = peers;
    all_peers.push(owner);
    peer::close_all(all_peers).await;
    let mut problems = Vec::new();
    if let Some(w) = first_wrong {
        problems.push(format!("{wrong} rooms replies were wrong, first: {w}"));
    }
    if let Some(w) = multi_wrong {
        problems.push(format!("the many-rooms user: {w}"));
    }
    if end.lost > 0 {
        problems.push(format!(
            "{} connections were lost, first: {}",
            end.lost,
            end.first_lost.unwrap_or_default()
        ));
    }
    if stray > 0 {
        problems.push(format!("{stray} unrequested error frames"));
    }
    if !problems.is_empty() {
        bail!("unread failed: {}", problems.join("; "));
    }
    Ok(())
}
