/**
 * The one error type of the SDK. Server refusals keep their wire `code`; failures that happen
 * on the client side get one of the SDK codes listed in {@link SdkErrorCode}.
 */
import type { ErrorFrame, WireErrorCode } from "./frames.js";
/**
 * Codes the SDK itself produces:
 * - `timeout`: no reply within `requestTimeoutMs` / `sendTimeoutMs`, or no ack within
 *   `ackTimeoutMs` (then the SDK reconnects and resends);
 * - `closed`: `close()` was called while the request was pending;
 * - `limit_exceeded`: the offline queue is full (`offlineQueueMax`); also a wire code;
 * - `transport`: the connection failed in a way that is not a server refusal.
 */
export type SdkErrorCode = "timeout" | "closed" | "limit_exceeded" | "transport";
export type ChorusErrorCode = WireErrorCode | SdkErrorCode;
export declare class ChorusError extends Error {
    /** A wire code (`bad_request`, `forbidden`, …) or an SDK code (`timeout`, `closed`, …). */
    readonly code: ChorusErrorCode | string;
    /** The room the failed request named, when it named one. */
    readonly room?: string;
    /** With `rate_limited`: how long to wait before retrying. */
    readonly retryAfterMs?: number;
    constructor(code: ChorusErrorCode | string, message: string, extra?: {
        room?: string;
        retryAfterMs?: number;
    });
    /** The error a server `error` frame describes. */
    static fromFrame(frame: ErrorFrame): ChorusError;
}
/** Refusals after which a request may succeed when repeated unchanged. */
export declare function isRetryable(error: ChorusError): boolean;
