/**
 * Exponential backoff with full jitter: the n-th delay (from 0) is uniform in
 * `[0, min(maxMs, initialMs · 2^n))`. Full jitter spreads a crowd of clients that lost the same
 * gateway over the whole window instead of having them return in waves.
 */
export declare class Backoff {
    readonly initialMs: number;
    readonly maxMs: number;
    private readonly random;
    private attempt;
    constructor(initialMs: number, maxMs: number, random?: () => number);
    /** How many delays were handed out since the last reset. */
    get attempts(): number;
    /** The upper bound of the next delay. */
    ceiling(): number;
    /** The next delay in ms; each call widens the window until it reaches `maxMs`. */
    next(): number;
    /** Back to the narrowest window, after a success. */
    reset(): void;
}
