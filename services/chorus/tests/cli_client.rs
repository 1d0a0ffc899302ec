//! `chorus send` and `chorus tail`: the real binary against a standalone server started
//! in-process, asserting what a user sees (stdout lines, stderr, exit code).

mod common;

use std::{net::SocketAddr, process::Stdio, time::Duration};

use chorus::standalone::{self, Running, StandaloneConfig};
use common::{Client, SECRET, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    net::TcpListener,
    process::{Child, ChildStdout, Command},
};
use tokio_tungstenite::tungstenite::{Message, handshake::server};

/// `chorus <args>` with a clean environment: no token, secret or URL from the caller's.
fn chorus(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    cmd.args(args)
        .env_remove("CHORUS_TOKEN")
        .env_remove("CHORUS_JWT_SECRET")
        .env_remove("CHORUS_URL")
        .env("CHORUS_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// `chorus <args>` as `user` (a token in CHORUS_TOKEN) against `addr`.
fn chorus_as(addr: SocketAddr, user: &str, args: &[&str]) -> Command {
    let auth = chorus_gateway::Authenticator::new(SECRET.as_bytes()).unwrap();
    let token = auth.mint(
        &chorus_core::UserId::new(user).unwrap(),
        Duration::from_secs(3600),
    );
    let mut cmd = chorus(args);
    cmd.arg("--url")
        .arg(format!("http://{addr}"))
        .env("CHORUS_TOKEN", token);
    cmd
}

struct Output {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs a command to its end with `stdin` as its input.
async fn run(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(WAIT * 2, child.wait_with_output())
        .await
        .expect("the command finished in time")
        .unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A running `chorus tail`, read line by line.
struct Tail {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Tail {
    fn spawn(mut cmd: Command) -> Tail {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Tail { child, lines }
    }

    async fn line(&mut self) -> String {
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("tail printed a line in time")
            .unwrap()
            .expect("tail is still running")
    }

    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.line().await);
        }
        out
    }

    /// Asserts nothing more is printed for `ms` milliseconds.
    async fn assert_quiet(&mut self, ms: u64) {
        let more = tokio::time::timeout(Duration::from_millis(ms), self.lines.next_line()).await;
        assert!(more.is_err(), "tail printed more: {more:?}");
    }

    async fn exit_code(mut self) -> Option<i32> {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("tail exited in time")
            .unwrap()
            .code()
    }
}

async fn send_all(client: &mut Client, room: &str, bodies: &[&str]) {
    for body in bodies {
        let ack = client.send(room, &format!("c-{body}"), body).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
}

/// Waits until `user` shows up online in the room `client` has joined: a tail without
/// `--since` has joined, and prints whatever comes next.
async fn wait_online(client: &mut Client, user: &str) {
    loop {
        let f = client.frame().await;
        if f["type"] == "presence" && f["joined"].as_array().unwrap().contains(&json!(user)) {
            return;
        }
    }
}

#[tokio::test]
async fn send_posts_each_line_of_stdin_and_prints_its_ack() {
    let server = common::start().await;
    let cmd = chorus_as(server.addr, "alice", &["send", "--room", "general"]);
    let out = run(cmd, "one\n\ntwo\nthree\n").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, ["general 1", "general 2", "general 3"]);
    assert_eq!(out.stderr, "");

    let cmd = chorus_as(
        server.addr,
        "bob",
        &["send", "--room", "general", "--json", "four"],
    );
    let out = run(cmd, "").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let ack: Value = serde_json::from_str(&out.stdout[0]).unwrap();
    assert_eq!(
        (ack["type"].as_str(), ack["seq"].as_u64()),
        (Some("ack"), Some(4))
    );

    let tail = chorus_as(
        server.addr,
        "carol",
        &["tail", "--room", "general", "--since", "0", "--limit", "4"],
    );
    let out = run(tail, "").await;
    assert_eq!(
        out.stdout,
        [
            "[1] alice: one",
            "[2] alice: two",
            "[3] alice: three",
            "[4] bob: four"
        ]
    );
}

#[tokio::test]
async fn resending_with_the_same_client_msg_id_posts_once() {
    let server = common::start().await;
    let args = [
        "send",
        "--room",
        "general",
        "--client-msg-id",
        "note-1",
        "hello",
        "world",
    ];
    let first = run(chorus_as(server.addr, "alice", &args), "").await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(first.stdout, ["general 1"]);
    let again = run(chorus_as(server.addr, "alice", &args), "").await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.stdout, ["general 1 duplicate"]);

    let mut reader = server.client("bob").await;
    let joined = reader.join("general", Some(0)).await;
    assert_eq!(joined["last_seq"], 1);
    let msgs = reader.msgs(1).await;
    assert_eq!(msgs[0]["body"], "hello world");
}

#[tokio::test]
async fn tail_since_0_prints_the_room_in_order_up_to_the_limit() {
    let server = common::start().await;
    let mut alice = server.joined("alice", "general").await;
    send_all(&mut alice, "general", &["a", "b", "c", "d"]).await;
    let tail = chorus_as(
        server.addr,
        "bob",
        &["tail", "--room", "general", "--since", "0", "--limit", "3"],
    );
    let out = run(tail, "").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, ["[1] alice: a", "[2] alice: b", "[3] alice: c"]);
}

