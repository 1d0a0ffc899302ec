//! Prints how evenly the ring spreads rooms over routers, and how many rooms move when a
//! router joins: the figures quoted in ADR 0004.
//!
//!     cargo run --release -p chorus-cluster --example ring_balance [rooms]

use chorus_cluster::ring::{Member, Ring, SLOTS, VNODES, slot_of};
use chorus_core::RoomId;

fn ring(n: usize) -> Ring {
    Ring::new((0..n).map(|i| Member {
        name: format!("router-{i}"),
        addr: format!("http://router-{i}:7001"),
    }))
}

fn main() {
    let rooms: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rooms: Vec<RoomId> = (0..rooms)
        .map(|i| RoomId::new(&format!("room-{i}")).expect("valid room"))
        .collect();
    println!(
        "{} rooms, {SLOTS} slots, {VNODES} virtual nodes per router",
        rooms.len()
    );
    for n in [2, 3, 4, 5, 8] {
        let started = std::time::Instant::now();
        let r = ring(n);
        let built = started.elapsed();
        let mut counts = vec![0usize; n];
        for room in &rooms {
            let owner = r.owner(room).expect("non-empty ring");
            let i: usize = owner.name["router-".len()..].parse().expect("our names");
            counts[i] += 1;
        }
        let fair = rooms.len() as f64 / n as f64;
        let max = *counts.iter().max().unwrap_or(&0) as f64;
        let min = *counts.iter().min().unwrap_or(&0) as f64;
        let moved = if n > 2 {
            let before = ring(n - 1);
            let m = rooms
                .iter()
                .filter(|room| before.owner(room) != r.owner(room))
                .count();
            format!(
                "; joining as #{n} moved {:.1}% of rooms (ideal {:.1}%)",
                100.0 * m as f64 / rooms.len() as f64,
                100.0 / n as f64
            )
        } else {
            String::new()
        };
        println!(
            "{n} routers: busiest {:+.1}% of fair share, idlest {:+.1}%{moved} (ring built in {:.1} ms)",
            100.0 * (max / fair - 1.0),
            100.0 * (min / fair - 1.0),
            built.as_secs_f64() * 1e3,
        );
    }
    let general = RoomId::new("general").expect("valid");
    println!("slot of \"general\": {}", slot_of(&general));
}
