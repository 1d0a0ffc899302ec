// Connection and delivery: reconnects, resume with since, dedup, gap fill, drain, tokens.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChorusClient } from "../dist/index.js";
import { FakeChorus, fastOptions, until } from "./fake-server.mjs";

function collect(client, event) {
  const out = [];
  client.on(event, (e) => out.push(e));
  return out;
}

test("after a drop every joined room is re-joined with since = lastSeq, and nothing is lost or repeated", async (t) => {
  const server = new FakeChorus();
  server.append("a", "bob", "a1");
  server.append("b", "bob", "b1");
  server.append("b", "bob", "b2");
  const client = new ChorusClient(fastOptions(server, { transports: ["websocket"] }));
  t.after(() => client.close());
  const messages = collect(client, "message");
  const joined = collect(client, "joined");
  client.connect();
  await client.join("a", { since: 0 });
  await client.join("b");
  await until(() => messages.length === 1);
  assert.equal(client.lastSeq("a"), 1);
  assert.equal(client.lastSeq("b"), 2, "a join without since starts at the room's last seq");

  server.conn.close(1011, "internal");
  server.append("a", "bob", "a2");
  server.append("b", "bob", "b3");
  await until(() => messages.length === 3, 2000, "the missed messages");

  const joins = server.framesOf("join");
  assert.deepEqual(
    joins.slice(2).map((j) => [j.room, j.since]).sort(),
    [["a", 1], ["b", 2]],
  );
  assert.deepEqual(
    messages.map((m) => `${m.room}:${m.seq}:${m.body}`),
    ["a:1:a1", "a:2:a2", "b:3:b3"],
  );
  assert.deepEqual(joined.map((j) => j.resumed), [false, false, true, true]);
  assert.equal(client.state, "open");
});

test("duplicate msg frames (seq <= lastSeq) are dropped", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const messages = collect(client, "message");
  client.connect();
  await client.join("r", { since: 0 });
  const m1 = server.append("r", "bob", "one");
  const m2 = server.append("r", "bob", "two");
  server.conn.deliver(m1);
  server.conn.deliver(m2);
  server.conn.deliver(m1);
  server.append("r", "bob", "three");
  await until(() => messages.length >= 3);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(messages.map((m) => m.seq), [1, 2, 3]);
});

test("a gap is filled with history after lastSeq and delivered in order", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const messages = collect(client, "message");
  client.connect();
  await client.join("r", { since: 0 });
  server.append("r", "bob", "1");
  await until(() => messages.length === 1);

  // Seqs 2 and 3 are written but never delivered live; 4 and 5 are.
  const conn = server.conn;
  conn.rooms.delete("r");
  server.append("r", "bob", "2");
  server.append("r", "bob", "3");
  conn.rooms.add("r");
  server.append("r", "bob", "4");
  server.append("r", "bob", "5");

  await until(() => messages.length === 5, 2000, "gap fill");
  assert.deepEqual(messages.map((m) => m.seq), [1, 2, 3, 4, 5]);
  assert.ok(messages.every((m) => m.type === "msg"));
  const history = server.framesOf("history");
  assert.equal(history.length, 1);
  assert.equal(history[0].after, 1);
  assert.equal(client.lastSeq("r"), 5);
});

test("a reconnect frame reconnects at once and resumes", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server, { backoff: { initialMs: 5000, maxMs: 5000 }, drainJitterMs: 10 }));
  t.after(() => client.close());
  const states = collect(client, "state");
  client.connect();
  await client.join("r", { since: 0 });
  const first = server.conn;
  const started = Date.now();
  first.deliver({ type: "reconnect", reason: "shutdown" });
  await until(() => server.conns.length === 1 && server.conn !== first && client.state === "open");
  await until(() => server.framesOf("join").length === 2);
  assert.ok(Date.now() - started < 1000, "no backoff wait after a drain request");
  const wait = states.find((s) => s.state === "reconnecting" && s.delayMs !== undefined);
  assert.ok(wait.delayMs < 10, `drain jitter ${wait.delayMs} within drainJitterMs`);
  assert.equal(server.framesOf("join")[1].since, 0);
});

