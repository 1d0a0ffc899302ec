// Smoke test: a few connections in a few rooms, every one sending and receiving, for ~15 s.
// Small enough for `make test` (scripts/k6-smoke.sh runs it against a fresh standalone).
//
// Every connection joins its room with since 0 and sends SMOKE_MSGS messages at SMOKE_RATE/s,
// so each room's log holds exactly SMOKE_MEMBERS × SMOKE_MSGS messages, and every member must
// receive all of them, in seq order, without gap or duplicate. It passes when all of that
// happened, with no error frame and no dropped connection, and p95 send → deliver latency
// stays under SMOKE_P95_MS.
//
// Environment (defaults in parentheses): CHORUS_URL (http://127.0.0.1:8080), CHORUS_JWT_SECRET
// or CHORUS_TOKENS / CHORUS_TOKENS_FILE, SMOKE_ROOMS (2), SMOKE_MEMBERS (3, per room),
// SMOKE_MSGS (20, per member), SMOKE_RATE (2, sends/s per connection), SMOKE_P95_MS (500).

import exec from 'k6/execution';
import { envNum, identity, newRunId, tokenSource, wsUrlFor } from './lib/config.js';
import { correctnessThresholds, runConnection } from './lib/chorus.js';

const ROOMS = envNum('SMOKE_ROOMS', 2);
const MEMBERS = envNum('SMOKE_MEMBERS', 3);
const MSGS = envNum('SMOKE_MSGS', 20);
const RATE = envNum('SMOKE_RATE', 2);
const P95_MS = envNum('SMOKE_P95_MS', 500);

const VUS = ROOMS * MEMBERS;
const SEND_SECS = MSGS / RATE;
const DEADLINE_SECS = SEND_SECS + 20;

export const options = {
  scenarios: {
    smoke: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(DEADLINE_SECS + 10)}s`,
    },
  },
  thresholds: Object.assign(
    { chorus_send_to_deliver: [`p(95)<${P95_MS}`] },
    correctnessThresholds(VUS * MSGS, ROOMS * MEMBERS * MSGS * MEMBERS, VUS),
  ),
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  const run = newRunId();
  console.log(
    `smoke run ${run}: ${ROOMS} rooms × ${MEMBERS} members, ${MSGS} msgs each at ${RATE}/s; ${tokenSource()}`,
  );
  return { run };
}

export default function (data) {
  const n = exec.vu.idInTest;
  const room = `k6-smoke-${data.run}-${(n - 1) % ROOMS}`;
  const { user, token } = identity(n, DEADLINE_SECS + 600);
  runConnection({
    url: wsUrlFor(n),
    user,
    token,
    conn: n,
    group: 'member',
    rooms: [room],
    since: 0,
    sends: MSGS,
    rate: RATE,
    sendDelayMs: 1000,
    expect: { [room]: MEMBERS * MSGS },
    deadlineMs: DEADLINE_SECS * 1000,
  });
}
