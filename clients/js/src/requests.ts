/**
 * Request/reply matching. Every request the SDK writes gets a fresh numeric id, never reused,
 * so a reply that arrives late (after a reconnect, after a timeout) can never settle the wrong
 * request. Ids live only as long as the connection they were written on: when it is lost,
 * every pending handler hears `lost` and decides for itself whether to resend.
 *
 * Owned by the client; its sub-managers (rooms, outbox, signals, queries) write through it.
 */

import type { Connection } from "./connection.js";
import type { ClientFrame, RequestId, ServerFrame } from "./frames.js";

export interface ReplyHandler {
  /** The reply carrying this request's id (a result or an `error` frame). */
  reply(frame: ServerFrame): void;
  /** The connection ended before the reply. */
  lost(): void;
}

export class Requests {
  private lastId = 0;
  private readonly pending = new Map<RequestId, ReplyHandler>();

  constructor(private readonly connection: Connection) {}

  get isOpen(): boolean {
    return this.connection.isOpen;
  }

  /**
   * Writes `frame` with a fresh id and remembers `handler` until the reply or the loss of the
   * connection. Returns the id, or null when no connection is open (nothing was written).
   */
  write(frame: ClientFrame, handler: ReplyHandler): RequestId | null {
    if (!this.connection.isOpen) return null;
    const id = ++this.lastId;
    this.pending.set(id, handler);
    if (!this.connection.send({ ...frame, id } as ClientFrame)) {
      this.pending.delete(id);
      return null;
    }
    return id;
  }

  /** Writes a frame that expects no reply (no id); false when no connection is open. */
  notify(frame: ClientFrame): boolean {
    return this.connection.send(frame);
  }

  /** Forgets a request whose caller no longer waits (timed out, cancelled). */
  forget(id: RequestId): void {
    this.pending.delete(id);
  }

  /** Routes a server frame to the request it answers; false when it answers none. */
  dispatch(frame: ServerFrame): boolean {
    const id = (frame as { id?: RequestId }).id;
    if (id === undefined) return false;
    const handler = this.pending.get(id);
    if (!handler) return false;
    this.pending.delete(id);
    handler.reply(frame);
    return true;
  }

  /** The connection ended: every pending request hears `lost`, in the order written. */
  connectionLost(): void {
    const handlers = Array.from(this.pending.values());
    this.pending.clear();
    for (const h of handlers) h.lost();
  }
}
