// The SDK against a real cluster: one `chorus router` and two `chorus gateway` processes on
// the nats-server and Cassandra that `make test` starts, with a stand-in for a Kubernetes
// Service in front of the gateways (a TCP proxy that sends each new connection to a gateway
// whose /readyz answers 200). A gateway is drained (SIGTERM) in the middle of a
// conversation: the SDK must reconnect through the "Service" to the other gateway and resume,
// so that every message is delivered exactly once, in order, and every send is acked once.
//
// Env: CHORUS_BIN (the chorus binary), CHORUS_TEST_NATS_URL, CHORUS_TEST_CQL (host:port).
// Run: node integration/cluster-drain.mjs   (exit code 0 = pass)

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, openSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { ChorusClient } from "../dist/index.js";
import { freePort } from "../../free-port.mjs";

const BIN = process.env.CHORUS_BIN;
const NATS = process.env.CHORUS_TEST_NATS_URL;
const CQL = process.env.CHORUS_TEST_CQL;
if (!BIN || !NATS || !CQL) {
  console.error("cluster-drain: set CHORUS_BIN, CHORUS_TEST_NATS_URL and CHORUS_TEST_CQL");
  process.exit(2);
}

const SECRET = randomBytes(32).toString("hex");
const suffix = randomBytes(4).toString("hex");
const keyspace = `sdk_drain_${suffix}`;
const prefix = `sdkdrain${suffix}`;
const logs = mkdtempSync(join(tmpdir(), "chorus-sdk-drain-"));
const children = [];

function start(name, args, extraEnv = {}) {
  const out = openSync(join(logs, `${name}.log`), "a");
  const child = spawn(BIN, args, {
    env: { ...process.env, CHORUS_LOG: "info", ...extraEnv },
    stdio: ["ignore", out, out],
  });
  child.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  children.push(child);
  return child;
}

async function run(args) {
  const child = start("migrate", args);
  const { code } = await child.exited;
  assert.equal(code, 0, `chorus ${args[0]} failed (logs in ${logs})`);
}

async function until(what, check, ms = 30_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (logs in ${logs})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ready(port) {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return res.status === 200;
}

function mint(user) {
  // HS256 JWT, as `chorus token` makes it (the SDK only needs a token provider).
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: user, iat: now, exp: now + 3600 })}`;
  return import("node:crypto").then(({ createHmac }) =>
    `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`,
  );
}

/** A stand-in for a Service: each new connection goes to the first ready gateway. */
async function service(gatewayPorts) {
  const server = net.createServer(async (client) => {
    client.pause();
    let target = null;
    for (const port of gatewayPorts) {
      if (await ready(port).catch(() => false)) {
        target = port;
        break;
      }
    }
    if (target === null) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, "127.0.0.1", () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on("error", close);
    client.on("error", close);
    upstream.on("close", close);
    client.on("close", close);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

async function main() {
  const [grpc, http, gw1, gw2] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const cluster = ["--nats-url", NATS, "--cluster-prefix", prefix];
  const cql = ["--cql-contact-points", CQL, "--cql-keyspace", keyspace];
  await run(["migrate", ...cql]);
  start("router", ["router", "--name", "router-1", "--grpc-listen", `127.0.0.1:${grpc}`,
    "--http-listen", `127.0.0.1:${http}`, ...cluster, ...cql]);
  const gateway = (port) =>
    start(`gateway-${port}`, ["gateway", "--listen", `127.0.0.1:${port}`, "--drain-window", "1s",
      ...cluster], { CHORUS_JWT_SECRET: SECRET });
  const first = gateway(gw1);
  gateway(gw2);
  await until("the router", () => ready(http));
  await until("the gateways", async () => (await ready(gw1)) && (await ready(gw2)));
  // New connections prefer gateway 1 while it is ready, then go to gateway 2.
  const svc = await service([gw1, gw2]);
  const url = `http://127.0.0.1:${svc.address().port}`;

  const client = (user) =>
    new ChorusClient({ url, token: () => mint(user), WebSocket, backoff: { initialMs: 50, maxMs: 1000 } });
  const alice = client("alice");
  const bob = client("bob");
  const states = [];
  alice.on("state", (e) => states.push(e.state));
  const seen = { alice: [], bob: [] };
  alice.on("message", (m) => seen.alice.push(m));
  bob.on("message", (m) => seen.bob.push(m));
  alice.connect();
  bob.connect();
  await alice.join("drain-room", { since: 0 });
  await bob.join("drain-room", { since: 0 });

  // Both talk; half-way through, the gateway they are on drains.
  const total = 40;
  const acks = [];
  let drained = null;
  for (let i = 0; i < total; i++) {
    const who = i % 2 === 0 ? alice : bob;
    acks.push(who.send("drain-room", `m${i}`));
    if (i === total / 2) {
      first.kill("SIGTERM");
      drained = first.exited;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const results = await Promise.all(acks);
  const exit = await drained;
  assert.equal(exit.code, 0, "the drained gateway exits cleanly");
  assert.ok(states.includes("reconnecting"), `alice reconnected: ${states.join(",")}`);

  // Every send acked once, seqs 1..total; both clients saw exactly those, in order.
  const ackSeqs = results.map((a) => a.seq).sort((a, b) => a - b);
  assert.deepEqual(ackSeqs, Array.from({ length: total }, (_, i) => i + 1), "gapless acks");
  await until("every delivery", () => seen.alice.length >= total && seen.bob.length >= total, 15_000);
  await new Promise((r) => setTimeout(r, 300));
  for (const [who, msgs] of Object.entries(seen)) {
    const seqs = msgs.map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1), `${who}: each once, in order`);
    assert.deepEqual(
      msgs.map((m) => m.body).sort(),
      Array.from({ length: total }, (_, i) => `m${i}`).sort(),
      `${who}: every body once`,
    );
  }
  alice.close();
  bob.close();
  svc.close();
  console.log(`ok - cluster drain: ${total} messages, each delivered once in order to both clients across the drain`);
}

try {
  await main();
} catch (e) {
  console.error(`not ok - cluster drain: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  for (const c of children) c.kill("SIGKILL");
}
