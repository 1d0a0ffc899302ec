/**
 * The send queue: every request that writes an entry into a room's log (`send`, `edit`,
 * `delete`, persisted `event`, room creation, membership and moderation). Each entry carries a
 * `client_msg_id` fixed when it is created, so it can be written again and again until it is
 * acknowledged: the server stores it once and answers repeats with `duplicate: true`.
 *
 * Rules:
 * - entries are written in creation order, and one at a time per room: an entry is written
 *   once the previous entry of its room is acknowledged or refused, and not while its room is
 *   being (re)joined. A refusal that is retried (`rate_limited`, `unavailable`) therefore
 *   never lets a later message of the room overtake it. Different rooms proceed in parallel;
 * - an entry written on a connection that is lost is written again on the next one;
 * - `rate_limited` retries after `retry_after_ms`, `unavailable` after a full-jitter backoff;
 *   any other refusal rejects the entry's promise and removes it;
 * - no ack within `ackTimeoutMs` on an open connection: an `error` (code `timeout`) is reported
 *   and the connection is replaced, and the entry is written again on the new one.
 *
 * Bounded: at most `offlineQueueMax` entries wait at once; more are refused with
 * `limit_exceeded`. At most `maxInFlight` are written without their ack, below the server's
 * limit of requests in flight per connection.
 */
import { ChorusError } from "./errors.js";
import type { AckFrame, EntryFrame } from "./frames.js";
import type { Requests } from "./requests.js";
export interface OutboxConfig {
    ackTimeoutMs: number;
    /** Overall deadline of an entry; 0 = none. */
    sendTimeoutMs: number;
    offlineQueueMax: number;
    maxInFlight: number;
    backoffInitialMs: number;
    backoffMaxMs: number;
    random: () => number;
}
export interface OutboxHooks {
    /** True while entries of `room` must wait (the room is joined by the app but not yet resumed). */
    mustWait(room: string): boolean;
    error(error: ChorusError): void;
    restart(reason: string): void;
}
export declare class Outbox {
    private readonly requests;
    private readonly hooks;
    private readonly config;
    /** Entries not yet acknowledged or refused, in creation order. */
    private entries;
    constructor(requests: Requests, hooks: OutboxHooks, config: OutboxConfig);
    get size(): number;
    /** Queues `frame` (which already carries its `client_msg_id`); settles with its ack. */
    enqueue(frame: EntryFrame): Promise<AckFrame>;
    /** Writes every entry that may go now. Called on `ready`, when a room opens, after retries. */
    pump(): void;
    /** Rejects and removes every entry (client closed). */
    closeAll(error: ChorusError): void;
    private write;
    private onReply;
    private onLost;
    /** Removes `entry` from the queue and stops its timers. */
    private finish;
    private clearTimers;
}
