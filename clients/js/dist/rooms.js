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
import { Backoff } from "./backoff.js";
import { ChorusError, isRetryable } from "./errors.js";
/** Gap fills read at most this many entries per request (the protocol's maximum page). */
const GAP_FILL_PAGE = 100;
class Room {
    constructor(name, since, config) {
        this.name = name;
        this.status = "pending";
        this.everJoined = false;
        this.lastJoined = null;
        /** Frames beyond a gap, by seq, waiting for the gap to be filled. */
        this.held = new Map();
        this.filling = false;
        /** Bumped on every connection loss so that replies of the old connection are ignored. */
        this.epoch = 0;
        this.waiters = [];
        this.replyTimer = null;
        this.retryTimer = null;
        this.lastSeq = since ?? 0;
        this.known = since !== undefined;
        this.retry = new Backoff(config.backoffInitialMs, config.backoffMaxMs, config.random);
    }
    clearTimers() {
        if (this.replyTimer)
            clearTimeout(this.replyTimer);
        if (this.retryTimer)
            clearTimeout(this.retryTimer);
        this.replyTimer = null;
        this.retryTimer = null;
    }
}
export class Rooms {
    constructor(requests, hooks, config) {
        this.requests = requests;
        this.hooks = hooks;
        this.config = config;
        this.rooms = new Map();
    }
    /** The last seq delivered to the app in `room`; 0 when unknown. */
    lastSeq(room) {
        return this.rooms.get(room)?.lastSeq ?? 0;
    }
    /** Whether the app has joined `room` (it stays joined across reconnects until `leave`). */
    has(room) {
        return this.rooms.has(room);
    }
    /** Whether `room` is joined on the current connection (its resume has completed). */
    isOpen(room) {
        return this.rooms.get(room)?.status === "joined";
    }
    /**
     * Registers `room` and joins it as soon as a connection is open. The promise settles with the
     * first `joined`; a timeout rejects it but keeps the room registered (it is joined when the
     * connection allows), a refusal drops the room.
     */
    join(name, since) {
        let room = this.rooms.get(name);
        if (room?.status === "joined" && room.lastJoined)
            return Promise.resolve(room.lastJoined);
        if (!room) {
            room = new Room(name, since, this.config);
            this.rooms.set(name, room);
        }
        const target = room;
        const promise = new Promise((resolve, reject) => {
            const waiter = { resolve, reject, timer: null };
            if (this.config.requestTimeoutMs > 0) {
                waiter.timer = setTimeout(() => {
                    target.waiters = target.waiters.filter((w) => w !== waiter);
                    reject(new ChorusError("timeout", `no joined within ${this.config.requestTimeoutMs} ms`, { room: name }));
                }, this.config.requestTimeoutMs);
            }
            target.waiters.push(waiter);
        });
        if (room.status === "pending" && !room.retryTimer)
            this.sendJoin(room);
        return promise;
    }
    /** Forgets `room`; true when it was joined (or being joined), so the server must be told. */
    forget(name) {
        const room = this.rooms.get(name);
        if (!room)
            return false;
        this.rooms.delete(name);
        room.clearTimers();
        room.epoch += 1;
        this.settleWaiters(room, new ChorusError("closed", "left before the join completed", { room: name }));
        return room.status !== "pending";
    }
    /** A connection is ready: join every room again, from where the app is. */
    connectionReady() {
        for (const room of this.rooms.values()) {
            if (room.status === "pending" && !room.retryTimer)
                this.sendJoin(room);
        }
    }
    /** The connection ended: every room waits for the next one; held frames are replayed then. */
    connectionLost() {
        for (const room of this.rooms.values()) {
            room.status = "pending";
            room.epoch += 1;
            room.filling = false;
            room.held.clear();
            room.clearTimers();
        }
    }
    /** A `msg` frame from the connection. */
    message(frame) {
        const room = this.rooms.get(frame.room);
        if (!room || typeof frame.seq !== "number")
            return;
        if (!room.known) {
            room.held.set(frame.seq, frame);
            return;
        }
        this.accept(room, frame);
    }
    /** A `left` frame that answers no request of ours: the server ended the subscription. */
    left(frame) {
        const room = this.rooms.get(frame.room);
        if (!room)
            return;
        this.rooms.delete(frame.room);
        room.clearTimers();
        room.epoch += 1;
        this.settleWaiters(room, new ChorusError("forbidden", `left the room: ${frame.reason ?? "left"}`, { room: room.name }));
    }
    /** Rejects every pending join with `error` and forgets every room (client closed). */
    closeAll(error) {
        for (const room of this.rooms.values()) {
            room.clearTimers();
            this.settleWaiters(room, error);
        }
        this.rooms.clear();
    }
    sendJoin(room) {
        room.retryTimer = null;
        const epoch = room.epoch;
        const frame = room.known
            ? { type: "join", room: room.name, since: room.lastSeq }
            : { type: "join", room: room.name };
        const id = this.requests.write(frame, {
            reply: (reply) => {
                if (epoch === room.epoch && this.rooms.get(room.name) === room)
                    this.onJoinReply(room, reply);
            },
            lost: () => undefined,
        });
        if (id === null)
            return;
        room.status = "joining";
        room.replyTimer = setTimeout(() => {
            room.replyTimer = null;
            if (epoch !== room.epoch || room.status !== "joining")
                return;
            this.hooks.error(new ChorusError("timeout", `no joined within ${this.config.replyTimeoutMs} ms; reconnecting`, { room: room.name }));
            this.hooks.restart("join timed out");
        }, this.config.replyTimeoutMs);
    }
    onJoinReply(room, reply) {
        if (room.replyTimer)
            clearTimeout(room.replyTimer);
        room.replyTimer = null;
        if (reply.type === "joined") {
            room.status = "joined";
            room.retry.reset();
            if (!room.known) {
                room.known = true;
                room.lastSeq = reply.last_seq;
            }
            const resumed = room.everJoined;
            room.everJoined = true;
            room.lastJoined = reply;
            const waiters = room.waiters;
            room.waiters = [];
            for (const w of waiters) {
                if (w.timer)
                    clearTimeout(w.timer);
                w.resolve(reply);
            }
            this.hooks.joined({ ...reply, resumed });
            this.drainHeld(room);
            this.hooks.roomOpen(room.name);
            return;
        }
        const error = reply.type === "error"
            ? ChorusError.fromFrame(reply)
            : new ChorusError("transport", `unexpected reply to join: ${reply.type}`, { room: room.name });
        if (isRetryable(error)) {
            room.status = "pending";
            const wait = error.code === "rate_limited" && error.retryAfterMs !== undefined ? error.retryAfterMs : room.retry.next();
            room.retryTimer = setTimeout(() => {
                room.retryTimer = null;
                if (this.rooms.get(room.name) === room && room.status === "pending" && this.requests.isOpen)
                    this.sendJoin(room);
            }, wait);
            return;
        }
        // Refused for good (forbidden, banned, since ahead of the log…): the room is dropped.
        this.rooms.delete(room.name);
        room.clearTimers();
        if (room.waiters.length === 0)
            this.hooks.error(error);
        this.settleWaiters(room, error);
        this.hooks.roomOpen(room.name);
    }
    /** Delivers `frame` if it is next, drops it if already delivered, holds it beyond a gap. */
    accept(room, frame) {
        if (frame.seq <= room.lastSeq)
            return;
        if (frame.seq > room.lastSeq + 1) {
            room.held.set(frame.seq, frame);
            this.fillGap(room);
            return;
        }
        this.deliver(room, frame);
        this.drainHeld(room);
    }
    deliver(room, frame) {
        room.lastSeq = frame.seq;
        this.hooks.message(frame);
    }
    /** Delivers held frames that are now next; starts a gap fill if some remain beyond a gap. */
    drainHeld(room) {
        if (room.held.size === 0)
            return;
        for (const seq of Array.from(room.held.keys())) {
            if (seq <= room.lastSeq)
                room.held.delete(seq);
        }
        let next = room.held.get(room.lastSeq + 1);
        while (next) {
            room.held.delete(next.seq);
            this.deliver(room, next);
            next = room.held.get(room.lastSeq + 1);
        }
        if (room.held.size > 0)
            this.fillGap(room);
    }
    /** Reads the missing entries with `history after lastSeq`, one page at a time. */
    fillGap(room) {
        if (room.filling || room.status !== "joined")
            return;
        room.filling = true;
        const epoch = room.epoch;
        const from = room.lastSeq;
        const current = () => epoch === room.epoch && this.rooms.get(room.name) === room;
        const fail = (reason) => {
            room.filling = false;
            this.hooks.error(new ChorusError("transport", `could not fill a gap after seq ${from}: ${reason}; reconnecting`, { room: room.name }));
            this.hooks.restart("gap fill failed");
        };
        let timer = null;
        const id = this.requests.write({ type: "history", room: room.name, after: from, limit: GAP_FILL_PAGE }, {
            reply: (reply) => {
                if (timer)
                    clearTimeout(timer);
                if (!current())
                    return;
                if (reply.type !== "history") {
                    fail(reply.type === "error" ? reply.message : `unexpected reply ${reply.type}`);
                    return;
                }
                room.filling = false;
                for (const m of reply.messages) {
                    if (m.seq === room.lastSeq + 1)
                        this.deliver(room, { ...m, type: "msg" });
                }
                if (room.lastSeq === from) {
                    // The log had nothing after our position although later entries exist: the
                    // connection's view is inconsistent, so rebuild it from a fresh join.
                    fail("history returned nothing new");
                    return;
                }
                this.drainHeld(room);
            },
            lost: () => undefined,
        });
        if (id === null) {
            room.filling = false;
            return;
        }
        timer = setTimeout(() => {
            if (!current() || !room.filling)
                return;
            this.requests.forget(id);
            fail(`no reply within ${this.config.replyTimeoutMs} ms`);
        }, this.config.replyTimeoutMs);
    }
    settleWaiters(room, error) {
        const waiters = room.waiters;
        room.waiters = [];
        for (const w of waiters) {
            if (w.timer)
                clearTimeout(w.timer);
            w.reject(error);
        }
    }
}
