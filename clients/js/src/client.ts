/**
 * `ChorusClient`: the public face of the SDK. It wires the connection manager, request
 * matching, per-room delivery, the send queue and the typing/read helpers together, and turns
 * server frames into typed events. The guarantees it gives are listed in docs/clients.md.
 */

import { Backoff } from "./backoff.js";
import { Connection, type ConnectionState, type StateChange } from "./connection.js";
import { Emitter } from "./emitter.js";
import { ChorusError } from "./errors.js";
import type {
  AckFrame,
  Attachment,
  ClientFrame,
  EntryFrame,
  EventFrame,
  HistoryFrame,
  JoinedFrame,
  LeftFrame,
  MembersFrame,
  MsgFrame,
  OnlineFrame,
  PresenceFrame,
  ReadyFrame,
  ReceiptsFrame,
  Role,
  RoomInfo,
  RoomsFrame,
  SendRequest,
  ServerFrame,
  TypingFrame,
} from "./frames.js";
import { ClientMsgIds } from "./ids.js";
import { Outbox } from "./outbox.js";
import { Queries } from "./queries.js";
import { Requests } from "./requests.js";
import { Rooms } from "./rooms.js";
import { ReadMarks, Typing } from "./signals.js";
import { SseTransport, type FetchFunction } from "./sse.js";
import { endpointUrl, type TransportName } from "./transport.js";
import { WebSocketTransport, type WebSocketConstructor } from "./websocket.js";

export interface ChorusOptions {
  /** Gateway base URL, `http(s)://host:port`; a function is called before every connect. */
  url: string | (() => string);
  /** A token, or a provider called before every (re)connect (so it can refresh). */
  token: string | (() => string | Promise<string>);
  /** Allowed transports, preferred first. Default `["websocket", "sse"]`. */
  transports?: TransportName[];
  /** WebSocket constructor; default `globalThis.WebSocket` (Node 20: pass the `ws` package's). */
  WebSocket?: any;
  /** Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Per attempt: no ack within this long on an open connection → `error` timeout, reconnect, resend. Default 10 000. */
  ackTimeoutMs?: number;
  /** `join`, `history` and the other queries reject with `timeout` after this long. Default 10 000. */
  requestTimeoutMs?: number;
  /** Overall deadline of a send; default 0 = a send waits until acknowledged or refused. */
  sendTimeoutMs?: number;
  /** Reconnect backoff with full jitter. Default 100 ms initial, 30 s max. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Sends waiting for their ack at most; more are refused with `limit_exceeded`. Default 1000. */
  offlineQueueMax?: number;
  /** `typing:true` goes out at most this often per room. Default 2000. */
  typingIntervalMs?: number;
  /** `typing:false` goes out this long after the last `typing()` call. Default 3000. */
  typingIdleMs?: number;
  /** A connection with no `ready` within this long counts as a failed start. Default 5000. */
  readyTimeoutMs?: number;
  /** After falling back to SSE, WebSocket is tried again at the first reconnect this long later. Default 300 000. */
  fallbackRetryMs?: number;
  /** A drain reconnect waits a random delay below this. Default 250. */
  drainJitterMs?: number;
  /** Sends written without their ack at most, below the server's in-flight limit (32). Default 16. */
  maxInFlight?: number;
  /** Source of randomness for jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

export interface ChorusEvents {
  /** Connection state changes, with the attempt number, the wait and the transport. */
  state: StateChange;
  /** A connection was established and authenticated. */
  ready: ReadyFrame;
  /** Every log entry (all kinds) of a joined room: exactly once, in seq order. */
  message: MsgFrame;
  /** A room was joined; `resumed` is true when it was joined again after a reconnect. */
  joined: JoinedFrame & { resumed: boolean };
  /** A room subscription ended (a `leave`, or the server's: `reason` says why). */
  left: LeftFrame;
  presence: PresenceFrame;
  typing: TypingFrame;
  receipts: ReceiptsFrame;
  /** Ephemeral application events. */
  event: EventFrame;
  /** Every ack, including acks of retried sends. */
  ack: AckFrame;
  /** Errors not tied to a pending request, ack timeouts and connection refusals. */
  error: ChorusError;
  /** Every raw server frame, for debugging. */
  frame: ServerFrame;
}

