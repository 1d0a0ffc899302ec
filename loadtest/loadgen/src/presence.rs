//! `presence`: what presence costs in one public room with N members online.
//!
//! An owner creates the room (and does not join it). An observer joins first and records every
//! `presence` diff it receives. Then N members, one connection each, join (which makes them
//! members: one log entry per join, delivered to everyone already subscribed), several joins in
//! flight at a time. The run reports:
//! - **joins**: how long the N joins took, and their latency;
//! - **the observer's view**: the diff frames (count, bytes, names per list, `truncated`) and
//!   when its `online` count reached everyone;
//! - **fan-out**: the frames every connection received, by type, counted from their first
//!   bytes (each member receives every diff);
//! - **`who`**: latency of pages after a random user while everyone is online, each page
//!   checked against the expected one;
//! - **churn**: some members leave and join again: the diffs, and how long until the observer's
//!   count is back;
//! - the server's CPU time and memory (`--server-pid`) per phase.
//!
//! Any refused request, wrong page, lost connection or count the observer never reaches fails
//! the run (non-zero exit). Not here: starting the server, its limits (scripts/bench.sh).

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::{
    conn::Target,
    members::{self, Batch},
    peer::{self, Counts, Kind},
    stats::{self, Out, Rng, ServerProc},
};

#[derive(Debug, clap::Args)]
pub struct PresenceArgs {
    /// Members: one connection each, joining the room once (users `<prefix>-m0`, ...).
    #[arg(long, default_value_t = 10_000)]
    pub members: usize,
    /// Room to create; must not exist yet.
    #[arg(long, default_value = "presence")]
    pub room: String,
    /// Joins (and churn leaves and joins) in flight at once.
    #[arg(long, default_value_t = 200)]
    pub join_window: usize,
    /// `who` requests while everyone is online, one at a time, each after a random user.
    #[arg(long, default_value_t = 1000)]
    pub who_requests: usize,
    /// `limit` of each `who` request.
    #[arg(long, default_value_t = 100)]
    pub who_limit: usize,
    /// Members that leave and then join again in the churn phase (0 skips it).
    #[arg(long, default_value_t = 1000)]
    pub churn: usize,
    #[command(flatten)]
    pub run: stats::RunArgs,
}

/// One `presence` frame as the observer received it.
struct Diff {
    at: Instant,
    bytes: usize,
    online: u64,
    joined: usize,
    left: usize,
    truncated: bool,
}

/// The observer's record of diffs, filled by its own task.
struct Observer {
    diffs: Arc<std::sync::Mutex<Vec<Diff>>>,
    online: watch::Receiver<u64>,
    malformed: Arc<std::sync::atomic::AtomicU64>,
}

impl Observer {
    fn start(mut rx: mpsc::UnboundedReceiver<(Instant, String)>) -> Observer {
        let diffs = Arc::new(std::sync::Mutex::new(Vec::new()));
        let malformed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (tx, online) = watch::channel(0);
        let (d, bad) = (diffs.clone(), malformed.clone());
        tokio::spawn(async move {
            while let Some((at, text)) = rx.recv().await {
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                let (Some(n), Some(joined), Some(left)) = (
                    v["online"].as_u64(),
                    v["joined"].as_array(),
                    v["left"].as_array(),
                ) else {
                    bad.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    eprintln!("malformed presence frame: {text}");
                    continue;
                };
                d.lock().expect("never poisoned").push(Diff {
                    at,
                    bytes: text.len(),
                    online: n,
                    joined: joined.len(),
                    left: left.len(),
                    truncated: v["truncated"] == true,
                });
                let _ = tx.send(n);
            }
        });
        Observer {
            diffs,
            online,
            malformed,
        }
    }

