// An in-memory Chorus gateway for the SDK tests. It speaks protocol v1 over two fake
// transports: a WebSocket class (`server.WebSocket`) and a `fetch` for the SSE transport
// (`server.fetch`). Tests steer it with `hooks` (return true to take over a frame), with
// `acceptWebSocket`, and by dropping connections.

const LIMITS = {
  max_body_bytes: 4096,
  max_frame_bytes: 393216,
  max_rooms: 100,
  send_rate_per_sec: 10,
  send_burst: 20,
  max_history_limit: 100,
  max_attachment_bytes: 262144,
};

export class FakeChorus {
  constructor() {
    /** room → array of msg frames (index = seq - 1) */
    this.logs = new Map();
    /** every live connection (both transports) */
    this.conns = [];
    /** every client frame received: { conn, frame } */
    this.received = [];
    /** (conn, frame) => true to handle a frame instead of the default logic */
    this.hooks = [];
    this.acceptWebSocket = true;
    // Whether plain HTTP (GET /v1/info) answers; false: the gateway is down, not blocked.
    this.answersHttp = true;
    /** tokens seen in auth frames and SSE headers, in order */
    this.tokens = [];
    /** SSE POST bookkeeping */
    this.posts = [];
    this.postsInFlight = 0;
    this.maxPostsInFlight = 0;
    this.nextConnId = 1;
    this.WebSocket = makeWebSocketClass(this);
    this.fetch = makeFetch(this);
  }

  log(room) {
    if (!this.logs.has(room)) this.logs.set(room, []);
    return this.logs.get(room);
  }

  /** Appends a message to `room` as `from` and delivers it to every subscriber. */
  append(room, from, body, extra = {}) {
    const log = this.log(room);
    const msg = { type: "msg", room, seq: log.length + 1, from, body, ts: 1763900000000 + log.length, ...extra };
    log.push(msg);
    for (const c of this.conns) if (c.rooms.has(room)) c.deliver(msg);
    return msg;
  }

  /** Frames of `type` the server received, in order. */
  framesOf(type) {
    return this.received.filter((r) => r.frame.type === type).map((r) => r.frame);
  }

  /** The newest live connection. */
  get conn() {
    return this.conns[this.conns.length - 1];
  }

  connect(conn) {
    conn.id = this.nextConnId++;
    conn.rooms = new Set();
    this.conns.push(conn);
  }

  disconnect(conn) {
    this.conns = this.conns.filter((c) => c !== conn);
  }

  authenticate(conn, token, id) {
    this.tokens.push(token);
    if (!token.startsWith("tok-")) {
      conn.deliver({ type: "error", id, code: "unauthorized", message: "invalid token" });
      conn.close(4001, "unauthorized");
      return null;
    }
    conn.user = token.slice(4);
    const ready = { type: "ready", user: conn.user, conn_id: conn.id, protocol: 1, limits: LIMITS };
    if (id !== undefined) ready.id = id;
    if (conn.session) ready.session = conn.session;
    conn.deliver(ready);
    return conn.user;
  }

  receive(conn, frame) {
    this.received.push({ conn, frame });
    for (const hook of this.hooks) if (hook(conn, frame) === true) return;
    const id = frame.id;
    const reply = (f) => conn.deliver(id === undefined ? f : { ...f, id });
    switch (frame.type) {
      case "auth":
        this.authenticate(conn, frame.token, id);
        return;
      case "join": {
        if (conn.rooms.has(frame.room)) {
          reply({ type: "error", code: "bad_request", message: "already joined; leave first to join again", room: frame.room });
          return;
        }
        const log = this.log(frame.room);
        conn.rooms.add(frame.room);
        reply({ type: "joined", room: frame.room, last_seq: log.length, online: { count: 1, users: [conn.user], has_more: false } });
        if (frame.since !== undefined) for (const m of log.slice(frame.since)) conn.deliver(m);
        return;
      }
      case "leave":
        conn.rooms.delete(frame.room);
        reply({ type: "left", room: frame.room });
        return;
      case "send":
      case "edit":
      case "delete":
      case "event": {
        if (frame.type === "event" && !frame.persist) {
          reply({ type: "ok" });
          return;
        }
        if (!conn.rooms.has(frame.room)) {
          reply({ type: "error", code: "forbidden", message: "join the room first", room: frame.room });
          return;
        }
        const log = this.log(frame.room);
        const prior = frame.client_msg_id && log.find((m) => m.from === conn.user && m.client_msg_id === frame.client_msg_id);
        if (prior) {
          reply({ type: "ack", room: frame.room, client_msg_id: frame.client_msg_id, seq: prior.seq, ts: prior.ts, duplicate: true });
          return;
        }
        const extra = {};
        if (frame.client_msg_id) extra.client_msg_id = frame.client_msg_id;
        if (frame.type !== "send") extra.kind = frame.type;
        if (frame.target !== undefined) extra.target = frame.target;
        const msg = this.append(frame.room, conn.user, frame.body ?? "", extra);
        reply({ type: "ack", room: frame.room, client_msg_id: frame.client_msg_id, seq: msg.seq, ts: msg.ts });
        return;
      }
      case "history": {
        const log = this.log(frame.room);
        const limit = frame.limit ?? 50;
        let page;
        let hasMore;
        if (frame.after !== undefined) {
          page = log.slice(frame.after, frame.after + limit);
          hasMore = frame.after + limit < log.length;
        } else {
          const end = frame.before !== undefined ? frame.before - 1 : log.length;
          const start = Math.max(0, end - limit);
          page = log.slice(start, end);
          hasMore = start > 0;
        }
        const messages = page.map(({ type, ...rest }) => rest);
        reply({ type: "history", room: frame.room, messages, has_more: hasMore });
        return;
      }
      case "typing":
      case "read":
        if (id !== undefined) reply({ type: "ok" });
        return;
      case "rooms":
        reply({ type: "rooms", rooms: [] });
        return;
      case "ping":
        reply({ type: "pong" });
        return;
      default:
        reply({ type: "error", code: "bad_request", message: `unknown frame ${frame.type}` });
    }
  }
}

