/** Generators of the ids the SDK puts on frames. */
/**
 * Makes `client_msg_id`s: a random prefix per client plus a counter, e.g. `k3f9x0a2-17`.
 * The prefix keeps two clients (tabs, devices) of the same user from colliding; the id is fixed
 * when a send is created, so every retry carries the same one.
 */
export class ClientMsgIds {
    constructor(prefix = randomPrefix()) {
        this.counter = 0;
        this.prefix = prefix;
    }
    next() {
        this.counter += 1;
        return `${this.prefix}-${this.counter}`;
    }
}
/** 12 random base-36 characters, from the platform's CSPRNG when there is one. */
function randomPrefix() {
    const bytes = new Uint8Array(12);
    const crypto = globalThis.crypto;
    if (crypto?.getRandomValues) {
        crypto.getRandomValues(bytes);
    }
    else {
        for (let i = 0; i < bytes.length; i++)
            bytes[i] = Math.floor(Math.random() * 256);
    }
    let out = "";
    for (const b of bytes)
        out += (b % 36).toString(36);
    return out;
}