#[tokio::test]
async fn tail_without_since_follows_new_messages_only() {
    let server = common::start().await;
    let mut alice = server.joined("alice", "general").await;
    send_all(&mut alice, "general", &["before"]).await;
    let mut tail = Tail::spawn(chorus_as(
        server.addr,
        "bob",
        &["tail", "--room", "general", "--limit", "2"],
    ));
    wait_online(&mut alice, "bob").await;
    send_all(&mut alice, "general", &["after-1", "after-2"]).await;
    assert_eq!(
        tail.lines(2).await,
        ["[2] alice: after-1", "[3] alice: after-2"]
    );
    assert_eq!(tail.exit_code().await, Some(0));
}

/// The standalone wiring on a fixed data directory, restartable on the same port (what a
/// client configured with one URL sees when its server restarts).
struct Node {
    config: StandaloneConfig,
    running: Option<Running>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StandaloneConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            jwt_secret: SECRET.as_bytes().to_vec(),
            gateway: Default::default(),
            router: common::unlimited_rooms(),
            store: Default::default(),
        };
        let running = standalone::start(config.clone()).await.unwrap();
        config.listen = running.addr;
        Node {
            config,
            running: Some(running),
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    async fn stop(&mut self) {
        self.running.take().unwrap().stop().await.unwrap();
    }

    /// Starts on the same data directory, at `listen`.
    async fn start_at(&mut self, listen: SocketAddr) {
        let config = StandaloneConfig {
            listen,
            ..self.config.clone()
        };
        self.running = Some(standalone::start(config).await.unwrap());
    }

    async fn client(&self, user: &str) -> Client {
        let auth = chorus_gateway::Authenticator::new(SECRET.as_bytes()).unwrap();
        let token = auth.mint(
            &chorus_core::UserId::new(user).unwrap(),
            Duration::from_secs(3600),
        );
        let mut c =
            Client::connect_with_header(&format!("ws://{}/v1/ws", self.addr()), &token).await;
        c.expect("ready").await;
        c
    }
}

#[tokio::test]
async fn tail_survives_a_server_restart_and_prints_what_it_missed_once() {
    let mut node = Node::start().await;
    let home = node.addr();
    let mut tail = Tail::spawn(chorus_as(
        home,
        "bob",
        &["tail", "--room", "general", "--since", "0"],
    ));
    let mut alice = node.client("alice").await;
    alice.join("general", None).await;
    send_all(&mut alice, "general", &["m1", "m2"]).await;
    assert_eq!(tail.lines(2).await, ["[1] alice: m1", "[2] alice: m2"]);

    // The server goes away (tail gets close 1001), comes back where tail cannot reach it and
    // takes messages there, then returns to its address.
    node.stop().await;
    node.start_at("127.0.0.1:0".parse().unwrap()).await;
    let mut alice = node.client("alice").await;
    alice.join("general", None).await;
    send_all(&mut alice, "general", &["m3", "m4"]).await;
    node.stop().await;
    node.start_at(home).await;
    let mut alice = node.client("alice").await;
    alice.join("general", None).await;
    send_all(&mut alice, "general", &["m5"]).await;

    assert_eq!(
        tail.lines(3).await,
        ["[3] alice: m3", "[4] alice: m4", "[5] alice: m5"]
    );
    send_all(&mut alice, "general", &["m6"]).await;
    assert_eq!(tail.line().await, "[6] alice: m6");
    tail.assert_quiet(500).await;
}

#[tokio::test]
async fn send_waits_for_a_server_that_is_down_and_posts_once_it_is_back() {
    let mut node = Node::start().await;
    let home = node.addr();
    node.stop().await;
    let mut cmd = chorus_as(home, "alice", &["send", "--room", "general"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"while you were out\n").await.unwrap();
    drop(input);
    tokio::time::sleep(Duration::from_millis(500)).await;
    node.start_at(home).await;
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("send finished once the server was back")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "general 1\n");
}

#[tokio::test]
async fn ctrl_c_ends_tail_successfully() {
    let server = common::start().await;
    let mut alice = server.joined("alice", "general").await;
    let tail = Tail::spawn(chorus_as(
        server.addr,
        "bob",
        &["tail", "--room", "general"],
    ));
    wait_online(&mut alice, "bob").await;
    let pid = tail.child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    assert_eq!(tail.exit_code().await, Some(0));
}

