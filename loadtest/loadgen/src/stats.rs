//! Bookkeeping: per-connection sequence checks, percentiles, reading other processes' CPU time
//! and memory from /proc, seeded random choices, and `key=value` result lines.

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

/// `key=value` result lines.
#[derive(Default)]
pub struct Out(String);

impl Out {
    pub fn kv(&mut self, k: &str, v: impl std::fmt::Display) {
        use std::fmt::Write;
        let _ = writeln!(self.0, "{k}={v}");
    }

    /// `{k}_p50_us`, `_p99_us`, `_max_us` and `_samples` of sorted latencies.
    pub fn latency(&mut self, k: &str, sorted: &[u32]) {
        self.kv(&format!("{k}_samples"), sorted.len());
        self.kv(&format!("{k}_p50_us"), percentile(sorted, 50.0));
        self.kv(&format!("{k}_p99_us"), percentile(sorted, 99.0));
        self.kv(&format!("{k}_max_us"), sorted.last().copied().unwrap_or(0));
    }

    /// `{k}_{kind}_frames` and `_bytes` of a tally.
    pub fn tally(&mut self, k: &str, t: &crate::peer::Tally) {
        for kind in crate::peer::Kind::ALL {
            self.kv(&format!("{k}_{}_frames", kind.name()), t.frames(kind));
            self.kv(&format!("{k}_{}_bytes", kind.name()), t.bytes(kind));
        }
    }

    pub fn print(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(self.0.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }
}

/// The server process's CPU time and memory, read from /proc (nothing without a pid).
pub struct ServerProc {
    pid: Option<String>,
    clk_tck: u64,
}

impl ServerProc {
    pub fn new(pid: Option<u32>, clk_tck: u64) -> ServerProc {
        ServerProc {
            pid: pid.map(|p| p.to_string()),
            clk_tck: clk_tck.max(1),
        }
    }

    /// utime + stime so far, in ms.
    pub fn cpu_ms(&self) -> Option<u64> {
        let ticks = cpu_ticks(self.pid.as_deref()?)?;
        Some(ticks * 1000 / self.clk_tck)
    }

    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid.as_deref()?)
    }

    /// This process's CPU time so far, in ms.
    pub fn own_cpu_ms(&self) -> Option<u64> {
        Some(cpu_ticks("self")? * 1000 / self.clk_tck)
    }

    /// Records `{k}_server_cpu_ms` since `cpu_before` and `{k}_server_rss_kib` now.
    pub fn report(&self, out: &mut Out, k: &str, cpu_before: Option<u64>) {
        if let (Some(a), Some(b)) = (cpu_before, self.cpu_ms()) {
            out.kv(&format!("{k}_server_cpu_ms"), b.saturating_sub(a));
        }
        if let Some(rss) = self.rss_kib() {
            out.kv(&format!("{k}_server_rss_kib"), rss);
        }
    }
}

/// A small deterministic generator (splitmix64): random choices that a seed reproduces.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `k` distinct indices of `0..n`, in random order.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        let k = k.min(n);
        for i in 0..k {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

/// A seed from the clock, for runs that do not give one.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
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

    #[test]
    fn samples_are_distinct_and_reproducible() {
        let a = Rng::new(7).sample(100, 30);
        let b = Rng::new(7).sample(100, 30);
        assert_eq!(a, b);
        let mut s = a.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 30);
        assert!(s.iter().all(|&i| i < 100));
        assert_eq!(Rng::new(1).sample(5, 10).len(), 5);
    }
}

/// How long the member benchmarks wait, what server process they watch, and their seed.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// A phase's deliveries are over once no frame arrived for this long, in ms.
    #[arg(long, default_value_t = 1000)]
    pub quiet_ms: u64,
    /// Give up on any one wait after this long, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Server process id: its CPU time and memory are reported per phase.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    pub clk_tck: u64,
    /// Seed of the random choices (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
}
