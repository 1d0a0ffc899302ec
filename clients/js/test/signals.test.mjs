// Typing debounce and read-mark coalescing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChorusClient } from "../dist/index.js";
import { FakeChorus, fastOptions, sleep, until } from "./fake-server.mjs";

test("typing: one start per interval while typing, one stop after the idle time", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server, { typingIntervalMs: 60, typingIdleMs: 80 }));
  t.after(() => client.close());
  client.connect();
  await client.join("r");
  const typing = () => server.framesOf("typing").map((f) => f.typing);

  for (let i = 0; i < 5; i++) {
    client.typing("r");
    await sleep(5);
  }
  await until(() => typing().length === 1);
  assert.deepEqual(typing(), [true], "keystrokes within the interval send one start");
  await until(() => typing().length === 2, 1000, "stop after idle");
  assert.deepEqual(typing(), [true, false]);

  // Typing across more than one interval repeats the start.
  const started = Date.now();
  while (Date.now() - started < 90) {
    client.typing("r");
    await sleep(10);
  }
  await until(() => typing().length >= 5, 1000, "stop after the second burst");
  assert.deepEqual(typing().slice(2), [true, true, false]);

  // Sending ends the typing state without an extra frame (the server ends it after the msg).
  const count = typing().length;
  client.typing("r");
  await client.send("r", "done");
  await until(() => typing().length === count + 1);
  await sleep(60);
  assert.deepEqual(typing().slice(count), [true], "no stop after a send");
  client.typing("r");
  client.stopTyping("r");
  await until(() => typing().length === count + 3);
  assert.deepEqual(typing().slice(-2), [true, false]);
});

test("markRead: marks coalesce, only move forward, and one read is in flight per room", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r");
  let hold = null;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "read" || hold) return false;
    hold = () => conn.deliver({ type: "ok", id: frame.id });
    return true;
  });
  for (let seq = 1; seq <= 5; seq++) client.markRead("r", seq);
  await until(() => server.framesOf("read").length === 1);
  client.markRead("r", 3);
  client.markRead("r", 7);
  client.markRead("r", 6);
  await sleep(20);
  assert.deepEqual(server.framesOf("read").map((f) => f.seq), [5], "the next mark waits for the reply");
  hold();
  await until(() => server.framesOf("read").length === 2);
  assert.deepEqual(server.framesOf("read").map((f) => f.seq), [5, 7]);
  client.markRead("r", 7);
  await sleep(20);
  assert.equal(server.framesOf("read").length, 2, "a mark not above the last one is ignored");
});

test("markRead: a mark without a reply is sent again after a reconnect", async (t) => {
  const server = new FakeChorus();
  const client = new ChorusClient(fastOptions(server));
  t.after(() => client.close());
  client.connect();
  await client.join("r");
  let swallowed = false;
  server.hooks.push((conn, frame) => {
    if (frame.type !== "read" || swallowed) return false;
    swallowed = true;
    conn.close(1006, "");
    return true;
  });
  client.markRead("r", 4);
  await until(() => server.framesOf("read").length === 2, 2000, "the mark again");
  const reads = server.received.filter((r) => r.frame.type === "read");
  assert.notEqual(reads[0].conn, reads[1].conn);
  assert.equal(reads[1].frame.seq, 4);
  const after = server.received.filter((r) => r.conn === reads[1].conn).map((r) => r.frame.type);
  assert.ok(after.indexOf("join") < after.indexOf("read"), "after the room's resume");
});
