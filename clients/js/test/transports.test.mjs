// Transport negotiation, the SSE wire format, and one round trip over a real WebSocket.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WebSocketServer, WebSocket } from "ws";
import { ChorusClient } from "../dist/index.js";
import { FakeChorus, fastOptions, until } from "./fake-server.mjs";

test("WebSocket failing twice before ready moves the client to SSE; POSTs are NDJSON, one at a time", async (t) => {
  const server = new FakeChorus();
  server.acceptWebSocket = false;
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const states = [];
  client.on("state", (s) => states.push(s));
  const messages = [];
  client.on("message", (m) => messages.push(m));
  client.connect();
  await until(() => client.state === "open");
  assert.equal(client.transport, "sse");
  assert.equal(states.filter((s) => s.transport === "websocket" && s.delayMs !== undefined).length, 2);
  assert.equal(states.at(-1).transport, "sse");

  await Promise.all([client.join("a"), client.join("b"), client.join("c")]);
  const acks = await Promise.all([client.send("a", "1"), client.send("b", "2"), client.send("c", "3"), client.send("a", "4")]);
  assert.deepEqual(acks.map((a) => a.seq), [1, 1, 1, 2]);
  await until(() => messages.length === 4);

  assert.equal(server.maxPostsInFlight, 1, "never two POSTs in flight");
  assert.ok(server.posts.some((p) => p.body.split("\n").length > 1), "frames queued meanwhile are batched");
  for (const post of server.posts) {
    assert.equal(post.headers["Content-Type"], "application/x-ndjson");
    assert.equal(post.headers.Authorization, "Bearer tok-alice");
    assert.ok(!post.url.includes("tok-"), "no token in URLs");
    assert.match(post.url, /\/v1\/sse\/[0-9a-f]{32}$/);
    for (const line of post.body.split("\n")) assert.equal(typeof JSON.parse(line).type, "string");
  }
  assert.equal(server.framesOf("auth").length, 0, "SSE authenticates with the header only");
});

test("an outage (no WebSocket and no HTTP) is not a blocked WebSocket: the client stays on WebSocket", async (t) => {
  const server = new FakeChorus();
  server.acceptWebSocket = false;
  server.answersHttp = false;
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const states = [];
  client.on("state", (s) => states.push(s));
  client.connect();
  await until(() => states.filter((s) => s.delayMs !== undefined).length >= 5, 3000, "five failed attempts");
  assert.ok(states.every((s) => s.transport !== "sse"), "never switched to SSE while the gateway was down");
  // The gateway is back: the client comes back on WebSocket.
  server.acceptWebSocket = true;
  server.answersHttp = true;
  await until(() => client.state === "open", 3000, "open again");
  assert.equal(client.transport, "websocket");
});

test("after fallbackRetryMs the next connection tries WebSocket again", async (t) => {
  const server = new FakeChorus();
  server.acceptWebSocket = false;
  const client = new ChorusClient(fastOptions(server, { fallbackRetryMs: 40 }));
  t.after(() => client.close());
  client.connect();
  await until(() => client.state === "open" && client.transport === "sse");
  server.acceptWebSocket = true;
  await new Promise((r) => setTimeout(r, 50));
  server.conn.close(1011, "internal");
  await until(() => client.state === "open" && client.transport === "websocket", 2000, "websocket again");
});

test("SSE close frame: 1001 reconnects at once and resumes; the stream's rooms are re-joined", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(
    fastOptions(server, { transports: ["sse"], backoff: { initialMs: 5000, maxMs: 5000 }, drainJitterMs: 5 }),
  );
  t.after(() => client.close());
  const messages = [];
  client.on("message", (m) => messages.push(m));
  client.connect();
  await client.join("r", { since: 0 });
  server.append("r", "bob", "before");
  await until(() => messages.length === 1);
  const first = server.conn;
  first.close(1001, "shutdown");
  server.append("r", "bob", "during");
  await until(() => messages.length === 2, 1000, "resume over a new SSE stream");
  assert.notEqual(server.conn, first);
  assert.deepEqual(server.framesOf("join").map((j) => j.since), [0, 1]);
  assert.equal(client.transport, "sse");
});

test("SSE close frame 4001 fetches a new token; HTTP 401 is reported as unauthorized", async (t) => {
  const server = new FakeChorus();
  const tokens = ["tok-alice", "expired", "tok-alice"];
  let calls = 0;
  const client = new ChorusClient(fastOptions(server, { transports: ["sse"], token: () => tokens[calls++] }));
  t.after(() => client.close());
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.connect();
  await until(() => client.state === "open");
  server.conn.close(4001, "token expired");
  await until(() => calls === 3 && client.state === "open", 2000, "reconnect with a fresh token");
  assert.deepEqual(server.tokens, ["tok-alice", "expired", "tok-alice"]);
  assert.ok(errors.some((e) => e.code === "unauthorized" && e.message === "invalid token"));
});

test("a real WebSocket (ws package): auth frame, send, receive, resume after the socket dies", async (t) => {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => wss.once("listening", r));
  const log = [];
  const sockets = new Set();
  const paths = [];
  wss.on("connection", (ws, req) => {
    paths.push(req.url);
    sockets.add(ws);
    ws.on("close", () => sockets.delete(ws));
    ws.on("message", (data) => {
      const f = JSON.parse(String(data));
      const reply = (x) => ws.send(JSON.stringify({ ...x, id: f.id }));
      if (f.type === "auth") reply({ type: "ready", user: "alice", conn_id: 1, protocol: 1, limits: {} });
      else if (f.type === "join") {
        reply({ type: "joined", room: f.room, last_seq: log.length, online: { count: 1, users: ["alice"], has_more: false } });
        for (const m of log.slice(f.since ?? log.length)) ws.send(JSON.stringify(m));
      } else if (f.type === "send") {
        const msg = { type: "msg", room: f.room, seq: log.length + 1, from: "alice", body: f.body, client_msg_id: f.client_msg_id, ts: 1 };
        log.push(msg);
        reply({ type: "ack", room: f.room, client_msg_id: f.client_msg_id, seq: msg.seq, ts: 1 });
        for (const s of sockets) s.send(JSON.stringify(msg));
      }
    });
  });
  let client = null;
  t.after(() => {
    client?.close();
    for (const s of wss.clients) s.terminate();
    return new Promise((r) => wss.close(r));
  });
  const { port } = wss.address();
  client = new ChorusClient({
    url: `http://127.0.0.1:${port}`,
    token: "tok-alice",
    WebSocket,
    transports: ["websocket"],
    backoff: { initialMs: 5, maxMs: 20 },
  });
  const messages = [];
  client.on("message", (m) => messages.push(m.body));
  client.connect();
  await client.join("r", { since: 0 });
  assert.equal((await client.send("r", "one")).seq, 1);
  await until(() => messages.length === 1);
  for (const s of sockets) s.terminate();
  await until(() => client.state === "reconnecting");
  await until(() => client.state === "open");
  await client.send("r", "two");
  await until(() => messages.length === 2);
  assert.deepEqual(messages, ["one", "two"]);
  assert.deepEqual(paths, ["/v1/ws", "/v1/ws"]);
  assert.equal(client.user, "alice");
});