/** Pages back through a room's history, newest page first. */
export interface HistoryPager {
  /** The next older page (ascending by seq); empty once `done`. */
  older(): Promise<MsgFrame[]>;
  /** True when the oldest message has been returned. */
  readonly done: boolean;
}

const DEFAULTS = {
  ackTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  sendTimeoutMs: 0,
  backoffInitialMs: 100,
  backoffMaxMs: 30_000,
  offlineQueueMax: 1000,
  typingIntervalMs: 2000,
  typingIdleMs: 3000,
  readyTimeoutMs: 5000,
  fallbackRetryMs: 300_000,
  drainJitterMs: 250,
  maxInFlight: 16,
};

/**
 * A Chorus client. Create it, subscribe to events, `connect()`, `join()` rooms and `send()`.
 * It reconnects by itself until `close()`, resumes every joined room from where the app is,
 * and resends unacknowledged sends with the same `client_msg_id`.
 */
export class ChorusClient {
  private readonly events = new Emitter<ChorusEvents>();
  private readonly connection: Connection;
  private readonly requests: Requests;
  private readonly roomState: Rooms;
  private readonly outbox: Outbox;
  private readonly typingState: Typing;
  private readonly reads: ReadMarks;
  private readonly msgIds = new ClientMsgIds();
  private readonly queryState: Queries;
  private userName: string | null = null;
  private closed = false;

  constructor(options: ChorusOptions) {
    if (!options || !options.url) throw new TypeError("ChorusClient: `url` is required");
    if (options.token === undefined || options.token === null || options.token === "") {
      throw new TypeError("ChorusClient: `token` is required");
    }
    const transports = options.transports ?? ["websocket", "sse"];
    if (transports.length === 0 || transports.some((t) => t !== "websocket" && t !== "sse")) {
      throw new TypeError(`ChorusClient: transports must be "websocket" and/or "sse", got ${JSON.stringify(transports)}`);
    }
    const WebSocketCtor: WebSocketConstructor | undefined =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const fetchFn: FetchFunction | undefined =
      options.fetch ?? (typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : undefined);
    const random = options.random ?? Math.random;
    const backoffInitialMs = options.backoff?.initialMs ?? DEFAULTS.backoffInitialMs;
    const backoffMaxMs = options.backoff?.maxMs ?? DEFAULTS.backoffMaxMs;
    const ackTimeoutMs = options.ackTimeoutMs ?? DEFAULTS.ackTimeoutMs;
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;

    this.connection = new Connection({
      url: options.url,
      token: options.token,
      transports,
      createTransport: (name, params) => {
        if (name === "websocket") return WebSocketCtor ? new WebSocketTransport(WebSocketCtor, params) : null;
        return fetchFn ? new SseTransport(fetchFn, params) : null;
      },
      backoff: new Backoff(backoffInitialMs, backoffMaxMs, random),
      readyTimeoutMs: options.readyTimeoutMs ?? DEFAULTS.readyTimeoutMs,
      drainJitterMs: options.drainJitterMs ?? DEFAULTS.drainJitterMs,
      fallbackRetryMs: options.fallbackRetryMs ?? DEFAULTS.fallbackRetryMs,
      reachable: (baseUrl) => answersHttp(fetchFn, baseUrl, options.readyTimeoutMs ?? DEFAULTS.readyTimeoutMs),
      random,
    });
    this.requests = new Requests(this.connection);
    const restart = (reason: string) => this.connection.restart(reason);
    const error = (e: ChorusError) => this.events.emit("error", e);
    this.roomState = new Rooms(
      this.requests,
      {
        message: (m) => this.events.emit("message", m),
        joined: (j) => this.events.emit("joined", j),
        roomOpen: () => {
          this.outbox.pump();
          this.queryState.pump();
          this.reads.flush();
        },
        error,
        restart,
      },
      {
        replyTimeoutMs: ackTimeoutMs,
        requestTimeoutMs,
        backoffInitialMs,
        backoffMaxMs,
        random,
      },
    );
    const mustWait = (room: string) => this.roomState.has(room) && !this.roomState.isOpen(room);
    this.queryState = new Queries(this.requests, mustWait, requestTimeoutMs);
    this.outbox = new Outbox(
      this.requests,
      { mustWait, error, restart },
      {
        ackTimeoutMs,
        sendTimeoutMs: options.sendTimeoutMs ?? DEFAULTS.sendTimeoutMs,
        offlineQueueMax: options.offlineQueueMax ?? DEFAULTS.offlineQueueMax,
        maxInFlight: options.maxInFlight ?? DEFAULTS.maxInFlight,
        backoffInitialMs,
        backoffMaxMs,
        random,
      },
    );
    this.typingState = new Typing(
      this.requests,
      (room) => this.roomState.isOpen(room),
      options.typingIntervalMs ?? DEFAULTS.typingIntervalMs,
      options.typingIdleMs ?? DEFAULTS.typingIdleMs,
    );
    this.reads = new ReadMarks(this.requests, mustWait, error);

    this.connection.on("state", (s) => this.events.emit("state", s));
    this.connection.on("error", error);
    this.connection.on("ready", (frame) => this.onReady(frame));
    this.connection.on("frame", (frame) => this.onFrame(frame));
    this.connection.on("lost", () => this.onLost());
  }

