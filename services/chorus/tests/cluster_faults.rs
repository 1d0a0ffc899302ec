//! The cluster under faults, with real processes: `chorus router` and `chorus gateway`
//! binaries on the nats-server and Cassandra that `make test` starts. Routers are killed with
//! SIGKILL, a router is added under load, nats-server is restarted, the database is cut off.
//! Through all of it clients keep sending (with client_msg_ids, retrying like a real client)
//! and receiving (resuming with `since` when a gateway drops them), and afterwards:
//! - every acknowledged message is in history exactly once, at the seq its ack gave;
//! - every room's log is gapless from 1;
//! - every receiver saw every seq exactly once, in order.
//!
//! Each test has its own keyspace and subject prefix; process logs go to
//! `target/tmp/procs/<test>/`.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chorus_core::RoomId;
use common::{
    Client, cluster,
    procs::{ProcCluster, log_dir},
    token,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

// ---------------------------------------------------------------------------------------------
// Clients that behave like a careful app: retry with the same client_msg_id, resume with since.

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(url: &str, user: &str) -> Option<Ws> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token(user)).parse().unwrap(),
    );
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .ok()?
    .ok()?;
    Some(ws)
}

/// The next JSON text frame, or None when the connection ended.
async fn next_json(ws: &mut Ws, within: Duration) -> Option<Option<Value>> {
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => return Some(None), // quiet, still connected
            Ok(Some(Ok(Message::Text(t)))) => return Some(Some(serde_json::from_str(&t).unwrap())),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Joins `room` (resuming after `since` if given); Ok once `joined` arrived, else what came
/// instead.
async fn join(
    ws: &mut Ws,
    room: &str,
    since: Option<u64>,
    id: u64,
    backlog: &mut Vec<Value>,
) -> Result<(), String> {
    let mut frame = json!({"type":"join","id":id,"room":room});
    if let Some(s) = since {
        frame["since"] = json!(s);
    }
    if ws.send(Message::text(frame.to_string())).await.is_err() {
        return Err("the connection broke before the join".into());
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match next_json(ws, Duration::from_secs(1)).await {
            None => return Err("the connection closed during the join".into()),
            Some(None) => {}
            Some(Some(v)) => match v["type"].as_str() {
                Some("joined") if v["id"] == id => return Ok(()),
                Some("error") if v["id"] == id => return Err(v.to_string()),
                Some("msg") => backlog.push(v),
                _ => {}
            },
        }
    }
    Err("no answer to the join within 15 s".into())
}

#[derive(Default)]
struct Ledger {
    /// cmid → seq, per room.
    acked: HashMap<String, BTreeMap<String, u64>>,
    /// When each ack arrived, per room.
    ack_times: HashMap<String, Vec<Instant>>,
    errors: BTreeMap<String, u64>,
}

/// Sends numbered messages to `room` until `stop`, each until acknowledged.
async fn sender(
    url: String,
    room: String,
    idx: usize,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let user = format!("s{idx}-{room}");
    let mut ws: Option<Ws> = None;
    let mut id = 0u64;
    let mut i = 0u64;
    while !stop.load(Ordering::Acquire) {
        let cmid = format!("{room}-s{idx}-{i}");
        // Until this cmid is acked (or we give up after a long time).
        let started = Instant::now();
        loop {
            if started.elapsed() > Duration::from_secs(60) {
                panic!("{cmid} never acknowledged");
            }
            if ws.is_none() {
                let Some(mut c) = connect(&url, &user).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                id += 1;
                if join(&mut c, &room, None, id, &mut Vec::new())
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                ws = Some(c);
            }
            let c = ws.as_mut().unwrap();
            id += 1;
            let frame = json!({"type":"send","id":id,"room":room,"client_msg_id":cmid,"body":format!("m{i}")});
            if c.send(Message::text(frame.to_string())).await.is_err() {
                ws = None;
                continue;
            }
            let mut outcome = None;
            let deadline = Instant::now() + Duration::from_secs(20);
            while outcome.is_none() && Instant::now() < deadline {
                match next_json(c, Duration::from_secs(1)).await {
                    None => break,
                    Some(None) => {}
                    Some(Some(v)) if v["id"] == id => outcome = Some(v),
                    Some(Some(_)) => {}
                }
            }
            match outcome {
                Some(v) if v["type"] == "ack" => {
                    let seq = v["seq"].as_u64().unwrap();
                    let mut l = ledger.lock().unwrap();
                    let prev = l
                        .acked
                        .entry(room.clone())
                        .or_default()
                        .insert(cmid.clone(), seq);
                    assert!(
                        prev.is_none() || prev == Some(seq),
                        "{cmid} acked at {prev:?} and {seq}"
                    );
                    l.ack_times
                        .entry(room.clone())
                        .or_default()
                        .push(Instant::now());
                    break;
                }
                Some(v) => {
                    let code = v["code"].as_str().unwrap_or("?").to_owned();
                    *ledger.lock().unwrap().errors.entry(code).or_default() += 1;
                    let wait = v["retry_after_ms"].as_u64().unwrap_or(100);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
                None => {
                    ws = None; // broken or silent: reconnect and resend the same cmid
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Receives `room` until it has seen seq `target` (set at the end), resuming after drops.
/// Returns every seq it saw, in order, and the violations it noticed.
async fn receiver(
    url: String,
    room: String,
    idx: usize,
    target: Arc<AtomicU64>,
) -> (Vec<(u64, String)>, Vec<String>) {
    let user = format!("r{idx}-{room}");
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut problems = Vec::new();
    let mut id = 0u64;
    // Stuck means no new message for this long while more were expected, however slow the
    // machine; `why` says what the last attempt to get back in ran into.
    let patience = Duration::from_secs(120);
    let mut progress_at = Instant::now();
    let mut why = String::from("connected");
    let check = |v: &Value, seen: &mut Vec<(u64, String)>, problems: &mut Vec<String>| {
        let seq = v["seq"].as_u64().unwrap();
        let last = seen.last().map_or(0, |(s, _)| *s);
        if seq != last + 1 {
            problems.push(format!("{room}: got seq {seq} after {last}"));
        }
        if seq > last {
            let cmid = v["client_msg_id"].as_str().unwrap_or_default().to_owned();
            seen.push((seq, cmid));
        }
    };
    'outer: loop {
        let target_now = target.load(Ordering::Acquire);
        if target_now > 0 && seen.last().map_or(0, |(s, _)| *s) >= target_now {
            break;
        }
        assert!(
            progress_at.elapsed() < patience,
            "{room}: receiver stuck at {:?} for {patience:?} (target {target_now}); last: {why}",
            seen.last()
        );
        let Some(mut c) = connect(&url, &user).await else {
            why = "the gateway refused the connection".into();
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        id += 1;
        let mut backlog = Vec::new();
        let since = seen.last().map_or(0, |(s, _)| *s);
        if let Err(e) = join(&mut c, &room, Some(since), id, &mut backlog).await {
            why = format!("join after {since}: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let mut reached = seen.len();
        for v in &backlog {
            check(v, &mut seen, &mut problems);
        }
        loop {
            if seen.len() > reached {
                reached = seen.len();
                progress_at = Instant::now();
            }
            let target_now = target.load(Ordering::Acquire);
            let at = seen.last().map_or(0, |(s, _)| *s);
            if target_now > 0 && at >= target_now {
                break 'outer;
            }
            if progress_at.elapsed() >= patience {
                why = format!("joined after {since}, then silent");
                continue 'outer;
            }
            match next_json(&mut c, Duration::from_millis(500)).await {
                None => {
                    // dropped (1013, 4008, gateway gone): resume
                    why = format!("dropped after {at}");
                    continue 'outer;
                }
                Some(None) => {}
                Some(Some(v)) if v["type"] == "msg" => check(&v, &mut seen, &mut problems),
                Some(Some(_)) => {}
            }
        }
    }
    (seen, problems)
}

/// The whole log of `room`, through any gateway.
async fn whole_log(url: &str, room: &str) -> Vec<Value> {
    let mut c = Client::connect_with_header(url, &token("auditor")).await;
    c.expect("ready").await;
    let mut out: Vec<Value> = Vec::new();
    loop {
        let after = out.last().map_or(0, |m| m["seq"].as_u64().unwrap());
        let page = c
            .call(json!({"type":"history","room":room,"after":after,"limit":100}))
            .await;
        assert_eq!(page["type"], "history", "{page}");
        let msgs = page["messages"].as_array().unwrap().clone();
        let more = page["has_more"].as_bool().unwrap();
        out.extend(msgs);
        if !more {
            return out;
        }
    }
}

struct Traffic {
    rooms: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
    #[allow(clippy::type_complexity)]
    receivers: Vec<(
        String,
        Arc<AtomicU64>,
        Vec<tokio::task::JoinHandle<(Vec<(u64, String)>, Vec<String>)>>,
    )>,
}

impl Traffic {
    /// `senders` and `receivers` per room, spread over the gateways.
    fn start(c: &ProcCluster, rooms: &[String], senders: usize, receivers: usize) -> Traffic {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut sender_tasks = Vec::new();
        let mut receiver_tasks = Vec::new();
        for (i, room) in rooms.iter().enumerate() {
            for k in 0..senders {
                sender_tasks.push(tokio::spawn(sender(
                    c.gateway_url(i + k),
                    room.clone(),
                    k,
                    ledger.clone(),
                    stop.clone(),
                )));
            }
            let target = Arc::new(AtomicU64::new(0));
            let tasks = (0..receivers)
                .map(|k| {
                    tokio::spawn(receiver(
                        c.gateway_url(i + k + 1),
                        room.clone(),
                        k,
                        target.clone(),
                    ))
                })
                .collect();
            receiver_tasks.push((room.clone(), target, tasks));
        }
        let (senders, receivers) = (sender_tasks, receiver_tasks);
        Traffic {
            rooms: rooms.to_vec(),
            ledger,
            stop,
            senders,
            receivers,
        }
    }

    fn acked(&self) -> usize {
        self.ledger
            .lock()
            .unwrap()
            .acked
            .values()
            .map(|m| m.len())
            .sum()
    }

    async fn wait_for_acks(&self, more: usize, within: Duration) {
        let goal = self.acked() + more;
        let deadline = Instant::now() + within;
        while self.acked() < goal {
            assert!(
                Instant::now() < deadline,
                "traffic stalled at {} acks",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every room has an ack newer than `since`: each one is served again, not
    /// only some of them. Fails naming the rooms that are not, and what senders were told.
    async fn wait_for_every_room_after(&self, since: Instant, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let waiting: Vec<&String> = self
                .rooms
                .iter()
                .filter(|r| {
                    first_ack_after(&self.ledger, std::slice::from_ref(*r), since).is_none()
                })
                .collect();
            if waiting.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{waiting:?} not served again within {within:?}; client-visible errors {:?}",
                self.ledger.lock().unwrap().errors
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops sending, then checks every guarantee against history and the receivers.
    async fn finish_and_verify(self, c: &ProcCluster) -> Arc<Mutex<Ledger>> {
        self.stop.store(true, Ordering::Release);
        for s in self.senders {
            s.await.expect("sender finished cleanly");
        }
        let url = c.gateway_url(0);
        let mut total = 0;
        for (room, target, tasks) in self.receivers {
            let log = whole_log(&url, &room).await;
            let seqs: Vec<u64> = log.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
            let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(seqs, expected, "{room}: the log is gapless from 1");
            let mut where_is: HashMap<String, Vec<u64>> = HashMap::new();
            for m in &log {
                let cmid = m["client_msg_id"].as_str().unwrap().to_owned();
                where_is
                    .entry(cmid)
                    .or_default()
                    .push(m["seq"].as_u64().unwrap());
            }
            let acked = self
                .ledger
                .lock()
                .unwrap()
                .acked
                .get(&room)
                .cloned()
                .unwrap_or_default();
            for (cmid, seq) in &acked {
                assert_eq!(
                    where_is.get(cmid),
                    Some(&vec![*seq]),
                    "{room}: acked {cmid} must be in history exactly once, at seq {seq}"
                );
            }
            for (cmid, at) in &where_is {
                assert_eq!(at.len(), 1, "{room}: {cmid} stored twice: {at:?}");
            }
            target.store(seqs.len() as u64, Ordering::Release);
            let in_log: Vec<(u64, String)> = log
                .iter()
                .map(|m| {
                    let cmid = m["client_msg_id"].as_str().unwrap().to_owned();
                    (m["seq"].as_u64().unwrap(), cmid)
                })
                .collect();
            for task in tasks {
                let (seen, problems) = task.await.expect("receiver finished");
                assert!(problems.is_empty(), "{room}: {problems:?}");
                assert!(
                    seen == in_log,
                    "{room}: a receiver saw {} messages differing from the log's {}",
                    seen.len(),
                    in_log.len()
                );
            }
            total += acked.len();
        }
        let errors = self.ledger.lock().unwrap().errors.clone();
        println!(
            "{}: {total} acknowledged messages in {} rooms verified; client-visible errors {errors:?}",
            c.name,
            self.rooms.len()
        );
        self.ledger
    }
}

fn rooms(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("room-{i}")).collect()
}

fn shared_services() -> (String, String) {
    (cluster::nats_url(), cluster::cql_contact())
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_gateways_see_one_order() {
    let (nats, cql) = shared_services();
    let c = ProcCluster::start("one-order", nats, cql, 2).await;
    // Three senders per room spread over both gateways; receivers on both gateways.
    let traffic = Traffic::start(&c, &rooms(3), 3, 2);
    traffic.wait_for_acks(150, Duration::from_secs(60)).await;
    traffic.finish_and_verify(&c).await;
}

/// The first ack after `since` in any of `rooms`: when those rooms were served again.
fn first_ack_after(ledger: &Mutex<Ledger>, rooms: &[String], since: Instant) -> Option<Duration> {
    let l = ledger.lock().unwrap();
    rooms
        .iter()
        .filter_map(|r| l.ack_times.get(r)?.iter().find(|t| **t > since).copied())
        .max()
        .map(|t| t - since)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_router_moves_its_rooms_without_loss() {
    let (nats, cql) = shared_services();
    let mut c = ProcCluster::start("kill-router", nats, cql, 2).await;
    let rooms = rooms(6);
    let victim = "router-0";
    let moved: Vec<String> = rooms
        .iter()
        .filter(|r| c.owner(r) == victim)
        .cloned()
        .collect();
    assert!(!moved.is_empty(), "some room lives on {victim}");
    let traffic = Traffic::start(&c, &rooms, 1, 1);
    traffic.wait_for_acks(60, Duration::from_secs(60)).await;

    let killed = Instant::now();
    c.kill_router(victim).await;
    traffic.wait_for_acks(150, Duration::from_secs(60)).await;
    // Every moved room must be served again, not just the survivors.
    let deadline = Instant::now() + Duration::from_secs(30);
    let failover = loop {
        let served = moved
            .iter()
            .all(|r| first_ack_after(&traffic.ledger, std::slice::from_ref(r), killed).is_some());
        if served {
            break first_ack_after(&traffic.ledger, &moved, killed).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "rooms of the killed router never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "kill -9 {victim}: its {} rooms were served again after {:.2} s (member TTL 2 s, session TTL 2 s)",
        moved.len(),
        failover.as_secs_f64()
    );
    traffic.wait_for_acks(60, Duration::from_secs(60)).await;
    traffic.finish_and_verify(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_added_under_load_takes_over_its_share_without_loss() {
    let (nats, cql) = shared_services();
    let mut c = ProcCluster::start("add-router", nats, cql, 2).await;
    let rooms = rooms(12);
    let traffic = Traffic::start(&c, &rooms, 1, 1);
    traffic.wait_for_acks(80, Duration::from_secs(60)).await;

    c.add_router("router-2").await;
    let moving: Vec<&String> = rooms.iter().filter(|r| c.owner(r) == "router-2").collect();
    assert!(!moving.is_empty(), "the newcomer owns some of the rooms");
    traffic.wait_for_acks(200, Duration::from_secs(60)).await;
    // The moved rooms' senders may still be waiting out the hand-over: give them time.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sequenced = loop {
        let n = c
            .router_metric("router-2", "chorus_messages_sequenced_total")
            .await;
        if n > 0.0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "router-2 sequenced nothing; the rooms never moved"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "router-2 took {} of {} rooms and sequenced {sequenced} messages",
        moving.len(),
        rooms.len()
    );
    traffic.finish_and_verify(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_loses_no_delivery() {
    // A private nats-server, so the shared one stays up for the other tests.
    let port = 16000 + (std::process::id() % 900) as u16;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/nats.sh");
    let nats = |action: &'static str| {
        let status = std::process::Command::new("bash")
            .arg(script)
            .arg(action)
            .env("NATS_PORT", port.to_string())
            .env("NATS_HTTP_PORT", (port + 1000).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("scripts/nats.sh runs");
        assert!(status.success(), "scripts/nats.sh {action} failed");
    };
    nats("start");
    let url = format!("nats://127.0.0.1:{port}");
    let c = ProcCluster::start("nats-restart", url, cluster::cql_contact(), 2).await;
    let traffic = Traffic::start(&c, &rooms(4), 1, 2);
    traffic.wait_for_acks(60, Duration::from_secs(60)).await;

    nats("stop");
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats("start");
    traffic.wait_for_acks(120, Duration::from_secs(60)).await;
    traffic.finish_and_verify(&c).await;
    nats("clean");
}

/// A TCP relay between the routers and the database that can cut every connection and refuse
/// new ones: to the routers, exactly a database that went away.
struct Cut {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    generation: Arc<AtomicU64>,
}

impl Cut {
    async fn start(upstream: String) -> Cut {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (d, g) = (down.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if d.load(Ordering::Acquire) {
                    continue; // dropped at once
                }
                let (d, g) = (d.clone(), g.clone());
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let born = g.load(Ordering::Acquire);
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let relay = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while !d.load(Ordering::Acquire) && g.load(Ordering::Acquire) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = relay => {}, _ = cut => {} }
                });
            }
        });
        Cut {
            addr,
            down,
            generation,
        }
    }

    fn cut(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.down.store(true, Ordering::Release);
    }

    fn restore(&self) {
        self.down.store(false, Ordering::Release);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_sends_as_unavailable_and_recovers() {
    let relay = Cut::start(cluster::cql_contact()).await;
    let c = ProcCluster::start("db-outage", cluster::nats_url(), relay.addr.to_string(), 2).await;
    let rooms = rooms(4);
    let traffic = Traffic::start(&c, &rooms, 1, 1);
    traffic.wait_for_acks(60, Duration::from_secs(60)).await;

    relay.cut();
    let cut_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let acked_during = {
        let l = traffic.ledger.lock().unwrap();
        l.ack_times
            .values()
            .flatten()
            .filter(|t| **t > cut_at + Duration::from_secs(3))
            .count()
    };
    let unavailable = traffic
        .ledger
        .lock()
        .unwrap()
        .errors
        .get("unavailable")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        acked_during, 0,
        "no send may be acknowledged while the database is away"
    );
    assert!(unavailable > 0, "senders were told `unavailable`");
    relay.restore();
    let restored = Instant::now();
    traffic
        .wait_for_every_room_after(restored, Duration::from_secs(60))
        .await;
    traffic.wait_for_acks(60, Duration::from_secs(90)).await;
    println!(
        "database outage: {unavailable} sends refused with `unavailable`; first ack {:.2} s after the database came back",
        first_ack_after(&traffic.ledger, &rooms, restored)
            .unwrap_or_default()
            .as_secs_f64()
    );
    traffic.finish_and_verify(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_stopped_gracefully_hands_its_rooms_over_at_once() {
    let (nats, cql) = shared_services();
    let mut c = ProcCluster::start("graceful-stop", nats, cql, 2).await;
    let rooms = rooms(6);
    let leaving = "router-1";
    let moved: Vec<String> = rooms
        .iter()
        .filter(|r| c.owner(r) == leaving)
        .cloned()
        .collect();
    assert!(!moved.is_empty(), "some room lives on {leaving}");
    let traffic = Traffic::start(&c, &rooms, 1, 1);
    traffic.wait_for_acks(60, Duration::from_secs(60)).await;

    let mut p = c.routers.remove(leaving).unwrap();
    let pid = p.child.id().expect("running").to_string();
    let stopped = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), p.child.wait())
        .await
        .expect("the router exits after handing over")
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
    traffic.wait_for_acks(100, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let handover = loop {
        let served = moved
            .iter()
            .all(|r| first_ack_after(&traffic.ledger, std::slice::from_ref(r), stopped).is_some());
        if served {
            break first_ack_after(&traffic.ledger, &moved, stopped).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the moved rooms were never served again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "SIGTERM {leaving}: its {} rooms were served again after {:.2} s",
        moved.len(),
        handover.as_secs_f64()
    );
    // Released, not left to expire: the leaving router handed over every slot it held
    // before it exited (its log says so for each one).
    let log = std::fs::read_to_string(log_dir(c.name).join(format!("{leaving}.log"))).unwrap();
    let released = log.matches("slot handed over").count();
    let slots: std::collections::BTreeSet<u32> = moved
        .iter()
        .map(|r| chorus_cluster::ring::slot_of(&RoomId::new(r).unwrap()))
        .collect();
    assert!(
        released >= slots.len(),
        "{leaving} released {released} slots, its rooms were in {}",
        slots.len()
    );
    traffic.finish_and_verify(&c).await;
}