test("close 1001 after ready reconnects without backoff", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server, { backoff: { initialMs: 5000, maxMs: 5000 }, drainJitterMs: 10 }));
  t.after(() => client.close());
  client.connect();
  await until(() => client.state === "open");
  const first = server.conn;
  first.close(1001, "shutdown");
  await until(() => client.state === "open" && server.conn !== first, 1000, "drain reconnect");
});

test("reconnect delays follow full-jitter backoff and reset after ready", async (t) => {
  const server = new FakeChorus();
  server.acceptWebSocket = false;
  const client = new ChorusClient(
    fastOptions(server, { transports: ["websocket"], backoff: { initialMs: 4, maxMs: 20 }, random: () => 0.999 }),
  );
  t.after(() => client.close());
  const waits = [];
  client.on("state", (s) => s.delayMs !== undefined && waits.push(s.delayMs));
  client.connect();
  await until(() => waits.length >= 5);
  assert.deepEqual(waits.slice(0, 5), [3, 7, 15, 19, 19]);
  server.acceptWebSocket = true;
  await until(() => client.state === "open");
  waits.length = 0;
  server.conn.close(1011, "internal");
  await until(() => waits.length >= 1);
  assert.equal(waits[0], 3, "the first wait after a success is back to initialMs");
});

test("the token provider is called again after close 4001", async (t) => {
  const server = new FakeChorus();
  const tokens = ["bad-token", "bad-token", "tok-alice", "tok-alice"];
  let calls = 0;
  const client = new ChorusClient(fastOptions(server, { token: async () => tokens[calls++] }));
  t.after(() => client.close());
  const errors = collect(client, "error");
  client.connect();
  await until(() => client.state === "open");
  assert.equal(calls, 3);
  assert.deepEqual(server.tokens, ["bad-token", "bad-token", "tok-alice"]);
  assert.ok(errors.some((e) => e.code === "unauthorized"), "the refusal is reported");
  assert.equal(client.transport, "websocket", "auth refusals are not transport failures: no SSE fallback");

  // Token expiry on an open connection: unauthorized + 4001, then a fresh token.
  server.conn.deliver({ type: "error", code: "unauthorized", message: "token expired" });
  server.conn.close(4001, "token expired");
  await until(() => calls === 4 && client.state === "open");
  assert.equal(client.user, "alice");
});

test("close() stops for good and rejects pending work with code closed", async (t) => {
  const server = new FakeChorus();
  server.acceptWebSocket = false;
  const client = new ChorusClient(fastOptions(server, { transports: ["websocket"] }));
  client.connect();
  const send = client.send("r", "never");
  const join = client.join("r");
  const history = client.history("r");
  client.close();
  for (const p of [send, join, history]) await assert.rejects(p, (e) => e.code === "closed");
  assert.equal(client.state, "closed");
  assert.throws(() => client.connect(), (e) => e.code === "closed");
  t.diagnostic("closed client refuses to reconnect");
});

test("a left frame from the server (ban) ends the room: no more messages, not re-joined", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const messages = collect(client, "message");
  const left = collect(client, "left");
  client.connect();
  await client.join("r");
  server.conn.rooms.delete("r");
  server.conn.deliver({ type: "left", room: "r", reason: "ban" });
  await until(() => left.length === 1);
  server.conn.deliver({ type: "msg", room: "r", seq: 1, from: "bob", body: "late", ts: 1 });
  server.conn.close(1011, "internal");
  await until(() => client.state === "open" && server.framesOf("auth").length === 2);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.framesOf("join").length, 1, "a banned room is not joined again");
  assert.equal(messages.length, 0);
  assert.equal(left[0].reason, "ban");
});

test("queries made while offline are sent once connected; reads are resent after a drop", async (t) => {
  const server = new FakeChorus();
  server.append("r", "bob", "old");
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const early = client.history("r");
  client.connect();
  assert.deepEqual((await early).messages.map((m) => m.body), ["old"]);
  let dropped = false;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "history" || dropped) return false;
    dropped = true;
    conn.close(1006, "");
    return true;
  });
  const page = await client.history("r", { after: 0 });
  assert.equal(page.messages[0].type, "msg");
  assert.equal(page.hasMore, false);
  assert.equal(server.framesOf("history").length, 3);
});
