// Environment shared by every Chorus k6 script: where the gateways are, how to get tokens,
// how to name users and rooms. Read once per VU in the init context.
//
// It does not decide load shapes: each script reads its own parameters with the helpers below.

import encoding from 'k6/encoding';
import crypto from 'k6/crypto';

/** A string from the environment, or `def` when unset or empty. */
export function envStr(name, def) {
  const v = __ENV[name];
  return v === undefined || v === '' ? def : v;
}

/** A number from the environment; a value that is not a number stops the test at start-up. */
export function envNum(name, def) {
  const v = envStr(name, undefined);
  if (v === undefined) {
    return def;
  }
  const n = Number(v);
  if (!Number.isFinite(n)) {
    throw new Error(`${name} must be a number, got '${v}'`);
  }
  return n;
}

/** A duration in seconds from the environment: `90`, `90s`, `15m`, `2h`. */
export function envSecs(name, def) {
  const v = envStr(name, undefined);
  if (v === undefined) {
    return def;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) {
    throw new Error(`${name} must be a duration like 30, 30s, 15m or 2h, got '${v}'`);
  }
  const mult = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] || 's'];
  return Number(m[1]) * mult;
}

/**
 * The WebSocket URLs of the gateways, from CHORUS_URL: one base URL or a comma-separated list
 * (`http://127.0.0.1:8081,http://127.0.0.1:8082`). http → ws, https → wss; `/v1/ws` is
 * appended unless the URL already has a path.
 */
export function wsUrls() {
  const raw = envStr('CHORUS_URL', 'http://127.0.0.1:8080');
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((base) => {
      let u = base.replace(/^http:\/\//, 'ws://').replace(/^https:\/\//, 'wss://');
      if (!/^wss?:\/\//.test(u)) {
        u = `ws://${u}`;
      }
      const afterHost = u.replace(/^wss?:\/\/[^/]+/, '');
      if (afterHost === '' || afterHost === '/') {
        u = u.replace(/\/$/, '') + '/v1/ws';
      }
      return u;
    });
}

/** The gateway for connection number `n` (1-based): connections go round-robin. */
export function wsUrlFor(n) {
  const urls = wsUrls();
  return urls[(n - 1) % urls.length];
}

/** Prefix of user names (`k6` → users k6-1, k6-2, …). */
export const USER_PREFIX = envStr('CHORUS_USER_PREFIX', 'k6');

/** How the client authenticates: `header` (Authorization on the upgrade) or `frame`. */
export const AUTH_MODE = envStr('CHORUS_AUTH', 'header');
if (AUTH_MODE !== 'header' && AUTH_MODE !== 'frame') {
  throw new Error(`CHORUS_AUTH must be header or frame, got '${AUTH_MODE}'`);
}

/** Body size in bytes of the messages sent (at least the timestamp prefix). */
export const BODY_BYTES = envNum('CHORUS_BODY_BYTES', 64);

// Pre-minted tokens: CHORUS_TOKENS='{"alice":"eyJ…",…}' or CHORUS_TOKENS_FILE=path (same JSON).
// open() only works in the init context, which is where this module is evaluated.
const TOKENS = (() => {
  const file = envStr('CHORUS_TOKENS_FILE', undefined);
  const inline = envStr('CHORUS_TOKENS', undefined);
  const text = file !== undefined ? open(file) : inline;
  if (text === undefined) {
    return null;
  }
  const map = JSON.parse(text);
  const users = Object.keys(map).sort();
  if (users.length === 0) {
    throw new Error('CHORUS_TOKENS / CHORUS_TOKENS_FILE holds no tokens');
  }
  return { map, users };
})();

const SECRET = envStr('CHORUS_JWT_SECRET', undefined);

/** Where tokens come from, for the start-up log line. */
export function tokenSource() {
  if (TOKENS !== null) {
    return `${TOKENS.users.length} pre-minted tokens`;
  }
  if (SECRET !== undefined) {
    return 'HS256 tokens minted from CHORUS_JWT_SECRET';
  }
  throw new Error(
    'no tokens: set CHORUS_JWT_SECRET (the gateways\' secret) or CHORUS_TOKENS / CHORUS_TOKENS_FILE (a JSON map user → token)',
  );
}

function b64url(s) {
  return encoding.b64encode(s, 'rawurl');
}

/** An HS256 JWT for `sub`, valid for `ttlSecs`, as `chorus token` makes. */
export function mintToken(secret, sub, ttlSecs) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ sub, iat: now, exp: now + Math.ceil(ttlSecs) }));
  const sig = crypto.hmac('sha256', secret, `${header}.${payload}`, 'base64rawurl');
  return `${header}.${payload}.${sig}`;
}

/**
 * The user and token of connection number `n` (1-based). With a secret every connection is
 * its own user (`k6-n`); with pre-minted tokens the users are reused round-robin, which is
 * fine because client_msg_ids carry the connection number.
 */
export function identity(n, ttlSecs) {
  if (TOKENS !== null) {
    const user = TOKENS.users[(n - 1) % TOKENS.users.length];
    return { user, token: TOKENS.map[user] };
  }
  if (SECRET === undefined) {
    tokenSource(); // throws the explanation
  }
  const user = `${USER_PREFIX}-${n}`;
  return { user, token: mintToken(SECRET, user, ttlSecs) };
}

/**
 * The id that keeps this run's rooms apart from every earlier run's: CHORUS_RUN_ID, or a new
 * one. Call it in setup() and hand it to the VUs through setup's data, so all VUs agree.
 */
export function newRunId() {
  const given = envStr('CHORUS_RUN_ID', undefined);
  if (given !== undefined) {
    return given;
  }
  const rand = Math.floor(Math.random() * 36 ** 4).toString(36);
  return `${Date.now().toString(36)}${rand}`;
}
