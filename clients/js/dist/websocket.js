/**
 * The WebSocket transport: `GET /v1/ws`, authenticated with a first `auth` frame, since
 * browsers cannot set headers on the upgrade. Works with the browser's `WebSocket` and with
 * any constructor of the same shape (Node 20: the `ws` package).
 */
import { CloseCode } from "./frames.js";
import { endpointUrl, parseFrame } from "./transport.js";
const OPEN = 1;
/** The request id of the auth frame; numeric ids belong to the client's requests. */
const AUTH_ID = "auth";
export class WebSocketTransport {
    constructor(Ctor, params) {
        this.params = params;
        this.name = "websocket";
        this.socket = null;
        this.ended = false;
        this.decoder = new TextDecoder();
        let socket;
        try {
            socket = new Ctor(endpointUrl(params.baseUrl, "/v1/ws", true));
        }
        catch (err) {
            // Report asynchronously: the owner is still inside the constructor call.
            Promise.resolve().then(() => this.finish(CloseCode.ABNORMAL, `websocket failed to start: ${describe(err)}`));
            return;
        }
        this.socket = socket;
        socket.onopen = () => {
            if (!this.ended)
                socket.send(JSON.stringify({ type: "auth", id: AUTH_ID, token: params.token }));
        };
        socket.onmessage = (ev) => this.receive(ev.data);
        // A close event always follows an error; it carries the code, so the error only logs nothing.
        socket.onerror = () => undefined;
        socket.onclose = (ev) => this.finish(ev.code || CloseCode.ABNORMAL, ev.reason || "websocket closed");
    }
    send(frame) {
        if (this.ended || !this.socket || this.socket.readyState !== OPEN)
            return;
        this.socket.send(JSON.stringify(frame));
    }
    close(code = CloseCode.NORMAL, reason = "") {
        if (this.ended)
            return;
        this.ended = true;
        const socket = this.socket;
        if (!socket)
            return;
        // Keep no-op handlers: some implementations (ws) raise an unhandled error when a socket
        // that is still connecting is closed and nobody listens.
        socket.onopen = () => undefined;
        socket.onmessage = () => undefined;
        socket.onclose = () => undefined;
        socket.onerror = () => undefined;
        try {
            socket.close(code, reason);
        }
        catch {
            // Already closing; nothing more to release.
        }
    }
    receive(data) {
        if (this.ended)
            return;
        let text;
        if (typeof data === "string")
            text = data;
        else if (data instanceof ArrayBuffer)
            text = this.decoder.decode(new Uint8Array(data));
        else if (ArrayBuffer.isView(data))
            text = this.decoder.decode(data);
        else
            return;
        const frame = parseFrame(text);
        if (frame)
            this.params.handlers.frame(frame);
    }
    finish(code, reason) {
        if (this.ended)
            return;
        this.ended = true;
        this.params.handlers.closed({ code, reason });
    }
}
function describe(err) {
    return err instanceof Error ? err.message : String(err);
}
