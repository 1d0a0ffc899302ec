/**
 * The WebSocket transport: `GET /v1/ws`, authenticated with a first `auth` frame, since
 * browsers cannot set headers on the upgrade. Works with the browser's `WebSocket` and with
 * any constructor of the same shape (Node 20: the `ws` package).
 */

import { CloseCode, type ClientFrame } from "./frames.js";
import { endpointUrl, parseFrame, type Transport, type TransportParams } from "./transport.js";

/** The subset of the WHATWG WebSocket the transport uses. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

const OPEN = 1;
/** The request id of the auth frame; numeric ids belong to the client's requests. */
const AUTH_ID = "auth";

export class WebSocketTransport implements Transport {
  readonly name = "websocket" as const;
  private socket: WebSocketLike | null = null;
  private ended = false;
  private readonly decoder = new TextDecoder();

  constructor(Ctor: WebSocketConstructor, private readonly params: TransportParams) {
    let socket: WebSocketLike;
    try {
      socket = new Ctor(endpointUrl(params.baseUrl, "/v1/ws", true));
    } catch (err) {
      // Report asynchronously: the owner is still inside the constructor call.
      Promise.resolve().then(() => this.finish(CloseCode.ABNORMAL, `websocket failed to start: ${describe(err)}`));
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (!this.ended) socket.send(JSON.stringify({ type: "auth", id: AUTH_ID, token: params.token }));
    };
    socket.onmessage = (ev) => this.receive(ev.data);
    // A close event always follows an error; it carries the code, so the error only logs nothing.
    socket.onerror = () => undefined;
    socket.onclose = (ev) => this.finish(ev.code || CloseCode.ABNORMAL, ev.reason || "websocket closed");
  }

  send(frame: ClientFrame): void {
    if (this.ended || !this.socket || this.socket.readyState !== OPEN) return;
    this.socket.send(JSON.stringify(frame));
  }

  close(code: number = CloseCode.NORMAL, reason = ""): void {
    if (this.ended) return;
    this.ended = true;
    const socket = this.socket;
    if (!socket) return;
    // Keep no-op handlers: some implementations (ws) raise an unhandled error when a socket
    // that is still connecting is closed and nobody listens.
    socket.onopen = () => undefined;
    socket.onmessage = () => undefined;
    socket.onclose = () => undefined;
    socket.onerror = () => undefined;
    try {
      socket.close(code, reason);
    } catch {
      // Already closing; nothing more to release.
    }
  }

  private receive(data: unknown): void {
    if (this.ended) return;
    let text: string;
    if (typeof data === "string") text = data;
    else if (data instanceof ArrayBuffer) text = this.decoder.decode(new Uint8Array(data));
    else if (ArrayBuffer.isView(data)) text = this.decoder.decode(data);
    else return;
    const frame = parseFrame(text);
    if (frame) this.params.handlers.frame(frame);
  }

  private finish(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.params.handlers.closed({ code, reason });
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
