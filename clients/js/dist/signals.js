/**
 * Light-weight signals the app may call on every keystroke or scroll, shaped here so that the
 * wire sees only what matters:
 * - {@link Typing}: one `typing:true` per interval while the user types, one `typing:false`
 *   when they stop; nothing is queued while offline (typing is ephemeral);
 * - {@link ReadMarks}: read marks move forward only, at most one `read` per room is in flight,
 *   marks made meanwhile collapse into the highest, and a mark not yet confirmed is sent again
 *   after a reconnect.
 *
 * Owned by the client; both write through {@link Requests}.
 */
import { ChorusError } from "./errors.js";
export class Typing {
    constructor(requests, 
    /** Whether `room` is joined on the current connection (typing needs a joined room). */
    canSend, intervalMs, idleMs) {
        this.requests = requests;
        this.canSend = canSend;
        this.intervalMs = intervalMs;
        this.idleMs = idleMs;
        this.rooms = new Map();
    }
    /** The user typed in `room`. */
    typing(room) {
        let state = this.rooms.get(room);
        const now = Date.now();
        if (!state || now - state.startedAt >= this.intervalMs) {
            if (!this.canSend(room) || !this.requests.notify({ type: "typing", room, typing: true }))
                return;
            if (!state) {
                state = { startedAt: now, idleTimer: null };
                this.rooms.set(room, state);
            }
            state.startedAt = now;
        }
        if (state.idleTimer)
            clearTimeout(state.idleTimer);
        state.idleTimer = setTimeout(() => this.stop(room), this.idleMs);
    }
    /** The user stopped typing without sending: tell the room. */
    stop(room) {
        if (!this.reset(room))
            return;
        if (this.canSend(room))
            this.requests.notify({ type: "typing", room, typing: false });
    }
    /**
     * Forgets the typing state of `room` without a frame: used when a message or event is sent,
     * since the server ends the typing itself right after the `msg`. True when the user was typing.
     */
    reset(room) {
        const state = this.rooms.get(room);
        if (!state)
            return false;
        if (state.idleTimer)
            clearTimeout(state.idleTimer);
        this.rooms.delete(room);
        return true;
    }
    /** Forgets everything (connection lost: the server expires typing on its own). */
    resetAll() {
        for (const room of Array.from(this.rooms.keys()))
            this.reset(room);
    }
}
export class ReadMarks {
    constructor(requests, 
    /** True while marks of `room` must wait (the room is being re-joined). */
    mustWait, onError) {
        this.requests = requests;
        this.mustWait = mustWait;
        this.onError = onError;
        this.rooms = new Map();
        this.flushScheduled = false;
    }
    /** Moves the read mark of `room` to `seq`; lower or equal marks are ignored. */
    mark(room, seq) {
        let state = this.rooms.get(room);
        if (!state) {
            state = { confirmed: 0, inFlight: 0, pending: 0, retryTimer: null };
            this.rooms.set(room, state);
        }
        if (seq <= Math.max(state.confirmed, state.inFlight, state.pending))
            return;
        state.pending = seq;
        // Marks made in the same turn of the event loop collapse into one frame.
        if (!this.flushScheduled) {
            this.flushScheduled = true;
            queueMicrotask(() => {
                this.flushScheduled = false;
                this.flush();
            });
        }
    }
    /** Writes the highest pending mark of every room that has none in flight. */
    flush() {
        for (const [room, state] of this.rooms) {
            if (state.pending === 0 || state.inFlight !== 0 || state.retryTimer || this.mustWait(room))
                continue;
            const seq = state.pending;
            const id = this.requests.write({ type: "read", room, seq }, {
                reply: (frame) => {
                    if (state.inFlight !== seq || this.rooms.get(room) !== state)
                        return;
                    state.inFlight = 0;
                    if (frame.type === "error") {
                        const error = ChorusError.fromFrame(frame);
                        if (error.code === "rate_limited" || error.code === "unavailable") {
                            state.pending = Math.max(state.pending, seq);
                            state.retryTimer = setTimeout(() => {
                                state.retryTimer = null;
                                this.flush();
                            }, error.retryAfterMs ?? 1000);
                            return;
                        }
                        this.onError(error);
                    }
                    else {
                        state.confirmed = Math.max(state.confirmed, seq);
                    }
                    if (state.pending <= state.confirmed)
                        state.pending = 0;
                    this.flush();
                },
                lost: () => {
                    if (state.inFlight !== seq)
                        return;
                    state.inFlight = 0;
                    state.pending = Math.max(state.pending, seq);
                },
            });
            if (id === null)
                return;
            state.pending = 0;
            state.inFlight = seq;
        }
    }
    /** Stops retry timers (client closed). */
    clear() {
        for (const state of this.rooms.values())
            if (state.retryTimer)
                clearTimeout(state.retryTimer);
        this.rooms.clear();
    }
}
