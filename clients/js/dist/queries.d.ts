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
import type { ClientFrame, ServerFrame } from "./frames.js";
import type { Requests } from "./requests.js";
export declare class Queries {
    private readonly requests;
    /** True while requests naming `room` must wait (the room is being re-joined). */
    private readonly mustWait;
    private readonly timeoutMs;
    private readonly pending;
    constructor(requests: Requests, 
    /** True while requests naming `room` must wait (the room is being re-joined). */
    mustWait: (room: string) => boolean, timeoutMs: number);
    /**
     * Sends `frame` as soon as possible and settles with its reply; an `error` reply rejects.
     * `resend`: write it again after a reconnect. `room`: wait until that room is joined.
     */
    run(frame: ClientFrame, opts: {
        resend: boolean;
        room?: string;
    }): Promise<ServerFrame>;
    /** Writes every query that waits and may go now. */
    pump(): void;
    /** Rejects every pending query (client closed). */
    closeAll(error: ChorusError): void;
    private write;
    private settle;
}
