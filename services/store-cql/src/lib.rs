//! The cluster store: Chorus's room logs, room state and ownership records on ScyllaDB or
//! Apache Cassandra (CQL protocol v4, the `scylla` driver). It implements [`MessageStore`],
//! [`RoomStateStore`] and [`LeaseStore`] over one shared session, with every statement run
//! after connecting prepared once at [`CqlStore::connect`]. docs/adr/0003-cql-store-schema.md
//! records why the schema is this one and which alternatives were turned down.
//!
//! # Schema
//!
//! Created by [`migrate`] (the `.cql` files under `migrations/`, applied in order and recorded
//! in `schema_migrations`); [`CqlStore::connect`] refuses a keyspace that is missing any of
//! them.
//!
//! | table | primary key | holds |
//! | --- | --- | --- |
//! | `messages` | `((room, bucket), seq)` | every column of a message, `ext` as JSON, `ordinal` (its `count`); `seq` ascending |
//! | `room_heads` | `(room)` | the highest bucket the room has reached |
//! | `sends` | `((room, sender, client_msg_id))` | idempotency records `-> (seq, ts)` |
//! | `router_sessions` | `(holder)` | router heartbeats `-> expires_ms` |
//! | `slot_claims` | `(slot)` | `holder, epoch, released`, changed only by lightweight transactions |
//! | `rooms` | `(room)` | created rooms: `visibility, created_by, created_ts, pending_from` |
//! | `room_members` | `(room, user_id)` | member records `role, banned, muted_until`; users ascending |
//! | `user_rooms` | `(user_id, room)` | a user's rooms: `role` and the read mark `read_seq, read_count` |
//! | `settings` | `(name)` | `bucket_size`, fixed when the keyspace is created |
//!
//! # Buckets
//!
//! A room's messages are split into partitions of [`CqlConfig::bucket_size`] consecutive seqs:
//! `bucket = (seq - 1) / bucket_size`. One partition per room would grow without bound, and
//! Cassandra and ScyllaDB both degrade on partitions past ~100 MB (compaction, repair and
//! reads of a huge partition stall a node). The default of 10 000 keeps the worst case (every
//! body at the 4 KiB limit) near 45 MB, and a typical bucket (200-byte bodies) at 2–3 MB. Seq
//! buckets rather than time buckets mean a bucket is always full before the next starts, so
//! reads know exactly where each seq lives and never scan empty time ranges. The bucket size
//! is written to `settings` by the first [`migrate`] and can never change for a keyspace:
//! [`CqlStore::connect`] refuses a different one.
//!
//! `room_heads` is a hint for finding the newest bucket. An append that enters a new bucket
//! writes it *before* the first message of that bucket, so it is never behind the data; a
//! failed append can leave it one bucket ahead, which [`MessageStore::last_seq`] handles by
//! stepping down to the highest non-empty bucket.
//!
//! # Appends
//!
//! An append writes, in order: the idempotency records of the messages that have a
//! `client_msg_id` (concurrently), then each bucket's messages as one UNLOGGED batch, buckets
//! ascending. A batch that stays in one partition is atomic and isolated without the
//! batchlog, so a failed append leaves at most a *prefix* of its messages (whole buckets,
//! see [`MAX_BATCH_BYTES`] for the one exception). LOGGED batches are never used for messages.
//! Every row is written with all its columns and no nulls (a missing `client_msg_id` is stored
//! as `''`, an empty [`Ext`] as `''`, anything else as its JSON), so a later write of the same
//! seq replaces an earlier one completely. Rows written before migration 0003 have null `ext`
//! and `ordinal`, read as a plain text entry with count 0.
//!
//! [`MessageStore::amend`] is exactly that later write: it rewrites the given rows whole, one
//! batch per bucket, with a new client timestamp, and touches nothing else (no head hint, no
//! fence, no idempotency record). An amended entry keeps its sender and `client_msg_id`, so
//! its idempotency record still checks out.
//!
//! Every write carries a client-side timestamp in microseconds, taken once per append (per
//! amend, per room-state entry) and strictly increasing within the process: a later write of
//! this process always wins last-write-wins against an earlier one, whatever order the
//! replicas receive them in, so an amend wins over the insert and over earlier amends.
//! Across processes this relies on clocks that differ by much less than the ownership
//! takeover margin (ADR 0004). Lightweight transactions (the slot claims) use Paxos ballots
//! instead and carry no client timestamp.
//!
//! # Fencing
//!
//! [`MessageStore::append`] checks the batch against the head this instance last read or
//! wrote for the room (a bounded cache; a miss reads `last_seq` from the database). No
//! lightweight transaction runs per append: this is exact only while one router appends to a
//! room, which the slot claims ([`LeaseStore`]) guarantee. After a failed append the room's
//! cached head is dropped and the room *settles*: the next `last_seq` or append for it first
//! waits until `request_timeout` after the failure, by which time any write of the failed
//! append still in flight has been applied or dropped (this needs the server's write timeout
//! to be no longer than `request_timeout`, and `request_timeout` no longer than the ownership
//! settle time). Only then is the head read back, so a router never reuses a seq that a late
//! write is about to fill. Cassandra can still spread a failed write to more replicas later
//! (hints, read repair); a retry of that seq carries a newer timestamp and wins, but until it
//! lands a read *past the router's head* may return the unacknowledged row, so routers should
//! not serve reads beyond their head.
//!
//! # Idempotency
//!
//! An idempotency record is written before its message, so it can exist for a message whose
//! write failed. [`MessageStore::find_prior_send`] therefore checks the message at the
//! recorded seq (same sender and `client_msg_id`) and ignores the record otherwise. Nothing
//! has a TTL: messages are kept forever, and their idempotency records as long.
//!
//! # Room state
//!
//! [`RoomStateStore`] is derived from the room logs and re-applied by the router after a
//! crash, so every write is an idempotent upsert with a client timestamp and nothing reads
//! before writing. [`put_members`] writes a member's `room_members` row and the role of its
//! `user_rooms` row in one LOGGED batch (two partitions, so the batchlog is what makes the
//! pair all-or-nothing once accepted); read marks and roles are separate cells of
//! `user_rooms`, each set by its own `UPDATE`, so neither write loses the other. Listings skip rows without a role (`''`, or null for a row
//! that was only ever marked) client-side, with no `ALLOW FILTERING`, querying again past the
//! last row until `limit` rows are listed. See the `state` module.
//!
//! # Routing and timeouts
//!
//! Every statement binds all its partition key columns, so the driver routes each request to
//! a replica of its partition (token-aware routing, the driver's default for prepared
//! statements). Every operation is bounded by [`CqlConfig::request_timeout`]; a timeout or a
//! connection error is [`StoreError::Unavailable`], a row that does not decode is
//! [`StoreError::Corrupt`].
//!
//! This crate does not decide ownership (the router does, through [`LeaseStore`]) nor which
//! room state follows from a log entry (the router does that too), expire anything, or create
//! keyspaces outside [`migrate`].
//!
//! [`MessageStore`]: chorus_core::store::MessageStore
//! [`MessageStore::amend`]: chorus_core::store::MessageStore::amend
//! [`RoomStateStore`]: chorus_core::state::RoomStateStore
//! [`put_members`]: chorus_core::state::RoomStateStore::put_members
//! [`Ext`]: chorus_core::Ext
//! [`MessageStore::last_seq`]: chorus_core::store::MessageStore::last_seq
//! [`MessageStore::append`]: chorus_core::store::MessageStore::append
//! [`MessageStore::find_prior_send`]: chorus_core::store::MessageStore::find_prior_send
//! [`LeaseStore`]: chorus_core::lease::LeaseStore
//! [`StoreError::Unavailable`]: chorus_core::store::StoreError::Unavailable
//! [`StoreError::Corrupt`]: chorus_core::store::StoreError::Corrupt

