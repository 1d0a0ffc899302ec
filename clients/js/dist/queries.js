/**
 * Queries: requests that expect one reply and write nothing to a room's log (`history`,
 * `rooms`, `members`, `who`, `leave`, ephemeral `event`, and `request()`). A query made while
 * offline waits for the connection; every query rejects with `timeout` `requestTimeoutMs` after
 * the call. Reads are written again on the next connection when the current one is lost; the
 * others reject with `transport`, since they may or may not have taken effect.
 *
 * Owned by the client, which calls {@link Queries.pump} when a connection or a room opens.
 */
import { ChorusError } from "./errors.js";
export class Queries {
    constructor(requests, 
    /** True while requests naming `room` must wait (the room is being re-joined). */
    mustWait, timeoutMs) {
        this.requests = requests;
        this.mustWait = mustWait;
        this.timeoutMs = timeoutMs;
        this.pending = new Set();
    }
    /**
     * Sends `frame` as soon as possible and settles with its reply; an `error` reply rejects.
     * `resend`: write it again after a reconnect. `room`: wait until that room is joined.
     */
    run(frame, opts) {
        return new Promise((resolve, reject) => {
            const q = { frame, resend: opts.resend, room: opts.room ?? null, resolve, reject, timer: null, id: null };
            if (this.timeoutMs > 0) {
                q.timer = setTimeout(() => {
                    q.timer = null;
                    const room = "room" in frame ? frame.room : undefined;
                    this.settle(q, new ChorusError("timeout", `no reply to ${frame.type} within ${this.timeoutMs} ms`, { room }));
                }, this.timeoutMs);
            }
            this.pending.add(q);
            this.write(q);
        });
    }
    /** Writes every query that waits and may go now. */
    pump() {
        for (const q of Array.from(this.pending))
            this.write(q);
    }
    /** Rejects every pending query (client closed). */
    closeAll(error) {
        for (const q of Array.from(this.pending))
            this.settle(q, error);
    }
    write(q) {
        if (q.id !== null)
            return;
        if (q.room !== null && this.mustWait(q.room))
            return;
        q.id = this.requests.write(q.frame, {
            reply: (frame) => {
                q.id = null;
                if (frame.type === "error")
                    this.settle(q, ChorusError.fromFrame(frame));
                else
                    this.settle(q, null, frame);
            },
            lost: () => {
                q.id = null;
                if (!q.resend)
                    this.settle(q, new ChorusError("transport", "connection lost before the reply"));
            },
        });
    }
    settle(q, error, frame) {
        if (!this.pending.delete(q))
            return;
        if (q.timer)
            clearTimeout(q.timer);
        if (q.id !== null)
            this.requests.forget(q.id);
        if (error)
            q.reject(error);
        else
            q.resolve(frame);
    }
}
