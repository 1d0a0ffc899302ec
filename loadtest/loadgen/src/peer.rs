//! Connections that make requests and count what is pushed to them: the building block of the
//! `presence` and `unread` modes, where thousands of members of one room each make a request
//! or two while the room's traffic streams past them.
//!
//! Each [`Peer`] is one authenticated connection driven by its own task. Requests carry numeric
//! ids and their replies come back to the caller; every other frame is a push, counted by type
//! in [`Counts`] (shared by all peers of a run) from its first bytes, without parsing it.
//! A peer may also hand the pushes of one type to a watcher (the presence observer).
//!
//! Not here: what the requests mean, checks of their results (the modes do those).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    conn::{self, Target, Ws},
    proto,
};

/// Kinds of pushed frames that are counted separately; everything else is [`Kind::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Msg,
    Presence,
    Receipts,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Msg, Kind::Presence, Kind::Receipts, Kind::Other];

    fn of(frame_type: &str) -> Kind {
        match frame_type {
            "msg" => Kind::Msg,
            "presence" => Kind::Presence,
            "receipts" => Kind::Receipts,
            _ => Kind::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Msg => "msg",
            Kind::Presence => "presence",
            Kind::Receipts => "receipts",
            Kind::Other => "other",
        }
    }
}

/// Pushed frames received by all peers of a run, by kind. Owned by the run; every peer task
/// adds to it.
pub struct Counts {
    base: Instant,
    /// When the last pushed frame arrived, in ns since `base`.
    last_ns: AtomicU64,
    frames: [AtomicU64; 4],
    bytes: [AtomicU64; 4],
    /// `msg` frames whose seq lies in `window_lo..=window_hi` (when `window_hi` is not 0):
    /// deliveries of the messages a mode is waiting for.
    window_lo: AtomicU64,
    window_hi: AtomicU64,
    in_window: AtomicU64,
    /// Connections that ended while the run still used them.
    lost: AtomicU64,
    first_lost: Mutex<Option<String>>,
    /// Error frames that answered no request of ours.
    stray_errors: AtomicU64,
}

/// A reading of [`Counts`]: frames and bytes by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub frames: [u64; 4],
    pub bytes: [u64; 4],
}

impl Tally {
    pub fn since(&self, earlier: &Tally) -> Tally {
        let mut d = Tally::default();
        for i in 0..4 {
            d.frames[i] = self.frames[i] - earlier.frames[i];
            d.bytes[i] = self.bytes[i] - earlier.bytes[i];
        }
        d
    }

    pub fn frames(&self, k: Kind) -> u64 {
        self.frames[k as usize]
    }

    pub fn bytes(&self, k: Kind) -> u64 {
        self.bytes[k as usize]
    }
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            base: Instant::now(),
            last_ns: AtomicU64::new(0),
            frames: Default::default(),
            bytes: Default::default(),
            window_lo: AtomicU64::new(0),
            window_hi: AtomicU64::new(0),
            in_window: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            first_lost: Mutex::new(None),
            stray_errors: AtomicU64::new(0),
        }
    }
}

