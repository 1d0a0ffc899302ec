//! What the message store does beyond the suite: buckets, the head hint, idempotency record
//! validation, the stored form of a row, and failure modes.

use std::time::{Duration, Instant};

use chorus_core::{
    conformance::{msg, room, user},
    store::{MessageStore, PriorSend, ReadRange, StoreError},
};
use chorus_store_cql::{CqlError, CqlStore, DEFAULT_BUCKET_SIZE};

use super::support::{Keyspace, config, raw_session};

fn seqs(ms: &[chorus_core::Message]) -> Vec<u64> {
    ms.iter().map(|m| m.seq).collect()
}

fn batch(room: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<chorus_core::Message> {
    seqs.map(|s| msg(room, s, "a", Some(&format!("c{s}")), &format!("m{s}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_across_buckets_read_back_both_ways_from_any_instance() {
    let ks = Keyspace::new(4).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("wide");
    store.append(&r, &batch("wide", 1..=3)).await.unwrap();
    // 4..=10 spans buckets 0, 1 and 2.
    store.append(&r, &batch("wide", 4..=10)).await.unwrap();
    store.append(&r, &batch("wide", 11..=12)).await.unwrap();

    let session = raw_session(Some(&ks.config.keyspace)).await;
    let (hint,): (i64,) = session
        .query_unpaged("SELECT bucket FROM room_heads WHERE room = 'wide'", ())
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(hint, 2, "seq 12 lives in bucket (12 - 1) / 4");

    // A second instance has no cached head: everything comes from the database.
    let other = CqlStore::connect(&ks.config).await.unwrap();
    for s in [&store, &other] {
        assert_eq!(s.last_seq(&r).await.unwrap(), 12);
        let all = s.read(&r, ReadRange::After(0), 100).await.unwrap();
        assert_eq!(seqs(&all), (1..=12).collect::<Vec<_>>());
        assert_eq!(all[6], msg("wide", 7, "a", Some("c7"), "m7"));
        assert_eq!(
            seqs(&s.read(&r, ReadRange::After(2), 5).await.unwrap()),
            [3, 4, 5, 6, 7]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::After(8), 3).await.unwrap()),
            [9, 10, 11]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::After(12), 3).await.unwrap()),
            [0u64; 0]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::After(400), 3).await.unwrap()),
            [0u64; 0]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::Before(u64::MAX), 6).await.unwrap()),
            [7, 8, 9, 10, 11, 12]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::Before(9), 6).await.unwrap()),
            [3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::Before(5), 100).await.unwrap()),
            [1, 2, 3, 4]
        );
        assert_eq!(
            seqs(&s.read(&r, ReadRange::Before(400), 2).await.unwrap()),
            [11, 12]
        );
    }
    // The other instance fences from the database too: its first append must continue at 13.
    let err = other
        .append(&r, &[msg("wide", 12, "b", None, "x")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                last_seq: 12,
                first: 12,
                ..
            }
        ),
        "{err:?}"
    );
    other
        .append(&r, &[msg("wide", 13, "b", None, "x")])
        .await
        .unwrap();
    assert_eq!(store.last_seq(&r).await.unwrap(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_seq_steps_down_from_a_hint_ahead_of_the_data() {
    let ks = Keyspace::new(4).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("ahead");
    store.append(&r, &batch("ahead", 1..=5)).await.unwrap();
    // What a failed append leaves behind: the hint written, its messages not.
    let session = raw_session(Some(&ks.config.keyspace)).await;
    session
        .query_unpaged(
            "INSERT INTO room_heads (room, bucket) VALUES ('ahead', 3)",
            (),
        )
        .await
        .unwrap();
    assert_eq!(store.last_seq(&r).await.unwrap(), 5);
    assert_eq!(
        seqs(
            &store
                .read(&r, ReadRange::Before(u64::MAX), 3)
                .await
                .unwrap()
        ),
        [3, 4, 5]
    );
    assert_eq!(
        seqs(&store.read(&r, ReadRange::After(3), 10).await.unwrap()),
        [4, 5]
    );
    // Appending goes on from the real head, and the log stays gapless.
    store.append(&r, &batch("ahead", 6..=13)).await.unwrap();
    assert_eq!(store.last_seq(&r).await.unwrap(), 13);
    assert_eq!(
        seqs(&store.read(&r, ReadRange::After(0), 100).await.unwrap()),
        (1..=13).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_record_counts_only_with_its_message() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("idem");
    let session = raw_session(Some(&ks.config.keyspace)).await;
    let record =
        "INSERT INTO sends (room, sender, client_msg_id, seq, ts) VALUES ('idem', ?, ?, ?, 5)";

    // A record whose message was never written (its append failed after the records).
    session
        .query_unpaged(record, ("alice", "lost", 1_i64))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_prior_send(&r, &user("alice"), "lost")
            .await
            .unwrap(),
        None
    );

    // Seq 1 then went to another send: the stale record must not claim it.
    let m = msg("idem", 1, "bob", Some("b-1"), "hi");
    store.append(&r, std::slice::from_ref(&m)).await.unwrap();
    assert_eq!(
        store
            .find_prior_send(&r, &user("alice"), "lost")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_prior_send(&r, &user("bob"), "b-1")
            .await
            .unwrap(),
        Some(PriorSend { seq: 1, ts: m.ts })
    );
    // Same seq and sender, other id: still not this send.
    session
        .query_unpaged(record, ("bob", "b-2", 1_i64))
        .await
        .unwrap();
    assert_eq!(
        store
            .find_prior_send(&r, &user("bob"), "b-2")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_whole_with_no_nulls_and_client_timestamps() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("rows");
    let before = now_micros();
    store
        .append(&r, &[msg("rows", 1, "a", None, "no id")])
        .await
        .unwrap();
    store
        .append(&r, &[msg("rows", 2, "a", Some("c2"), "")])
        .await
        .unwrap();
    let after = now_micros();

    let session = raw_session(Some(&ks.config.keyspace)).await;
    type Cols = (
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
    );
    let rows: Vec<Cols> = session
        .query_unpaged(
            "SELECT seq, ts, sender, client_msg_id, body, writetime(body) FROM messages \
             WHERE room = 'rows' AND bucket = 0",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<Cols>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 2);
    let (seq, ts, sender, cmid, body, written) = rows[0].clone();
    assert_eq!(seq, Some(1));
    assert!(ts.is_some() && sender.as_deref() == Some("a"));
    assert_eq!(
        cmid.as_deref(),
        Some(""),
        "a missing id is '' and never null"
    );
    assert_eq!(body.as_deref(), Some("no id"));
    assert_eq!(rows[1].4.as_deref(), Some(""), "an empty body is '' too");
    // Every write carries the append's own timestamp, increasing from one append to the next.
    let (w1, w2) = (written.unwrap(), rows[1].5.unwrap());
    assert!(
        before <= w1 && w1 < w2 && w2 <= after,
        "{before} {w1} {w2} {after}"
    );
    // The idempotency record carries the same timestamp as its message.
    let (record_written,): (i64,) = session
        .query_unpaged(
            "SELECT writetime(seq) FROM sends WHERE room = 'rows' AND sender = 'a' AND client_msg_id = 'c2'",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!(record_written, w2);
    let back = store.read(&r, ReadRange::After(0), 10).await.unwrap();
    assert_eq!(back[0].client_msg_id, None);
    assert_eq!(back[1].client_msg_id.as_deref(), Some("c2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_append_is_split_into_batches_and_reads_back_whole() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("large");
    // About 2.4 MB of bodies: several batches of at most MAX_BATCH_BYTES, written in order.
    let body = "x".repeat(4096);
    let messages: Vec<_> = (1..=600)
        .map(|s| msg("large", s, "a", Some(&format!("c{s}")), &body))
        .collect();
    store.append(&r, &messages).await.unwrap();
    assert_eq!(store.last_seq(&r).await.unwrap(), 600);
    let back = store.read(&r, ReadRange::After(0), 1_000).await.unwrap();
    assert_eq!(back, messages);
    assert_eq!(
        seqs(&store.read(&r, ReadRange::Before(601), 1_500).await.unwrap()).len(),
        600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_refuses_appends_and_keeps_what_was_acknowledged() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("closing");
    store.append(&r, &batch("closing", 1..=2)).await.unwrap();
    store.close().await.unwrap();
    let err = store
        .append(&r, &batch("closing", 3..=3))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let again = CqlStore::connect(&ks.config).await.unwrap();
    assert_eq!(again.last_seq(&r).await.unwrap(), 2);
    assert!(
        again
            .find_prior_send(&r, &user("a"), "c2")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_quick_clear_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = config(DEFAULT_BUCKET_SIZE);
    config.contact_points = vec![format!("127.0.0.1:{port}")];
    let started = Instant::now();
    let err = CqlStore::connect(&config).await.unwrap_err();
    assert!(matches!(err, CqlError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    let err = chorus_store_cql::migrate(&config).await.unwrap_err();
    assert!(matches!(err, CqlError::Unreachable { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_store_ext_as_json_and_count_in_every_row() {
    let ks = Keyspace::new(DEFAULT_BUCKET_SIZE).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("cols");
    let plain = msg("cols", 1, "a", None, "plain");
    let mut reply = msg("cols", 2, "a", None, "reply");
    reply.ext.reply_to = Some(1);
    store.append(&r, &[plain, reply]).await.unwrap();
    let session = raw_session(Some(&ks.config.keyspace)).await;
    let rows: Vec<(Option<String>, Option<i64>)> = session
        .query_unpaged(
            "SELECT ext, ordinal FROM messages WHERE room = 'cols' AND bucket = 0",
            (),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(Option<String>, Option<i64>)>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (Some(String::new()), Some(1)),
            (Some(r#"{"reply_to":1}"#.to_owned()), Some(2))
        ],
        "an empty ext is '' (never null), others their JSON; count always written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amend_rewrites_rows_with_newer_timestamps_and_nothing_else() {
    let ks = Keyspace::new(4).await;
    let store = CqlStore::connect(&ks.config).await.unwrap();
    let r = room("amend");
    store.append(&r, &batch("amend", 1..=6)).await.unwrap();
    let session = raw_session(Some(&ks.config.keyspace)).await;
    let writetimes = async || {
        let (head,): (i64,) = session
            .query_unpaged(
                "SELECT writetime(bucket) FROM room_heads WHERE room = 'amend'",
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        let (send,): (i64,) = session
            .query_unpaged(
                "SELECT writetime(seq) FROM sends WHERE room = 'amend' AND sender = 'a' \
                 AND client_msg_id = 'c5'",
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        let (row,): (i64,) = session
            .query_unpaged(
                "SELECT writetime(body) FROM messages WHERE room = 'amend' AND bucket = 1 \
                 AND seq = 5",
                (),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        (head, send, row)
    };
    let (head, send, appended) = writetimes().await;

    // Seqs from two buckets, out of order, and seq 5 twice: the later one is written.
    let mut first = msg("amend", 5, "a", Some("c5"), "first edit");
    first.ext.edited_ts = Some(1);
    let mut second = first.clone();
    second.body = "second edit".into();
    second.ext.edits = vec![7];
    let mut deleted = msg("amend", 2, "a", Some("c2"), "");
    deleted.ext.deleted = true;
    store
        .amend(&r, &[first, deleted.clone(), second.clone()])
        .await
        .unwrap();
    let (head_after, send_after, amended) = writetimes().await;
    assert_eq!(
        (head_after, send_after),
        (head, send),
        "amend writes no head or record"
    );
    assert!(amended > appended);

    let all = store.read(&r, ReadRange::After(0), 10).await.unwrap();
    assert_eq!(all[1], deleted);
    assert_eq!(all[4], second);
    assert_eq!(all[5], msg("amend", 6, "a", Some("c6"), "m6"));
    assert_eq!(store.last_seq(&r).await.unwrap(), 6);
    assert_eq!(
        store.find_prior_send(&r, &user("a"), "c5").await.unwrap(),
        Some(PriorSend {
            seq: 5,
            ts: second.ts
        })
    );

    // Entries of another room or with seq 0 are refused, writing nothing.
    let stray = msg("elsewhere", 3, "a", None, "x");
    assert!(matches!(
        store.amend(&r, &[stray]).await,
        Err(StoreError::Conflict { .. })
    ));
    store.close().await.unwrap();
    assert!(matches!(
        store.amend(&r, &[second]).await,
        Err(StoreError::Unavailable(_))
    ));
}
