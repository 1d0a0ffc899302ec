// Helpers of the web app's end-to-end tests: the chorus server under test, Chromium, and the
// few UI steps every test repeats. The tests drive the app only through what a user sees and
// the data-testid attributes of clients/web; the only side door is serverHistory(), which
// reads a room's log straight from the server over the wire protocol to check the panes.

import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");
export const SHOTS = path.join(HERE, "screenshots");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export { freePort } from "../free-port.mjs";

/**
 * `chorus standalone --dev` on a fixed port and data directory, so that a restart keeps both
 * (and the generated dev JWT secret, so the browsers' tokens stay valid).
 */
export class Standalone {
  constructor({ bin, port, dataDir, logFile }) {
    Object.assign(this, { bin, port, dataDir, logFile });
    this.base = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.exited = null;
  }

  async start(timeoutMs = 30_000) {
    const log = fs.openSync(this.logFile, "a");
    fs.writeSync(log, `\n==== start ${new Date().toISOString()} ====\n`);
    const proc = spawn(
      this.bin,
      ["standalone", "--dev", "--listen", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir],
      { stdio: ["ignore", log, log], env: { ...process.env, CHORUS_LOG: process.env.CHORUS_LOG || "info" } },
    );
    fs.closeSync(log);
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
    let gone = null;
    this.exited.then((e) => { gone = e; });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (gone) throw new Error(`chorus exited during start (${JSON.stringify(gone)}):\n${this.logTail()}`);
      try {
        const res = await fetch(`${this.base}/readyz`);
        if (res.ok) return;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    throw new Error(`chorus not ready within ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** Sends `signal` and returns a promise of the exit; SIGKILL after `timeoutMs`. */
  stop(signal = "SIGTERM", timeoutMs = 30_000) {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(null);
    proc.kill(signal);
    const exited = this.exited;
    const timer = setTimeout(() => { try { proc.kill("SIGKILL"); } catch { /* gone */ } }, timeoutMs);
    return exited.finally(() => clearTimeout(timer));
  }

  killNow() {
    try { if (this.proc && this.proc.exitCode === null) this.proc.kill("SIGKILL"); } catch { /* gone */ }
  }

  logTail(lines = 40) {
    try { return fs.readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n"); } catch { return "(no log)"; }
  }
}

/** Copies the binary away first: a rebuild of target/ must not change it under the run. */
export function stageBinary(tmp) {
  const src = process.env.CHORUS_BIN || path.join(REPO, "target/debug/chorus");
  if (!fs.existsSync(src)) throw new Error(`CHORUS_BIN ${src} does not exist (build it with cargo build -p chorus)`);
  const dst = path.join(tmp, "chorus");
  fs.copyFileSync(src, dst);
  fs.chmodSync(dst, 0o755);
  return { src, dst };
}

/**
 * For working on the app without rebuilding the gateway (which embeds clients/web and
 * clients/js/dist at build time): a loopback proxy that serves `/`, `/app/*` and `/sdk/*`
 * from disk and forwards everything else (HTTP, SSE streams, WebSocket upgrades) to the
 * gateway. Returns { base, close }. Used when E2E_FROM_DISK=1.
 */
export async function startDiskProxy({ gatewayPort, webDir, sdkDir }) {
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".map": "application/json" };
  const serveFile = (res, root, rel) => {
    const file = path.join(root, path.normalize(`/${rel}`));
    if (!file.startsWith(root)) { res.writeHead(404); return res.end(); }
    fs.readFile(file, (err, buf) => {
      if (err) { res.writeHead(404, { "content-type": "application/json" }); return res.end('{"type":"error","code":"not_found"}'); }
      res.writeHead(200, { "content-type": types[path.extname(file)] || "application/octet-stream", "cache-control": "no-store" });
      res.end(buf);
    });
  };
  const sockets = new Set();
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/") return serveFile(res, webDir, "index.html");
    if (req.method === "GET" && url.pathname.startsWith("/app/")) return serveFile(res, webDir, url.pathname.slice(5));
    if (req.method === "GET" && url.pathname.startsWith("/sdk/")) return serveFile(res, sdkDir, url.pathname.slice(5));
    const up = http.request({ host: "127.0.0.1", port: gatewayPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", () => { if (!res.headersSent) { res.writeHead(502); } res.end(); });
    req.pipe(up);
  });
  srv.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
  srv.on("upgrade", (req, sock, head) => {
    const up = net.connect(gatewayPort, "127.0.0.1", () => {
      let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(`${h}\r\n`);
      up.write(head);
      up.pipe(sock);
      sock.pipe(up);
    });
    up.on("error", () => sock.destroy());
    up.on("close", () => sock.destroy());
    sock.on("error", () => up.destroy());
    sock.on("close", () => up.destroy());
  });
  await new Promise((r) => srv.listen(0, "127.0.0.1", r));
  return {
    base: `http://127.0.0.1:${srv.address().port}`,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => srv.close(r)); },
  };
}

export async function launchBrowser() {
  const exe = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!fs.existsSync(exe)) throw new Error(`${exe} not found: run scripts/chromium.sh (or set CHROMIUM)`);
  return chromium.launch({
    executablePath: exe,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

export function mkTmp() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "chorus-e2e-"));
}

