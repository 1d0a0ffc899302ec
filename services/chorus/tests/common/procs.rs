//! A cluster of real processes: `chorus router` and `chorus gateway` binaries on the
//! nats-server and Cassandra that `make test` starts, each with its own keyspace and subject
//! prefix. Process logs go to `target/tmp/procs/<test>/`.

use std::{collections::BTreeMap, net::SocketAddr, process::Stdio, time::Duration};

use chorus_cluster::ring::{Member, Ring};
use chorus_core::RoomId;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use super::{SECRET, cluster};

pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    pub http: Option<SocketAddr>,
}

pub struct ProcCluster {
    pub name: &'static str,
    pub nats_url: String,
    pub cql: String,
    pub keyspace: String,
    pub prefix: String,
    pub routers: BTreeMap<String, Proc>,
    pub gateways: Vec<Proc>,
    /// Set on every process started from now on.
    pub env: Vec<(String, String)>,
}

pub fn log_dir(test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("procs")
        .join(test);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn spawn(mut cmd: Command, log: std::path::PathBuf, prefix: &str) -> (Child, String) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    let mut child = cmd
        .env("CHORUS_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("the chorus binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the process prints its address")
        .unwrap()
        .expect("a start-up line");
    assert!(
        line.starts_with(prefix),
        "unexpected start-up line {line:?}"
    );
    (child, line)
}

impl ProcCluster {
    /// A keyspace and subject prefix of its own, `routers` routers and two gateways.
    pub async fn start(name: &'static str, nats_url: String, cql: String, routers: usize) -> Self {
        Self::start_with_env(name, nats_url, cql, routers, Vec::new()).await
    }

    /// As [`start`](Self::start), with `env` set on every process.
    pub async fn start_with_env(
        name: &'static str,
        nats_url: String,
        cql: String,
        routers: usize,
        env: Vec<(String, String)>,
    ) -> Self {
        let (keyspace, prefix) = cluster::unique_names();
        cluster::fresh_keyspace_at(&cql, &keyspace).await;
        Self::assemble(name, nats_url, cql, (keyspace, prefix), routers, env).await
    }

    /// As [`start`](Self::start), on the database that requires a login
    /// (CHORUS_TEST_CQL_LOGIN): `chorus migrate` runs with the login in its environment
    /// (CHORUS_CQL_USERNAME and CHORUS_CQL_PASSWORD), and each router reads the password from
    /// a file (`--cql-password-file`, as from a mounted Secret).
    pub async fn start_with_login(name: &'static str, nats_url: String, routers: usize) -> Self {
        let login = cluster::cql_login();
        let (keyspace, prefix) = cluster::unique_names();
        let out = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .arg("migrate")
            .env("CHORUS_CQL_CONTACT_POINTS", &login.contact)
            .env("CHORUS_CQL_KEYSPACE", &keyspace)
            .env("CHORUS_CQL_USERNAME", &login.user)
            .env("CHORUS_CQL_PASSWORD", &login.password)
            .output()
            .await
            .expect("chorus migrate runs");
        assert!(
            out.status.success(),
            "chorus migrate with the login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = log_dir(name).join("cql-password");
        std::fs::write(&file, format!("{}\n", login.password)).unwrap();
        let env = vec![
            ("CHORUS_CQL_USERNAME".to_owned(), login.user.clone()),
            (
                "CHORUS_CQL_PASSWORD_FILE".to_owned(),
                file.display().to_string(),
            ),
        ];
        Self::assemble(
            name,
            nats_url,
            login.contact,
            (keyspace, prefix),
            routers,
            env,
        )
        .await
    }

    async fn assemble(
        name: &'static str,
        nats_url: String,
        cql: String,
        (keyspace, prefix): (String, String),
        routers: usize,
        env: Vec<(String, String)>,
    ) -> Self {
        let mut c = ProcCluster {
            name,
            nats_url,
            cql,
            keyspace,
            prefix,
            routers: BTreeMap::new(),
            gateways: Vec::new(),
            env,
        };
        for i in 0..routers {
            c.add_router(&format!("router-{i}")).await;
        }
        for _ in 0..2 {
            c.add_gateway().await;
        }
        c
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("CHORUS_NATS_URL", &self.nats_url)
            .env("CHORUS_CLUSTER_PREFIX", &self.prefix)
            .env("CHORUS_MEMBER_TTL", "2s");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }

    pub async fn add_router(&mut self, name: &str) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.args(["router", "--name", name])
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .env("CHORUS_CQL_CONTACT_POINTS", &self.cql)
            .env("CHORUS_CQL_KEYSPACE", &self.keyspace)
            .env("CHORUS_SESSION_TTL", "2s")
            .env("CHORUS_CLOCK_DRIFT", "250ms");
        self.env(&mut cmd);
        let log = log_dir(self.name).join(format!("{name}.log"));
        let (child, line) = spawn(cmd, log, "chorus router").await;
        // "chorus router NAME serving gRPC on ADDR (health and metrics on http://ADDR)"
        let words: Vec<&str> = line.split_whitespace().collect();
        let addr = words[6].parse().unwrap();
        let http = words[11]
            .trim_start_matches("http://")
            .trim_end_matches(')')
            .parse()
            .unwrap();
        self.routers.insert(
            name.to_owned(),
            Proc {
                child,
                addr,
                http: Some(http),
            },
        );
    }

    pub async fn add_gateway(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.args(["gateway", "--listen", "127.0.0.1:0"])
            .args(["--send-rate", "1000000", "--send-burst", "1000000"])
            .env("CHORUS_JWT_SECRET", SECRET);
        self.env(&mut cmd);
        let log = log_dir(self.name).join(format!("gateway-{}.log", self.gateways.len()));
        let (child, line) = spawn(cmd, log, "chorus gateway listening on http://").await;
        let addr = line
            .trim_start_matches("chorus gateway listening on http://")
            .parse()
            .unwrap();
        self.gateways.push(Proc {
            child,
            addr,
            http: None,
        });
    }

    pub fn gateway_url(&self, i: usize) -> String {
        format!("ws://{}/v1/ws", self.gateways[i % self.gateways.len()].addr)
    }

    /// Which router owns `room` while these routers are up (ownership depends on names only).
    pub fn owner(&self, room: &str) -> String {
        let ring = Ring::new(self.routers.keys().map(|n| Member {
            name: n.clone(),
            addr: String::new(),
        }));
        ring.owner(&RoomId::new(room).unwrap())
            .unwrap()
            .name
            .clone()
    }

    pub async fn kill_router(&mut self, name: &str) {
        let mut p = self.routers.remove(name).expect("such a router");
        p.child.start_kill().unwrap();
        p.child.wait().await.unwrap();
    }

    /// Prints the warnings and errors each process logged (the last `lines` of them): what a
    /// failed test's output needs to say why, since the logs themselves stay on the machine.
    pub fn print_log_warnings(&self, lines: usize) {
        let Ok(dir) = std::fs::read_dir(log_dir(self.name)) else {
            return;
        };
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let notable: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let skip = notable.len().saturating_sub(lines);
            eprintln!(
                "--- {}: {} warnings and errors{}",
                file.display(),
                notable.len(),
                if skip > 0 {
                    format!(", the last {lines}")
                } else {
                    String::new()
                }
            );
            for l in &notable[skip..] {
                eprintln!("{l}");
            }
        }
    }

    pub async fn router_metric(&self, name: &str, metric: &str) -> f64 {
        let http = self.routers[name].http.unwrap();
        let text = super::http_get(&format!("http://{http}/metrics")).await;
        text.lines()
            .filter_map(|l| l.strip_prefix(metric)?.split_whitespace().last())
            .map(|v| v.parse::<f64>().unwrap())
            .sum()
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_log_warnings(40);
        }
    }
}
