/**
 * The one error type of the SDK. Server refusals keep their wire `code`; failures that happen
 * on the client side get one of the SDK codes listed in {@link SdkErrorCode}.
 */
export class ChorusError extends Error {
    constructor(code, message, extra = {}) {
        super(message);
        this.name = "ChorusError";
        this.code = code;
        if (extra.room !== undefined)
            this.room = extra.room;
        if (extra.retryAfterMs !== undefined)
            this.retryAfterMs = extra.retryAfterMs;
    }
    /** The error a server `error` frame describes. */
    static fromFrame(frame) {
        return new ChorusError(frame.code, frame.message, { room: frame.room, retryAfterMs: frame.retry_after_ms });
    }
}
/** Refusals after which a request may succeed when repeated unchanged. */
export function isRetryable(error) {
    return error.code === "rate_limited" || error.code === "unavailable";
}
