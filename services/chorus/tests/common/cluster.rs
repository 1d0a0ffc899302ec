//! The cluster wiring in-process: two routers and two gateways on the real nats-server and
//! Cassandra that `make test` starts (CHORUS_TEST_NATS_URL, CHORUS_TEST_CQL), with a fresh
//! keyspace and subject prefix per test.

use chorus_router::RouterConfig;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use chorus::{
    cluster::{GatewayNodeConfig, RouterNode, RouterNodeConfig, start_gateway, start_router},
    standalone::Running,
};
use chorus_cluster::{membership::MembershipConfig, ownership::OwnershipConfig};
use chorus_gateway::GatewayConfig;
use chorus_store_cql::CqlConfig;

use super::{SECRET, Server};

static NEXT: AtomicU64 = AtomicU64::new(0);

pub fn nats_url() -> String {
    std::env::var("CHORUS_TEST_NATS_URL").expect(
        "CHORUS_TEST_NATS_URL is not set: run the tests through `make test` \
         (scripts/with-test-services.sh starts nats-server and Cassandra)",
    )
}

pub fn cql_contact() -> String {
    std::env::var("CHORUS_TEST_CQL").expect(
        "CHORUS_TEST_CQL is not set: run the tests through `make test` \
         (scripts/with-test-services.sh starts nats-server and Cassandra)",
    )
}

/// The database that requires a login, and the login made for the tests.
pub struct CqlLogin {
    pub contact: String,
    pub user: String,
    pub password: String,
}

pub fn cql_login() -> CqlLogin {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: run the tests through `make test` \
                 (scripts/with-test-services.sh starts a Cassandra that requires a login)"
            )
        })
    };
    CqlLogin {
        contact: var("CHORUS_TEST_CQL_LOGIN"),
        user: var("CHORUS_TEST_CQL_LOGIN_USER"),
        password: var("CHORUS_TEST_CQL_LOGIN_PASSWORD"),
    }
}

/// A keyspace and subject prefix no other test (or test process) uses.
pub fn unique_names() -> (String, String) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{}_{n}", std::process::id());
    (format!("t_{tag}"), format!("t{tag}"))
}

/// A migrated keyspace of its own.
pub async fn fresh_keyspace(keyspace: &str) -> CqlConfig {
    fresh_keyspace_at(&cql_contact(), keyspace).await
}

/// A migrated keyspace of its own, on the database at `contact`.
pub async fn fresh_keyspace_at(contact: &str, keyspace: &str) -> CqlConfig {
    let config = CqlConfig {
        contact_points: vec![contact.to_owned()],
        keyspace: keyspace.to_owned(),
        ..CqlConfig::default()
    };
    chorus_store_cql::migrate(&config)
        .await
        .expect("migrating a test keyspace");
    config
}

pub struct Cluster {
    pub gateways: Vec<Running>,
    pub routers: Vec<RouterNode>,
    pub keyspace: String,
    pub prefix: String,
}

pub async fn start() -> Server {
    start_with(GatewayConfig::default()).await
}

pub async fn start_with(gateway: GatewayConfig) -> Server {
    Server::for_cluster(start_cluster(gateway, 2, 2).await)
}

/// The cluster wiring with these gateway and router configurations.
pub async fn start_full(gateway: GatewayConfig, router: RouterConfig) -> Server {
    Server::for_cluster(start_cluster_with(gateway, router, 2, 2).await)
}

pub async fn start_cluster(gateway: GatewayConfig, routers: usize, gateways: usize) -> Cluster {
    start_cluster_with(gateway, super::unlimited_rooms(), routers, gateways).await
}

pub async fn start_cluster_with(
    gateway: GatewayConfig,
    router: RouterConfig,
    routers: usize,
    gateways: usize,
) -> Cluster {
    let (keyspace, prefix) = unique_names();
    let cql = fresh_keyspace(&keyspace).await;
    let membership = MembershipConfig {
        prefix: prefix.clone(),
        ttl: Duration::from_secs(3),
    };
    let mut nodes = Vec::new();
    for i in 0..routers {
        nodes.push(
            start_router(RouterNodeConfig {
                name: format!("router-{i}"),
                grpc_listen: "127.0.0.1:0".parse().unwrap(),
                advertise: None,
                http_listen: "127.0.0.1:0".parse().unwrap(),
                nats_url: nats_url(),
                membership: membership.clone(),
                cql: cql.clone(),
                router: router.clone(),
                ownership: OwnershipConfig::default(),
            })
            .await
            .expect("a router starts"),
        );
    }
    let mut gws = Vec::new();
    for _ in 0..gateways {
        gws.push(
            start_gateway(GatewayNodeConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                jwt_secret: SECRET.as_bytes().to_vec(),
                gateway: gateway.clone(),
                nats_url: nats_url(),
                membership: membership.clone(),
                routers: Default::default(),
            })
            .await
            .expect("a gateway starts"),
        );
    }
    Cluster {
        gateways: gws,
        routers: nodes,
        keyspace,
        prefix,
    }
}
