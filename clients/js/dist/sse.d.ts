/**
 * The SSE fallback transport, for networks that block WebSockets. Server frames arrive on one
 * long `GET /v1/sse` response read with `fetch` as a stream (not `EventSource`, which cannot
 * send the `Authorization` header; tokens never go in URLs). Client frames go out as NDJSON
 * batches in `POST /v1/sse/<session>`, with at most one POST in flight: the server handles a
 * session's frames in the order received, and frames queued while a POST is under way are
 * batched into the next one.
 */
import { type ClientFrame } from "./frames.js";
import { type Transport, type TransportParams } from "./transport.js";
export type FetchFunction = typeof fetch;
export declare class SseTransport implements Transport {
    private readonly fetchFn;
    private readonly params;
    readonly name: "sse";
    private readonly abort;
    private session;
    /** Serialized frames not yet posted, oldest first. Bounded by what the client writes. */
    private queue;
    private posting;
    private busyRetries;
    /** Lowered after `413` so that a batch too large for the server is split. */
    private batchFrames;
    private ended;
    constructor(fetchFn: FetchFunction, params: TransportParams);
    send(frame: ClientFrame): void;
    close(): void;
    private headers;
    private readStream;
    private receive;
    /** Posts what is queued, one POST at a time, until the queue is empty. */
    private flush;
    private takeBatch;
    /** One POST; the HTTP status, or `null` when the transport ended because of it. */
    private post;
    /**
     * Acts on a POST's status; false when the transport ended. Frames the server refused as a
     * whole are answered with a synthesized `error` frame carrying their id, so the requests
     * behind them settle as they would over a WebSocket.
     */
    private handleStatus;
    private refuse;
    private finish;
}
/**
 * Incremental parser of `text/event-stream`: collects `data:` lines and hands each event's data
 * to `onData` at the blank line that ends it. Comment lines (`:` heartbeats) and the `event`,
 * `id` and `retry` fields are ignored, since every Chorus event is a JSON frame.
 */
export declare class SseParser {
    private readonly onData;
    private buffer;
    private data;
    constructor(onData: (data: string) => void);
    push(chunk: string): void;
    private line;
}