// ---------------------------------------------------------------------------------------------
// The app, as a user drives it

/**
 * Opens the app in a new browser context and signs `name` in through the dev sign-in form.
 * `setup(context)` runs before the page loads (e.g. to block WebSockets); `track(user)` is
 * called as soon as the page exists; `screenshot` names a shot of the filled-in form.
 */
export async function signIn(browser, base, name, { setup, screenshot, track } = {}) {
  const context = await browser.newContext({ viewport: { width: 1180, height: 760 } });
  if (setup) await setup(context);
  const page = await context.newPage();
  const problems = [];
  const u = { name, context, page, problems };
  track?.(u); // so that a failed sign-in is still screenshotted and closed
  page.on("pageerror", (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`${name}: console: ${m.text()}`); });
  await page.goto(`${base}/`);
  await page.getByTestId("signin-user").waitFor({ state: "visible", timeout: 10_000 });
  await page.getByTestId("signin-user").fill(name);
  if (screenshot) await shot(page, screenshot);
  await page.getByTestId("signin-submit").click();
  await waitConnected(page);
  await expectText(page.getByTestId("me-name"), name);
  return u;
}

export async function waitConnected(page, timeout = 20_000) {
  await page.locator('[data-testid="conn-banner"][data-state="open"]').waitFor({ timeout });
}

export async function bannerText(page) {
  return (await page.getByTestId("conn-text").textContent()) ?? "";
}

/** Waits until `locator`'s text equals `want` (or matches it, for a RegExp). */
export async function expectText(locator, want, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let got;
  for (;;) {
    got = (await locator.textContent({ timeout }).catch(() => null)) ?? null;
    if (want instanceof RegExp ? want.test(got ?? "") : got === want) return got;
    if (Date.now() > deadline) throw new Error(`expected text ${want} but saw ${JSON.stringify(got)}`);
    await sleep(50);
  }
}

/** Polls `fn` until it returns a truthy value; throws with `what` and the last value. */
export async function eventually(what, fn, timeout = 15_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(100);
  }
}

/**
 * Records, in the page's window.__wsLog, every `reconnect` frame and close code its
 * WebSockets see (a browser-level tap under the app and the SDK, for the drain test).
 */
export async function tapWebSockets(context) {
  await context.addInitScript(() => {
    const Native = window.WebSocket;
    window.__wsLog = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener("message", (m) => {
          try {
            const f = JSON.parse(m.data);
            if (f.type === "reconnect") window.__wsLog.push(`reconnect:${f.reason}`);
          } catch { /* not JSON */ }
        });
        this.addEventListener("close", (e) => window.__wsLog.push(`close:${e.code}`));
      }
    };
  });
}

export const roomItem = (page, room) => page.locator(`[data-testid="room-item"][data-room="${room}"]`);

export async function createRoom(u, room, visibility = "public") {
  await u.page.getByTestId("create-room").fill(room);
  await u.page.getByTestId("create-visibility").selectOption(visibility);
  await u.page.getByTestId("create-submit").click();
  await roomItem(u.page, room).and(u.page.locator('[aria-current="true"]')).waitFor({ timeout: 10_000 });
}

