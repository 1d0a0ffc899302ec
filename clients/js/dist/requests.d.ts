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
export declare class Requests {
    private readonly connection;
    private lastId;
    private readonly pending;
    constructor(connection: Connection);
    get isOpen(): boolean;
    /**
     * Writes `frame` with a fresh id and remembers `handler` until the reply or the loss of the
     * connection. Returns the id, or null when no connection is open (nothing was written).
     */
    write(frame: ClientFrame, handler: ReplyHandler): RequestId | null;
    /** Writes a frame that expects no reply (no id); false when no connection is open. */
    notify(frame: ClientFrame): boolean;
    /** Forgets a request whose caller no longer waits (timed out, cancelled). */
    forget(id: RequestId): void;
    /** Routes a server frame to the request it answers; false when it answers none. */
    dispatch(frame: ServerFrame): boolean;
    /** The connection ended: every pending request hears `lost`, in the order written. */
    connectionLost(): void;
}
