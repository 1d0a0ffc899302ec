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

import { Backoff } from "./backoff.js";
import { ChorusError } from "./errors.js";
import type { AckFrame, EntryFrame, RequestId, ServerFrame } from "./frames.js";
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

type EntryState = "queued" | "inflight" | "waiting";

interface Entry {
  readonly frame: EntryFrame;
  /** The room whose order this entry keeps; null for `open_dm`. */
  readonly room: string | null;
  readonly resolve: (ack: AckFrame) => void;
  readonly reject: (error: ChorusError) => void;
  state: EntryState;
  /** The request id of the current attempt, while in flight. */
  id: RequestId | null;
  ackTimer: ReturnType<typeof setTimeout> | null;
  retryTimer: ReturnType<typeof setTimeout> | null;
  deadline: ReturnType<typeof setTimeout> | null;
  retry: Backoff | null;
}

export class Outbox {
  /** Entries not yet acknowledged or refused, in creation order. */
  private entries: Entry[] = [];

  constructor(private readonly requests: Requests, private readonly hooks: OutboxHooks, private readonly config: OutboxConfig) {}

  get size(): number {
    return this.entries.length;
  }

  /** Queues `frame` (which already carries its `client_msg_id`); settles with its ack. */
  enqueue(frame: EntryFrame): Promise<AckFrame> {
    if (this.entries.length >= this.config.offlineQueueMax) {
      return Promise.reject(
        new ChorusError("limit_exceeded", `send queue full (${this.config.offlineQueueMax} waiting)`, {
          room: "room" in frame ? frame.room : undefined,
        }),
      );
    }
    return new Promise<AckFrame>((resolve, reject) => {
      const entry: Entry = {
        frame,
        room: "room" in frame ? frame.room : null,
        resolve,
        reject,
        state: "queued",
        id: null,
        ackTimer: null,
        retryTimer: null,
        deadline: null,
        retry: null,
      };
      if (this.config.sendTimeoutMs > 0) {
        entry.deadline = setTimeout(() => {
          entry.deadline = null;
          this.finish(entry);
          reject(new ChorusError("timeout", `not acknowledged within ${this.config.sendTimeoutMs} ms`, { room: entry.room ?? undefined }));
        }, this.config.sendTimeoutMs);
      }
      this.entries.push(entry);
      this.pump();
    });
  }

  /** Writes every entry that may go now. Called on `ready`, when a room opens, after retries. */
  pump(): void {
    if (!this.requests.isOpen) return;
    let inFlight = 0;
    for (const e of this.entries) if (e.state === "inflight") inFlight += 1;
    const blocked = new Set<string | null>();
    for (const entry of this.entries) {
      if (inFlight >= this.config.maxInFlight) return;
      if (entry.state === "inflight") {
        blocked.add(entry.room);
        continue;
      }
      if (entry.state === "waiting" || (entry.room !== null && this.hooks.mustWait(entry.room))) {
        blocked.add(entry.room);
        continue;
      }
      if (blocked.has(entry.room)) continue;
      if (!this.write(entry)) return;
      blocked.add(entry.room);
      inFlight += 1;
    }
  }

  /** Rejects and removes every entry (client closed). */
  closeAll(error: ChorusError): void {
    const entries = this.entries;
    this.entries = [];
    for (const e of entries) {
      this.clearTimers(e);
      if (e.id !== null) this.requests.forget(e.id);
      e.reject(error);
    }
  }

  private write(entry: Entry): boolean {
    const id = this.requests.write(entry.frame, {
      reply: (frame) => this.onReply(entry, id, frame),
      lost: () => this.onLost(entry, id),
    });
    if (id === null) return false;
    entry.state = "inflight";
    entry.id = id;
    entry.ackTimer = setTimeout(() => {
      entry.ackTimer = null;
      if (entry.state !== "inflight" || entry.id !== id) return;
      this.hooks.error(
        new ChorusError("timeout", `no ack within ${this.config.ackTimeoutMs} ms; reconnecting to resend`, {
          room: entry.room ?? undefined,
        }),
      );
      this.hooks.restart("ack timed out");
    }, this.config.ackTimeoutMs);
    return true;
  }

  private onReply(entry: Entry, id: RequestId | null, frame: ServerFrame): void {
    if (entry.id !== id || !this.entries.includes(entry)) return;
    if (entry.ackTimer) clearTimeout(entry.ackTimer);
    entry.ackTimer = null;
    entry.id = null;
    if (frame.type === "ack") {
      this.finish(entry);
      entry.resolve(frame);
      this.pump();
      return;
    }
    const error =
      frame.type === "error"
        ? ChorusError.fromFrame(frame)
        : new ChorusError("transport", `unexpected reply ${frame.type}`, { room: entry.room ?? undefined });
    if (error.code === "rate_limited" || error.code === "unavailable") {
      entry.retry ??= new Backoff(this.config.backoffInitialMs, this.config.backoffMaxMs, this.config.random);
      const wait =
        error.code === "rate_limited" && error.retryAfterMs !== undefined ? error.retryAfterMs : entry.retry.next();
      entry.state = "waiting";
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = null;
        entry.state = "queued";
        this.pump();
      }, wait);
      return;
    }
    this.finish(entry);
    entry.reject(error);
    this.pump();
  }

  private onLost(entry: Entry, id: RequestId | null): void {
    if (entry.id !== id) return;
    if (entry.ackTimer) clearTimeout(entry.ackTimer);
    entry.ackTimer = null;
    entry.id = null;
    entry.state = "queued";
  }

  /** Removes `entry` from the queue and stops its timers. */
  private finish(entry: Entry): void {
    this.clearTimers(entry);
    if (entry.id !== null) this.requests.forget(entry.id);
    entry.id = null;
    const i = this.entries.indexOf(entry);
    if (i !== -1) this.entries.splice(i, 1);
  }

  private clearTimers(entry: Entry): void {
    if (entry.ackTimer) clearTimeout(entry.ackTimer);
    if (entry.retryTimer) clearTimeout(entry.retryTimer);
    if (entry.deadline) clearTimeout(entry.deadline);
    entry.ackTimer = null;
    entry.retryTimer = null;
    entry.deadline = null;
  }
}
