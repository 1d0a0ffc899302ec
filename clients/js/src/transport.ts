/**
 * The transport contract shared by the WebSocket and the SSE transport, and the URL helpers
 * both use. A transport carries frames and authenticates itself; it knows nothing about rooms,
 * retries or reconnects, which belong to the connection manager and the client.
 */

import type { ChorusError } from "./errors.js";
import type { ClientFrame, ServerFrame } from "./frames.js";

export type TransportName = "websocket" | "sse";

/** Why a transport ended. `code` uses the WebSocket close codes (docs/protocol.md). */
export interface TransportClose {
  code: number;
  reason: string;
  /** The refusal behind the close, when the server gave one (e.g. SSE `401` body). */
  error?: ChorusError;
}

/** What a transport reports to its owner. */
export interface TransportHandlers {
  /** A parsed server frame. The first frame of a working connection is `ready`. */
  frame(frame: ServerFrame): void;
  /**
   * The transport ended on its own (network, server close, failed start). Reported at most
   * once, and never after the owner called {@link Transport.close}.
   */
  closed(info: TransportClose): void;
}

export interface TransportParams {
  /** Gateway base URL, `http(s)://host:port[/prefix]`. */
  baseUrl: string;
  token: string;
  handlers: TransportHandlers;
}

/**
 * One connection to a gateway. It starts connecting when constructed and authenticates with
 * `token`; the owner writes frames only after `ready`.
 */
export interface Transport {
  readonly name: TransportName;
  /** Writes one frame. Frames written after the transport ended are dropped. */
  send(frame: ClientFrame): void;
  /** Ends the transport for good; no handler is called afterwards. */
  close(code?: number, reason?: string): void;
}

/**
 * The absolute URL of `path` under the gateway `base`, in the WebSocket (`ws:`/`wss:`) or the
 * HTTP (`http:`/`https:`) scheme. `base` may use either scheme; in a browser it may be relative
 * to the page.
 */
export function endpointUrl(base: string, path: string, websocket: boolean): string {
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  const url = page ? new URL(base, page) : new URL(base);
  const secure = url.protocol === "https:" || url.protocol === "wss:";
  if (websocket) url.protocol = secure ? "wss:" : "ws:";
  else url.protocol = secure ? "https:" : "http:";
  url.pathname = url.pathname.replace(/\/+$/, "") + path;
  url.search = "";
  url.hash = "";
  return url.toString();
}

/** Parses one frame of JSON text; `null` when it is not a JSON object with a string `type`. */
export function parseFrame(text: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || typeof (value as { type?: unknown }).type !== "string") {
    return null;
  }
  return value as ServerFrame;
}