  // -------------------------------------------------------------------------------------------
  // Connection
  // -------------------------------------------------------------------------------------------

  /** Starts connecting; idempotent. The client then reconnects by itself until `close()`. */
  connect(): void {
    if (this.closed) throw new ChorusError("closed", "the client was closed; create a new one");
    this.connection.start();
  }

  /** Stops for good: closes the connection; every pending promise rejects with `closed`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const error = new ChorusError("closed", "client closed");
    this.roomState.closeAll(error);
    this.outbox.closeAll(error);
    this.queryState.closeAll(error);
    this.reads.clear();
    this.typingState.resetAll();
    this.connection.stop();
  }

  get state(): ConnectionState {
    return this.connection.state;
  }

  /** The transport of the current (or last) connection. */
  get transport(): TransportName | null {
    return this.connection.currentTransport;
  }

  /** The authenticated user, once a connection was ready. */
  get user(): string | null {
    return this.userName;
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof ChorusEvents>(event: K, fn: (e: ChorusEvents[K]) => void): () => void {
    return this.events.on(event, fn);
  }

  // -------------------------------------------------------------------------------------------
  // Rooms and messages
  // -------------------------------------------------------------------------------------------

  /**
   * Joins `room` and keeps it joined across reconnects until `leave()`. With `since`, every
   * message after that seq is delivered first; without, delivery starts after the room's
   * current last seq. Settles with the first `joined`. A timeout rejects the promise but keeps
   * the room registered; a refusal (`forbidden`, …) drops it.
   */
  join(room: string, opts: { since?: number } = {}): Promise<JoinedFrame> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.roomState.join(room, opts.since);
  }

  /** Leaves `room`: no `message` of it is delivered afterwards, and it is not re-joined. */
  async leave(room: string): Promise<void> {
    if (this.closed) throw this.closedError();
    this.typingState.reset(room);
    const subscribed = this.roomState.forget(room);
    if (!subscribed || !this.connection.isOpen) return;
    try {
      await this.query({ type: "leave", room }, { resend: false });
    } catch (err) {
      // Not joined on the server, or the connection went away: either way the room is left.
      if (err instanceof ChorusError && (err.code === "not_found" || err.code === "transport")) return;
      throw err;
    }
  }

  /** The last seq delivered to the app in `room` (0 when none). */
  lastSeq(room: string): number {
    return this.roomState.lastSeq(room);
  }

  /**
   * Sends a chat message. It gets a stable `client_msg_id`, waits in the queue while offline or
   * while its room is being re-joined, and is resent until acknowledged; the promise settles
   * with the ack (possibly `duplicate: true`) or a refusal. `traceparent` is the app's W3C trace
   * context for this message (e.g. from its OpenTelemetry span), sent with every attempt.
   */
  send(
    room: string,
    body: string,
    opts: { replyTo?: number; attachments?: Attachment[]; clientMsgId?: string; traceparent?: string } = {},
  ): Promise<AckFrame> {
    const frame: SendRequest = { type: "send", room, client_msg_id: opts.clientMsgId ?? this.msgIds.next(), body };
    if (opts.traceparent !== undefined) frame.traceparent = opts.traceparent;
    if (opts.replyTo !== undefined) frame.reply_to = opts.replyTo;
    if (opts.attachments && opts.attachments.length > 0) frame.attachments = opts.attachments;
    // The server ends the typing indicator itself when the message arrives.
    this.typingState.reset(room);
    return this.entry(frame);
  }

