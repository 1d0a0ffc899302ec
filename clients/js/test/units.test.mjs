import { test } from "node:test";
import assert from "node:assert/strict";
import { Backoff } from "../dist/backoff.js";
import { SseParser } from "../dist/sse.js";
import { endpointUrl } from "../dist/transport.js";
import { ClientMsgIds } from "../dist/ids.js";

test("backoff: full jitter stays within min(max, initial * 2^n) and resets", () => {
  let r = 0.999999;
  const b = new Backoff(100, 1000, () => r);
  const highs = [];
  for (let i = 0; i < 6; i++) highs.push(b.next());
  // Upper edges: 100, 200, 400, 800, then capped at 1000.
  assert.deepEqual(highs, [99, 199, 399, 799, 999, 999]);
  r = 0;
  assert.equal(b.next(), 0, "full jitter may return no wait at all");
  b.reset();
  r = 0.999999;
  assert.equal(b.next(), 99, "after a reset the window is back to initialMs");
  for (let i = 0; i < 1000; i++) {
    const s = new Backoff(100, 30000);
    for (let n = 0; n < 12; n++) {
      const d = s.next();
      assert.ok(d >= 0 && d < Math.min(30000, 100 * 2 ** n), `delay ${d} out of bounds at attempt ${n}`);
    }
  }
});

test("sse parser: events split across chunks, CRLF, multi-line data and heartbeats", () => {
  const events = [];
  const p = new SseParser((d) => events.push(d));
  p.push(": heartbeat\n\n");
  p.push('data: {"type":"re');
  p.push('ady"}\r');
  p.push("\n\r\n");
  p.push("event: ignored\nid: 3\ndata:one\ndata: two\n\n");
  p.push("data: x\r\rdata: y\n");
  assert.deepEqual(events, ['{"type":"ready"}', "one\ntwo", "x"]);
  p.push("\n");
  assert.deepEqual(events.at(-1), "y");
});

test("endpoint urls: http base to ws and back, with a path prefix", () => {
  assert.equal(endpointUrl("http://h:8080", "/v1/ws", true), "ws://h:8080/v1/ws");
  assert.equal(endpointUrl("https://h/chat/", "/v1/ws", true), "wss://h/chat/v1/ws");
  assert.equal(endpointUrl("wss://h", "/v1/sse", false), "https://h/v1/sse");
});

test("client_msg_ids share a random prefix per client and never repeat", () => {
  const a = new ClientMsgIds();
  const b = new ClientMsgIds();
  assert.notEqual(a.prefix, b.prefix);
  const ids = new Set(Array.from({ length: 100 }, () => a.next()));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.ok(id.length <= 64 && id.startsWith(a.prefix + "-"));
});
