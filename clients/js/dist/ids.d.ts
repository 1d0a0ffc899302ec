/** Generators of the ids the SDK puts on frames. */
/**
 * Makes `client_msg_id`s: a random prefix per client plus a counter, e.g. `k3f9x0a2-17`.
 * The prefix keeps two clients (tabs, devices) of the same user from colliding; the id is fixed
 * when a send is created, so every retry carries the same one.
 */
export declare class ClientMsgIds {
    private counter;
    readonly prefix: string;
    constructor(prefix?: string);
    next(): string;
}
