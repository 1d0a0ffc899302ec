//! Membership against a real nats-server (`make test` starts one and sets
//! CHORUS_TEST_NATS_URL): announcements, graceful leave, expiry of a router that stops
//! heartbeating, and one ring across watchers. Each test uses its own bucket prefix.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use chorus_cluster::{
    membership::{Announcer, MembershipConfig, Watcher},
    ring::Member,
};

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn nats() -> async_nats::Client {
    let url = std::env::var("CHORUS_TEST_NATS_URL").expect(
        "CHORUS_TEST_NATS_URL is not set: run `make test` (it starts nats-server), or \
         `scripts/nats.sh start` and export CHORUS_TEST_NATS_URL=nats://127.0.0.1:4222",
    );
    async_nats::connect(url)
        .await
        .expect("nats-server is reachable")
}

fn beat() -> std::sync::Arc<AtomicU64> {
    std::sync::Arc::new(AtomicU64::new(0))
}

fn config() -> MembershipConfig {
    MembershipConfig {
        prefix: format!(
            "mtest{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        ttl: Duration::from_secs(2),
    }
}

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        addr: format!("http://127.0.0.1:{}", 7000 + name.len()),
    }
}

async fn wait_for(view: &chorus_cluster::membership::RingView, names: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let ring = view.current();
        let now: Vec<&str> = ring.members().iter().map(|m| m.name.as_str()).collect();
        if now == names {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ring has {now:?}, expected {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_agree_on_the_ring_as_routers_come_and_go() {
    let client = nats().await;
    let config = config();
    let early = Watcher::start(&client, config.clone()).await.unwrap();
    assert!(early.view().current().is_empty());

    let mut r1 = Announcer::start(&client, config.clone(), member("r1"), "r1/1".into(), beat())
        .await
        .unwrap();
    let _r2 = Announcer::start(
        &client,
        config.clone(),
        member("r22"),
        "r22/1".into(),
        beat(),
    )
    .await
    .unwrap();
    wait_for(&early.view(), &["r1", "r22"], Duration::from_secs(3)).await;

    // A watcher started later sees the same ring, with the same version, at once.
    let late = Watcher::start(&client, config.clone()).await.unwrap();
    assert_eq!(
        late.view().current().version(),
        early.view().current().version()
    );

    // A graceful leave removes the router from every ring quickly.
    let left = Instant::now();
    r1.leave().await;
    wait_for(&early.view(), &["r22"], Duration::from_secs(1)).await;
    wait_for(&late.view(), &["r22"], Duration::from_secs(1)).await;
    println!("graceful leave seen after {:?}", left.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_stops_heartbeating_expires() {
    let client = nats().await;
    let config = config();
    let watcher = Watcher::start(&client, config.clone()).await.unwrap();
    let r1 = Announcer::start(&client, config.clone(), member("r1"), "r1/1".into(), beat())
        .await
        .unwrap();
    let _r2 = Announcer::start(&client, config.clone(), member("r2"), "r2/1".into(), beat())
        .await
        .unwrap();
    wait_for(&watcher.view(), &["r1", "r2"], Duration::from_secs(3)).await;
    // Dropping the announcer stops its heartbeats without deleting its entry: a crash.
    drop(r1);
    let died = Instant::now();
    wait_for(&watcher.view(), &["r2"], config.ttl * 3).await;
    let gone = died.elapsed();
    println!("expired after {gone:?} (ttl {:?})", config.ttl);
    assert!(gone >= config.ttl / 2, "expired too early: {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_router_names_are_refused() {
    let client = nats().await;
    let err = Announcer::start(&client, config(), member("Bad.Name"), "x".into(), beat())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("invalid router name"), "{err}");
}
