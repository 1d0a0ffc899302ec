//! The traffic of a `cluster` run: the shared plan, the paced senders with their ack readers,
//! and the receivers.
//!
//! Message `g` (0-based, `0..plan.total`) is sent by sender `g mod S`, into that sender's rooms
//! in turn, at `start + g / rate`: the total rate is even, not a burst per sender. Its request
//! id is `g + 1`, and its body carries the send time and `g` (`proto::tagged_send_frame`), so
//! an ack and a delivery on any connection lead back to the message.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use tokio::{sync::watch, time::Instant};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    conn::Ws,
    proto::{self, Frame},
};

const ACKED: u8 = 1;
const DELIVERED: u8 = 2;

/// What every task of a run shares. Written by: the senders (`sent_ns`), the ack readers and
/// receivers (`state` and the counters); read by the run's main task to know when to stop.
pub struct Plan {
    pub rooms: Vec<String>,
    /// Room indices of each sender, in the order its messages cycle through them.
    pub sender_rooms: Vec<Vec<usize>>,
    /// Messages in the run, warm-up included.
    pub total: u64,
    /// Messages per second, over all senders.
    pub rate: f64,
    /// Time zero of every `*_ns` value: the scheduled time of message 0.
    pub start: Instant,
    /// Messages sent before this (ns since `start`) are warm-up: counted, but not in the
    /// latency figures.
    pub warmup_ns: u64,
    pub client_msg_ids: bool,
    pub body_bytes: usize,
    /// Distinguishes this run's client_msg_ids from earlier runs' of the same users.
    pub nonce: u64,
    /// When message g was written to its socket, ns since `start` (`u64::MAX`: not yet).
    pub sent_ns: Vec<AtomicU64>,
    /// `ACKED | DELIVERED` bits of message g (delivered: to a receiver, at least once).
    state: Vec<AtomicU8>,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// Sends answered with an error frame.
    pub refused: AtomicU64,
    /// Messages delivered to a receiver (distinct).
    pub delivered: AtomicU64,
    /// Messages both acknowledged and delivered.
    pub acked_and_delivered: AtomicU64,
}

impl Plan {
    pub fn new(
        rooms: Vec<String>,
        sender_rooms: Vec<Vec<usize>>,
        total: u64,
        rate: f64,
        start: Instant,
        warmup: Duration,
    ) -> Plan {
        Plan {
            rooms,
            sender_rooms,
            total,
            rate,
            start,
            warmup_ns: warmup.as_nanos() as u64,
            client_msg_ids: true,
            body_bytes: 64,
            nonce: 0,
            sent_ns: (0..total).map(|_| AtomicU64::new(u64::MAX)).collect(),
            state: (0..total).map(|_| AtomicU8::new(0)).collect(),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            acked_and_delivered: AtomicU64::new(0),
        }
    }

    pub fn senders(&self) -> usize {
        self.sender_rooms.len()
    }

    /// The room message g goes to.
    pub fn room_of(&self, g: u64) -> usize {
        let s = self.senders() as u64;
        let rooms = &self.sender_rooms[(g % s) as usize];
        rooms[((g / s) % rooms.len() as u64) as usize]
    }

    pub fn scheduled(&self, g: u64) -> Instant {
        self.start + Duration::from_secs_f64(g as f64 / self.rate)
    }

    pub fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Sets `bit` on message g; true the first time. Counts the message as acknowledged and
    /// delivered when this completes the pair.
    fn mark(&self, g: u64, bit: u8) -> bool {
        let prev = self.state[g as usize].fetch_or(bit, Ordering::AcqRel);
        if prev & bit != 0 {
            return false;
        }
        if prev & (ACKED | DELIVERED) & !bit != 0 {
            self.acked_and_delivered.fetch_add(1, Ordering::AcqRel);
        }
        true
    }