  /** Replaces the body of your message `target`. */
  edit(room: string, target: number, body: string): Promise<AckFrame> {
    return this.entry({ type: "edit", room, target, body, client_msg_id: this.msgIds.next() });
  }

  /** Deletes message `target` (yours, or anyone's if you moderate the room). */
  delete(room: string, target: number): Promise<AckFrame> {
    return this.entry({ type: "delete", room, target, client_msg_id: this.msgIds.next() });
  }

  /**
   * Sends an application event. Ephemeral by default: relayed to the room's subscribers, at
   * most once, settling with `ok`. With `persist: true` it is a log entry like a message: queued,
   * resent until acknowledged, settling with its ack.
   */
  event(room: string, event: string, data: unknown, opts: { persist?: boolean } = {}): Promise<unknown> {
    this.typingState.reset(room);
    if (opts.persist) {
      return this.entry({ type: "event", room, event, data, persist: true, client_msg_id: this.msgIds.next() });
    }
    return this.query({ type: "event", room, event, data }, { resend: false, room });
  }

  /** One page of `room`'s history, ascending by seq: the newest page, or `before`/`after` a seq. */
  async history(
    room: string,
    opts: { before?: number; after?: number; limit?: number } = {},
  ): Promise<{ messages: MsgFrame[]; hasMore: boolean }> {
    const frame = { type: "history" as const, room, ...defined(opts) };
    const reply = (await this.query(frame, { resend: true })) as HistoryFrame;
    return {
      messages: reply.messages.map((m) => ({ ...m, type: "msg" }) as MsgFrame),
      hasMore: reply.has_more,
    };
  }

  /** Pages back through `room`'s history, `pageSize` messages at a time, newest first. */
  historyPager(room: string, pageSize = 50): HistoryPager {
    let before: number | undefined;
    let done = false;
    let chain: Promise<unknown> = Promise.resolve();
    const older = (): Promise<MsgFrame[]> => {
      const next = chain.then(async () => {
        if (done) return [];
        const page = await this.history(room, before === undefined ? { limit: pageSize } : { before, limit: pageSize });
        if (page.messages.length > 0) before = page.messages[0].seq;
        done = !page.hasMore || page.messages.length === 0 || before === 1;
        return page.messages;
      });
      chain = next.catch(() => undefined);
      return next;
    };
    return {
      older,
      get done() {
        return done;
      },
    };
  }

  /** Says the user is typing in `room`; call it on every keystroke. */
  typing(room: string): void {
    this.typingState.typing(room);
  }

  /** Says the user stopped typing in `room` without sending. */
  stopTyping(room: string): void {
    this.typingState.stop(room);
  }

  /** Marks `room` read up to `seq`. Coalesced, forward only, resent after a reconnect. */
  markRead(room: string, seq: number): void {
    if (this.closed) return;
    this.reads.mark(room, seq);
  }

  // -------------------------------------------------------------------------------------------
  // Rooms, membership and moderation
  // -------------------------------------------------------------------------------------------

  /** Your rooms, with unread counts. */
  async rooms(): Promise<RoomInfo[]> {
    const reply = (await this.query({ type: "rooms" }, { resend: true })) as RoomsFrame;
    return reply.rooms;
  }

  /** One page of a created room's members, by user id (`after` the last one of the previous page). */
  members(room: string, opts: { after?: string; limit?: number } = {}): Promise<MembersFrame> {
    return this.query({ type: "members", room, ...defined(opts) }, { resend: true }) as Promise<MembersFrame>;
  }

  /** One page of the users online in `room`. */
  who(room: string, opts: { after?: string; limit?: number } = {}): Promise<OnlineFrame> {
    return this.query({ type: "who", room, ...defined(opts) }, { resend: true }) as Promise<OnlineFrame>;
  }

  /** Creates a public (default) or private room, owned by you. */
  createRoom(
    room: string,
    opts: { visibility?: "public" | "private"; members?: string[] } = {},
  ): Promise<AckFrame> {
    return this.entry({ type: "create_room", room, ...defined(opts), client_msg_id: this.msgIds.next() });
  }

  /** Opens (or reopens) the direct room with `user`; the ack's `room` is its name. */
  openDm(user: string): Promise<AckFrame> {
    return this.entry({ type: "open_dm", user });
  }