#[tokio::test]
async fn a_refusal_stops_send_with_its_code_and_a_failure_exit() {
    let server = common::start().await;
    let too_long = "x".repeat(5000);
    let input = format!("fine\n{too_long}\nnever sent\n");
    let out = run(
        chorus_as(server.addr, "alice", &["send", "--room", "general"]),
        &input,
    )
    .await;
    assert_eq!(out.stdout, ["general 1"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.starts_with("error: too_large: "),
        "{}",
        out.stderr
    );
    let mut reader = server.client("bob").await;
    let joined = reader.join("general", Some(0)).await;
    assert_eq!(joined["last_seq"], 1, "nothing after the refusal was sent");
}

#[tokio::test]
async fn a_bad_token_is_a_clear_unauthorized_error() {
    let server = common::start().await;
    let url = format!("http://{}", server.addr);
    let token = "not-a-valid-token";
    for args in [
        ["send", "--room", "general", "hi"].as_slice(),
        ["tail", "--room", "general"].as_slice(),
    ] {
        let mut cmd = chorus(args);
        cmd.args(["--url", &url]).env("CHORUS_TOKEN", token);
        let out = run(cmd, "").await;
        assert_ne!(out.code, Some(0), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
        assert_eq!(
            out.stderr, "error: unauthorized: invalid token\n",
            "{args:?}"
        );
    }
    let out = run(chorus(&["send", "--room", "general", "hi"]), "").await;
    assert_ne!(out.code, Some(0));
    assert!(out.stderr.starts_with("error: no token"), "{}", out.stderr);
}

#[tokio::test]
async fn send_with_a_user_and_the_secret_mints_its_own_token() {
    let server = common::start().await;
    let mut cmd = chorus(&["send", "--room", "general", "--user", "dora", "hi"]);
    cmd.args(["--url", &format!("http://{}", server.addr)])
        .env("CHORUS_JWT_SECRET", SECRET);
    let out = run(cmd, "").await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, ["general 1"]);
    let mut reader = server.client("bob").await;
    reader.join("general", Some(0)).await;
    assert_eq!(reader.msgs(1).await[0]["from"], "dora");
}

/// A gateway that drains sends `reconnect` before closing (docs/protocol.md, "Draining
/// gateways"). This fake gateway sends it and keeps the connection open: tail must leave
/// and resume from its last seq on a new connection by itself.
#[tokio::test]
async fn tail_reconnects_on_a_reconnect_frame_and_resumes_from_its_last_seq() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut tail = Tail::spawn(chorus_as(
        addr,
        "bob",
        &["tail", "--room", "general", "--since", "0", "--limit", "3"],
    ));

    let mut first = accept(&listener).await;
    let join = read_json(&mut first).await;
    assert_eq!(
        (join["type"].as_str(), join["since"].as_u64()),
        (Some("join"), Some(0))
    );
    write_json(
        &mut first,
        json!({"type":"joined","id":join["id"],"room":"general","last_seq":2}),
    )
    .await;
    for seq in [1, 2] {
        write_json(&mut first, msg(seq)).await;
    }
    assert_eq!(tail.lines(2).await, ["[1] alice: m1", "[2] alice: m2"]);
    write_json(&mut first, json!({"type":"reconnect","reason":"shutdown"})).await;

    let mut second = tokio::time::timeout(Duration::from_secs(2), accept(&listener))
        .await
        .expect("tail reconnected at once");
    let join = read_json(&mut second).await;
    assert_eq!(join["since"], 2, "{join}");
    write_json(
        &mut second,
        json!({"type":"joined","id":join["id"],"room":"general","last_seq":3}),
    )
    .await;
    // A replay overlapping what was printed is not printed again.
    for seq in [2, 3] {
        write_json(&mut second, msg(seq)).await;
    }
    assert_eq!(tail.line().await, "[3] alice: m3");
    assert_eq!(tail.exit_code().await, Some(0));
    drop(first);
}

type FakeWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Accepts one upgrade, checks it carries a bearer token, and says `ready`.
async fn accept(listener: &TcpListener) -> FakeWs {
    let (tcp, _) = listener.accept().await.unwrap();
    // The callback's signature is tungstenite's, error response and all.
    #[allow(clippy::result_large_err)]
    let check = |req: &server::Request, resp: server::Response| {
        let auth = req
            .headers()
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(auth.starts_with("Bearer ey"), "{auth}");
        assert_eq!(req.uri().path(), "/v1/ws");
        Ok(resp)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(tcp, check)
        .await
        .unwrap();
    write_json(
        &mut ws,
        json!({"type":"ready","user":"bob","conn_id":1,"protocol":1}),
    )
    .await;
    ws
}

fn msg(seq: u64) -> Value {
    json!({"type":"msg","room":"general","seq":seq,"from":"alice","body":format!("m{seq}"),"ts":seq})
}

async fn write_json(ws: &mut FakeWs, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn read_json(ws: &mut FakeWs) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the client wrote in time")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}
