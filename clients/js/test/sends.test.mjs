// The send queue: offline queueing, resend with the same client_msg_id, retries, refusals,
// ack timeouts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChorusClient } from "../dist/index.js";
import { FakeChorus, fastOptions, sleep, until } from "./fake-server.mjs";

test("sends made while disconnected go out once after reconnect, after the room's re-join, with the same id", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r", { since: 0 });

  // The network goes away: refuse new connections for a while.
  server.acceptWebSocket = false;
  server.conn.close(1006, "");
  await until(() => client.state === "reconnecting");
  const p1 = client.send("r", "one");
  const p2 = client.send("r", "two");
  await sleep(30);
  assert.equal(server.framesOf("send").length, 0, "nothing is written while offline");

  server.acceptWebSocket = true;
  const [a1, a2] = await Promise.all([p1, p2]);
  assert.deepEqual([a1.seq, a2.seq], [1, 2]);
  // (Two refused WebSocket starts moved the client to SSE, which authenticates by header.)
  const conn = server.conn;
  const order = server.received.filter((r) => r.conn === conn && r.frame.type !== "auth").map((r) => r.frame.type);
  assert.deepEqual(order, ["join", "send", "send"], "the sends wait for the room's resume");
  assert.deepEqual(server.framesOf("send").map((f) => f.body), ["one", "two"], "each written once");
  assert.equal(server.log("r").length, 2);
});

test("a send in flight when the connection drops is resent with the same client_msg_id; duplicate:true resolves it", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  const acks = [];
  client.on("ack", (a) => acks.push(a));
  client.connect();
  await client.join("r", { since: 0 });

  // The server stores the first attempt, then the connection dies before the ack.
  let dropped = false;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "send" || dropped) return false;
    dropped = true;
    server.append("r", conn.user, frame.body, { client_msg_id: frame.client_msg_id });
    conn.close(1006, "");
    return true;
  });
  const ack = await client.send("r", "hello");
  const sends = server.framesOf("send");
  assert.equal(sends.length, 2);
  assert.equal(sends[0].client_msg_id, sends[1].client_msg_id);
  assert.equal(ack.duplicate, true);
  assert.equal(ack.seq, 1);
  assert.equal(server.log("r").length, 1, "stored once");
  assert.equal(acks.length, 1);
});

test("rate_limited is retried after retry_after_ms with the same id", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r");
  let refused = 0;
  const times = [];
  server.hooks.push((conn, frame) => {
    if (frame.type !== "send") return false;
    times.push(Date.now());
    if (refused++ > 0) return false;
    conn.deliver({ type: "error", id: frame.id, code: "rate_limited", message: "send rate exceeded", room: "r", retry_after_ms: 60 });
    return true;
  });
  const ack = await client.send("r", "hi");
  const sends = server.framesOf("send");
  assert.equal(sends.length, 2);
  assert.equal(sends[0].client_msg_id, sends[1].client_msg_id);
  assert.ok(times[1] - times[0] >= 55, `retried after ${times[1] - times[0]} ms`);
  assert.equal(ack.seq, 1);
});

test("unavailable is retried with backoff; later sends of the room keep their order", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r");
  let refusals = 2;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "send" || frame.body !== "first" || refusals === 0) return false;
    refusals -= 1;
    conn.deliver({ type: "error", id: frame.id, code: "unavailable", message: "store down", room: "r" });
    return true;
  });
  const first = client.send("r", "first");
  await sleep(1);
  const second = client.send("r", "second");
  await Promise.all([first, second]);
  assert.deepEqual(server.log("r").map((m) => m.body), ["first", "second"]);
});

test("a terminal refusal rejects the send and removes it from the queue", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r");
  server.hooks.push((conn, frame) => {
    if (frame.type !== "send" || frame.body !== "bad") return false;
    conn.deliver({ type: "error", id: frame.id, code: "too_large", message: "body too large", room: "r" });
    return true;
  });
  await assert.rejects(client.send("r", "bad"), (e) => e.code === "too_large" && e.room === "r");
  // The refused send is not written again, even after a reconnect.
  server.conn.close(1011, "internal");
  await until(() => client.state === "open" && server.framesOf("join").length === 2);
  await client.send("r", "fine");
  assert.deepEqual(server.framesOf("send").map((f) => f.body), ["bad", "fine"]);
});

test("a send to a room the server refuses (not joined) rejects with forbidden", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await assert.rejects(client.send("nowhere", "x"), (e) => e.code === "forbidden");
});

test("no ack within ackTimeoutMs: error timeout, reconnect, resend with the same id", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server, { ackTimeoutMs: 50 }));
  t.after(() => client.close());
  const errors = [];
  client.on("error", (e) => errors.push(e));
  client.connect();
  await client.join("r", { since: 0 });
  let swallowed = false;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "send" || swallowed) return false;
    swallowed = true;
    return true; // never answered
  });
  const first = server.conn;
  const ack = await client.send("r", "hello");
  assert.ok(errors.some((e) => e.code === "timeout" && e.room === "r"));
  const sends = server.received.filter((r) => r.frame.type === "send");
  assert.equal(sends.length, 2);
  assert.notEqual(sends[1].conn, first, "resent on a new connection");
  assert.equal(sends[0].frame.client_msg_id, sends[1].frame.client_msg_id);
  assert.equal(ack.seq, 1);
});

test("the offline queue is bounded by offlineQueueMax", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server, { offlineQueueMax: 2 }));
  t.after(() => client.close());
  const a = client.send("r", "1");
  const b = client.send("r", "2");
  await assert.rejects(client.send("r", "3"), (e) => e.code === "limit_exceeded");
  client.close();
  await assert.rejects(a, (e) => e.code === "closed");
  await assert.rejects(b, (e) => e.code === "closed");
});

test("sendTimeoutMs bounds how long a send may wait", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server, { sendTimeoutMs: 30 }));
  t.after(() => client.close());
  await assert.rejects(client.send("r", "offline"), (e) => e.code === "timeout");
});

test("a send's traceparent goes with every attempt of it, and only with it", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r", { since: 0 });
  let dropped = false;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "send" || dropped) return false;
    dropped = true;
    conn.close(1006, "");
    return true;
  });
  const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  await client.send("r", "traced", { traceparent: tp });
  await client.send("r", "plain");
  const sends = server.framesOf("send");
  assert.deepEqual(
    sends.map((f) => [f.body, f.traceparent]),
    [["traced", tp], ["traced", tp], ["plain", undefined]],
  );
});
