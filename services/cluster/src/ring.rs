//! The consistent-hash ring: rooms → slots → routers (ADR 0004).
//!
//! A room hashes (FNV-1a over its name's bytes) to one of [`SLOTS`] slots; the ring maps each
//! slot to a router. The ring is a `hashring` of [`VNODES`] virtual nodes per router, hashed
//! with SipHash over explicit bytes (the router's name and the replica number; the slot number
//! big-endian), so every process of every build computes the same owner for a slot. Only the
//! member list goes into a ring: two processes with the same members have the same ring, and
//! [`Ring::version`] is a fingerprint of that list.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
};

use chorus_core::RoomId;
use serde::{Deserialize, Serialize};

/// Slots rooms are spread over: the unit of ownership and of hand-over. Fixed for the life of
/// a cluster (changing it moves every room at once).
pub const SLOTS: u32 = 4096;

/// Virtual nodes per router: enough that each of up to five routers gets within about 5% of
/// its fair share of rooms (measured by `examples/ring_balance.rs`; ADR 0004).
pub const VNODES: u32 = 1024;

/// The slot of a room: FNV-1a (64-bit) of its name, modulo [`SLOTS`].
pub fn slot_of(room: &RoomId) -> u32 {
    (fnv1a(room.as_str().as_bytes()) % u64::from(SLOTS)) as u32
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A router as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable name (e.g. the pod name): the ring position.
    pub name: String,
    /// Where its gRPC API listens, e.g. `http://10.0.0.7:7001`.
    pub addr: String,
}

/// Router names are KV keys and ring positions: `[a-z0-9]` then `[a-z0-9-]`, 1 to 63 bytes.
pub fn valid_member_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// One virtual node: hashed as the router name's bytes then the replica number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VNode {
    member: u16,
    name_bytes: Vec<u8>,
    replica: u32,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.name_bytes);
        state.write(&self.replica.to_be_bytes());
    }
}

struct SlotKey(u32);

impl Hash for SlotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0.to_be_bytes());
    }
}

/// An immutable ring built from a member list.
#[derive(Debug, Clone)]
pub struct Ring {
    members: Vec<Member>,
    /// `owners[slot]` indexes `members`.
    owners: Vec<u16>,
    version: u64,
}

impl Ring {
    /// Builds the ring of `members` (order and duplicates do not matter; the last entry for a
    /// name wins).
    pub fn new(members: impl IntoIterator<Item = Member>) -> Ring {
        let by_name: BTreeMap<String, Member> =
            members.into_iter().map(|m| (m.name.clone(), m)).collect();
        let members: Vec<Member> = by_name.into_values().collect();
        let mut fingerprint = Vec::new();
        for m in &members {
            fingerprint.extend_from_slice(m.name.as_bytes());
            fingerprint.push(0);
            fingerprint.extend_from_slice(m.addr.as_bytes());
            fingerprint.push(0);
        }
        let version = fnv1a(&fingerprint);
        let mut ring = hashring::HashRing::new();
        ring.batch_add(
            members
                .iter()
                .enumerate()
                .flat_map(|(i, m)| {
                    (0..VNODES).map(move |replica| VNode {
                        member: i as u16,
                        name_bytes: m.name.as_bytes().to_vec(),
                        replica,
                    })
                })
                .collect(),
        );
        let owners = (0..SLOTS)
            .map(|slot| ring.get(&SlotKey(slot)).map_or(u16::MAX, |v| v.member))
            .collect();
        Ring {
            members,
            owners,
            version,
        }
    }

    pub fn empty() -> Ring {
        Ring::new([])
    }

    /// Fingerprint of the member list (names and addresses): equal versions, equal rings.
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn owner_of_slot(&self, slot: u32) -> Option<&Member> {
        let i = *self.owners.get(slot as usize)?;
        self.members.get(usize::from(i))
    }

    pub fn owner(&self, room: &RoomId) -> Option<&Member> {
        self.owner_of_slot(slot_of(room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            addr: format!("http://{name}:7001"),
        }
    }

    fn rooms(n: usize) -> Vec<RoomId> {
        (0..n)
            .map(|i| RoomId::new(&format!("room-{i}")).unwrap())
            .collect()
    }

    #[test]
    fn same_members_same_ring_whatever_the_order() {
        let a = Ring::new([member("r1"), member("r2"), member("r3")]);
        let b = Ring::new([member("r3"), member("r1"), member("r2")]);
        assert_eq!(a.version(), b.version());
        for slot in 0..SLOTS {
            assert_eq!(a.owner_of_slot(slot), b.owner_of_slot(slot));
        }
        let moved = Ring::new([
            member("r1"),
            member("r2"),
            Member {
                name: "r3".into(),
                addr: "http://elsewhere:7001".into(),
            },
        ]);
        assert_ne!(
            a.version(),
            moved.version(),
            "an address change is a new ring"
        );
    }

    #[test]
    fn owners_are_stable_across_processes_and_builds() {
        // Pinned values: if these change, routers of different builds disagree on owners.
        assert_eq!(slot_of(&RoomId::new("general").unwrap()), 2315);
        assert_eq!(slot_of(&RoomId::new("room-42").unwrap()), 1971);
        let ring = Ring::new([member("router-0"), member("router-1")]);
        let owners: Vec<&str> = [0, 1, 2, 3, 500, 4095]
            .iter()
            .map(|s| ring.owner_of_slot(*s).unwrap().name.as_str())
            .collect();
        assert_eq!(
            owners,
            [
                "router-0", "router-0", "router-1", "router-1", "router-0", "router-0"
            ]
        );
    }

    #[test]
    fn rooms_spread_evenly() {
        let rooms = rooms(100_000);
        for n in [2usize, 3, 5] {
            let names: Vec<String> = (0..n).map(|i| format!("router-{i}")).collect();
            let ring = Ring::new(names.iter().map(|n| member(n)));
            let mut counts = BTreeMap::<&str, usize>::new();
            for r in &rooms {
                *counts.entry(&ring.owner(r).unwrap().name).or_default() += 1;
            }
            let fair = rooms.len() as f64 / n as f64;
            for (name, c) in &counts {
                let skew = (*c as f64 - fair).abs() / fair;
                assert!(
                    skew < 0.15,
                    "{n} routers: {name} has {c} rooms (fair {fair})"
                );
            }
        }
    }

    #[test]
    fn adding_a_router_moves_only_its_share() {
        let two = Ring::new([member("router-0"), member("router-1")]);
        let three = Ring::new([member("router-0"), member("router-1"), member("router-2")]);
        let mut moved = 0;
        for slot in 0..SLOTS {
            let before = two.owner_of_slot(slot).unwrap();
            let after = three.owner_of_slot(slot).unwrap();
            if before != after {
                moved += 1;
                assert_eq!(after.name, "router-2", "slots move only to the newcomer");
            }
        }
        let share = moved as f64 / f64::from(SLOTS);
        assert!(
            (0.2..0.45).contains(&share),
            "moved {share:.2} of the slots"
        );
    }

    #[test]
    fn empty_ring_owns_nothing() {
        let ring = Ring::empty();
        assert!(ring.owner(&RoomId::new("x").unwrap()).is_none());
        assert!(ring.is_empty());
    }

    #[test]
    fn member_names() {
        assert!(valid_member_name("router-0"));
        assert!(valid_member_name("chorus-router-7f9c"));
        for bad in ["", "-x", "Router", "a.b", "a b", &"x".repeat(64)] {
            assert!(!valid_member_name(bad), "{bad:?}");
        }
    }
}
