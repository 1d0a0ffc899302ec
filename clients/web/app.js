// Chorus web app: a small chat client on top of the Chorus JS SDK (@chorus/client).
//
// Plain ES modules, no framework, no build step. The gateway serves this directory at /app/
// and the SDK at /sdk/index.js. The SDK owns the connection: reconnecting, resuming every
// joined room without gaps or duplicates, queueing sends while offline and retrying them with
// the same client_msg_id, choosing WebSocket or SSE. The app only keeps what the user sees:
// this file holds the state and the handlers; entries.js renders log entries, session.js
// finds the gateway and the token, dom.js has the DOM helpers.
//
// Safety: every string that came from a user or a server goes into the page through
// textContent / createTextNode / attributes set with setAttribute — never innerHTML. Non-image
// attachments become blob: URLs of type application/octet-stream (a blob: URL runs in this
// origin, so an HTML attachment must never be opened as HTML). The token lives in
// sessionStorage (this tab only) and is never put into a URL.

import { ChorusClient } from "/sdk/index.js";
import { $, el, errText, fmtBytes, reconcile, ROOM_RE, USER_RE, utf8Len } from "./dom.js";
import { renderEntry, renderPending, seenPositions } from "./entries.js";
import { BASE, KEY_DEV_USER, KEY_TOKEN, fetchInfo, jwtClaims, mintDevToken, tokenProvider } from "./session.js";

// ---------------------------------------------------------------------------------------------
// State

const KEY_OPEN_ROOMS = "chorus.openRooms";
const KEY_CURRENT = "chorus.currentRoom";
const ROOMS_POLL_MS = 10_000;

/** Everything the UI shows. Owned by this module; changed only by the handlers below. */
const S = {
  info: { dev_sign_in: false, transports: null },
  client: null,
  me: null,
  limits: {},
  everOpen: false,
  state: "idle",
  transport: null,
  /** name -> Room (see roomState) */
  rooms: new Map(),
  current: null,
  composer: { mode: "send", seq: null, files: [] }, // mode: "send" | "reply" | "edit"
  roomsPoll: null,
  msgCounter: 0,
  msgPrefix: Math.random().toString(36).slice(2, 10),
};

function roomState(name) {
  let r = S.rooms.get(name);
  if (!r) {
    r = {
      name,
      visibility: undefined, // "public" | "private" | "direct" | undefined (open room)
      role: undefined,
      unread: 0,
      joined: false,
      joining: null,
      left: null,
      maxSeq: 0,
      markedSeq: 0,
      msgs: new Map(), // seq -> entry shown in the pane (chat messages, member lines, events)
      lateEdits: new Map(), // target seq -> edit entry that came before its target was loaded
      lateDeletes: new Set(),
      pending: new Map(), // client_msg_id -> { body, attachments, replyTo, state, error, ackSeq }
      online: new Set(),
      onlineCount: 0,
      typing: new Map(), // user -> timeout handle
      reads: new Map(), // user -> last seq read
      pager: null,
      loadingOlder: false,
      historyDone: false,
      els: new Map(), // seq -> { key, el }
      seenEls: new Map(), // seq -> element
    };
    S.rooms.set(name, r);
  }
  return r;
}

const isDm = (name) => name.startsWith("dm:");
function roomLabel(name) {
  if (!isDm(name)) return `#${name}`;
  const parts = name.slice(3).split(":");
  const other = parts.find((p) => p !== S.me) ?? parts[0];
  return `@${other}`;
}

// ---------------------------------------------------------------------------------------------
// Sign-in

function showSignIn(message = "") {
  $("conn-banner").hidden = true;
  $("chat").hidden = true;
  $("me").hidden = true;
  $("signin").hidden = false;
  const form = $("signin-form");
  form.querySelector(".dev-only").hidden = !S.info.dev_sign_in;
  form.querySelector(".token-only").hidden = S.info.dev_sign_in;
  $("signin-error").textContent = message;
  (S.info.dev_sign_in ? $("signin-user") : $("signin-token")).focus();
}