impl Counts {
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for i in 0..4 {
            t.frames[i] = self.frames[i].load(Ordering::Relaxed);
            t.bytes[i] = self.bytes[i].load(Ordering::Relaxed);
        }
        t
    }

    /// Starts counting `msg` deliveries with a seq in `lo..=hi`.
    pub fn watch_seqs(&self, lo: u64, hi: u64) {
        self.in_window.store(0, Ordering::Relaxed);
        self.window_lo.store(lo, Ordering::Relaxed);
        self.window_hi.store(hi, Ordering::Relaxed);
    }

    pub fn in_window(&self) -> u64 {
        self.in_window.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> (u64, Option<String>) {
        let first = self.first_lost.lock().expect("never poisoned").clone();
        (self.lost.load(Ordering::Relaxed), first)
    }

    pub fn stray_errors(&self) -> u64 {
        self.stray_errors.load(Ordering::Relaxed)
    }

    fn count(&self, kind: Kind, text: &str) {
        let i = kind as usize;
        let now = self.base.elapsed().as_nanos() as u64;
        self.last_ns.fetch_max(now, Ordering::Relaxed);
        self.frames[i].fetch_add(1, Ordering::Relaxed);
        self.bytes[i].fetch_add(text.len() as u64, Ordering::Relaxed);
        if kind == Kind::Msg {
            let hi = self.window_hi.load(Ordering::Relaxed);
            if hi != 0
                && let Some(seq) = msg_seq(text)
                && (self.window_lo.load(Ordering::Relaxed)..=hi).contains(&seq)
            {
                self.in_window.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn lose(&self, why: String) {
        if self.lost.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!("connection lost: {why}");
        }
        self.first_lost
            .lock()
            .expect("never poisoned")
            .get_or_insert(why);
    }

    /// Waits until no pushed frame arrived for `quiet`, giving up at `deadline`; returns when
    /// the last frame arrived.
    pub async fn settle(&self, quiet: Duration, deadline: Instant) -> Instant {
        loop {
            let last = self.last_frame();
            let now = Instant::now();
            if now >= deadline || now.saturating_duration_since(last) >= quiet {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// When the last pushed frame arrived (the start of the run if none did).
    pub fn last_frame(&self) -> Instant {
        self.base + Duration::from_nanos(self.last_ns.load(Ordering::Relaxed))
    }
}

/// The `seq` of a `msg` frame, found without parsing it.
fn msg_seq(text: &str) -> Option<u64> {
    const SEQ: &str = r#","seq":"#;
    let at = text.find(SEQ)? + SEQ.len();
    proto::leading_u64(&text[at..]).map(|(v, _)| v)
}

/// A reply to a request.
#[derive(Debug)]
pub struct Reply {
    pub text: String,
}

impl Reply {
    /// The reply parsed, if it is of type `want`; an error naming the refusal otherwise.
    pub fn expect(&self, want: &str) -> anyhow::Result<Value> {
        let v: Value = serde_json::from_str(&self.text)
            .with_context(|| format!("unparsable reply {}", self.text))?;
        match v["type"].as_str() {
            Some(t) if t == want => Ok(v),
            Some("error") => bail!(
                "refused: {}: {}",
                v["code"].as_str().unwrap_or("?"),
                v["message"].as_str().unwrap_or("")
            ),
            _ => bail!("expected {want}, got {}", self.text),
        }
    }

    /// `retry_after_ms` when this is a `rate_limited` refusal.
    fn rate_limited(&self) -> Option<u64> {
        if !self.text.starts_with(r#"{"type":"error""#) || !self.text.contains("rate_limited") {
            return None;
        }
        let v: Value = serde_json::from_str(&self.text).ok()?;
        (v["code"] == "rate_limited").then(|| v["retry_after_ms"].as_u64().unwrap_or(100))
    }
}

struct Cmd {
    id: u64,
    frame: String,
    reply: oneshot::Sender<Reply>,
}

/// One connection driven by its own task (see the module docs). Dropping the peer closes the
/// connection politely.
pub struct Peer {
    pub user: String,
    tx: mpsc::Sender<Cmd>,
    next_id: AtomicU64,
    done: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Peer {
    /// Drives `ws` as `user`. Pushes of kind `watch.0` also go to `watch.1`, with their arrival
    /// time.
    pub fn spawn(
        user: String,
        ws: Ws,
        counts: Arc<Counts>,
        watch: Option<(Kind, mpsc::UnboundedSender<(Instant, String)>)>,
    ) -> Peer {
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(async move {
            drive(ws, rx, counts, watch).await;
            let _ = done_tx.send(());
        });
        Peer {
            user,
            tx,
            // Ids below 100 were used while connecting.
            next_id: AtomicU64::new(100),
            done: Mutex::new(Some(done_rx)),
        }
    }

    /// Sends the frame `build(id)` and waits for the reply carrying `id`.
    pub async fn request(&self, build: impl FnOnce(u64) -> String) -> anyhow::Result<Reply> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let frame = build(id);
        self.tx
            .send(Cmd { id, frame, reply })
            .await
            .map_err(|_| anyhow!("{}: connection ended", self.user))?;
        rx.await
            .map_err(|_| anyhow!("{}: connection ended before the reply", self.user))
    }

    /// Like [`Peer::request`], expecting a reply of type `want`; a `rate_limited` refusal is
    /// retried after the time it names (setup steps only: measured steps count refusals).
    pub async fn call(&self, want: &str, build: impl Fn(u64) -> String) -> anyhow::Result<Value> {
        for _ in 0..50 {
            let reply = self.request(&build).await?;
            match reply.rate_limited() {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms.max(1))).await,
                None => {
                    return reply
                        .expect(want)
                        .with_context(|| format!("{} asking {}", self.user, build(0)));
                }
            }
        }
        bail!("{}: still rate limited after 50 attempts", self.user)
    }

    /// Closes the connection and waits (at most `limit`) until the server confirmed it.
    pub async fn close(self, limit: Duration) {
        let done = self.done.lock().expect("never poisoned").take();
        drop(self.tx);
        if let Some(done) = done {
            let _ = tokio::time::timeout(limit, done).await;
        }
    }
}

/// The peer task: writes requests, routes replies by id, counts pushes. Ends when the peer is
/// dropped (closing politely) or the connection ends (counted as lost).
async fn drive(
    mut ws: Ws,
    mut rx: mpsc::Receiver<Cmd>,
    counts: Arc<Counts>,
    watch: Option<(Kind, mpsc::UnboundedSender<(Instant, String)>)>,
) {
    let mut pending: HashMap<u64, oneshot::Sender<Reply>> = HashMap::new();
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else {
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        let _ = ws.close(None).await;
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    return;
                };
                pending.insert(cmd.id, cmd.reply);
                if let Err(e) = ws.send(Message::text(cmd.frame)).await {
                    counts.lose(format!("writing: {e}"));
                    return;
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let text = t.as_str();
                    let (mut kind, mut id) = head(text);
                    // Some replies are re-serialized with their keys sorted, `id` first:
                    // parse those fully (pushes are never that way, and replies are few).
                    let parsed: Value;
                    if id.is_none() && !pending.is_empty() && Kind::of(kind) == Kind::Other {
                        parsed = serde_json::from_str(text).unwrap_or_default();
                        kind = parsed["type"].as_str().unwrap_or("");
                        id = parsed["id"].as_u64();
                    }
                    if let Some(id) = id {
                        if let Some(reply) = pending.remove(&id) {
                            let _ = reply.send(Reply { text: text.to_owned() });
                            continue;
                        }
                    } else if kind == "error" {
                        counts.stray_errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("unrequested error frame: {text}");
                    }
                    let kind = Kind::of(kind);
                    counts.count(kind, text);
                    if let Some((k, tx)) = &watch
                        && *k == kind
                    {
                        let _ = tx.send((Instant::now(), text.to_owned()));
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    counts.lose(format!("closed by the server: {frame:?}"));
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    counts.lose(format!("reading: {e}"));
                    return;
                }
                None => {
                    counts.lose("connection ended".into());
                    return;
                }
            }
        }
    }
}

/// The `type` of a frame and, for a reply, its numeric `id`, read from the first bytes: the
/// server writes `type` first, and most replies their `id` right after it.
fn head(text: &str) -> (&str, Option<u64>) {
    let Some(rest) = text.strip_prefix(r#"{"type":""#) else {
        return ("", None);
    };
    let Some(end) = rest.find('"') else {
        return ("", None);
    };
    let (kind, rest) = (&rest[..end], &rest[end + 1..]);
    let id = rest
        .strip_prefix(r#","id":"#)
        .and_then(proto::leading_u64)
        .map(|(id, _)| id);
    (kind, id)
}

/// Opens one peer per user (connected and authenticated, in no room yet), at most
/// `target.concurrency` at a time.
pub async fn connect(
    target: &Arc<Target>,
    users: Vec<String>,
    counts: &Arc<Counts>,
) -> anyhow::Result<Vec<Peer>> {
    let plan: Vec<(String, Vec<String>)> = users.iter().map(|u| (u.clone(), vec![])).collect();
    let conns = conn::connect_many_rooms(target, plan, conn::small_config()).await?;
    Ok(users
        .into_iter()
        .zip(conns)
        .map(|(user, j)| Peer::spawn(user, j.ws, counts.clone(), None))
        .collect())
}

/// Closes every peer at once.
pub async fn close_all(peers: Vec<Peer>) {
    let mut set = tokio::task::JoinSet::new();
    for p in peers {
        set.spawn(p.close(Duration::from_secs(5)));
    }
    while set.join_next().await.is_some() {}
}

/// Runs `op(i)` for every `i` in `0..n`, at most `window` at a time. Returns what each
/// returned (a latency in µs, or the error), and the time from the first start to the last
/// completion.
pub async fn run_window<F, Fut>(
    n: usize,
    window: usize,
    op: F,
) -> (Vec<Result<u32, anyhow::Error>>, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<u32>>,
{
    let started = Instant::now();
    let results = futures_util::stream::iter(0..n)
        .map(op)
        .buffered(window.max(1))
        .collect::<Vec<_>>()
        .await;
    (results, started.elapsed())
}

pub fn micros(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// Splits results into sorted latencies and the errors (counted, first one kept).
pub fn latencies(results: Vec<Result<u32, anyhow::Error>>) -> (Vec<u32>, u64, Option<String>) {
    let mut ok = Vec::with_capacity(results.len());
    let (mut errors, mut first) = (0, None);
    for r in results {
        match r {
            Ok(us) => ok.push(us),
            Err(e) => {
                errors += 1;
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    ok.sort_unstable();
    (ok, errors, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_heads() {
        assert_eq!(head(r#"{"type":"ok","id":42}"#), ("ok", Some(42)));
        assert_eq!(
            head(r#"{"type":"joined","id":7,"room":"r","last_seq":3}"#),
            ("joined", Some(7))
        );
        assert_eq!(
            head(r#"{"type":"presence","room":"r","online":3,"joined":["a"],"left":[]}"#),
            ("presence", None)
        );
        assert_eq!(
            head(r#"{"type":"msg","room":"r","seq":12,"from":"a","body":"x","ts":1}"#),
            ("msg", None)
        );
        assert_eq!(head("nonsense"), ("", None));
        assert_eq!(
            msg_seq(r#"{"type":"msg","room":"r","seq":12,"from":"a","body":"x","ts":1}"#),
            Some(12)
        );
    }

    #[test]
    fn counts_by_kind_and_seq_window() {
        let c = Counts::default();
        c.watch_seqs(10, 11);
        for seq in [9, 10, 11, 12] {
            c.count(
                Kind::Msg,
                &format!(r#"{{"type":"msg","room":"r","seq":{seq},"from":"a","body":"x","ts":1}}"#),
            );
        }
        c.count(Kind::Presence, "12345");
        let t = c.tally();
        assert_eq!(t.frames(Kind::Msg), 4);
        assert_eq!((t.frames(Kind::Presence), t.bytes(Kind::Presence)), (1, 5));
        assert_eq!(c.in_window(), 2);
        assert_eq!(t.since(&t), Tally::default());
    }
}
