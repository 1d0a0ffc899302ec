/**
 * The transport contract shared by the WebSocket and the SSE transport, and the URL helpers
 * both use. A transport carries frames and authenticates itself; it knows nothing about rooms,
 * retries or reconnects, which belong to the connection manager and the client.
 */
/**
 * The absolute URL of `path` under the gateway `base`, in the WebSocket (`ws:`/`wss:`) or the
 * HTTP (`http:`/`https:`) scheme. `base` may use either scheme; in a browser it may be relative
 * to the page.
 */
export function endpointUrl(base, path, websocket) {
    const page = globalThis.location?.href;
    const url = page ? new URL(base, page) : new URL(base);
    const secure = url.protocol === "https:" || url.protocol === "wss:";
    if (websocket)
        url.protocol = secure ? "wss:" : "ws:";
    else
        url.protocol = secure ? "https:" : "http:";
    url.pathname = url.pathname.replace(/\/+$/, "") + path;
    url.search = "";
    url.hash = "";
    return url.toString();
}
/** Parses one frame of JSON text; `null` when it is not a JSON object with a string `type`. */
export function parseFrame(text) {
    let value;
    try {
        value = JSON.parse(text);
    }
    catch {
        return null;
    }
    if (typeof value !== "object" || value === null || typeof value.type !== "string") {
        return null;
    }
    return value;
}