async function onSignIn(ev) {
  ev.preventDefault();
  const btn = $("signin-submit");
  $("signin-error").textContent = "";
  btn.disabled = true;
  try {
    let token;
    if (S.info.dev_sign_in) {
      const user = $("signin-user").value.trim();
      if (!USER_RE.test(user)) throw new Error("a user name is 1–64 letters, digits or _ - . @");
      token = await mintDevToken(user);
      sessionStorage.setItem(KEY_DEV_USER, user);
    } else {
      token = $("signin-token").value.trim();
      const claims = jwtClaims(token);
      if (!claims || typeof claims.sub !== "string") throw new Error("that does not look like a Chorus token");
      if (typeof claims.exp === "number" && claims.exp * 1000 < Date.now()) throw new Error("that token has expired");
      sessionStorage.removeItem(KEY_DEV_USER);
    }
    sessionStorage.setItem(KEY_TOKEN, token);
    start();
  } catch (e) {
    $("signin-error").textContent = e.message || String(e);
  } finally {
    btn.disabled = false;
  }
}

function signOut() {
  S.client?.close();
  for (const k of [KEY_TOKEN, KEY_DEV_USER, KEY_OPEN_ROOMS, KEY_CURRENT]) sessionStorage.removeItem(k);
  location.replace(location.pathname + location.search);
}

// ---------------------------------------------------------------------------------------------
// Connection

function start() {
  const token = sessionStorage.getItem(KEY_TOKEN);
  S.me = jwtClaims(token)?.sub ?? null;
  $("signin").hidden = true;
  $("conn-banner").hidden = false;
  $("chat").hidden = false;
  $("me").hidden = false;
  $("me-name").textContent = S.me ?? "";

  const opts = { url: BASE, token: tokenProvider };
  const known = (S.info.transports || []).filter((t) => t === "websocket" || t === "sse");
  if (known.length) opts.transports = known;
  const c = new ChorusClient(opts);
  S.client = c;
  c.on("state", onState);
  c.on("ready", onReady);
  c.on("message", onMessage);
  c.on("joined", onJoinedEvent);
  c.on("left", onLeft);
  c.on("presence", onPresence);
  c.on("typing", onTyping);
  c.on("receipts", onReceipts);
  c.on("error", onClientError);
  c.connect();
  renderBanner();
  renderPane();
}

function onState(e) {
  S.state = e.state;
  if (e.transport !== undefined) S.transport = e.transport;
  else if (S.client) S.transport = S.client.transport;
  if (e.state === "open") S.everOpen = true;
  renderBanner();
}

function renderBanner() {
  const b = $("conn-banner");
  const st = S.state;
  b.dataset.state = st;
  let text;
  switch (st) {
    case "open": text = "Connected"; break;
    case "connecting": text = S.everOpen ? "Reconnecting…" : "Connecting…"; break;
    case "reconnecting": text = "Reconnecting…"; break;
    case "closed": text = "Disconnected"; break;
    default: text = "Not connected";
  }
  if ((st === "connecting" || st === "reconnecting") && !navigator.onLine) text += " (offline)";
  $("conn-text").textContent = text;
  const t = S.client?.transport ?? S.transport;
  const tEl = $("transport");
  tEl.dataset.transport = t ?? "";
  tEl.textContent = t === "websocket" ? "WebSocket" : t === "sse" ? "SSE" : "";
  tEl.title = t ? `transport: ${tEl.textContent}` : "";
}

function onReady(frame) {
  S.me = frame.user ?? S.client.user ?? S.me;
  S.limits = frame.limits ?? {};
  $("me-name").textContent = S.me ?? "";
  renderBanner();
  loadRooms(true);
  if (!S.roomsPoll) S.roomsPoll = setInterval(() => loadRooms(), ROOMS_POLL_MS);
}

let unauthorizedStreak = 0;
function onClientError(e) {
  if (e?.code === "unauthorized") {
    // A dev token is renewed by the provider; a pasted one cannot be: ask again.
    unauthorizedStreak += 1;
    if (!sessionStorage.getItem(KEY_DEV_USER) || unauthorizedStreak >= 3) {
      S.client?.close();
      sessionStorage.removeItem(KEY_TOKEN);
      showSignIn("The server refused the token. Sign in again.");
    } else {
      sessionStorage.removeItem(KEY_TOKEN);
    }
    return;
  }
  console.warn("chorus:", e);
}