    /// Messages acknowledged but never delivered to a receiver, and delivered without an ack.
    pub fn unmatched(&self) -> (u64, u64) {
        let (mut missing, mut unacked) = (0, 0);
        for s in &self.state {
            match s.load(Ordering::Acquire) {
                ACKED => missing += 1,
                DELIVERED => unacked += 1,
                _ => {}
            }
        }
        (missing, unacked)
    }
}

fn micros(ns: u64) -> u32 {
    (ns / 1000).min(u64::from(u32::MAX)) as u32
}

/// What one sender did.
pub struct Sent {
    pub sent: u64,
    /// Send time minus scheduled time, µs, of the measured messages (the pacing's own lag).
    pub lag_us: Vec<u32>,
    pub failure: Option<String>,
    pub sink: SplitSink<Ws, Message>,
}

/// Sends sender `k`'s messages on schedule. A late message is sent at once (open loop: a slow
/// server does not lower the offered rate).
pub async fn send(plan: Arc<Plan>, k: usize, mut sink: SplitSink<Ws, Message>) -> Sent {
    let s = plan.senders() as u64;
    let mut lag_us = Vec::with_capacity((plan.total / s) as usize + 1);
    let (mut sent, mut failure) = (0, None);
    let mut frame = String::with_capacity(plan.body_bytes + 200);
    let mut cmid = String::with_capacity(40);
    let mut g = k as u64;
    while g < plan.total {
        let at = plan.scheduled(g);
        tokio::time::sleep_until(at).await;
        let now = Instant::now();
        let sent_ns = plan.ns(now);
        if sent_ns >= plan.warmup_ns {
            lag_us.push(micros(now.saturating_duration_since(at).as_nanos() as u64));
        }
        plan.sent_ns[g as usize].store(sent_ns, Ordering::Release);
        let room = &plan.rooms[plan.room_of(g)];
        let cmid = plan.client_msg_ids.then(|| {
            use std::fmt::Write;
            cmid.clear();
            let _ = write!(cmid, "{:x}-{g}", plan.nonce);
            cmid.as_str()
        });
        proto::tagged_send_frame(&mut frame, g + 1, room, cmid, sent_ns, g, plan.body_bytes);
        if let Err(e) = sink.send(Message::text(frame.as_str())).await {
            failure = Some(format!("sender {k}: {e}"));
            break;
        }
        sent += 1;
        plan.sent.fetch_add(1, Ordering::AcqRel);
        g += s;
    }
    Sent {
        sent,
        lag_us,
        failure,
        sink,
    }
}

/// Per-room event times (ns since the plan's start), for the stall analysis.
pub type RoomTimes = BTreeMap<usize, Vec<u64>>;

/// What one sender's connection received.
pub struct Acks {
    /// send → ack, µs, of the measured messages.
    pub latency_us: Vec<u32>,
    /// When each room's acks arrived.
    pub times: RoomTimes,
    /// Latest ack of a measured message, ns since the start.
    pub last_measured_ns: Option<u64>,
    /// Refusals by error code.
    pub refusals: BTreeMap<String, u64>,
    pub first_refusal: Option<String>,
    /// Acks of a message acknowledged already, or of no message of this run.
    pub stray_acks: u64,
    /// The sender's own messages delivered back to it (it has joined its rooms).
    pub echoes: u64,
    pub lost: Option<String>,
    pub stream: SplitStream<Ws>,
}