  invite(room: string, user: string, role?: Role): Promise<AckFrame> {
    return this.entry({ type: "invite", room, user, ...defined({ role }), client_msg_id: this.msgIds.next() });
  }

  remove(room: string, user: string): Promise<AckFrame> {
    return this.entry({ type: "remove", room, user, client_msg_id: this.msgIds.next() });
  }

  setRole(room: string, user: string, role: Role): Promise<AckFrame> {
    return this.entry({ type: "set_role", room, user, role, client_msg_id: this.msgIds.next() });
  }

  /** Mutes `user` for `durationMs` (absent: until unmuted, at most 365 days). */
  mute(room: string, user: string, durationMs?: number): Promise<AckFrame> {
    return this.entry({
      type: "mute",
      room,
      user,
      ...defined({ duration_ms: durationMs }),
      client_msg_id: this.msgIds.next(),
    });
  }

  unmute(room: string, user: string): Promise<AckFrame> {
    return this.entry({ type: "unmute", room, user, client_msg_id: this.msgIds.next() });
  }

  ban(room: string, user: string): Promise<AckFrame> {
    return this.entry({ type: "ban", room, user, client_msg_id: this.msgIds.next() });
  }

  unban(room: string, user: string): Promise<AckFrame> {
    return this.entry({ type: "unban", room, user, client_msg_id: this.msgIds.next() });
  }

  /** Ends every subscription `user` has to `room` (moderation; not this client's connection). */
  disconnect(room: string, user: string): Promise<AckFrame> {
    return this.entry({ type: "disconnect", room, user, client_msg_id: this.msgIds.next() });
  }

  /** Gives up your membership of a created room (`leave` only ends the subscription). */
  leaveRoom(room: string): Promise<AckFrame> {
    return this.entry({ type: "leave_room", room, client_msg_id: this.msgIds.next() });
  }

  /**
   * Sends any request frame (its `id` is replaced by the SDK's) and settles with its reply: the
   * result frame, or a `ChorusError` for an `error` frame. Not resent after a reconnect.
   */
  request(frame: object): Promise<any> {
    return this.query(frame as ClientFrame, { resend: false });
  }

  // -------------------------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------------------------

  private entry(frame: EntryFrame): Promise<AckFrame> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.outbox.enqueue(frame);
  }

  private query(frame: ClientFrame, opts: { resend: boolean; room?: string }): Promise<ServerFrame> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.queryState.run(frame, opts);
  }

  private onReady(frame: ReadyFrame): void {
    this.userName = frame.user;
    this.events.emit("ready", frame);
    this.roomState.connectionReady();
    this.outbox.pump();
    this.queryState.pump();
    this.reads.flush();
  }

  private onLost(): void {
    this.roomState.connectionLost();
    this.typingState.resetAll();
    this.requests.connectionLost();
  }

  private onFrame(frame: ServerFrame): void {
    this.events.emit("frame", frame);
    if (frame.type === "ready") return;
    const answered = this.requests.dispatch(frame);
    switch (frame.type) {
      case "msg":
        this.roomState.message(frame);
        break;
      case "ack":
        this.events.emit("ack", frame);
        break;
      case "left":
        if (!answered) this.roomState.left(frame);
        this.events.emit("left", frame);
        break;
      case "presence":
        this.events.emit("presence", frame);
        break;
      case "typing":
        this.events.emit("typing", frame);
        break;
      case "receipts":
        this.events.emit("receipts", frame);
        break;
      case "event":
        this.events.emit("event", frame);
        break;
      case "error":
        if (!answered) this.events.emit("error", ChorusError.fromFrame(frame));
        break;
      default:
        break;
    }
  }

  private closedError(): ChorusError {
    return new ChorusError("closed", "client closed");
  }
}

/** `obj` without its `undefined` fields, so that absent options stay absent on the wire. */
function defined<T extends object>(obj: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]: Exclude<T[K], undefined> };
}

/**
 * Whether the gateway at `baseUrl` answers plain HTTP (`GET /v1/info`) within `timeoutMs`:
 * any answer below 500 means a WebSocket that fails there is blocked, not down.
 */
async function answersHttp(fetchFn: FetchFunction | undefined, baseUrl: string, timeoutMs: number): Promise<boolean> {
  if (!fetchFn) return false;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetchFn(endpointUrl(baseUrl, "/v1/info", false), { signal: abort.signal });
    return res.status < 500;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
