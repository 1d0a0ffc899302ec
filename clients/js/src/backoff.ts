/**
 * Exponential backoff with full jitter: the n-th delay (from 0) is uniform in
 * `[0, min(maxMs, initialMs · 2^n))`. Full jitter spreads a crowd of clients that lost the same
 * gateway over the whole window instead of having them return in waves.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    readonly initialMs: number,
    readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The upper bound of the next delay. */
  ceiling(): number {
    return Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 52));
  }

  /** The next delay in ms; each call widens the window until it reaches `maxMs`. */
  next(): number {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt += 1;
    return delay;
  }

  /** Back to the narrowest window, after a success. */
  reset(): void {
    this.attempt = 0;
  }
}
