// End-to-end browser tests of the Chorus web app (clients/web), served by a real
// `chorus standalone --dev`, driven in Debian's Chromium by playwright-core.
//
//   CHORUS_BIN=target/debug/chorus node clients/e2e/run.mjs
//
// Env: CHORUS_BIN (default target/debug/chorus; copied to a temp dir first), CHROMIUM
// (default /usr/bin/chromium, see scripts/chromium.sh), E2E_ONLY=a,c to run some tests only,
// E2E_KEEP=1 to keep the temp dir (server log, data). Screenshots go to clients/e2e/screenshots/.
// The gateway serves the app and SDK it embedded when it was built; E2E_FROM_DISK=1 serves
// clients/web and clients/js/dist (or E2E_SDK_DIR) from disk instead, through a local proxy,
// to test edits of the app without a rebuild.
//
// Each test signs in two users, alice and bob, in two browser contexts, through the app's dev
// sign-in, in rooms of its own. The gateway-restart test (c) runs last: it restarts the server.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import {
  REPO, SHOTS, Standalone, assertStrictlyIncreasing, bannerText, createRoom, eventually, expectText,
  freePort, joinRoom, launchBrowser, messageWithBody, mkTmp, openRoom, pane, paneSeqs, pngBytes,
  roomItem, send, serverHistory, shot, signIn, sleep, stageBinary, startDiskProxy, tapWebSockets,
  waitConnected, waitMessage,
} from "./lib.mjs";

const ONLY = (process.env.E2E_ONLY || "").split(",").map((s) => s.trim()).filter(Boolean);
const RUN = Date.now().toString(36);
const TEST_TIMEOUT = 180_000;

let tmp, server, browser, base, proxy;
const users = []; // every signed-in user of the current test, for failure screenshots

before(async () => {
  // Failure screenshots of an earlier run would mislead.
  for (const f of fs.existsSync(SHOTS) ? fs.readdirSync(SHOTS) : []) {
    if (f.startsWith("failure-")) fs.rmSync(path.join(SHOTS, f));
  }
  tmp = mkTmp();
  const { src, dst } = stageBinary(tmp);
  const port = await freePort();
  server = new Standalone({ bin: dst, port, dataDir: path.join(tmp, "data"), logFile: path.join(tmp, "chorus.log") });
  console.log(`# chorus: ${src} (copied to ${dst}), listening on ${server.base}, log ${server.logFile}`);
  await server.start();
  const info = await (await fetch(`${server.base}/v1/info`)).json().catch(() => null);
  if (!info?.dev_sign_in) throw new Error(`GET /v1/info should say dev_sign_in: true under --dev, got ${JSON.stringify(info)}`);
  base = server.base;
  if (process.env.E2E_FROM_DISK === "1") {
    const webDir = path.join(REPO, "clients/web");
    const sdkDir = process.env.E2E_SDK_DIR || path.join(REPO, "clients/js/dist");
    proxy = await startDiskProxy({ gatewayPort: server.port, webDir, sdkDir });
    base = proxy.base;
    console.log(`# serving ${webDir} and ${sdkDir} from disk at ${base}`);
  }
  browser = await launchBrowser();
  console.log(`# chromium ${browser.version()}; screenshots in ${SHOTS}`);
});

after(async () => {
  await browser?.close().catch(() => {});
  await proxy?.close().catch(() => {});
  await server?.stop("SIGTERM", 15_000).catch(() => {});
  server?.killNow();
  if (tmp && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  else if (tmp) console.log(`# kept ${tmp}`);
});

// Stop the server even when the run is interrupted.
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => { server?.killNow(); process.exit(130); });
}
process.once("exit", () => server?.killNow());

/** A test with PASS/FAIL lines, failure screenshots, the server log tail, and page errors checked. */
function e2e(letter, title, fn) {
  const name = `${letter}. ${title}`;
  const skip = ONLY.length > 0 && !ONLY.includes(letter);
  test(name, { timeout: TEST_TIMEOUT, skip }, async () => {
    const t0 = Date.now();
    users.length = 0;
    try {
      await fn();
      // Network errors the browser logs while a server is down or a transport is blocked are
      // expected here; script errors and anything else the app logs as an error are not.
      const problems = users.flatMap((u) => u.problems)
        .filter((p) => !/Failed to load resource|WebSocket connection to .* failed|net::ERR_/.test(p));
      assert.deepEqual(problems, [], "page errors or console errors");
      console.log(`PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`);
      for (const u of users) {
        await shot(u.page, `failure-${letter}-${u.name}.png`).catch(() => {});
        for (const p of u.problems) console.log(`#   ${p}`);
      }
      console.log(`# server log (tail):\n${server.logTail(30).replace(/^/gm, "#   ")}`);
      throw e;
    } finally {
      for (const u of users) await u.context.close().catch(() => {});
    }
  });
}

