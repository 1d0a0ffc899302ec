/**
 * The connection manager: keeps one authenticated transport open to a gateway, for as long as
 * the client runs. It chooses the transport (WebSocket first, SSE after two failed starts),
 * fetches a token before every attempt, waits between attempts with full-jitter backoff, obeys
 * drain (`reconnect` frame, close 1001) by reconnecting at once, and follows the browser's
 * `online`/`offline` events.
 *
 * It does not know rooms or requests: it reports `ready`, frames and the loss of an open
 * connection, and the client resumes on top of that.
 */
import { Emitter } from "./emitter.js";
import { ChorusError } from "./errors.js";
import { CloseCode } from "./frames.js";
/** Consecutive failed starts of the preferred transport that trigger the fallback. */
const FAILURES_BEFORE_FALLBACK = 2;
export class Connection extends Emitter {
    constructor(config) {
        super();
        this.config = config;
        this.stateValue = "idle";
        /** Bumped for every attempt and on stop; handlers of older attempts see a stale value. */
        this.generation = 0;
        this.transport = null;
        this.transportName = null;
        this.ready = false;
        this.refusedAuth = false;
        this.retryTimer = null;
        this.readyTimer = null;
        this.preferredFailures = 0;
        /**
         * Set when the preferred transport failed often enough: whether the gateway answered plain
         * HTTP right after the last failure. Asked at once, so that a gateway that is back by the
         * next attempt does not make a failure during its restart look like a blocked WebSocket.
         */
        this.fallbackProbe = null;
        /** The base URL of the latest attempt. */
        this.baseUrl = null;
        /** When the fallback transport was chosen; null while the preferred one is in use. */
        this.fallbackSince = null;
        /** The browser said it is offline: no attempts until it says online. */
        this.offline = false;
        this.detachWindow = this.attachWindow();
    }
    get state() {
        return this.stateValue;
    }
    /** The transport of the current (or last) connection; null before the first attempt. */
    get currentTransport() {
        return this.transportName;
    }
    get isOpen() {
        return this.stateValue === "open";
    }
    /** Starts connecting; does nothing when already started. */
    start() {
        if (this.stateValue !== "idle")
            return;
        void this.attempt();
    }
    /** Stops for good: closes the transport and cancels every timer. */
    stop() {
        if (this.stateValue === "closed")
            return;
        this.generation += 1;
        this.clearTimers();
        this.detachWindow();
        const transport = this.transport;
        this.transport = null;
        const wasReady = this.ready;
        this.ready = false;
        transport?.close(CloseCode.NORMAL, "client closed");
        this.setState({ state: "closed", transport: this.transportName });
        if (wasReady)
            this.emit("lost", { code: CloseCode.NORMAL, reason: "client closed" });
    }
    /** Writes a frame on the open connection; false when there is none. */
    send(frame) {
        if (!this.ready || !this.transport)
            return false;
        this.transport.send(frame);
        return true;
    }
    /**
     * Drops the current connection and reconnects after a backoff delay, e.g. when an ack did
     * not come in time: a silent connection is better replaced than trusted.
     */
    restart(reason) {
        if (!this.transport)
            return;
        this.dropTransport({ code: CloseCode.ABNORMAL, reason }, false);
    }
    async attempt() {
        this.retryTimer = null;
        const generation = ++this.generation;
        let name = this.chooseTransport();
        this.transportName = name;
        this.ready = false;
        this.refusedAuth = false;
        const state = this.stateValue === "idle" || this.stateValue === "connecting" ? "connecting" : "reconnecting";
        this.setState({ state, attempt: this.config.backoff.attempts, transport: name });
        let baseUrl;
        let token;
        try {
            baseUrl = typeof this.config.url === "function" ? this.config.url() : this.config.url;
            token = typeof this.config.token === "function" ? await this.config.token() : this.config.token;
        }
        catch (err) {
            if (generation !== this.generation)
                return;
            this.emit("error", new ChorusError("unauthorized", `token provider failed: ${describe(err)}`));
            this.scheduleAttempt(this.config.backoff.next());
            return;
        }
        if (generation !== this.generation)
            return;
        this.baseUrl = baseUrl;
        if (this.fallbackProbe) {
            const probe = this.fallbackProbe;
            this.fallbackProbe = null;
            const fallback = this.config.transports[1];
            const reachable = await probe;
            if (generation !== this.generation)
                return;
            if (fallback && reachable) {
                this.fallbackSince = Date.now();
                name = fallback;
                this.transportName = name;
                this.setState({ state, attempt: this.config.backoff.attempts, transport: name });
            }
        }
        const handlers = {
            frame: (frame) => {
                if (generation === this.generation)
                    this.onFrame(frame);
            },
            closed: (info) => {
                if (generation === this.generation)
                    this.onClosed(info);
            },
        };
        let transport = this.config.createTransport(name, { baseUrl, token, handlers });
        if (!transport) {
            // This platform cannot make the chosen transport: use the other one, if allowed.
            const other = this.config.transports.find((t) => t !== name);
            transport = other ? this.config.createTransport(other, { baseUrl, token, handlers }) : null;
            if (!transport) {
                this.emit("error", new ChorusError("transport", `no usable transport among ${this.config.transports.join(", ")}`));
                this.stop();
                return;
            }
            this.transportName = other ?? null;
            this.fallbackSince ?? (this.fallbackSince = Date.now());
        }
        this.transport = transport;
        this.readyTimer = setTimeout(() => {
            this.readyTimer = null;
            if (generation !== this.generation || this.ready)
                return;
            this.dropTransport({ code: CloseCode.ABNORMAL, reason: `no ready within ${this.config.readyTimeoutMs} ms` }, false);
        }, this.config.readyTimeoutMs);
    }
    onFrame(frame) {
        if (!this.ready) {
            if (frame.type === "ready") {
                this.onReady(frame);
                return;
            }
            if (frame.type === "error" && frame.code === "unauthorized")
                this.refusedAuth = true;
        }
        else if (frame.type === "reconnect") {
            this.emit("frame", frame);
            // Drain: this gateway is going away; another one behind the same URL takes over.
            this.dropTransport({ code: CloseCode.GOING_AWAY, reason: `reconnect requested: ${frame.reason}` }, true);
            return;
        }
        this.emit("frame", frame);
    }
    onReady(frame) {
        this.ready = true;
        if (this.readyTimer)
            clearTimeout(this.readyTimer);
        this.readyTimer = null;
        this.config.backoff.reset();
        if (this.transportName === this.config.transports[0])
            this.preferredFailures = 0;
        this.setState({ state: "open", attempt: 0, transport: this.transportName });
        this.emit("ready", frame);
        this.emit("frame", frame);
    }
    onClosed(info) {
        this.transport = null;
        const drain = this.ready && info.code === CloseCode.GOING_AWAY;
        this.dropTransport(info, drain);
    }
    /** Ends the current transport (if still there) and plans the next attempt. */
    dropTransport(info, drain) {
        this.generation += 1;
        if (this.readyTimer)
            clearTimeout(this.readyTimer);
        this.readyTimer = null;
        const transport = this.transport;
        this.transport = null;
        transport?.close(CloseCode.NORMAL, info.reason);
        const wasReady = this.ready;
        this.ready = false;
        const refused = this.refusedAuth || info.code === CloseCode.UNAUTHORIZED;
        if (info.error && (refused || !wasReady))
            this.emit("error", info.error);
        if (!wasReady && !refused)
            this.countFailure();
        // Leave "open" before telling the client, so nothing is written to the dead connection.
        if (this.offline) {
            this.setState({ state: "reconnecting", attempt: this.config.backoff.attempts, transport: this.transportName });
        }
        else {
            const delayMs = drain
                ? Math.floor(this.config.random() * this.config.drainJitterMs)
                : this.config.backoff.next();
            this.scheduleAttempt(delayMs);
        }
        if (wasReady)
            this.emit("lost", info);
    }
    scheduleAttempt(delayMs) {
        if (this.stateValue === "closed")
            return;
        if (this.retryTimer)
            clearTimeout(this.retryTimer);
        this.setState({
            state: "reconnecting",
            attempt: this.config.backoff.attempts,
            delayMs,
            transport: this.transportName,
        });
        this.retryTimer = setTimeout(() => void this.attempt(), delayMs);
    }
    /** The transport for the next attempt: the preferred one unless it failed to start twice. */
    chooseTransport() {
        const [preferred, fallback] = this.config.transports;
        if (this.fallbackSince !== null && Date.now() - this.fallbackSince >= this.config.fallbackRetryMs) {
            // Time to try the preferred transport again; one more failure goes straight back.
            this.fallbackSince = null;
            this.preferredFailures = FAILURES_BEFORE_FALLBACK - 1;
        }
        return this.fallbackSince !== null && fallback ? fallback : preferred;
    }
    countFailure() {
        const [preferred, fallback] = this.config.transports;
        if (!fallback || this.transportName !== preferred)
            return;
        this.preferredFailures += 1;
        if (this.preferredFailures >= FAILURES_BEFORE_FALLBACK) {
            this.preferredFailures = 0;
            const { reachable } = this.config;
            const baseUrl = this.baseUrl;
            this.fallbackProbe = reachable && baseUrl !== null ? reachable(baseUrl) : Promise.resolve(true);
        }
    }
    setState(change) {
        if (this.stateValue === "closed" && change.state !== "closed")
            return;
        this.stateValue = change.state;
        this.emit("state", change);
    }
    clearTimers() {
        if (this.retryTimer)
            clearTimeout(this.retryTimer);
        if (this.readyTimer)
            clearTimeout(this.readyTimer);
        this.retryTimer = null;
        this.readyTimer = null;
    }
    /** Follows the browser's connectivity events, when there is a browser window. */
    attachWindow() {
        const win = globalThis.window;
        if (!win || typeof win.addEventListener !== "function")
            return () => undefined;
        const offline = () => {
            if (this.offline || this.stateValue === "idle" || this.stateValue === "closed") {
                this.offline = true;
                return;
            }
            this.offline = true;
            if (this.retryTimer)
                clearTimeout(this.retryTimer);
            this.retryTimer = null;
            if (this.transport) {
                this.dropTransport({ code: CloseCode.ABNORMAL, reason: "browser offline" }, false);
            }
            else {
                // An attempt may be waiting for its token: make it stale, then wait for `online`.
                this.generation += 1;
                this.setState({ state: "reconnecting", attempt: this.config.backoff.attempts, transport: this.transportName });
            }
        };
        const online = () => {
            const wasOffline = this.offline;
            this.offline = false;
            if (!wasOffline || this.stateValue !== "reconnecting" || this.transport)
                return;
            if (this.retryTimer)
                clearTimeout(this.retryTimer);
            this.retryTimer = null;
            void this.attempt();
        };
        win.addEventListener("offline", offline);
        win.addEventListener("online", online);
        return () => {
            win.removeEventListener("offline", offline);
            win.removeEventListener("online", online);
        };
    }
}
function describe(err) {
    return err instanceof Error ? err.message : String(err);
}
