//! The bounded queue of frames waiting to be written to one connection.
//!
//! Producers are the room hub (live deliveries), and the connection's request tasks (acks,
//! history pages). The connection task is the only consumer: it drains everything queued and
//! writes it with one flush (one syscall for many frames).
//!
//! Full queue: a producer never waits. A push that would take the queue over its byte bound
//! closes the outbox as a slow consumer, frees what was queued, and the connection task then
//! closes the socket with 4008. The client reconnects and resumes from its last seq, so nothing
//! is lost; the room and every other subscriber never slow down for one slow reader. A single
//! frame larger than the bound is still accepted into an empty queue.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use axum::extract::ws::Utf8Bytes;
use chorus_core::RoomId;
use tokio::sync::Notify;

/// Why an outbox stopped taking frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The queue overflowed.
    SlowConsumer,
    /// The hub could not keep the room's order (router unreachable during a backfill).
    Resync,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    closed: Option<Closed>,
}

/// Shared (`Arc`) by the connection task and its producers; lives as long as any of them.
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    max_bytes: usize,
    /// Requests of this connection currently in flight (bounded by the connection task).
    pub in_flight: AtomicUsize,
    /// Rooms whose subscription the hub ended (see [`Outbox::revoke`]).
    revoked: Mutex<Vec<RoomId>>,
    /// Set with `revoked`, so that the check before every client frame takes no lock.
    any_revoked: AtomicBool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Outbox {
    pub fn new(max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::default(),
            ready: Notify::new(),
            max_bytes,
            in_flight: AtomicUsize::new(0),
            revoked: Mutex::new(Vec::new()),
            any_revoked: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .expect("outbox lock is never held across a panic")
    }

    /// Queues `frame`. Returns false if the outbox is (now) closed; the frame is dropped and
    /// the connection will be told to resume.
    pub fn push(&self, frame: Utf8Bytes) -> bool {
        let mut s = self.lock();
        if s.closed.is_some() {
            return false;
        }
        let len = frame.len();
        if !s.frames.is_empty() && s.bytes + len > self.max_bytes {
            s.closed = Some(Closed::SlowConsumer);
            s.frames = VecDeque::new();
            s.bytes = 0;
            drop(s);
            self.ready.notify_one();
            return false;
        }
        let was_empty = s.frames.is_empty();
        s.frames.push_back(frame);
        s.bytes += len;
        drop(s);
        if was_empty {
            self.ready.notify_one();
        }
        true
    }

    /// Closes the outbox for `reason` (the first reason wins) and wakes the connection.
    pub fn close(&self, reason: Closed) {
        let mut s = self.lock();
        if s.closed.is_none() {
            s.closed = Some(reason);
            s.frames = VecDeque::new();
            s.bytes = 0;
        }
        drop(s);
        self.ready.notify_one();
    }

    /// The hub ended this connection's subscription to `room` (a ban, a removal): the
    /// connection drops the room from its joined set before its next request.
    pub fn revoke(&self, room: &RoomId) {
        self.revoked
            .lock()
            .expect("revoked lock is never held across a panic")
            .push(room.clone());
        self.any_revoked.store(true, Ordering::Release);
    }

    /// Rooms revoked since the last call.
    pub fn take_revoked(&self) -> Vec<RoomId> {
        if !self.any_revoked.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .revoked
                .lock()
                .expect("revoked lock is never held across a panic"),
        )
    }

    /// Resolves when frames were queued or the outbox closed since the last drain.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Moves every queued frame into `out` (in order). Returns the close reason if closed.
    pub fn drain(&self, out: &mut Vec<Utf8Bytes>) -> Option<Closed> {
        let mut s = self.lock();
        out.extend(s.frames.drain(..));
        s.bytes = 0;
        if s.frames.capacity() > 64 {
            s.frames.shrink_to(16);
        }
        s.closed
    }

    pub fn try_begin_request(&self, max: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub fn end_request(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(n))
    }

    #[test]
    fn drains_in_order() {
        let o = Outbox::new(100);
        assert!(o.push(frame(1)));
        assert!(o.push(frame(2)));
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), None);
        assert_eq!(out.iter().map(|f| f.len()).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn overflow_closes_as_slow_consumer_and_frees_the_queue() {
        let o = Outbox::new(10);
        assert!(o.push(frame(6)));
        assert!(!o.push(frame(6)));
        assert!(!o.push(frame(1)), "a closed outbox takes nothing more");
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Some(Closed::SlowConsumer));
        assert!(out.is_empty());
    }

    #[test]
    fn one_large_frame_fits_an_empty_queue() {
        let o = Outbox::new(10);
        assert!(o.push(frame(50)));
    }

    #[test]
    fn in_flight_requests_are_bounded() {
        let o = Outbox::new(10);
        assert!(o.try_begin_request(2));
        assert!(o.try_begin_request(2));
        assert!(!o.try_begin_request(2));
        o.end_request();
        assert!(o.try_begin_request(2));
    }
}
