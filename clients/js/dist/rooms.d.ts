/**
 * Per-room state: which rooms the app has joined, the last seq delivered in each, and the rules
 * that make delivery exactly once and in seq order across reconnects:
 * - a `msg` with `seq <= lastSeq` is a duplicate and is dropped;
 * - a `msg` beyond `lastSeq + 1` opens a gap: later frames are held, the gap is filled with
 *   `history after lastSeq`, and everything is delivered in order;
 * - after every `ready`, each joined room is joined again with `since = lastSeq`.
 *
 * Owned by the client. It writes through {@link Requests} and reports through {@link RoomHooks};
 * it does not touch the connection itself except to ask for a restart when a room cannot be
 * brought back in order otherwise.
 */
import { ChorusError } from "./errors.js";
import type { JoinedFrame, LeftFrame, MsgFrame } from "./frames.js";
import type { Requests } from "./requests.js";
export interface RoomHooks {
    message(msg: MsgFrame): void;
    joined(frame: JoinedFrame & {
        resumed: boolean;
    }): void;
    /** The room is joined on the current connection: its queued sends may go. */
    roomOpen(room: string): void;
    error(error: ChorusError): void;
    /** Replace the connection: the room lost track of its order or its join went unanswered. */
    restart(reason: string): void;
}
export interface RoomConfig {
    /** A join or gap fill with no reply within this long triggers a restart. */
    replyTimeoutMs: number;
    /** The app's `join()` promise waits at most this long. */
    requestTimeoutMs: number;
    backoffInitialMs: number;
    backoffMaxMs: number;
    random: () => number;
}
export declare class Rooms {
    private readonly requests;
    private readonly hooks;
    private readonly config;
    private readonly rooms;
    constructor(requests: Requests, hooks: RoomHooks, config: RoomConfig);
    /** The last seq delivered to the app in `room`; 0 when unknown. */
    lastSeq(room: string): number;
    /** Whether the app has joined `room` (it stays joined across reconnects until `leave`). */
    has(room: string): boolean;
    /** Whether `room` is joined on the current connection (its resume has completed). */
    isOpen(room: string): boolean;
    /**
     * Registers `room` and joins it as soon as a connection is open. The promise settles with the
     * first `joined`; a timeout rejects it but keeps the room registered (it is joined when the
     * connection allows), a refusal drops the room.
     */
    join(name: string, since: number | undefined): Promise<JoinedFrame>;
    /** Forgets `room`; true when it was joined (or being joined), so the server must be told. */
    forget(name: string): boolean;
    /** A connection is ready: join every room again, from where the app is. */
    connectionReady(): void;
    /** The connection ended: every room waits for the next one; held frames are replayed then. */
    connectionLost(): void;
    /** A `msg` frame from the connection. */
    message(frame: MsgFrame): void;
    /** A `left` frame that answers no request of ours: the server ended the subscription. */
    left(frame: LeftFrame): void;
    /** Rejects every pending join with `error` and forgets every room (client closed). */
    closeAll(error: ChorusError): void;
    private sendJoin;
    private onJoinReply;
    /** Delivers `frame` if it is next, drops it if already delivered, holds it beyond a gap. */
    private accept;
    private deliver;
    /** Delivers held frames that are now next; starts a gap fill if some remain beyond a gap. */
    private drainHeld;
    /** Reads the missing entries with `history after lastSeq`, one page at a time. */
    private fillGap;
    private settleWaiters;
}
