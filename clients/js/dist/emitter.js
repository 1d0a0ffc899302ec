/** A minimal typed event emitter: listeners run synchronously, in subscription order. */
export class Emitter {
    constructor() {
        this.listeners = new Map();
    }
    /** Subscribes `fn` to `event`; the returned function unsubscribes it. */
    on(event, fn) {
        let set = this.listeners.get(event);
        if (!set) {
            set = new Set();
            this.listeners.set(event, set);
        }
        set.add(fn);
        return () => {
            set.delete(fn);
        };
    }
    /**
     * Calls every listener of `event`. A listener that throws does not stop the others nor the
     * SDK's own bookkeeping: its exception is rethrown asynchronously, where the host reports it.
     */
    emit(event, value) {
        const set = this.listeners.get(event);
        if (!set || set.size === 0)
            return;
        for (const fn of Array.from(set)) {
            try {
                fn(value);
            }
            catch (err) {
                setTimeout(() => {
                    throw err;
                }, 0);
            }
        }
    }
    /** Whether anybody listens to `event`. */
    has(event) {
        return (this.listeners.get(event)?.size ?? 0) > 0;
    }
    clear() {
        this.listeners.clear();
    }
}
