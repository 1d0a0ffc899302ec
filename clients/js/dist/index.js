/**
 * @chorus/client: the Chorus chat SDK for browsers and Node 20+. Zero runtime dependencies.
 *
 * ```ts
 * import { ChorusClient } from "@chorus/client"; // or "/sdk/index.js" from a gateway
 * const chat = new ChorusClient({ url: "https://chat.example.com", token: () => getToken() });
 * chat.on("message", (m) => render(m));
 * chat.connect();
 * await chat.join("general");
 * await chat.send("general", "hello");
 * ```
 *
 * Guide: docs/clients.md. Wire protocol: docs/protocol.md.
 */
export { ChorusClient } from "./client.js";
export { ChorusError } from "./errors.js";
export { CloseCode } from "./frames.js";