export async function joinRoom(u, room) {
  await u.page.getByTestId("join-room").fill(room);
  await u.page.getByTestId("join-submit").click();
  await roomItem(u.page, room).and(u.page.locator('[aria-current="true"]')).waitFor({ timeout: 10_000 });
  await u.page.locator('[data-testid="composer-input"]:not([disabled])').waitFor({ timeout: 10_000 });
}

export async function openRoom(u, room) {
  await roomItem(u.page, room).click();
  await roomItem(u.page, room).and(u.page.locator('[aria-current="true"]')).waitFor({ timeout: 10_000 });
}

/** Types and sends with Enter, as a user does. */
export async function send(u, text) {
  const input = u.page.getByTestId("composer-input");
  await input.fill(text);
  await input.press("Enter");
}

/** The confirmed messages of the open pane, in DOM order. */
export async function pane(page) {
  return page.locator('[data-testid="message-list"] [data-testid="message"][data-seq]').evaluateAll((els) =>
    els.map((e) => ({
      seq: Number(e.dataset.seq),
      from: e.dataset.from,
      deleted: e.dataset.deleted === "true",
      body: e.querySelector('[data-testid="message-body"]')?.textContent ?? "",
    })));
}

/** Every entry of the open pane that carries a seq: chat messages and system lines. */
export async function paneSeqs(page) {
  return page.locator('[data-testid="message-list"] [data-seq]:is([data-testid="message"], [data-testid="system-line"])')
    .evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
}

export const messageWithBody = (page, body) =>
  page.locator('[data-testid="message-list"] [data-testid="message"][data-seq]').filter({
    has: page.locator('[data-testid="message-body"]', { hasText: new RegExp(`^${escapeRe(body)}$`) }),
  });

export async function waitMessage(page, body, timeout = 15_000) {
  const loc = messageWithBody(page, body);
  await loc.first().waitFor({ timeout });
  return Number(await loc.first().getAttribute("data-seq"));
}

export function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function assertStrictlyIncreasing(seqs, what) {
  for (let i = 1; i < seqs.length; i++) {
    if (!(seqs[i] > seqs[i - 1])) throw new Error(`${what}: seqs not strictly increasing at ${i}: ${JSON.stringify(seqs)}`);
  }
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name) });
}

/**
 * A room's whole log read from the server (history `after`, pages of 100), as user
 * `e2e-auditor` with a dev token, from a blank page of its own context.
 */
export async function serverHistory(browser, base, room) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${base}/v1/info`);
    return await page.evaluate(async ({ room }) => {
      const res = await fetch("/v1/dev/token", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user: "e2e-auditor" }),
      });
      const { token } = await res.json();
      const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/v1/ws");
      const frames = [];
      let wake = null;
      ws.onmessage = (m) => { frames.push(JSON.parse(m.data)); wake?.(); };
      const next = async (id) => {
        for (;;) {
          const i = frames.findIndex((f) => f.id === id);
          if (i >= 0) return frames.splice(i, 1)[0];
          await new Promise((r) => { wake = r; setTimeout(r, 200); });
        }
      };
      await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
      ws.send(JSON.stringify({ type: "auth", id: 1, token }));
      const ready = await next(1);
      if (ready.type !== "ready") throw new Error(`auth: ${JSON.stringify(ready)}`);
      const all = [];
      let after = 0;
      for (let id = 2; ; id++) {
        ws.send(JSON.stringify({ type: "history", id, room, after, limit: 100 }));
        const h = await next(id);
        if (h.type !== "history") throw new Error(`history: ${JSON.stringify(h)}`);
        for (const m of h.messages) all.push({ seq: m.seq, kind: m.kind ?? null, from: m.from, body: m.body ?? null, deleted: !!m.deleted, client_msg_id: m.client_msg_id ?? null });
        if (!h.has_more || !h.messages.length) break;
        after = h.messages[h.messages.length - 1].seq;
      }
      ws.close();
      return all;
    }, { room });
  } finally {
    await context.close();
  }
}

/** A small valid PNG (w×h, one colour), for the attachment test. */
export function pngBytes(w = 16, h = 16, rgb = [59, 91, 219]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: w }, () => rgb).flat())]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(raw)), chunk("IEND", Buffer.alloc(0)),
  ]);
}
