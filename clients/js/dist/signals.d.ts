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
import type { Requests } from "./requests.js";
export declare class Typing {
    private readonly requests;
    /** Whether `room` is joined on the current connection (typing needs a joined room). */
    private readonly canSend;
    private readonly intervalMs;
    private readonly idleMs;
    private readonly rooms;
    constructor(requests: Requests, 
    /** Whether `room` is joined on the current connection (typing needs a joined room). */
    canSend: (room: string) => boolean, intervalMs: number, idleMs: number);
    /** The user typed in `room`. */
    typing(room: string): void;
    /** The user stopped typing without sending: tell the room. */
    stop(room: string): void;
    /**
     * Forgets the typing state of `room` without a frame: used when a message or event is sent,
     * since the server ends the typing itself right after the `msg`. True when the user was typing.
     */
    reset(room: string): boolean;
    /** Forgets everything (connection lost: the server expires typing on its own). */
    resetAll(): void;
}
export declare class ReadMarks {
    private readonly requests;
    /** True while marks of `room` must wait (the room is being re-joined). */
    private readonly mustWait;
    private readonly onError;
    private readonly rooms;
    private flushScheduled;
    constructor(requests: Requests, 
    /** True while marks of `room` must wait (the room is being re-joined). */
    mustWait: (room: string) => boolean, onError: (error: ChorusError) => void);
    /** Moves the read mark of `room` to `seq`; lower or equal marks are ignored. */
    mark(room: string, seq: number): void;
    /** Writes the highest pending mark of every room that has none in flight. */
    flush(): void;
    /** Stops retry timers (client closed). */
    clear(): void;
}
