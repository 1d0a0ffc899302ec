//! `kill -9` durability: a real `chorus standalone` process is killed while clients send. After
//! a restart every acknowledged message is in the log at its seq, seqs stay gapless and
//! continue, and resending whatever was in flight yields each message exactly once.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Client, SECRET, seqs};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tokio_tungstenite::tungstenite::Message;

struct Proc {
    child: Child,
    url: String,
}

async fn spawn(dir: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chorus"))
        .args([
            "standalone",
            "--listen",
            "127.0.0.1:0",
            "--send-rate",
            "1000000",
            "--send-burst",
            "1000000",
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("CHORUS_JWT_SECRET", SECRET)
        .env("CHORUS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the chorus binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the server prints its address")
        .unwrap()
        .expect("a listening line");
    let addr = line
        .strip_prefix("chorus standalone listening on http://")
        .expect("listening line")
        .to_owned();
    Proc {
        child,
        url: format!("ws://{addr}/v1/ws"),
    }
}

fn token(user: &str) -> String {
    let auth = chorus_gateway::Authenticator::new(SECRET.as_bytes()).unwrap();
    auth.mint(
        &chorus_core::UserId::new(user).unwrap(),
        Duration::from_secs(3600),
    )
}

/// What a sender knows: acked cmid → seq, and the cmids sent but never acked.
#[derive(Default)]
struct Ledger {
    acked: HashMap<String, u64>,
    in_flight: Vec<(String, String)>,
}

/// Sends until the connection breaks, recording every ack.
async fn send_until_broken(url: String, user: String, ledger: Arc<Mutex<Ledger>>) {
    let mut c = Client::connect_with_header(&url, &token(&user)).await;
    c.expect("ready").await;
    c.join("crash", None).await;
    for i in 0.. {
        let cmid = format!("{user}-{i}");
        let req = json!({"type":"send","id":i,"room":"crash","client_msg_id":cmid,"body":format!("body of {cmid}")});
        ledger
            .lock()
            .unwrap()
            .in_flight
            .push((user.clone(), cmid.clone()));
        if c.ws().send(Message::text(req.to_string())).await.is_err() {
            return;
        }
        loop {
            let frame = match c.ws().next().await {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t).unwrap(),
                Some(Ok(_)) => continue,
                _ => return, // killed
            };
            if frame["type"] == "ack" && frame["id"] == json!(i) {
                let mut l = ledger.lock().unwrap();
                l.in_flight.retain(|(_, c)| *c != cmid);
                l.acked.insert(cmid.clone(), frame["seq"].as_u64().unwrap());
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn(dir.path()).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let senders: Vec<_> = (0..4)
        .map(|s| {
            tokio::spawn(send_until_broken(
                proc.url.clone(),
                format!("u{s}"),
                ledger.clone(),
            ))
        })
        .collect();
    // Let traffic flow, then kill without warning once enough was acknowledged.
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if ledger.lock().unwrap().acked.len() >= 200 {
            break;
        }
    }
    proc.child.start_kill().unwrap(); // SIGKILL
    proc.child.wait().await.unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let (acked, in_flight) = {
        let l = ledger.lock().unwrap();
        (l.acked.clone(), l.in_flight.clone())
    };
    assert!(
        acked.len() >= 100,
        "enough traffic before the kill: {}",
        acked.len()
    );

    let proc = spawn(dir.path()).await;
    let mut reader = Client::connect_with_header(&proc.url, &token("reader")).await;
    reader.expect("ready").await;
    let log = whole_log(&mut reader).await;
    let last = log.len() as u64;
    assert_eq!(seqs(&log), (1..=last).collect::<Vec<_>>(), "gapless from 1");
    let by_cmid: BTreeMap<String, u64> = log
        .iter()
        .map(|m| {
            (
                m["client_msg_id"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_cmid.len(), log.len(), "no message twice");
    for (cmid, seq) in &acked {
        assert_eq!(
            by_cmid.get(cmid),
            Some(seq),
            "acknowledged {cmid} is at seq {seq}"
        );
    }

    // Clients retry what was in flight: each lands exactly once (at its old seq if it had
    // become durable, else as a new message after the log's end).
    let mut next_new = last + 1;
    for (user, cmid) in &in_flight {
        let mut c = Client::connect_with_header(&proc.url, &token(user)).await;
        c.expect("ready").await;
        c.join("crash", None).await;
        let ack = c.send("crash", cmid, &format!("body of {cmid}")).await;
        match by_cmid.get(cmid) {
            Some(seq) => assert_eq!(
                (ack["seq"].as_u64(), ack["duplicate"].as_bool()),
                (Some(*seq), Some(true))
            ),
            None => {
                assert_eq!(
                    ack["seq"].as_u64(),
                    Some(next_new),
                    "a new message continues the seqs"
                );
                next_new += 1;
            }
        }
    }
    let final_log = whole_log(&mut reader).await;
    assert_eq!(seqs(&final_log), (1..next_new).collect::<Vec<_>>());
    let mut cmids: Vec<_> = final_log
        .iter()
        .map(|m| m["client_msg_id"].as_str().unwrap().to_owned())
        .collect();
    cmids.sort();
    cmids.dedup();
    assert_eq!(cmids.len(), final_log.len(), "exactly once after retries");
}

async fn whole_log(c: &mut Client) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |m: &Value| m["seq"].as_u64().unwrap());
        let page = c
            .call(json!({"type":"history","room":"crash","after":after,"limit":100}))
            .await;
        all.extend(page["messages"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            return all;
        }
    }
}