// ---------------------------------------------------------------------------------------------
// Rooms

function savedOpenRooms() {
  try { return JSON.parse(sessionStorage.getItem(KEY_OPEN_ROOMS) || "[]").filter((n) => ROOM_RE.test(n)); } catch { return []; }
}
function rememberOpenRoom(name) {
  const list = new Set(savedOpenRooms());
  list.add(name);
  sessionStorage.setItem(KEY_OPEN_ROOMS, JSON.stringify([...list]));
}

/**
 * Lists the user's rooms (with unread counts) and joins each. Called on every `ready` and
 * every ROOMS_POLL_MS: the protocol pushes nothing to a user who is not subscribed to a room,
 * so a new DM or an invitation to a private room shows up at the next poll.
 */
async function loadRooms(fromReady = false) {
  const c = S.client;
  if (!c || loadRooms.busy) return;
  if (c.state !== "open" && !fromReady) return; // the next `ready` calls again
  loadRooms.busy = true;
  let list = [];
  try {
    list = await c.rooms();
    unauthorizedStreak = 0;
  } catch (e) {
    if (e?.code !== "closed") showSideError(`could not list rooms: ${errText(e)}`);
  } finally {
    loadRooms.busy = false;
  }
  for (const info of list) {
    const r = roomState(info.room);
    r.visibility = info.visibility ?? r.visibility;
    r.role = info.role ?? r.role;
    if (typeof info.unread === "number" && !viewing(r)) r.unread = info.unread;
    ensureJoined(r);
  }
  for (const name of savedOpenRooms()) ensureJoined(roomState(name));
  renderRooms();
  if (!S.current) {
    const want = sessionStorage.getItem(KEY_CURRENT);
    const first = want && S.rooms.has(want) ? want : sortedRooms()[0]?.name;
    if (first) openRoom(first);
  }
}

/** Joins a room once; the SDK re-joins it (with since) after every reconnect by itself. */
function ensureJoined(r) {
  if (r.joined) return Promise.resolve(true);
  if (r.joining) return r.joining;
  r.joining = (async () => {
    try {
      const j = await S.client.join(r.name);
      r.joined = true;
      r.left = null;
      if (j?.visibility) r.visibility = j.visibility;
      if (j?.online) applyOnline(r, j.online);
      if (typeof j?.last_seq === "number") r.maxSeq = Math.max(r.maxSeq, j.last_seq);
      return true;
    } catch (e) {
      if (/already joined/.test(e?.message || "")) { r.joined = true; return true; }
      r.left = errText(e);
      showSideError(`could not join ${roomLabel(r.name)}: ${errText(e)}`);
      return false;
    } finally {
      r.joining = null;
      renderRooms();
      if (viewing(r) || S.current === r.name) { renderPane(); maybeLoadFirstPage(r); maybeMarkRead(r); }
    }
  })();
  return r.joining;
}

function sortedRooms() {
  return [...S.rooms.values()].sort((a, b) => {
    const da = isDm(a.name), db = isDm(b.name);
    if (da !== db) return da ? 1 : -1;
    return roomLabel(a.name).localeCompare(roomLabel(b.name));
  });
}

/** name -> { key, el }: room items are rebuilt only when what they show changes. */
const roomEls = new Map();

function renderRooms() {
  const items = sortedRooms().map((r) => {
    const kind = r.visibility === "private" ? "private" : r.visibility === undefined ? "open" : "";
    const current = r.name === S.current;
    const key = `${roomLabel(r.name)}|${kind}|${r.unread}|${current}`;
    const cached = roomEls.get(r.name);
    if (cached && cached.key === key) return cached.el;
    const li = el("li", {
      cls: "room-item",
      attrs: {
        "data-testid": "room-item",
        "data-room": r.name,
        "data-unread": r.unread,
        "aria-current": current ? "true" : "false",
        role: "button",
        tabindex: "0",
        title: r.name,
      },
      on: {
        click: () => openRoom(r.name),
        keydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openRoom(r.name); } },
      },
    }, [
      el("span", { cls: "room-name", text: roomLabel(r.name), attrs: { "data-testid": "room-name" } }),
      kind ? el("span", { cls: "room-kind", text: kind }) : null,
      r.unread > 0 ? el("span", { cls: "badge", text: r.unread > 99 ? "99+" : r.unread, attrs: { "data-testid": "unread-badge", "aria-label": `${r.unread} unread` } }) : null,
    ]);
    roomEls.set(r.name, { key, el: li });
    return li;
  });
  reconcile($("room-list"), items);
}

