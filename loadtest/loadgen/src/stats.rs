//! Pure bookkeeping: per-connection sequence checks, percentiles, and reading other processes'
//! CPU time and memory from /proc.

/// Tracks which of the `count` expected sequence numbers `first..first + count` one connection
/// received, in what order.
#[derive(Debug, Clone)]
pub struct SeqCheck {
    first: u64,
    count: u64,
    seen: Vec<u64>,
    /// Distinct expected messages received.
    pub distinct: u64,
    /// A sequence number received again.
    pub dups: u64,
    /// A sequence number received after a higher one (it arrived late: out of order).
    pub reorders: u64,
    /// A sequence number outside the expected range.
    pub unexpected: u64,
    highest: Option<u64>,
}

/// What one observation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    Unexpected,
}

impl SeqCheck {
    pub fn new(first: u64, count: u64) -> SeqCheck {
        SeqCheck {
            first,
            count,
            seen: vec![0; count.div_ceil(64) as usize],
            distinct: 0,
            dups: 0,
            reorders: 0,
            unexpected: 0,
            highest: None,
        }
    }

    pub fn observe(&mut self, seq: u64) -> Seen {
        let Some(idx) = seq.checked_sub(self.first).filter(|&i| i < self.count) else {
            self.unexpected += 1;
            return Seen::Unexpected;
        };
        let (word, bit) = ((idx / 64) as usize, 1u64 << (idx % 64));
        if self.seen[word] & bit != 0 {
            self.dups += 1;
            return Seen::Duplicate;
        }
        self.seen[word] |= bit;
        self.distinct += 1;
        match self.highest {
            Some(h) if idx < h => self.reorders += 1,
            _ => self.highest = Some(idx),
        }
        Seen::New
    }

    pub fn complete(&self) -> bool {
        self.distinct == self.count
    }

    /// Sequence numbers skipped: missing below the highest one received. (Messages after the
    /// highest one that never came are undelivered, not gaps.)
    pub fn gaps(&self) -> u64 {
        self.highest.map_or(0, |h| h + 1 - self.distinct)
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of an ascending slice; 0 for an empty one.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// utime + stime of a process (all its threads), in clock ticks, from `/proc/PID/stat`.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    parse_stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat_cpu(stat: &str) -> Option<u64> {
    // Fields 1 and 2 are `pid (comm)`; comm may hold spaces and parentheses, so split after
    // the last `)`. Field 3 (state) is then index 0, utime (14) index 11, stime (15) index 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The machine's CPU time so far, from the first line of `/proc/stat`, in clock ticks summed
/// over every core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineCpu {
    /// user, nice, system, irq, softirq.
    pub busy: u64,
    /// Time the hypervisor gave this machine's virtual cores to someone else.
    pub steal: u64,
    pub iowait: u64,
    pub idle: u64,
}

impl MachineCpu {
    pub fn read() -> Option<MachineCpu> {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    pub fn total(&self) -> u64 {
        self.busy + self.steal + self.iowait + self.idle
    }

    /// `self - earlier`, field by field.
    pub fn since(&self, earlier: &MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(earlier.busy),
            steal: self.steal.saturating_sub(earlier.steal),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            idle: self.idle.saturating_sub(earlier.idle),
        }
    }
}

fn parse_proc_stat(stat: &str) -> Option<MachineCpu> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_ascii_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(MachineCpu {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        steal: at(7),
        iowait: at(4),
        idle: at(3),
    })
}

/// VmRSS of a process in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_delivery_is_clean() {
        let mut s = SeqCheck::new(11, 100);
        for seq in 11..111 {
            assert_eq!(s.observe(seq), Seen::New);
        }
        assert!(s.complete());
        assert_eq!((s.gaps(), s.dups, s.reorders, s.unexpected), (0, 0, 0, 0));
    }

    #[test]
    fn gaps_dups_reorders_and_strays_are_counted() {
        let mut s = SeqCheck::new(1, 10);
        for seq in [1, 2, 4, 4, 3, 7, 0, 11] {
            s.observe(seq);
        }
        // Received 1,2,3,4,7: 5 and 6 are holes below 7; 8..10 simply not delivered yet.
        assert_eq!(s.distinct, 5);
        assert_eq!(s.gaps(), 2);
        assert_eq!(s.dups, 1);
        assert_eq!(s.reorders, 1);
        assert_eq!(s.unexpected, 2);
        assert!(!s.complete());
        let empty = SeqCheck::new(1, 10);
        assert_eq!(empty.gaps(), 0);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        let v = [10, 20, 30];
        assert_eq!(percentile(&v, 50.0), 20);
        assert_eq!(percentile(&v, 99.9), 30);
    }

    #[test]
    fn machine_cpu_from_proc_stat() {
        let stat = "cpu  100 5 50 1000 20 3 7 11 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let now = parse_proc_stat(stat).unwrap();
        assert_eq!(
            now,
            MachineCpu {
                busy: 165,
                steal: 11,
                iowait: 20,
                idle: 1000
            }
        );
        assert_eq!(now.total(), 1196);
        assert_eq!(now.since(&now), MachineCpu::default());
        assert!(MachineCpu::read().is_some());
    }

    #[test]
    fn proc_stat_cpu_fields() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 \
                    9 0 100 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_cpu(stat), Some(325));
        let me = std::process::id().to_string();
        assert!(cpu_ticks(&me).is_some());
        assert!(rss_kib(&me).unwrap() > 0);
    }
}
