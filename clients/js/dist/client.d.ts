/**
 * `ChorusClient`: the public face of the SDK. It wires the connection manager, request
 * matching, per-room delivery, the send queue and the typing/read helpers together, and turns
 * server frames into typed events. The guarantees it gives are listed in docs/clients.md.
 */
import { type ConnectionState, type StateChange } from "./connection.js";
import { ChorusError } from "./errors.js";
import type { AckFrame, Attachment, EventFrame, JoinedFrame, LeftFrame, MembersFrame, MsgFrame, OnlineFrame, PresenceFrame, ReadyFrame, ReceiptsFrame, Role, RoomInfo, ServerFrame, TypingFrame } from "./frames.js";
import { type TransportName } from "./transport.js";
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
    backoff?: {
        initialMs?: number;
        maxMs?: number;
    };
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
    joined: JoinedFrame & {
        resumed: boolean;
    };
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
/**
 * A Chorus client. Create it, subscribe to events, `connect()`, `join()` rooms and `send()`.
 * It reconnects by itself until `close()`, resumes every joined room from where the app is,
 * and resends unacknowledged sends with the same `client_msg_id`.
 */
export declare class ChorusClient {
    private readonly events;
    private readonly connection;
    private readonly requests;
    private readonly roomState;
    private readonly outbox;
    private readonly typingState;
    private readonly reads;
    private readonly msgIds;
    private readonly queryState;
    private userName;
    private closed;
    constructor(options: ChorusOptions);
    /** Starts connecting; idempotent. The client then reconnects by itself until `close()`. */
    connect(): void;
    /** Stops for good: closes the connection; every pending promise rejects with `closed`. */
    close(): void;
    get state(): ConnectionState;
    /** The transport of the current (or last) connection. */
    get transport(): TransportName | null;
    /** The authenticated user, once a connection was ready. */
    get user(): string | null;
    /** Subscribes to an event; returns the function that unsubscribes. */
    on<K extends keyof ChorusEvents>(event: K, fn: (e: ChorusEvents[K]) => void): () => void;
    /**
     * Joins `room` and keeps it joined across reconnects until `leave()`. With `since`, every
     * message after that seq is delivered first; without, delivery starts after the room's
     * current last seq. Settles with the first `joined`. A timeout rejects the promise but keeps
     * the room registered; a refusal (`forbidden`, …) drops it.
     */
    join(room: string, opts?: {
        since?: number;
    }): Promise<JoinedFrame>;
    /** Leaves `room`: no `message` of it is delivered afterwards, and it is not re-joined. */
    leave(room: string): Promise<void>;
    /** The last seq delivered to the app in `room` (0 when none). */
    lastSeq(room: string): number;
    /**
     * Sends a chat message. It gets a stable `client_msg_id`, waits in the queue while offline or
     * while its room is being re-joined, and is resent until acknowledged; the promise settles
     * with the ack (possibly `duplicate: true`) or a refusal. `traceparent` is the app's W3C trace
     * context for this message (e.g. from its OpenTelemetry span), sent with every attempt.
     */
    send(room: string, body: string, opts?: {
        replyTo?: number;
        attachments?: Attachment[];
        clientMsgId?: string;
        traceparent?: string;
    }): Promise<AckFrame>;
    /** Replaces the body of your message `target`. */
    edit(room: string, target: number, body: string): Promise<AckFrame>;
    /** Deletes message `target` (yours, or anyone's if you moderate the room). */
    delete(room: string, target: number): Promise<AckFrame>;
    /**
     * Sends an application event. Ephemeral by default: relayed to the room's subscribers, at
     * most once, settling with `ok`. With `persist: true` it is a log entry like a message: queued,
     * resent until acknowledged, settling with its ack.
     */
    event(room: string, event: string, data: unknown, opts?: {
        persist?: boolean;
    }): Promise<unknown>;
    /** One page of `room`'s history, ascending by seq: the newest page, or `before`/`after` a seq. */
    history(room: string, opts?: {
        before?: number;
        after?: number;
        limit?: number;
    }): Promise<{
        messages: MsgFrame[];
        hasMore: boolean;
    }>;
    /** Pages back through `room`'s history, `pageSize` messages at a time, newest first. */
    historyPager(room: string, pageSize?: number): HistoryPager;
    /** Says the user is typing in `room`; call it on every keystroke. */
    typing(room: string): void;
    /** Says the user stopped typing in `room` without sending. */
    stopTyping(room: string): void;
    /** Marks `room` read up to `seq`. Coalesced, forward only, resent after a reconnect. */
    markRead(room: string, seq: number): void;
    /** Your rooms, with unread counts. */
    rooms(): Promise<RoomInfo[]>;
    /** One page of a created room's members, by user id (`after` the last one of the previous page). */
    members(room: string, opts?: {
        after?: string;
        limit?: number;
    }): Promise<MembersFrame>;
    /** One page of the users online in `room`. */
    who(room: string, opts?: {
        after?: string;
        limit?: number;
    }): Promise<OnlineFrame>;
    /** Creates a public (default) or private room, owned by you. */
    createRoom(room: string, opts?: {
        visibility?: "public" | "private";
        members?: string[];
    }): Promise<AckFrame>;
    /** Opens (or reopens) the direct room with `user`; the ack's `room` is its name. */
    openDm(user: string): Promise<AckFrame>;
    invite(room: string, user: string, role?: Role): Promise<AckFrame>;
    remove(room: string, user: string): Promise<AckFrame>;
    setRole(room: string, user: string, role: Role): Promise<AckFrame>;
    /** Mutes `user` for `durationMs` (absent: until unmuted, at most 365 days). */
    mute(room: string, user: string, durationMs?: number): Promise<AckFrame>;
    unmute(room: string, user: string): Promise<AckFrame>;
    ban(room: string, user: string): Promise<AckFrame>;
    unban(room: string, user: string): Promise<AckFrame>;
    /** Ends every subscription `user` has to `room` (moderation; not this client's connection). */
    disconnect(room: string, user: string): Promise<AckFrame>;
    /** Gives up your membership of a created room (`leave` only ends the subscription). */
    leaveRoom(room: string): Promise<AckFrame>;
    /**
     * Sends any request frame (its `id` is replaced by the SDK's) and settles with its reply: the
     * result frame, or a `ChorusError` for an `error` frame. Not resent after a reconnect.
     */
    request(frame: object): Promise<any>;
    private entry;
    private query;
    private onReady;
    private onLost;
    private onFrame;
    private closedError;
}