    /// Waits until the observer's count is `n`; returns when the diff saying so arrived.
    async fn reach(&mut self, n: u64, limit: Duration) -> anyhow::Result<Instant> {
        let reached = tokio::time::timeout(limit, self.online.wait_for(|&v| v == n))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => {}
            Ok(false) => bail!("the observer ended"),
            Err(_) => bail!(
                "the observer's online count is {} after {limit:?}, not {n}",
                *self.online.borrow()
            ),
        }
        let diffs = self.diffs.lock().expect("never poisoned");
        Ok(diffs
            .iter()
            .rev()
            .find(|d| d.online == n)
            .map_or_else(Instant::now, |d| d.at))
    }

    /// `{k}_diff_*`: the diffs that arrived from `from` on.
    fn report(&self, out: &mut Out, k: &str, from: Instant) {
        let diffs = self.diffs.lock().expect("never poisoned");
        let d: Vec<&Diff> = diffs.iter().filter(|d| d.at >= from).collect();
        out.kv(&format!("{k}_diff_frames"), d.len());
        out.kv(
            &format!("{k}_diff_bytes"),
            d.iter().map(|d| d.bytes).sum::<usize>(),
        );
        out.kv(
            &format!("{k}_diff_max_bytes"),
            d.iter().map(|d| d.bytes).max().unwrap_or(0),
        );
        out.kv(
            &format!("{k}_diff_max_joined"),
            d.iter().map(|d| d.joined).max().unwrap_or(0),
        );
        out.kv(
            &format!("{k}_diff_max_left"),
            d.iter().map(|d| d.left).max().unwrap_or(0),
        );
        out.kv(
            &format!("{k}_diff_truncated"),
            d.iter().filter(|d| d.truncated).count(),
        );
        out.kv(
            &format!("{k}_diff_names"),
            d.iter().map(|d| d.joined + d.left).sum::<usize>(),
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

pub async fn run(target: Arc<Target>, args: PresenceArgs, prefix: &str) -> anyhow::Result<()> {
    if args.members == 0 || args.who_limit == 0 || args.who_limit > 100 {
        bail!("--members must be at least 1 and --who-limit 1 to 100");
    }
    let n = args.members;
    let churn = args.churn.min(n);
    let limit = Duration::from_secs(args.run.timeout_secs.max(1));
    let quiet = Duration::from_millis(args.run.quiet_ms);
    let seed = args.run.seed.unwrap_or_else(stats::clock_seed);
    let mut rng = Rng::new(seed);
    let server = ServerProc::new(args.run.server_pid, args.run.clk_tck);
    let own_cpu0 = server.own_cpu_ms();
    let room = args.room.as_str();
    let mut out = Out::default();
    out.kv("members", n);
    out.kv("seed", seed);
    server.report(&mut out, "start", None);

    // The owner creates the room; the observer joins it before anyone else.
    let ctl = Arc::new(Counts::default());
    let owner = members::connect_one(&target, &format!("{prefix}-owner"), &ctl, None).await?;
    members::create_room(&owner, room, "public", &[]).await?;
    eprintln!("presence: room {room} created");
    let (watch_tx, watch_rx) = mpsc::unbounded_channel();
    let observer_user = format!("{prefix}-observer");
    let observer = members::connect_one(
        &target,
        &observer_user,
        &ctl,
        Some((Kind::Presence, watch_tx)),
    )
    .await?;
    let mut view = Observer::start(watch_rx);
    observer
        .call("joined", members::join(room))
        .await
        .context("the observer's join")?;
    view.reach(1, limit).await?;
    eprintln!("presence: observer joined; connecting {n} members");

    // Members connect (in no room yet).
    let counts = Arc::new(Counts::default());
    let users = members::member_users(prefix, n);
    let t = Instant::now();
    let peers = peer::connect(&target, users.clone(), &counts)
        .await
        .context("connecting the members")?;
    out.kv("connect_ms", ms(t.elapsed()));
    server.report(&mut out, "connected", None);

    // Everyone online: every online user, in the order `who` lists them.
    let mut online: Vec<&str> = users.iter().map(String::as_str).collect();
    online.push(&observer_user);
    online.sort_unstable();
    let everyone = online.len() as u64;

    // 1. The joins.
    eprintln!("presence: joining");
    let (cpu, tally, t0) = (server.cpu_ms(), counts.tally(), Instant::now());
    let joins = members::join_all(&peers, args.join_window, room, false).await;
    joins.report(&mut out, "join");
    joins.check("joins")?;
    let seen = view.reach(everyone, limit).await?;
    out.kv("join_online_reached_ms", ms(seen - t0));
    let last = counts.settle(quiet, Instant::now() + limit).await;
    out.kv(
        "join_deliveries_done_ms",
        ms(last.saturating_duration_since(t0)),
    );
    view.report(&mut out, "join", t0);
    out.tally("join_fanout", &counts.tally().since(&tally));
    server.report(&mut out, "join", cpu);

    // 2. `who` while everyone is online.
    eprintln!("presence: who");
    let (cpu, t1) = (server.cpu_ms(), Instant::now());
    let mut who_lat = Vec::with_capacity(args.who_requests);
    let mut wrong = 0u64;
    let mut first_wrong = None;
    for _ in 0..args.who_requests {
        let at = rng.below(online.len());
        let after = online[at];
        let t = Instant::now();
        let reply = observer
            .request(|id| {
                json!({"type": "who", "id": id, "room": room, "after": after,
                       "limit": args.who_limit})
                .to_string()
            })
            .await?;
        who_lat.push(peer::micros(t.elapsed()));
        let v = reply.expect("online").context("who")?;
        let want: Vec<&str> = online[at + 1..]
            .iter()
            .take(args.who_limit)
            .copied()
            .collect();
        let got: Vec<&str> = v["users"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let has_more = at + 1 + args.who_limit < online.len();
        if v["count"].as_u64() != Some(everyone) || got != want || v["has_more"] != has_more {
            wrong += 1;
            first_wrong.get_or_insert_with(|| {
                format!(
                    "after {after}: count {} (want {everyone}), {} users from {:?} (want {} from \
                     {:?}), has_more {} (want {has_more})",
                    v["count"],
                    got.len(),
                    got.first(),
                    want.len(),
                    want.first(),
                    v["has_more"]
                )
            });
        }
    }
    who_lat.sort_unstable();
    out.latency("who", &who_lat);
    out.kv("who_wrong", wrong);
    out.kv("who_ms", ms(t1.elapsed()));
    server.report(&mut out, "who", cpu);
    if let Some(w) = first_wrong {
        bail!(
            "{wrong} of {} who pages were wrong, first: {w}",
            args.who_requests
        );
    }

    // 3. Churn: some members leave, then join again.
    if churn > 0 {
        eprintln!("presence: churn");
        let which = rng.sample(n, churn);
        let (cpu, tally, t2) = (server.cpu_ms(), counts.tally(), Instant::now());
        let leaves = members::each(&peers, &which, args.join_window, "left", |_, id| {
            members::leave(room)(id)
        })
        .await;
        leaves.report(&mut out, "churn_leave");
        leaves.check("churn leaves")?;
        let low = view.reach(everyone - churn as u64, limit).await?;
        out.kv("churn_low_reached_ms", ms(low - t2));
        let t3 = Instant::now();
        let rejoins: Batch = members::each(&peers, &which, args.join_window, "joined", |_, id| {
            members::join(room)(id)
        })
        .await;
        rejoins.report(&mut out, "churn_join");
        rejoins.check("churn joins")?;
        let back = view.reach(everyone, limit).await?;
        out.kv("churn_back_reached_ms", ms(back - t3));
        out.kv("churn_total_ms", ms(back - t2));
        counts.settle(quiet, Instant::now() + limit).await;
        view.report(&mut out, "churn", t2);
        out.tally("churn_fanout", &counts.tally().since(&tally));
        server.report(&mut out, "churn", cpu);
    }

    let end = members::report_end(&mut out, &server, own_cpu0, &counts, &ctl);
    let stray = end.stray;
    let malformed = view.malformed.load(std::sync::atomic::Ordering::Relaxed);
    out.kv("malformed_diffs", malformed);
    out.print()?;

    let mut all_peers = peers;
    all_peers.push(observer);
    all_peers.push(owner);
    peer::close_all(all_peers).await;
    if end.lost > 0 {
        bail!(
            "{} connections were lost, first: {}",
            end.lost,
            end.first_lost.unwrap_or_default()
        );
    }
    if stray > 0 || malformed > 0 {
        bail!("{stray} unrequested error frames, {malformed} malformed presence frames");
    }
    Ok(())
}