function openRoom(name) {
  const r = roomState(name);
  if (S.current !== name) {
    if (S.current) S.client?.stopTyping(S.current);
    S.current = name;
    sessionStorage.setItem(KEY_CURRENT, name);
    resetComposer();
  }
  renderRooms();
  renderPane({ toBottom: true });
  ensureJoined(r).then((ok) => {
    if (ok) { maybeLoadFirstPage(r); maybeMarkRead(r); }
  });
  $("composer-input").focus();
}

function showSideError(msg) {
  const e = $("side-error");
  e.textContent = msg;
  clearTimeout(showSideError.t);
  showSideError.t = setTimeout(() => { e.textContent = ""; }, 8000);
}

async function onJoinForm(ev) {
  ev.preventDefault();
  const input = $("join-room");
  const name = input.value.trim();
  if (!ROOM_RE.test(name)) return showSideError("room names are 1–128 letters, digits or _ - . : @");
  const r = roomState(name);
  const ok = await ensureJoined(r);
  if (!ok) { if (!r.msgs.size && !r.visibility) S.rooms.delete(name); renderRooms(); return; }
  if (!r.visibility) rememberOpenRoom(name);
  input.value = "";
  openRoom(name);
  loadRooms();
}

async function onCreateForm(ev) {
  ev.preventDefault();
  const name = $("create-room").value.trim();
  const visibility = $("create-visibility").value === "private" ? "private" : "public";
  if (!ROOM_RE.test(name) || isDm(name)) return showSideError("room names are 1–128 letters, digits or _ - . : @, not starting with dm:");
  try {
    await S.client.createRoom(name, { visibility });
  } catch (e) {
    return showSideError(e?.code === "conflict" ? `${name} exists already: join it instead` : `could not create ${name}: ${errText(e)}`);
  }
  const r = roomState(name);
  r.visibility = visibility;
  r.role = "owner";
  $("create-room").value = "";
  if (await ensureJoined(r)) openRoom(name);
}

async function onDmForm(ev) {
  ev.preventDefault();
  const user = $("dm-user").value.trim();
  if (!USER_RE.test(user)) return showSideError("user names are 1–64 letters, digits or _ - . @");
  let ack;
  try {
    ack = await S.client.openDm(user);
  } catch (e) {
    return showSideError(`could not open a conversation with ${user}: ${errText(e)}`);
  }
  const r = roomState(ack.room);
  r.visibility = "direct";
  $("dm-user").value = "";
  if (await ensureJoined(r)) openRoom(r.name);
}

// ---------------------------------------------------------------------------------------------
// Messages

const viewing = (r) => r && r.name === S.current && document.visibilityState === "visible";

/** Every log entry of a joined room, exactly once and in seq order (the SDK's promise). */
function onMessage(m) {
  const r = roomState(m.room);
  applyEntry(r, m, true);
  if (r.name === S.current) {
    renderPane();
    maybeMarkRead(r);
  }
  renderRooms();
}

function applyEntry(r, m, live) {
  if (typeof m.seq !== "number") return;
  r.maxSeq = Math.max(r.maxSeq, m.seq);
  switch (m.kind ?? "message") {
    case "message":
    case "event":
    case "member": {
      if (r.msgs.has(m.seq)) return;
      const e = { ...m, rev: 0 };
      if (r.lateDeletes.has(m.seq)) markDeleted(e);
      const late = r.lateEdits.get(m.seq);
      if (late && !e.deleted && !(e.edits || []).includes(late.seq)) { e.body = late.body; e.edited_ts = late.ts; }
      r.msgs.set(m.seq, e);
      if (live) {
        if (m.kind !== "member") clearTyping(r, m.from);
        if (m.from === S.me && m.client_msg_id) r.pending.delete(m.client_msg_id);
        if (m.from !== S.me && m.kind !== "member" && !viewing(r)) r.unread += 1;
      }
      return;
    }
    case "edit": {
      if (!live) return; // history shows the target in its current state already
      const t = r.msgs.get(m.target);
      if (!t) { r.lateEdits.set(m.target, m); return; }
      if (t.deleted) return;
      t.body = m.body;
      t.edited_ts = m.ts;
      t.rev += 1;
      bumpReplies(r, m.target);
      return;
    }
    case "delete": {
      if (!live) return;
      const t = r.msgs.get(m.target);
      if (!t) { r.lateDeletes.add(m.target); return; }
      markDeleted(t);
      t.rev += 1;
      bumpReplies(r, m.target);
      return;
    }
    default:
      return; // a kind this app does not know: ignore, as the protocol asks
  }
}

