/**
 * The WebSocket transport: `GET /v1/ws`, authenticated with a first `auth` frame, since
 * browsers cannot set headers on the upgrade. Works with the browser's `WebSocket` and with
 * any constructor of the same shape (Node 20: the `ws` package).
 */
import { type ClientFrame } from "./frames.js";
import { type Transport, type TransportParams } from "./transport.js";
/** The subset of the WHATWG WebSocket the transport uses. */
export interface WebSocketLike {
    readonly readyState: number;
    onopen: ((ev: any) => void) | null;
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
    onerror: ((ev: any) => void) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;
export declare class WebSocketTransport implements Transport {
    private readonly params;
    readonly name: "websocket";
    private socket;
    private ended;
    private readonly decoder;
    constructor(Ctor: WebSocketConstructor, params: TransportParams);
    send(frame: ClientFrame): void;
    close(code?: number, reason?: string): void;
    private receive;
    private finish;
}