mod clock;
mod error;
mod heads;
mod lease;
mod migrate;
mod rows;
mod session;
mod state;
mod statements;
mod store;

use std::time::Duration;

pub use error::CqlError;
pub use migrate::{MigrationReport, SCHEMA_VERSION, migrate};
pub use scylla::statement::Consistency;
pub use store::{CqlStore, MAX_BATCH_BYTES};

/// Seqs per message partition unless configured otherwise (see the crate docs).
pub const DEFAULT_BUCKET_SIZE: u64 = 10_000;

/// How to reach the cluster and which keyspace to use.
#[derive(Debug, Clone)]
pub struct CqlConfig {
    /// `host:port` of one or more nodes; the driver discovers the rest of the cluster.
    pub contact_points: Vec<String>,
    /// `[a-z][a-z0-9_]{0,47}`.
    pub keyspace: String,
    /// The CQL replication map [`migrate`] creates the keyspace with (ignored when the
    /// keyspace exists), e.g. `{'class': 'NetworkTopologyStrategy', 'dc1': 3}`.
    pub replication: String,
    /// Bound of every store operation, and how long a room settles after a failed append.
    /// Keep it at least the server's `write_request_timeout` (2 s by default).
    pub request_timeout: Duration,
    /// How long connecting may take before the contact points count as unreachable.
    pub connect_timeout: Duration,
    /// Consistency of reads and writes. Lightweight transactions and claim reads use
    /// `LOCAL_SERIAL` with a `LOCAL_*` level and `SERIAL` otherwise.
    pub consistency: Consistency,
    /// Seqs per message partition. Written into the keyspace by the first [`migrate`] and
    /// never changeable afterwards: [`CqlStore::connect`] refuses a mismatch.
    pub bucket_size: u64,
    /// Rooms whose head an instance caches for the append fence; past this, arbitrary rooms
    /// are forgotten (and read from the database on their next append).
    pub head_cache_rooms: usize,
    /// The login for a cluster with password authentication (`PasswordAuthenticator`);
    /// `None` connects without one.
    pub credentials: Option<CqlCredentials>,
}

