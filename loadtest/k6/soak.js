// Soak: many long-lived connections at a low send rate for a long time (30 minutes by
// default), to find leaks, slow drift in latency, and anything that breaks only with time
// (pings, token checks, log growth).
//
// SOAK_VUS connections in rooms of SOAK_MEMBERS; each sends SOAK_RATE messages/s for
// SOAK_DURATION. Every member joins with since 0 and must receive its room's whole log in seq
// order; nothing may be lost, refused or dropped, and latency must stay under the bounds.
// Tokens live for SOAK_DURATION + 10 minutes.
//
// Environment (defaults in parentheses): CHORUS_URL, CHORUS_JWT_SECRET or CHORUS_TOKENS[_FILE],
// SOAK_VUS (50), SOAK_MEMBERS (5, per room), SOAK_RATE (0.2, sends/s per connection),
// SOAK_DURATION (30m), SOAK_P95_MS (500), SOAK_P99_MS (1000).

import exec from 'k6/execution';
import { envNum, envSecs, identity, newRunId, tokenSource, wsUrlFor } from './lib/config.js';
import { correctnessThresholds, runConnection } from './lib/chorus.js';

const VUS = envNum('SOAK_VUS', 50);
const MEMBERS = envNum('SOAK_MEMBERS', 5);
const RATE = envNum('SOAK_RATE', 0.2);
const DURATION = envSecs('SOAK_DURATION', 1800);
const P95_MS = envNum('SOAK_P95_MS', 500);
const P99_MS = envNum('SOAK_P99_MS', 1000);

const ROOMS = Math.max(1, Math.ceil(VUS / MEMBERS));
const MSGS = Math.max(1, Math.round(RATE * DURATION)); // per connection
const DEADLINE_SECS = 2 + DURATION + 60;

// members of room r: the connections n (1-based) with (n - 1) % ROOMS == r
function membersOf(r) {
  return Math.floor(VUS / ROOMS) + (r < VUS % ROOMS ? 1 : 0);
}
let totalDeliveries = 0;
for (let r = 0; r < ROOMS; r++) totalDeliveries += membersOf(r) * MSGS * membersOf(r);

export const options = {
  scenarios: {
    soak: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${Math.ceil(DEADLINE_SECS + 10)}s`,
    },
  },
  thresholds: Object.assign(
    { chorus_send_to_deliver: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`] },
    correctnessThresholds(VUS * MSGS, totalDeliveries, VUS),
  ),
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  const run = newRunId();
  console.log(
    `soak run ${run}: ${VUS} connections in ${ROOMS} rooms, ${MSGS} msgs each at ${RATE}/s over ${DURATION}s; ${tokenSource()}`,
  );
  return { run };
}

export default function (data) {
  const n = exec.vu.idInTest;
  const r = (n - 1) % ROOMS;
  const room = `k6-soak-${data.run}-${r}`;
  const { user, token } = identity(n, DURATION + 600);
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
    sendDelayMs: 2000,
    expect: { [room]: membersOf(r) * MSGS },
    deadlineMs: DEADLINE_SECS * 1000,
  });
}