/// Reads a sender's acks and refusals until `stop` turns true or the connection ends.
pub async fn read_acks(
    plan: Arc<Plan>,
    mut stream: SplitStream<Ws>,
    mut stop: watch::Receiver<bool>,
) -> Acks {
    let per_sender = (plan.total / plan.senders() as u64) as usize + 1;
    let mut latency_us = Vec::with_capacity(per_sender);
    let mut times = RoomTimes::new();
    let mut last_measured_ns = None;
    let mut refusals = BTreeMap::new();
    let (mut first_refusal, mut stray_acks, mut echoes, mut lost) = (None, 0, 0, None);
    loop {
        let next = tokio::select! {
            biased;
            m = stream.next() => m,
            _ = stop.wait_for(|&s| s) => break,
        };
        let text = match next {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                lost = Some(format!("sender closed by the gateway: {frame:?}"));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                lost = Some(format!("sender read error: {e}"));
                break;
            }
            None => {
                lost = Some("sender connection ended".into());
                break;
            }
        };
        let now = plan.ns(Instant::now());
        match proto::classify(text.as_str()) {
            Frame::Ack { id: Some(id) } if (1..=plan.total).contains(&id) => {
                let g = id - 1;
                if !plan.mark(g, ACKED) {
                    stray_acks += 1;
                    continue;
                }
                plan.acked.fetch_add(1, Ordering::AcqRel);
                times.entry(plan.room_of(g)).or_default().push(now);
                let sent = plan.sent_ns[g as usize].load(Ordering::Acquire);
                if sent != u64::MAX && sent >= plan.warmup_ns {
                    latency_us.push(micros(now.saturating_sub(sent)));
                    last_measured_ns = Some(now);
                }
            }
            Frame::Ack { .. } => stray_acks += 1,
            Frame::Error { id, code, message } => {
                plan.refused.fetch_add(1, Ordering::AcqRel);
                *refusals.entry(code.clone()).or_insert(0u64) += 1;
                if first_refusal.is_none() {
                    first_refusal = Some(format!("send {id:?} refused: {code}: {message}"));
                }
            }
            Frame::Msg { .. } => echoes += 1,
            _ => {}
        }
    }
    Acks {
        latency_us,
        times,
        last_measured_ns,
        refusals,
        first_refusal,
        stray_acks,
        echoes,
        lost,
        stream,
    }
}

/// One measured delivery.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the message was sent, ms after the end of the warm-up.
    pub sent_ms: u32,
    /// send → delivery, µs.
    pub us: u32,
}

/// What one receiver saw.
pub struct Received {
    /// The measured messages' deliveries.
    pub latency: Vec<Sample>,
    /// When each room's deliveries arrived.
    pub times: RoomTimes,
    pub last_measured_ns: Option<u64>,
    /// Seqs skipped in a room (a hole the gateway never filled).
    pub gaps: u64,
    /// A seq at or below one already received in its room.
    pub out_of_order: u64,
    /// A message delivered again (by its tag).
    pub dups: u64,
    /// Messages not sent by this run, or to a room this receiver did not join.
    pub foreign: u64,
    pub errors: u64,
    pub lost: Option<String>,
    pub ws: Ws,
}

/// Reads one receiver's deliveries until `stop` turns true or the connection ends. `rooms`
/// are its rooms with the `last_seq` each was joined at.
pub async fn receive(
    plan: Arc<Plan>,
    mut ws: Ws,
    rooms: Vec<(usize, u64)>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    // Next expected seq per room of this receiver.
    let mut next: BTreeMap<usize, u64> = rooms.iter().map(|&(r, last)| (r, last + 1)).collect();
    let per_room = plan.total / plan.rooms.len().max(1) as u64 + 1;
    let mut latency = Vec::with_capacity((per_room as usize) * rooms.len());
    let mut times = RoomTimes::new();
    let mut last_measured_ns = None;
    let (mut gaps, mut out_of_order, mut dups, mut foreign, mut errors) = (0, 0, 0, 0, 0);
    let mut lost = None;
    loop {
        let next_frame = tokio::select! {
            biased;
            m = ws.next() => m,
            _ = stop.wait_for(|&s| s) => break,
        };
        let text = match next_frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                lost = Some(format!("receiver closed by the gateway: {frame:?}"));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                lost = Some(format!("receiver read error: {e}"));
                break;
            }
            None => {
                lost = Some("receiver connection ended".into());
                break;
            }
        };
        let now = plan.ns(Instant::now());
        match proto::classify(text.as_str()) {
            Frame::Msg { seq, sent_ns } => {
                let Some(g) = proto::msg_tag(text.as_str()).filter(|&g| g < plan.total) else {
                    foreign += 1;
                    continue;
                };
                let room = plan.room_of(g);
                let Some(expected) = next.get_mut(&room) else {
                    foreign += 1;
                    continue;
                };
                match seq.cmp(expected) {
                    std::cmp::Ordering::Equal => *expected += 1,
                    std::cmp::Ordering::Greater => {
                        gaps += seq - *expected;
                        *expected = seq + 1;
                    }
                    std::cmp::Ordering::Less => out_of_order += 1,
                }
                if !plan.mark(g, DELIVERED) {
                    dups += 1;
                    continue;
                }
                plan.delivered.fetch_add(1, Ordering::AcqRel);
                times.entry(room).or_default().push(now);
                if let Some(sent) = sent_ns.filter(|&ns| ns >= plan.warmup_ns) {
                    latency.push(Sample {
                        sent_ms: ((sent - plan.warmup_ns) / 1_000_000) as u32,
                        us: micros(now.saturating_sub(sent)),
                    });
                    last_measured_ns = Some(now);
                }
            }
            Frame::Error { code, message, .. } => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("receiver got error {code}: {message}");
                }
            }
            _ => {}
        }
    }
    Received {
        latency,
        times,
        last_measured_ns,
        gaps,
        out_of_order,
        dups,
        foreign,
        errors,
        lost,
        ws,
    }
}