function user(name, opts) {
  return signIn(browser, base, name, { ...opts, track: (u) => users.push(u) });
}

/** Alice creates a public room, bob joins it, and both see each other online. */
async function twoInRoom(room, bobOpts, aliceOpts) {
  const alice = await user("alice", aliceOpts);
  const bob = await user("bob", bobOpts);
  await createRoom(alice, room, "public");
  await joinRoom(bob, room);
  await alice.page.locator('[data-testid="presence-user"][data-user="bob"]').waitFor({ timeout: 10_000 });
  await bob.page.locator('[data-testid="presence-user"][data-user="alice"]').waitFor({ timeout: 10_000 });
  return { alice, bob };
}

/** The chat messages of both panes agree, in the same strictly increasing seq order. */
async function samePanes(a, b, what) {
  const pa = await pane(a.page), pb = await pane(b.page);
  assertStrictlyIncreasing(pa.map((m) => m.seq), `${what}: alice's pane`);
  assertStrictlyIncreasing(pb.map((m) => m.seq), `${what}: bob's pane`);
  assert.deepEqual(pa, pb, `${what}: alice and bob see the same messages`);
  return pa;
}

const bodies = (msgs) => msgs.map((m) => m.body);
const count = (msgs, body) => msgs.filter((m) => m.body === body).length;

// -------------------------------------------------------------------------------------------