function markDeleted(e) {
  e.deleted = true;
  delete e.body;
  delete e.attachments;
}

/** Messages that quote `target` show its text: re-render them when it changes. */
function bumpReplies(r, target) {
  for (const e of r.msgs.values()) if (e.reply_to === target) e.rev += 1;
}

function maybeMarkRead(r) {
  if (!viewing(r) || !r.joined) return;
  if (r.unread) { r.unread = 0; renderRooms(); }
  if (r.maxSeq > r.markedSeq) {
    r.markedSeq = r.maxSeq;
    try { S.client.markRead(r.name, r.maxSeq); } catch (e) { console.warn("chorus: markRead", e); }
  }
}

async function maybeLoadFirstPage(r) {
  if (r.pager || !r.joined) return;
  r.pager = S.client.historyPager(r.name, 50);
  // Fill the pane: a few pages at most, until it scrolls or the room's beginning is reached.
  for (let i = 0; i < 5; i++) {
    await loadOlder(r, i === 0);
    const box = $("messages");
    if (r.historyDone || S.current !== r.name || box.scrollHeight > box.clientHeight + 40) break;
  }
}

async function loadOlder(r, toBottom = false) {
  if (!r.pager || r.loadingOlder || r.historyDone) return;
  r.loadingOlder = true;
  if (r.name === S.current) renderOlderStatus(r);
  try {
    const page = await r.pager.older();
    for (const m of page) applyEntry(r, m, false);
    r.historyDone = r.pager.done || page.length === 0;
  } catch (e) {
    showSideError(`could not load history: ${errText(e)}`);
  } finally {
    r.loadingOlder = false;
  }
  if (r.name === S.current) {
    renderPane({ keepTop: !toBottom, toBottom });
    maybeMarkRead(r);
  }
}

function onJoinedEvent(j) {
  const r = roomState(j.room);
  r.joined = true;
  r.left = null;
  if (j.visibility) r.visibility = j.visibility;
  if (j.online) applyOnline(r, j.online);
  if (j.resumed) {
    for (const t of r.typing.values()) clearTimeout(t);
    r.typing.clear();
  }
  if (r.name === S.current) renderPane();
}

function onLeft(f) {
  const r = roomState(f.room);
  r.joined = false;
  r.left = f.reason ? `you no longer have access (${f.reason})` : "left";
  r.online.clear();
  renderRooms();
  if (r.name === S.current) renderPane();
}

// ---------------------------------------------------------------------------------------------
// Presence, typing, receipts

function applyOnline(r, online) {
  r.online = new Set(Array.isArray(online.users) ? online.users : []);
  r.onlineCount = typeof online.count === "number" ? online.count : r.online.size;
}

function onPresence(p) {
  const r = roomState(p.room);
  for (const u of p.joined || []) r.online.add(u);
  for (const u of p.left || []) { r.online.delete(u); clearTyping(r, u); }
  r.onlineCount = typeof p.online === "number" ? p.online : r.online.size;
  if (r.name === S.current) { renderPresence(); renderTyping(); }
}

function onTyping(t) {
  if (t.user === S.me) return;
  const r = roomState(t.room);
  clearTimeout(r.typing.get(t.user));
  if (t.typing) {
    // The server sends a stop after its typing timeout (6 s); this is only a safety net.
    r.typing.set(t.user, setTimeout(() => { r.typing.delete(t.user); if (r.name === S.current) renderTyping(); }, 10_000));
  } else {
    r.typing.delete(t.user);
  }
  if (r.name === S.current) renderTyping();
}

