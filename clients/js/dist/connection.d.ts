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
import { Backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { ChorusError } from "./errors.js";
import { type ClientFrame, type ReadyFrame, type ServerFrame } from "./frames.js";
import type { Transport, TransportClose, TransportHandlers, TransportName } from "./transport.js";
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";
/** A change of connection state: which attempt, how long until it, over which transport. */
export interface StateChange {
    state: ConnectionState;
    /** Consecutive failed attempts so far (0 on the first try after a success). */
    attempt?: number;
    /** With `reconnecting`: the wait before the next attempt, in ms. */
    delayMs?: number;
    transport?: TransportName | null;
}
export interface ConnectionEvents {
    state: StateChange;
    ready: ReadyFrame;
    frame: ServerFrame;
    /** An open (ready) connection ended; requests written on it will get no reply. */
    lost: TransportClose;
    error: ChorusError;
}
/** Makes a transport, or returns null when this platform cannot (no WebSocket constructor). */
export type TransportFactory = (name: TransportName, params: {
    baseUrl: string;
    token: string;
    handlers: TransportHandlers;
}) => Transport | null;
export interface ConnectionConfig {
    url: string | (() => string);
    token: string | (() => string | Promise<string>);
    /** Allowed transports, most preferred first. */
    transports: TransportName[];
    createTransport: TransportFactory;
    backoff: Backoff;
    /** A start with no `ready` within this long counts as failed. */
    readyTimeoutMs: number;
    /** Drain reconnects wait a random delay below this, so a drained crowd does not stampede. */
    drainJitterMs: number;
    /** After falling back, the preferred transport is tried again this long after the switch. */
    fallbackRetryMs: number;
    /**
     * Whether the gateway answers plain HTTP. Asked before falling back: when it does not, the
     * preferred transport failed because the gateway is down, not blocked, and falling back
     * would only strand the client on the fallback once the gateway is back.
     */
    reachable?: (baseUrl: string) => Promise<boolean>;
    random: () => number;
}
export declare class Connection extends Emitter<ConnectionEvents> {
    private readonly config;
    private stateValue;
    /** Bumped for every attempt and on stop; handlers of older attempts see a stale value. */
    private generation;
    private transport;
    private transportName;
    private ready;
    private refusedAuth;
    private retryTimer;
    private readyTimer;
    private preferredFailures;
    /**
     * Set when the preferred transport failed often enough: whether the gateway answered plain
     * HTTP right after the last failure. Asked at once, so that a gateway that is back by the
     * next attempt does not make a failure during its restart look like a blocked WebSocket.
     */
    private fallbackProbe;
    /** The base URL of the latest attempt. */
    private baseUrl;
    /** When the fallback transport was chosen; null while the preferred one is in use. */
    private fallbackSince;
    /** The browser said it is offline: no attempts until it says online. */
    private offline;
    private readonly detachWindow;
    constructor(config: ConnectionConfig);
    get state(): ConnectionState;
    /** The transport of the current (or last) connection; null before the first attempt. */
    get currentTransport(): TransportName | null;
    get isOpen(): boolean;
    /** Starts connecting; does nothing when already started. */
    start(): void;
    /** Stops for good: closes the transport and cancels every timer. */
    stop(): void;
    /** Writes a frame on the open connection; false when there is none. */
    send(frame: ClientFrame): boolean;
    /**
     * Drops the current connection and reconnects after a backoff delay, e.g. when an ack did
     * not come in time: a silent connection is better replaced than trusted.
     */
    restart(reason: string): void;
    private attempt;
    private onFrame;
    private onReady;
    private onClosed;
    /** Ends the current transport (if still there) and plans the next attempt. */
    private dropTransport;
    private scheduleAttempt;
    /** The transport for the next attempt: the preferred one unless it failed to start twice. */
    private chooseTransport;
    private countFailure;
    private setState;
    private clearTimers;
    /** Follows the browser's connectivity events, when there is a browser window. */
    private attachWindow;
}
