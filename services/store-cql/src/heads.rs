//! The append fence's memory: per room, the head this store instance last read or wrote, or
//! the deadline until which the room settles after a failed append.
//!
//! Owned by one [`CqlStore`](crate::CqlStore); every operation on a room touches its entry
//! under a short lock that is never held across an await. Rooms are independent: appends to
//! different rooms only share this lock for a map lookup. Bounded by `cap` rooms: past it,
//! arbitrary entries whose deadline has passed are forgotten, which only costs a database read
//! on their room's next append.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use chorus_core::RoomId;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// The room's log ends at this seq, as far as this instance knows.
    Known(u64),
    /// An append failed; writes of it may still be in flight until this instant.
    Settling(Instant),
}

#[derive(Debug)]
pub(crate) struct Heads {
    rooms: Mutex<HashMap<RoomId, Head>>,
    cap: usize,
}

impl Heads {
    pub(crate) fn new(cap: usize) -> Heads {
        Heads {
            rooms: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomId, Head>> {
        // The map stays consistent even if a holder panicked: every update is one insert.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, room: &RoomId) -> Option<Head> {
        self.rooms().get(room).copied()
    }

    /// Records a head read from the database or just written. A read that waited for an
    /// earlier settle deadline (`waited`) must not hide a newer failure: if the room started
    /// settling again meanwhile, the entry is kept. A known head never goes down: a read
    /// that started before a concurrent append finished (a join's `last_seq`) would
    /// otherwise put the fence behind the log and refuse the next append.
    pub(crate) fn set(&self, room: &RoomId, head: u64, waited: Option<Instant>) {
        let mut rooms = self.rooms();
        match rooms.get(room) {
            Some(Head::Settling(deadline)) if Some(*deadline) != waited => return,
            Some(Head::Known(known)) if *known > head => return,
            _ => {}
        }
        self.insert(&mut rooms, room, Head::Known(head));
    }

    /// Forgets the room's head after a failed append and makes it settle until `until`.
    pub(crate) fn failed(&self, room: &RoomId, until: Instant) {
        let mut rooms = self.rooms();
        self.insert(&mut rooms, room, Head::Settling(until));
    }

    fn insert(&self, rooms: &mut HashMap<RoomId, Head>, room: &RoomId, head: Head) {
        if rooms.len() >= self.cap && !rooms.contains_key(room) {
            // Evict about 1/16 of the map at once, so eviction costs O(1) per insert on average.
            let now = Instant::now();
            let mut excess = rooms.len() + 1 - self.cap + self.cap / 16;
            rooms.retain(|_, h| {
                let evictable = match h {
                    Head::Known(_) => true,
                    Head::Settling(deadline) => *deadline <= now,
                };
                if excess > 0 && evictable {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        rooms.insert(room.clone(), head);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.rooms().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn room(n: usize) -> RoomId {
        RoomId::new(&format!("r{n}")).unwrap()
    }

    #[test]
    fn a_read_that_waited_does_not_hide_a_newer_failure() {
        let heads = Heads::new(10);
        let r = room(1);
        let first = Instant::now() + Duration::from_secs(1);
        heads.failed(&r, first);
        let second = first + Duration::from_secs(1);
        heads.failed(&r, second);
        heads.set(&r, 5, Some(first));
        assert_eq!(heads.get(&r), Some(Head::Settling(second)));
        heads.set(&r, 5, Some(second));
        assert_eq!(heads.get(&r), Some(Head::Known(5)));
        heads.set(&r, 6, None);
        assert_eq!(heads.get(&r), Some(Head::Known(6)));
    }

    #[test]
    fn a_stale_read_never_moves_the_fence_back() {
        let heads = Heads::new(10);
        let r = room(1);
        heads.set(&r, 16, None); // an append of 16 finished
        heads.set(&r, 15, None); // a join's read that started before it
        assert_eq!(heads.get(&r), Some(Head::Known(16)));
    }

    #[test]
    fn the_cache_stays_bounded_and_keeps_rooms_that_are_settling() {
        let heads = Heads::new(64);
        let settling = room(1_000_000);
        heads.failed(&settling, Instant::now() + Duration::from_secs(60));
        for n in 0..1_000 {
            heads.set(&room(n), n as u64, None);
            assert!(heads.len() <= 64);
        }
        assert!(matches!(heads.get(&settling), Some(Head::Settling(_))));
        assert_eq!(heads.get(&room(999)), Some(Head::Known(999)));
    }
}