function clearTyping(r, user) {
  if (!r.typing.has(user)) return;
  clearTimeout(r.typing.get(user));
  r.typing.delete(user);
  if (r.name === S.current) renderTyping();
}

function onReceipts(f) {
  const r = roomState(f.room);
  for (const { user, seq } of f.reads || []) {
    if (typeof seq === "number" && seq > (r.reads.get(user) ?? 0)) r.reads.set(user, seq);
  }
  if (r.name === S.current) renderPane();
}

// ---------------------------------------------------------------------------------------------
// Rendering the pane

function renderPane({ toBottom = false, keepTop = false } = {}) {
  const r = S.current ? S.rooms.get(S.current) : null;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  const prevHeight = box.scrollHeight;
  const prevTop = box.scrollTop;

  $("empty").hidden = !!r;
  $("room-title").textContent = r ? roomLabel(r.name) : "No room open";
  $("pane").dataset.room = r ? r.name : "";
  const meta = [];
  if (r) {
    if (r.visibility) meta.push(r.visibility); else meta.push("open room");
    if (r.role) meta.push(r.role);
    if (r.left) meta.push(r.left);
    else if (!r.joined) meta.push("joining…");
  }
  $("room-meta").textContent = meta.join(" · ");

  const input = $("composer-input");
  const canSend = !!r && r.joined;
  input.disabled = !canSend;
  $("composer-send").disabled = !canSend;

  if (!r) {
    $("message-list").replaceChildren();
    $("pending-list").replaceChildren();
    renderPresence();
    renderTyping();
    $("older-status").textContent = "";
    return;
  }

  const seqs = [...r.msgs.keys()].sort((a, b) => a - b);
  const seenAt = seenPositions(r, seqs, S.me);
  const ctx = entryContext(r);
  const nodes = [];
  for (const seq of seqs) {
    const e = r.msgs.get(seq);
    const target = e.reply_to ? r.msgs.get(e.reply_to) : null;
    const key = `${e.rev}/${target ? target.rev : "-"}/${S.me}`;
    let cached = r.els.get(seq);
    if (!cached || cached.key !== key) {
      cached = { key, el: renderEntry(r, e, ctx) };
      r.els.set(seq, cached);
    }
    nodes.push(cached.el);
    const users = seenAt.get(seq);
    if (users) {
      let s = r.seenEls.get(seq);
      if (!s) { s = el("div", { cls: "seen-by", attrs: { "data-testid": "seen-by", "data-seq": seq } }); r.seenEls.set(seq, s); }
      const text = `Seen by ${users.sort().join(", ")}`;
      if (s.textContent !== text) s.textContent = text;
      s.dataset.users = users.join(",");
      nodes.push(s);
    }
  }
  reconcile($("message-list"), nodes);
  reconcile($("pending-list"), [...r.pending.entries()].map(([id, p]) => renderPending(r, id, p, ctx)));
  renderOlderStatus(r);
  renderPresence();
  renderTyping();

  if (toBottom || (atBottom && !keepTop)) box.scrollTop = box.scrollHeight;
  else if (keepTop) box.scrollTop = prevTop + (box.scrollHeight - prevHeight);
}

/** What entries.js needs to render `r`'s entries: who we are, and what their buttons do. */
function entryContext(r) {
  return {
    me: S.me,
    label: roomLabel,
    onReply: beginReply,
    onEdit: beginEdit,
    onDelete: (e) => deleteMessage(r, e),
    onRetry: (id, p) => sendPending(r, id, p),
    onDiscard: (id) => { r.pending.delete(id); renderPane(); },
  };
}

function renderOlderStatus(r) {
  const s = $("older-status");
  s.textContent = r.loadingOlder ? "Loading older messages…" : r.historyDone ? `This is the beginning of ${roomLabel(r.name)}` : "";
  s.dataset.done = r.historyDone ? "true" : "false";
}

function renderPresence() {
  const r = S.current ? S.rooms.get(S.current) : null;
  const users = r ? [...r.online].sort() : [];
  $("presence").replaceChildren(...users.map((u) =>
    el("li", { text: u === S.me ? `${u} (you)` : u, attrs: { "data-testid": "presence-user", "data-user": u } })));
  const more = r && r.onlineCount > users.length ? ` · ${r.onlineCount}` : "";
  $("presence-count").textContent = r ? `(${users.length}${more})` : "";
}