/// The longest silence of a room: the longest interval between two consecutive events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Start and end of the interval, ns since the plan's start.
    pub from_ns: u64,
    pub to_ns: u64,
}

impl Stall {
    pub fn len_ns(&self) -> u64 {
        self.to_ns - self.from_ns
    }
}

/// Each room's longest interval between consecutive events (`times` ascending) that ends after
/// `after_ns`; `None` for a room with no such interval.
pub fn longest_stall(times: &[u64], after_ns: u64) -> Option<Stall> {
    times
        .windows(2)
        .filter(|w| w[1] > after_ns)
        .map(|w| Stall {
            from_ns: w[0],
            to_ns: w[1],
        })
        .max_by_key(Stall::len_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(total: u64, senders: usize, rooms: usize) -> Plan {
        let names = (0..rooms).map(|i| format!("r{i}")).collect();
        let sender_rooms = (0..senders)
            .map(|k| (0..rooms).filter(|i| i % senders == k).collect())
            .collect();
        Plan::new(
            names,
            sender_rooms,
            total,
            1000.0,
            Instant::now(),
            Duration::ZERO,
        )
    }

    #[test]
    fn messages_cycle_through_each_senders_rooms() {
        let p = plan(40, 2, 4);
        // Sender 0 has rooms 0 and 2, sender 1 rooms 1 and 3.
        let rooms: Vec<usize> = (0..8).map(|g| p.room_of(g)).collect();
        assert_eq!(rooms, [0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(
            p.scheduled(500).duration_since(p.start),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_message_counts_once_as_acked_and_delivered() {
        let p = plan(3, 1, 1);
        assert!(p.mark(0, ACKED));
        assert!(!p.mark(0, ACKED));
        assert!(p.mark(0, DELIVERED));
        assert!(p.mark(1, DELIVERED));
        assert!(p.mark(1, ACKED));
        assert!(p.mark(2, ACKED));
        assert_eq!(p.acked_and_delivered.load(Ordering::Relaxed), 2);
        assert_eq!(p.unmatched(), (1, 0));
    }

    #[test]
    fn the_longest_stall_ends_after_the_given_time() {
        let t = [0, 100, 200, 5_000, 5_100, 5_150];
        assert_eq!(
            longest_stall(&t, 0),
            Some(Stall {
                from_ns: 200,
                to_ns: 5_000
            })
        );
        assert_eq!(
            longest_stall(&t, 5_050),
            Some(Stall {
                from_ns: 5_000,
                to_ns: 5_100
            })
        );
        assert_eq!(longest_stall(&t, 6_000), None);
        assert_eq!(longest_stall(&[7], 0), None);
    }
}
