/**
 * The SSE fallback transport, for networks that block WebSockets. Server frames arrive on one
 * long `GET /v1/sse` response read with `fetch` as a stream (not `EventSource`, which cannot
 * send the `Authorization` header; tokens never go in URLs). Client frames go out as NDJSON
 * batches in `POST /v1/sse/<session>`, with at most one POST in flight: the server handles a
 * session's frames in the order received, and frames queued while a POST is under way are
 * batched into the next one.
 */
import { ChorusError } from "./errors.js";
import { CloseCode } from "./frames.js";
import { endpointUrl, parseFrame } from "./transport.js";
/** A batch holds at most this many frames (the gateway takes 64 per request)… */
const MAX_BATCH_FRAMES = 64;
/** …and at most this many characters, unless one frame alone is larger. */
const MAX_BATCH_CHARS = 256 * 1024;
/** First wait after `429`; doubled per consecutive `429`, up to the maximum. */
const BUSY_RETRY_MS = 250;
const BUSY_RETRY_MAX_MS = 5000;
export class SseTransport {
    constructor(fetchFn, params) {
        this.fetchFn = fetchFn;
        this.params = params;
        this.name = "sse";
        this.abort = new AbortController();
        this.session = null;
        /** Serialized frames not yet posted, oldest first. Bounded by what the client writes. */
        this.queue = [];
        this.posting = false;
        this.busyRetries = 0;
        /** Lowered after `413` so that a batch too large for the server is split. */
        this.batchFrames = MAX_BATCH_FRAMES;
        this.ended = false;
        void this.readStream();
    }
    send(frame) {
        if (this.ended)
            return;
        this.queue.push({ id: frame.id, text: JSON.stringify(frame) });
        void this.flush();
    }
    close() {
        if (this.ended)
            return;
        this.ended = true;
        this.queue = [];
        this.abort.abort();
    }
    headers(extra = {}) {
        return { Authorization: `Bearer ${this.params.token}`, ...extra };
    }
    async readStream() {
        let response;
        try {
            response = await this.fetchFn(endpointUrl(this.params.baseUrl, "/v1/sse", false), {
                method: "GET",
                headers: this.headers({ Accept: "text/event-stream" }),
                cache: "no-store",
                signal: this.abort.signal,
            });
        }
        catch (err) {
            this.finish({ code: CloseCode.ABNORMAL, reason: `sse stream failed: ${describe(err)}` });
            return;
        }
        if (!response.ok) {
            const error = await refusal(response);
            const code = response.status === 401 ? CloseCode.UNAUTHORIZED : CloseCode.ABNORMAL;
            this.finish({ code, reason: error.message, error });
            return;
        }
        if (!response.body) {
            this.finish({ code: CloseCode.ABNORMAL, reason: "sse response has no body" });
            return;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const parser = new SseParser((data) => this.receive(data));
        try {
            for (;;) {
                const { value, done } = await reader.read();
                if (this.ended)
                    return;
                if (done)
                    break;
                parser.push(decoder.decode(value, { stream: true }));
            }
        }
        catch (err) {
            this.finish({ code: CloseCode.ABNORMAL, reason: `sse stream failed: ${describe(err)}` });
            return;
        }
        this.finish({ code: CloseCode.ABNORMAL, reason: "sse stream ended" });
    }
    receive(data) {
        if (this.ended)
            return;
        const frame = parseFrame(data);
        if (!frame)
            return;
        if (frame.type === "ready" && typeof frame.session === "string") {
            this.session = frame.session;
        }
        this.params.handlers.frame(frame);
        if (frame.type === "close") {
            const code = typeof frame.code === "number" ? frame.code : CloseCode.ABNORMAL;
            this.finish({ code, reason: typeof frame.reason === "string" ? frame.reason : "closed by server" });
            return;
        }
        if (frame.type === "ready")
            void this.flush();
    }
    /** Posts what is queued, one POST at a time, until the queue is empty. */
    async flush() {
        if (this.posting || this.ended || this.session === null || this.queue.length === 0)
            return;
        this.posting = true;
        try {
            while (!this.ended && this.queue.length > 0) {
                const batch = this.takeBatch();
                const status = await this.post(batch);
                if (status === null)
                    return;
                if (!this.handleStatus(status, batch))
                    return;
                if (status === 429) {
                    const wait = Math.min(BUSY_RETRY_MAX_MS, BUSY_RETRY_MS * 2 ** this.busyRetries++);
                    await delay(wait);
                }
            }
        }
        finally {
            this.posting = false;
        }
    }
    takeBatch() {
        let chars = 0;
        let n = 0;
        while (n < this.queue.length && n < this.batchFrames) {
            const size = this.queue[n].text.length + 1;
            if (n > 0 && chars + size > MAX_BATCH_CHARS)
                break;
            chars += size;
            n += 1;
        }
        return this.queue.splice(0, n);
    }
    /** One POST; the HTTP status, or `null` when the transport ended because of it. */
    async post(batch) {
        try {
            const response = await this.fetchFn(endpointUrl(this.params.baseUrl, `/v1/sse/${this.session}`, false), {
                method: "POST",
                headers: this.headers({ "Content-Type": "application/x-ndjson" }),
                body: batch.map((q) => q.text).join("\n"),
                signal: this.abort.signal,
            });
            // The reply body is empty or a short JSON error; read it so the connection is reused.
            await response.text().catch(() => "");
            return response.status;
        }
        catch (err) {
            this.finish({ code: CloseCode.ABNORMAL, reason: `sse post failed: ${describe(err)}` });
            return null;
        }
    }
    /**
     * Acts on a POST's status; false when the transport ended. Frames the server refused as a
     * whole are answered with a synthesized `error` frame carrying their id, so the requests
     * behind them settle as they would over a WebSocket.
     */
    handleStatus(status, batch) {
        if (status >= 200 && status < 300) {
            this.busyRetries = 0;
            this.batchFrames = MAX_BATCH_FRAMES;
            return true;
        }
        switch (status) {
            case 429:
                this.queue.unshift(...batch);
                return true;
            case 413:
                if (batch.length > 1) {
                    this.batchFrames = Math.max(1, Math.floor(batch.length / 2));
                    this.queue.unshift(...batch);
                }
                else {
                    this.refuse(batch, "too_large", "frame too large for the sse transport");
                }
                return true;
            case 400:
                this.refuse(batch, "bad_request", "the server refused the frames as malformed");
                return true;
            case 401:
                this.finish({
                    code: CloseCode.UNAUTHORIZED,
                    reason: "sse post unauthorized",
                    error: new ChorusError("unauthorized", "sse post unauthorized"),
                });
                return false;
            case 404:
                this.finish({ code: CloseCode.ABNORMAL, reason: "sse session ended" });
                return false;
            default:
                this.finish({ code: CloseCode.ABNORMAL, reason: `sse post failed with http ${status}` });
                return false;
        }
    }
    refuse(batch, code, message) {
        for (const q of batch) {
            if (q.id === undefined)
                continue;
            this.params.handlers.frame({ type: "error", id: q.id, code, message });
        }
    }
    finish(info) {
        if (this.ended)
            return;
        this.ended = true;
        this.queue = [];
        this.abort.abort();
        this.params.handlers.closed(info);
    }
}
/**
 * Incremental parser of `text/event-stream`: collects `data:` lines and hands each event's data
 * to `onData` at the blank line that ends it. Comment lines (`:` heartbeats) and the `event`,
 * `id` and `retry` fields are ignored, since every Chorus event is a JSON frame.
 */
export class SseParser {
    constructor(onData) {
        this.onData = onData;
        this.buffer = "";
        this.data = [];
    }
    push(chunk) {
        this.buffer += chunk;
        for (;;) {
            const match = /\r\n|\r|\n/.exec(this.buffer);
            if (!match)
                return;
            // A lone `\r` at the end of a chunk may be the first half of `\r\n`: wait for more.
            if (match[0] === "\r" && match.index === this.buffer.length - 1)
                return;
            const line = this.buffer.slice(0, match.index);
            this.buffer = this.buffer.slice(match.index + match[0].length);
            this.line(line);
        }
    }
    line(line) {
        if (line === "") {
            if (this.data.length > 0) {
                const data = this.data.join("\n");
                this.data = [];
                this.onData(data);
            }
            return;
        }
        if (line.startsWith(":"))
            return;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        if (field !== "data")
            return;
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" "))
            value = value.slice(1);
        this.data.push(value);
    }
}
/** The error a non-2xx reply describes: its JSON body when it has one, else its status. */
async function refusal(response) {
    let body = null;
    try {
        body = (await response.json());
    }
    catch {
        body = null;
    }
    const fallback = response.status === 401 ? "unauthorized" : response.status === 503 ? "unavailable" : "transport";
    const code = typeof body?.code === "string" ? body.code : fallback;
    const message = typeof body?.message === "string" ? body.message : `sse stream refused with http ${response.status}`;
    return new ChorusError(code, message);
}
function delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}
function describe(err) {
    return err instanceof Error ? err.message : String(err);
}