function renderTyping() {
  const r = S.current ? S.rooms.get(S.current) : null;
  const users = r ? [...r.typing.keys()].filter((u) => u !== S.me).sort() : [];
  let text = "";
  if (users.length === 1) text = `${users[0]} is typing…`;
  else if (users.length === 2) text = `${users[0]} and ${users[1]} are typing…`;
  else if (users.length > 2) text = "Several people are typing…";
  const t = $("typing");
  if (t.textContent !== text) t.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Composer

function resetComposer() {
  S.composer = { mode: "send", seq: null, files: [] };
  $("composer-input").value = "";
  $("composer-input").style.height = "";
  $("composer-file").value = "";
  $("composer-error").textContent = "";
  renderComposer();
}

function renderComposer() {
  const c = S.composer;
  const ctx = $("composer-context");
  ctx.hidden = c.mode === "send";
  ctx.dataset.mode = c.mode;
  const r = S.current ? S.rooms.get(S.current) : null;
  const t = r && c.seq ? r.msgs.get(c.seq) : null;
  $("composer-context-text").textContent =
    c.mode === "reply" ? `Replying to ${t?.from ?? "message"}: ${(t?.body ?? "").slice(0, 100)}`
    : c.mode === "edit" ? "Editing your message (Esc to cancel)" : "";
  $("composer-send").textContent = c.mode === "edit" ? "Save" : "Send";
  $("composer-files").replaceChildren(...c.files.map((f) =>
    el("span", { cls: "file-chip", text: `${f.name} (${fmtBytes(f.size)})`, attrs: { "data-testid": "composer-file-chip" } })));
}

function beginReply(e) {
  S.composer.mode = "reply";
  S.composer.seq = e.seq;
  renderComposer();
  $("composer-input").focus();
}

function beginEdit(e) {
  S.composer = { mode: "edit", seq: e.seq, files: [] };
  $("composer-input").value = e.body ?? "";
  renderComposer();
  $("composer-input").focus();
}

async function deleteMessage(r, e) {
  try {
    await S.client.delete(r.name, e.seq);
  } catch (err) {
    showSideError(`could not delete: ${errText(err)}`);
  }
}

function newClientMsgId() {
  S.msgCounter += 1;
  return `web-${S.msgPrefix}-${Date.now().toString(36)}-${S.msgCounter}`;
}

function readFileBase64(file) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onerror = () => reject(fr.error);
    fr.onload = () => {
      const s = String(fr.result);
      resolve(s.slice(s.indexOf(",") + 1));
    };
    fr.readAsDataURL(file);
  });
}

function onFilesChosen() {
  const input = $("composer-file");
  const files = [...input.files];
  const max = S.limits.max_attachments ?? 10;
  const maxBytes = S.limits.max_attachment_bytes ?? 262144;
  const all = [...S.composer.files, ...files];
  const total = all.reduce((n, f) => n + f.size, 0);
  $("composer-error").textContent = "";
  if (all.length > max) {
    $("composer-error").textContent = `at most ${max} attachments per message`;
  } else if (total > maxBytes) {
    $("composer-error").textContent = `attachments are limited to ${fmtBytes(maxBytes)} per message (these are ${fmtBytes(total)})`;
  } else {
    S.composer.files = all;
  }
  input.value = "";
  renderComposer();
}

function safeFileName(name) {
  let n = String(name || "file").replace(/[\u0000-\u001f\u007f/\\]/g, "_");
  while (utf8Len(n) > 255) n = n.slice(0, -1);
  return n || "file";
}

