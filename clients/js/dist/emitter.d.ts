/** A minimal typed event emitter: listeners run synchronously, in subscription order. */
type Listener<T> = (event: T) => void;
export declare class Emitter<Events> {
    private readonly listeners;
    /** Subscribes `fn` to `event`; the returned function unsubscribes it. */
    on<K extends keyof Events>(event: K, fn: Listener<Events[K]>): () => void;
    /**
     * Calls every listener of `event`. A listener that throws does not stop the others nor the
     * SDK's own bookkeeping: its exception is rethrown asynchronously, where the host reports it.
     */
    emit<K extends keyof Events>(event: K, value: Events[K]): void;
    /** Whether anybody listens to `event`. */
    has<K extends keyof Events>(event: K): boolean;
    clear(): void;
}
export {};