e2e("a", "two users chat: order, unread, typing, presence, reply, edit, delete, attachments, no HTML injection", async () => {
  const room = `lobby-${RUN}`;
  const { alice, bob } = await twoInRoom(room, undefined, { screenshot: "signin.png" });

  // Messages both ways appear in both windows, in order.
  const script = [[alice, "hi bob"], [bob, "hi alice"], [alice, "how are you?"], [bob, "fine, thanks"]];
  for (const [u, text] of script) {
    await send(u, text);
    await waitMessage(alice.page, text);
    await waitMessage(bob.page, text);
  }
  let msgs = await samePanes(alice, bob, "after the first exchange");
  assert.deepEqual(bodies(msgs), script.map(([, t]) => t));
  assert.deepEqual(msgs.map((m) => m.from), ["alice", "bob", "alice", "bob"]);

  // Typing: bob types, alice sees it; bob clears the box, the line goes away.
  await bob.page.getByTestId("composer-input").pressSequentially("still typ", { delay: 30 });
  await expectText(alice.page.getByTestId("typing"), "bob is typing…", 8_000);
  await bob.page.getByTestId("composer-input").fill("");
  await bob.page.getByTestId("composer-input").dispatchEvent("input");
  await expectText(alice.page.getByTestId("typing"), "", 10_000);

  // Reply: alice replies to bob's "hi alice"; both show the quote.
  const hiAlice = messageWithBody(alice.page, "hi alice");
  const hiAliceSeq = Number(await hiAlice.getAttribute("data-seq"));
  await hiAlice.hover();
  await hiAlice.getByTestId("reply-button").click();
  await expectText(alice.page.getByTestId("composer-context-text"), /^Replying to bob: hi alice/);
  await send(alice, "glad to hear");
  for (const u of [alice, bob]) {
    await waitMessage(u.page, "glad to hear");
    const quote = messageWithBody(u.page, "glad to hear").getByTestId("reply-quote");
    assert.equal(Number(await quote.getAttribute("data-reply-to")), hiAliceSeq, `${u.name}: reply_to`);
    await expectText(quote, "↪ bob: hi alice");
  }

  // Edit: alice edits "how are you?"; both show the new text, marked edited, at the same seq.
  const howSeq = Number(await messageWithBody(alice.page, "how are you?").getAttribute("data-seq"));
  const how = alice.page.locator(`[data-testid="message"][data-seq="${howSeq}"]`);
  await how.hover();
  await how.getByTestId("edit-button").click();
  assert.equal(await alice.page.getByTestId("composer-input").inputValue(), "how are you?");
  await alice.page.getByTestId("composer-input").fill("how are you doing?");
  await alice.page.getByTestId("composer-input").press("Enter");
  for (const u of [alice, bob]) {
    const m = u.page.locator(`[data-testid="message"][data-seq="${howSeq}"]`);
    await expectText(m.getByTestId("message-body"), "how are you doing?");
    await m.getByTestId("message-edited").waitFor();
  }
  // Only one's own messages offer edit and delete.
  assert.equal(await messageWithBody(alice.page, "hi alice").getByTestId("edit-button").count(), 0);

  // Delete: bob deletes "fine, thanks"; both show a tombstone at that seq.
  const fineSeq = Number(await messageWithBody(bob.page, "fine, thanks").getAttribute("data-seq"));
  const fine = bob.page.locator(`[data-testid="message"][data-seq="${fineSeq}"]`);
  await fine.hover();
  await fine.getByTestId("delete-button").click();
  for (const u of [alice, bob]) {
    const m = u.page.locator(`[data-testid="message"][data-seq="${fineSeq}"][data-deleted="true"]`);
    await m.waitFor({ timeout: 10_000 });
    await expectText(m.getByTestId("message-body"), "message deleted");
  }

  // Attachments: a PNG shown inline, a text file as a download link; an oversized file refused.
  const big = Buffer.alloc(300 * 1024, 7);
  await alice.page.getByTestId("composer-file").setInputFiles({ name: "big.bin", mimeType: "application/octet-stream", buffer: big });
  await expectText(alice.page.getByTestId("composer-error"), /limited to 256\.0 KiB/);
  assert.equal(await alice.page.getByTestId("composer-file-chip").count(), 0, "oversized file not attached");
  await alice.page.getByTestId("composer-file").setInputFiles([
    { name: "dot.png", mimeType: "image/png", buffer: pngBytes(24, 16) },
    { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("<script>alert(1)</script> plain notes\n") },
  ]);
  assert.equal(await alice.page.getByTestId("composer-file-chip").count(), 2);
  await send(alice, "two files");
  for (const u of [alice, bob]) {
    await waitMessage(u.page, "two files");
    const m = messageWithBody(u.page, "two files");
    const img = m.getByTestId("attachment-image");
    await img.waitFor();
    const dims = await eventually(`${u.name}: the image decodes`, () =>
      img.evaluate((e) => (e.complete && e.naturalWidth ? [e.naturalWidth, e.naturalHeight] : null)));
    assert.deepEqual(dims, [24, 16]);
    assert.match(await img.getAttribute("src"), /^blob:/);
    const link = m.getByTestId("attachment-link");
    await expectText(link, /^notes\.txt \(/);
    assert.equal(await link.getAttribute("download"), "notes.txt");
    assert.match(await link.getAttribute("href"), /^blob:/);
  }

  // HTML in a body is shown as text and never runs.
  const evil = '<img src=x onerror="window.__xss=(window.__xss||0)+1"><b>bold?</b>';
  await send(bob, evil);
  for (const u of [alice, bob]) {
    await waitMessage(u.page, evil);
    const body = messageWithBody(u.page, evil).getByTestId("message-body");
    assert.equal(await body.textContent(), evil);
    assert.equal(await body.locator("img, b").count(), 0, `${u.name}: no elements inside the body`);
    assert.equal(await u.page.evaluate(() => window.__xss), undefined, `${u.name}: injected handler ran`);
  }

  // Unread badge: bob looks at a second room; alice writes in the first.
  const other = `side-${RUN}`;
  await createRoom(alice, other, "public");
  await joinRoom(bob, other);
  await openRoom(alice, room);
  await send(alice, "ping while you are away");
  await waitMessage(alice.page, "ping while you are away");
  const badge = roomItem(bob.page, room).getByTestId("unread-badge");
  await expectText(badge, "1");
  await send(alice, "and another one");
  await expectText(badge, "2");
  assert.equal(await roomItem(alice.page, room).getByTestId("unread-badge").count(), 0, "no badge for the room one is reading");
  await shot(bob.page, "unread.png");
  await openRoom(bob, room);
  await waitMessage(bob.page, "and another one");
  await eventually("bob's badge to clear", async () => (await roomItem(bob.page, room).getByTestId("unread-badge").count()) === 0);

  // Read receipts: bob read everything, so alice sees "Seen by bob" under the last message.
  const lastSeq = await waitMessage(alice.page, "and another one");
  const seen = alice.page.locator(`[data-testid="seen-by"][data-seq="${lastSeq}"]`);
  await expectText(seen, /Seen by .*\bbob\b/, 10_000);

  msgs = await samePanes(alice, bob, "at the end");
  assert.equal(count(msgs, "hi bob"), 1);
  await shot(alice.page, "chat.png");
  await shot(bob.page, "chat-bob.png");

  // Direct message: alice opens one with bob; it reaches bob's room list (the app polls its
  // rooms every 10 s) with an unread badge, and bob reads it there.
  await alice.page.getByTestId("dm-user").fill("bob");
  await alice.page.getByTestId("dm-submit").click();
  const dm = "dm:alice:bob";
  await roomItem(alice.page, dm).and(alice.page.locator('[aria-current="true"]')).waitFor({ timeout: 10_000 });
  await expectText(roomItem(alice.page, dm).getByTestId("room-name"), "@bob");
  await send(alice, "just between us");
  await waitMessage(alice.page, "just between us");
  await expectText(roomItem(bob.page, dm).getByTestId("unread-badge"), "1", 25_000);
  await expectText(roomItem(bob.page, dm).getByTestId("room-name"), "@alice");
  await openRoom(bob, dm);
  await waitMessage(bob.page, "just between us");
  await send(bob, "sure");
  await waitMessage(alice.page, "sure");
  await samePanes(alice, bob, "in the DM");
});

e2e("b", "offline: queued sends are delivered exactly once, in order, after coming back", async () => {
  const room = `offline-${RUN}`;
  const { alice, bob } = await twoInRoom(room);
  await send(alice, "before");
  await waitMessage(bob.page, "before");

  await bob.context.setOffline(true);
  await expectText(bob.page.getByTestId("conn-text"), /Reconnecting…/, 15_000);
  const mine = ["offline 1", "offline 2", "offline 3"];
  for (const text of mine) await send(bob, text);
  const pending = bob.page.getByTestId("pending-message");
  await eventually("3 pending messages", async () => (await pending.count()) === 3);
  assert.deepEqual(await pending.getByTestId("message-body").allTextContents(), mine);
  await send(alice, "while bob is away");
  await waitMessage(alice.page, "while bob is away");
  await shot(bob.page, "offline.png");

  await bob.context.setOffline(false);
  await waitConnected(bob.page, 30_000);
  for (const text of [...mine, "while bob is away"]) {
    await waitMessage(bob.page, text, 20_000);
    await waitMessage(alice.page, text, 20_000);
  }
  await eventually("bob's pending list to empty", async () => (await pending.count()) === 0, 20_000);
  await sleep(1000); // let any duplicate show up before counting
  const msgs = await samePanes(alice, bob, "after coming back online");
  for (const text of mine) assert.equal(count(msgs, text), 1, `"${text}" exactly once`);
  const order = msgs.filter((m) => mine.includes(m.body)).map((m) => m.body);
  assert.deepEqual(order, mine, "bob's messages in the order he sent them");
  const history = await serverHistory(browser, base, room);
  for (const text of mine) assert.equal(history.filter((m) => m.body === text).length, 1, `"${text}" stored once`);
});

e2e("d", "WebSocket blocked: the app falls back to SSE and chat works both ways", async () => {
  const room = `sse-${RUN}`;
  const block = async (context) => {
    await context.routeWebSocket(/\/v1\/ws/, (ws) => ws.close({ code: 1011, reason: "blocked by the test" }));
  };
  const { alice, bob } = await twoInRoom(room, { setup: block });
  await expectText(bob.page.getByTestId("transport"), "SSE");
  assert.equal(await bob.page.getByTestId("transport").getAttribute("data-transport"), "sse");
  await expectText(alice.page.getByTestId("transport"), "WebSocket");

  for (const [u, text] of [[alice, "over websocket"], [bob, "over sse"], [alice, "both fine"], [bob, "yes"]]) {
    await send(u, text);
    await waitMessage(alice.page, text);
    await waitMessage(bob.page, text);
  }
  await bob.page.getByTestId("composer-input").pressSequentially("typing on sse", { delay: 30 });
  await expectText(alice.page.getByTestId("typing"), "bob is typing…", 8_000);
  await bob.page.getByTestId("composer-input").press("Enter");
  await waitMessage(alice.page, "typing on sse");
  const msgs = await samePanes(alice, bob, "over SSE");
  assert.deepEqual(bodies(msgs), ["over websocket", "over sse", "both fine", "yes", "typing on sse"]);
  await shot(bob.page, "sse.png");
});

e2e("e", "scroll-back: older pages load when the pane is scrolled to the top", async () => {
  const room = `long-${RUN}`;
  const alice = await user("alice");
  await createRoom(alice, room, "public");
  const N = 75;
  for (let i = 1; i <= N; i++) await send(alice, `line ${i}`);
  await waitMessage(alice.page, `line ${N}`, 30_000);
  await eventually("alice's sends all acknowledged", async () => (await alice.page.getByTestId("pending-message").count()) === 0, 30_000);

  const bob = await user("bob");
  await joinRoom(bob, room);
  await waitMessage(bob.page, `line ${N}`);
  const first = await pane(bob.page);
  assert.ok(first.length < N, `bob starts with the newest page only (${first.length} messages)`);
  const box = bob.page.getByTestId("messages");
  const started = Date.now();
  await eventually("the beginning of the room", async () => {
    await box.evaluate((e) => { e.scrollTop = 0; e.dispatchEvent(new Event("scroll")); });
    return (await bob.page.getByTestId("older-status").getAttribute("data-done")) === "true";
  }, 20_000);
  console.log(`#   scrolled back to the start in ${Date.now() - started} ms`);
  const msgs = await pane(bob.page);
  assert.deepEqual(bodies(msgs), Array.from({ length: N }, (_, i) => `line ${i + 1}`));
  const history = await serverHistory(browser, base, room);
  const shown = history.filter((m) => m.kind === null || m.kind === "member").map((m) => m.seq);
  assert.deepEqual(await paneSeqs(bob.page), shown, "bob's pane holds the room's whole log, once, in order");
});

e2e("c", "gateway restart mid-conversation: both reconnect, nothing lost or doubled", async () => {
  const room = `restart-${RUN}`;
  const { alice, bob } = await twoInRoom(room, { setup: tapWebSockets }, { setup: tapWebSockets });
  for (const [u, text] of [[alice, "one"], [bob, "two"], [alice, "three"]]) {
    await send(u, text);
    await waitMessage(alice.page, text);
    await waitMessage(bob.page, text);
  }

  // SIGTERM: the server drains (reconnect frame, close 1001) and exits.
  const exited = server.stop("SIGTERM", 30_000);
  for (const u of [alice, bob]) await expectText(u.page.getByTestId("conn-text"), /Reconnecting…/, 15_000);
  await shot(alice.page, "reconnecting.png");
  await send(alice, "sent during the outage");
  await alice.page.getByTestId("pending-message").first().waitFor();
  const exit = await exited;
  console.log(`#   server exited ${JSON.stringify(exit)} after SIGTERM`);
  for (const u of [alice, bob]) {
    // The drain as designed: a `reconnect` frame, then close 1001 (not a dropped connection).
    const log = await u.page.evaluate(() => window.__wsLog);
    console.log(`#   ${u.name}'s WebSocket saw: ${log.join(" ")}`);
    const i = log.indexOf("reconnect:shutdown");
    assert.ok(i >= 0 && log[i + 1] === "close:1001", `${u.name}: reconnect frame then close 1001, saw ${log.join(" ")}`);
  }
  await sleep(2000); // a real outage: the clients back off and retry meanwhile
  assert.ok(await bannerText(bob.page).then((t) => /Reconnecting…/.test(t)), "bob still reconnecting while the server is down");

  await server.start();
  for (const u of [alice, bob]) await waitConnected(u.page, 60_000);
  const transports = await Promise.all([alice, bob].map((u) => u.page.getByTestId("transport").getAttribute("data-transport")));
  // A restart is an outage, not a blocked WebSocket: nobody is left on the SSE fallback.
  assert.deepEqual(transports, ["websocket", "websocket"], "back on WebSocket after the restart");
  for (const u of [alice, bob]) await waitMessage(u.page, "sent during the outage", 30_000);
  await eventually("alice's pending list to empty", async () => (await alice.page.getByTestId("pending-message").count()) === 0);
  await send(bob, "after the restart");
  await waitMessage(alice.page, "after the restart");
  await sleep(1000);

  const msgs = await samePanes(alice, bob, "after the restart");
  assert.deepEqual(bodies(msgs), ["one", "two", "three", "sent during the outage", "after the restart"]);
  const history = await serverHistory(browser, base, room);
  const shown = history.filter((m) => m.kind === null || m.kind === "member" || m.kind === "event").map((m) => m.seq);
  for (const u of [alice, bob]) {
    assert.deepEqual(await paneSeqs(u.page), shown, `${u.name}'s pane shows every entry of the room's log, once`);
  }
  await shot(alice.page, "recovered.png");
});