async function onSubmit(ev) {
  ev?.preventDefault();
  const r = S.current ? S.rooms.get(S.current) : null;
  if (!r || !r.joined) return;
  const input = $("composer-input");
  const body = input.value;
  const c = S.composer;
  const errEl = $("composer-error");
  errEl.textContent = "";
  const maxBody = S.limits.max_body_bytes ?? 4096;
  if (utf8Len(body) > maxBody) { errEl.textContent = `message too long: ${utf8Len(body)} of ${maxBody} bytes`; return; }

  if (c.mode === "edit") {
    if (!body.trim()) { errEl.textContent = "an edit needs text (delete the message instead)"; return; }
    const seq = c.seq;
    resetComposer();
    try { await S.client.edit(r.name, seq, body); } catch (e) { errEl.textContent = `could not edit: ${errText(e)}`; }
    return;
  }

  if (!body.trim() && !c.files.length) return;
  let attachments;
  if (c.files.length) {
    try {
      attachments = await Promise.all(c.files.map(async (f) => ({
        name: safeFileName(f.name),
        content_type: /^[\w.+-]+\/[\w.+-]+$/.test(f.type) ? f.type : "application/octet-stream",
        data: await readFileBase64(f),
      })));
    } catch (e) {
      errEl.textContent = `could not read the file: ${errText(e)}`;
      return;
    }
  }
  // A frame over max_frame_bytes would close the connection (1009): refuse it here instead.
  const frameBytes = utf8Len(body) + (attachments || []).reduce((n, a) => n + a.data.length + utf8Len(a.name) + 64, 0) + 256;
  if (S.limits.max_frame_bytes && frameBytes > S.limits.max_frame_bytes) {
    errEl.textContent = `message too large to send (${fmtBytes(frameBytes)} of ${fmtBytes(S.limits.max_frame_bytes)})`;
    return;
  }
  const p = { body, attachments, replyTo: c.mode === "reply" ? c.seq : undefined, state: "pending", error: null, ackSeq: null };
  const id = newClientMsgId();
  r.pending.set(id, p);
  resetComposer();
  S.client.stopTyping(r.name);
  renderPane({ toBottom: true });
  sendPending(r, id, p);
}

/** Hands one pending message to the SDK, which queues it while offline and retries it. */
function sendPending(r, id, p) {
  p.state = "pending";
  p.error = null;
  const opts = { clientMsgId: id };
  if (p.replyTo) opts.replyTo = p.replyTo;
  if (p.attachments) opts.attachments = p.attachments;
  S.client.send(r.name, p.body, opts).then(
    (ack) => {
      p.ackSeq = ack?.seq ?? null;
      if (p.ackSeq !== null && r.msgs.has(p.ackSeq)) r.pending.delete(id);
      if (r.name === S.current) renderPane();
    },
    (e) => {
      if (!r.pending.has(id)) return;
      p.state = "failed";
      p.error = e;
      if (r.name === S.current) renderPane();
    },
  );
  if (r.name === S.current) renderPane({ toBottom: true });
}

function onComposerKey(ev) {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    onSubmit();
  } else if (ev.key === "Escape" && S.composer.mode !== "send") {
    resetComposer();
  }
}

function onComposerInput() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  if (!S.current || S.composer.mode === "edit") return;
  if (input.value.length) S.client?.typing(S.current);
  else S.client?.stopTyping(S.current);
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", signOut);
  $("join-form").addEventListener("submit", onJoinForm);
  $("create-form").addEventListener("submit", onCreateForm);
  $("dm-form").addEventListener("submit", onDmForm);
  $("composer").addEventListener("submit", onSubmit);
  $("composer-input").addEventListener("keydown", onComposerKey);
  $("composer-input").addEventListener("input", onComposerInput);
  $("composer-file").addEventListener("change", onFilesChosen);
  $("composer-cancel").addEventListener("click", resetComposer);
  $("messages").addEventListener("scroll", () => {
    const r = S.current ? S.rooms.get(S.current) : null;
    if (r && $("messages").scrollTop < 40 && r.pager && !r.historyDone) loadOlder(r);
  }, { passive: true });
  document.addEventListener("visibilitychange", () => {
    const r = S.current ? S.rooms.get(S.current) : null;
    if (r) maybeMarkRead(r);
    if (document.visibilityState === "visible") loadRooms();
  });
  window.addEventListener("focus", () => loadRooms());
  window.addEventListener("online", renderBanner);
  window.addEventListener("offline", renderBanner);
}

async function boot() {
  wire();
  S.info = await fetchInfo();
  if (sessionStorage.getItem(KEY_TOKEN)) start();
  else showSignIn();
}

boot();