/// A CQL username and password. Its `Debug` never shows the password, so configs can be
/// logged.
#[derive(Clone, PartialEq, Eq)]
pub struct CqlCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for CqlCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CqlCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Default for CqlConfig {
    fn default() -> Self {
        CqlConfig {
            contact_points: vec!["127.0.0.1:9042".to_owned()],
            keyspace: "chorus".to_owned(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".to_owned(),
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            consistency: Consistency::LocalQuorum,
            bucket_size: DEFAULT_BUCKET_SIZE,
            head_cache_rooms: 100_000,
            credentials: None,
        }
    }
}

impl CqlConfig {
    fn validate(&self) -> Result<(), CqlError> {
        let bad = |why: String| Err(CqlError::Config(why));
        if self.contact_points.is_empty() {
            return bad("no contact points".into());
        }
        if !valid_keyspace(&self.keyspace) {
            return bad(format!(
                "keyspace name {:?} must match [a-z][a-z0-9_]{{0,47}}",
                self.keyspace
            ));
        }
        let r = self.replication.trim();
        if !(r.starts_with('{') && r.ends_with('}')) || r.contains(';') {
            return bad(format!(
                "replication {:?} must be one CQL map, like {{'class': 'SimpleStrategy', 'replication_factor': 1}}",
                self.replication
            ));
        }
        if self.bucket_size == 0 || i64::try_from(self.bucket_size).is_err() {
            return bad(format!("bucket size {} out of range", self.bucket_size));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("timeouts must be positive".into());
        }
        if let Some(c) = &self.credentials
            && (c.username.is_empty() || c.password.is_empty())
        {
            return bad("a CQL login needs both a username and a password".into());
        }
        Ok(())
    }
}

/// Keyspace names are spliced into CQL text, so only unquoted lowercase identifiers are
/// accepted (48 characters is Cassandra's limit).
fn valid_keyspace(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 48
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_are_plain_identifiers() {
        assert!(valid_keyspace("chorus"));
        assert!(valid_keyspace("chorus_test_0af3"));
        assert!(valid_keyspace(&"a".repeat(48)));
        for bad in [
            "",
            "Chorus",
            "1abc",
            "_a",
            "a-b",
            "a.b",
            "a b",
            &"a".repeat(49),
        ] {
            assert!(!valid_keyspace(bad), "{bad:?}");
        }
    }

    #[test]
    fn config_validation_names_the_problem() {
        let mut c = CqlConfig {
            keyspace: "Bad".into(),
            ..CqlConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("keyspace"));
        c.keyspace = "ok".into();
        c.bucket_size = 0;
        assert!(c.validate().unwrap_err().to_string().contains("bucket"));
        c.bucket_size = 4;
        c.replication = "{}; DROP KEYSPACE x".into();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("replication")
        );
        c.replication = CqlConfig::default().replication;
        assert!(c.validate().is_ok());
    }
}
