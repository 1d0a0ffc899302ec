//! Client-side write timestamps: microseconds since the Unix epoch, strictly increasing within
//! the process even if the wall clock steps back, so a later write of this process always wins
//! last-write-wins against an earlier one.

use std::{
    sync::atomic::{AtomicI64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

/// Shared by every operation of one store (one atomic, no lock).
#[derive(Debug, Default)]
pub(crate) struct WriteClock {
    last: AtomicI64,
}

impl WriteClock {
    /// A timestamp above every one handed out before.
    pub(crate) fn next(&self) -> i64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let prev = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |prev| {
                Some(now.max(prev.saturating_add(1)))
            })
            .expect("the update closure always returns Some");
        now.max(prev.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_strictly_increase_and_follow_the_wall_clock() {
        let clock = WriteClock::default();
        let a = clock.next();
        let b = clock.next();
        assert!(b > a);
        // Ahead of the wall clock (as after the clock stepped back): still increasing.
        clock.last.store(i64::MAX / 2, Ordering::Release);
        assert_eq!(clock.next(), i64::MAX / 2 + 1);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64;
        assert!(a > wall - 60_000_000 && a <= wall);
    }
}
