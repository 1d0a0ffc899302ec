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
import type { ClientFrame, RequestId, ServerFrame } from "./frames.js";
import type { Requests } from "./requests.js";

interface Query {
  frame: ClientFrame;
  resend: boolean;
  /** The room must be joined on the connection first (ephemeral events). */
  room: string | null;
  resolve(frame: ServerFrame): void;
  reject(error: ChorusError): void;
  timer: ReturnType<typeof setTimeout> | null;
  id: RequestId | null;
}

export class Queries {
  private readonly pending = new Set<Query>();

  constructor(
    private readonly requests: Requests,
    /** True while requests naming `room` must wait (the room is being re-joined). */
    private readonly mustWait: (room: string) => boolean,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Sends `frame` as soon as possible and settles with its reply; an `error` reply rejects.
   * `resend`: write it again after a reconnect. `room`: wait until that room is joined.
   */
  run(frame: ClientFrame, opts: { resend: boolean; room?: string }): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      const q: Query = { frame, resend: opts.resend, room: opts.room ?? null, resolve, reject, timer: null, id: null };
      if (this.timeoutMs > 0) {
        q.timer = setTimeout(() => {
          q.timer = null;
          const room = "room" in frame ? (frame as { room: string }).room : undefined;
          this.settle(q, new ChorusError("timeout", `no reply to ${frame.type} within ${this.timeoutMs} ms`, { room }));
        }, this.timeoutMs);
      }
      this.pending.add(q);
      this.write(q);
    });
  }

  /** Writes every query that waits and may go now. */
  pump(): void {
    for (const q of Array.from(this.pending)) this.write(q);
  }

  /** Rejects every pending query (client closed). */
  closeAll(error: ChorusError): void {
    for (const q of Array.from(this.pending)) this.settle(q, error);
  }

  private write(q: Query): void {
    if (q.id !== null) return;
    if (q.room !== null && this.mustWait(q.room)) return;
    q.id = this.requests.write(q.frame, {
      reply: (frame) => {
        q.id = null;
        if (frame.type === "error") this.settle(q, ChorusError.fromFrame(frame));
        else this.settle(q, null, frame);
      },
      lost: () => {
        q.id = null;
        if (!q.resend) this.settle(q, new ChorusError("transport", "connection lost before the reply"));
      },
    });
  }

  private settle(q: Query, error: ChorusError | null, frame?: ServerFrame): void {
    if (!this.pending.delete(q)) return;
    if (q.timer) clearTimeout(q.timer);
    if (q.id !== null) this.requests.forget(q.id);
    if (error) q.reject(error);
    else q.resolve(frame as ServerFrame);
  }
}