function makeWebSocketClass(server) {
  return class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.onopen = null;
      this.onmessage = null;
      this.onerror = null;
      this.onclose = null;
      const accept = server.acceptWebSocket;
      setTimeout(() => {
        if (this.readyState !== 0) return;
        if (!accept) {
          this.readyState = 3;
          this.onerror?.({});
          this.onclose?.({ code: 1006, reason: "" });
          return;
        }
        this.readyState = 1;
        server.connect(this.conn);
        this.onopen?.({});
      }, 0);
      const socket = this;
      this.conn = {
        transport: "websocket",
        deliver(frame) {
          if (socket.readyState === 1) socket.onmessage?.({ data: JSON.stringify(frame) });
        },
        close(code, reason) {
          if (socket.readyState !== 1) return;
          socket.readyState = 3;
          server.disconnect(socket.conn);
          socket.onclose?.({ code, reason });
        },
      };
    }

    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      const frame = JSON.parse(data);
      // Like a network: the server sees the frame a moment later.
      setTimeout(() => this.readyState === 1 && server.receive(this.conn, frame), 0);
    }

    close() {
      if (this.readyState === 3) return;
      const wasOpen = this.readyState === 1;
      this.readyState = 3;
      if (wasOpen) server.disconnect(this.conn);
    }
  };
}

function makeFetch(server) {
  const sessions = new Map();
  let nextSession = 1;
  return async function fakeFetch(url, init = {}) {
    const path = new URL(url).pathname;
    const auth = init.headers?.Authorization ?? "";
    const token = auth.replace(/^Bearer /, "");
    if ((init.method ?? "GET") === "GET" && path === "/v1/info") {
      if (!server.answersHttp) throw new TypeError("fetch failed");
      return new Response(JSON.stringify({ protocol: 1, transports: ["websocket", "sse"] }), { status: 200 });
    }
    if ((init.method ?? "GET") === "GET" && path === "/v1/sse") {
      if (!token.startsWith("tok-")) {
        server.tokens.push(token);
        return new Response(JSON.stringify({ type: "error", code: "unauthorized", message: "invalid token" }), { status: 401 });
      }
      const encoder = new TextEncoder();
      let controller;
      let open = true;
      const stream = new ReadableStream({
        start(c) {
          controller = c;
        },
        cancel() {
          open = false;
          server.disconnect(conn);
        },
      });
      const session = String(nextSession++).padStart(32, "0");
      const conn = {
        transport: "sse",
        session,
        deliver(frame) {
          if (open) controller.enqueue(encoder.encode(`data: ${JSON.stringify(frame)}\n\n`));
        },
        /** Raw text onto the stream (heartbeats, split events). */
        raw(text) {
          if (open) controller.enqueue(encoder.encode(text));
        },
        close(code, reason) {
          if (!open) return;
          conn.deliver({ type: "close", code, reason });
          open = false;
          server.disconnect(conn);
          controller.close();
        },
      };
      init.signal?.addEventListener("abort", () => {
        if (!open) return;
        open = false;
        server.disconnect(conn);
        try {
          controller.error(new DOMException("aborted", "AbortError"));
        } catch {}
      });
      sessions.set(session, conn);
      server.connect(conn);
      setTimeout(() => {
        conn.raw(": heartbeat\n\n");
        server.authenticate(conn, token, undefined);
      }, 0);
      return new Response(stream, { status: 200, headers: { "Content-Type": "text/event-stream" } });
    }
    const match = /^\/v1\/sse\/([0-9a-f]+)$/.exec(path);
    if (init.method === "POST" && match) {
      server.posts.push({ url, headers: init.headers, body: init.body });
      server.postsInFlight += 1;
      server.maxPostsInFlight = Math.max(server.maxPostsInFlight, server.postsInFlight);
      await new Promise((r) => setTimeout(r, 3));
      server.postsInFlight -= 1;
      const conn = sessions.get(match[1]);
      if (!conn || !server.conns.includes(conn)) return new Response(null, { status: 404 });
      for (const line of init.body.split("\n")) server.receive(conn, JSON.parse(line));
      return new Response(null, { status: 202 });
    }
    return new Response(null, { status: 404 });
  };
}

/** Resolves once `cond()` is truthy; polls every 2 ms, fails after `ms`. */
export async function until(cond, ms = 2000, what = "condition") {
  const start = Date.now();
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Client options for tests: fast backoff and timeouts, deterministic jitter. */
export function fastOptions(server, extra = {}) {
  return {
    url: "http://chorus.test",
    token: "tok-alice",
    WebSocket: server.WebSocket,
    fetch: server.fetch,
    backoff: { initialMs: 5, maxMs: 40 },
    readyTimeoutMs: 500,
    requestTimeoutMs: 1000,
    ackTimeoutMs: 1000,
    ...extra,
  };
}
