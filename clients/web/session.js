// Where the gateway is and how this tab gets a token: the page's own origin (or a loopback
// ?server= override for development), GET /v1/info, the development sign-in (POST
// /v1/dev/token) and the token provider the SDK calls on every (re)connect. The token lives
// in sessionStorage only: this tab, never a URL, gone when the tab closes.

export const KEY_TOKEN = "chorus.token";
export const KEY_DEV_USER = "chorus.devUser";

/** The claims of a JWT, or null (used only to show a name and to renew dev tokens early). */
export function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

function isLoopbackHost(h) {
  return h === "localhost" || h === "[::1]" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * The gateway's base URL: the page's own origin. For development only, `?server=http://…`
 * points the app at another gateway, honoured only when the page itself is served from
 * loopback (so a crafted link cannot send a user's token to someone else's server).
 */
export function gatewayBase() {
  const override = new URLSearchParams(location.search).get("server");
  if (override && isLoopbackHost(location.hostname)) {
    try {
      const u = new URL(override);
      if (u.protocol === "http:" || u.protocol === "https:") return u.origin;
    } catch { /* ignore a malformed override */ }
  }
  return location.origin;
}

export const BASE = gatewayBase();

export async function fetchInfo() {
  try {
    const res = await fetch(`${BASE}/v1/info`, { credentials: "omit", cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const info = await res.json();
    return { dev_sign_in: info.dev_sign_in === true, transports: Array.isArray(info.transports) ? info.transports : null };
  } catch {
    // An older gateway without /v1/info: token sign-in, let the SDK pick transports.
    return { dev_sign_in: false, transports: null };
  }
}

export async function mintDevToken(user) {
  const res = await fetch(`${BASE}/v1/dev/token`, {
    method: "POST",
    credentials: "omit",
    cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok || !body || typeof body.token !== "string") {
    throw new Error(body?.message || `sign-in failed (HTTP ${res.status})`);
  }
  return body.token;
}

/** The SDK calls this on every (re)connect: renew a dev token shortly before it expires. */
export async function tokenProvider() {
  let token = sessionStorage.getItem(KEY_TOKEN) || "";
  const devUser = sessionStorage.getItem(KEY_DEV_USER);
  const exp = jwtClaims(token)?.exp;
  if (devUser && (!token || (typeof exp === "number" && exp * 1000 < Date.now() + 60_000))) {
    token = await mintDevToken(devUser);
    sessionStorage.setItem(KEY_TOKEN, token);
  }
  return token;
}
