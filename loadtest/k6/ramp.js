// Connection ramp: the number of open connections climbs from 0 to RAMP_VUS over RAMP_UP,
// holds for RAMP_HOLD, and falls back to 0 over RAMP_DOWN. Each connection lives
// RAMP_CONN_SECS and is then replaced by a new one (new user, new handshake), so the gateway
// also sees steady connection churn. Measures connect → ready time under growing load.
//
// Connections join one of RAMP_ROOMS rooms without `since` (live messages only: the rooms
// grow all run long, and replaying them on every join is not what this test is about) and
// send RAMP_MSGS messages at 1/s. Each must get its own messages back, and every room's seqs
// must arrive contiguous from the join's last_seq. The count thresholds are lower bounds: at
// least the peak's RAMP_VUS connections must have become ready and sent.
//
// Environment (defaults in parentheses): CHORUS_URL, CHORUS_JWT_SECRET or CHORUS_TOKENS[_FILE],
// RAMP_VUS (500), RAMP_UP (60s), RAMP_HOLD (30s), RAMP_DOWN (10s), RAMP_CONN_SECS (20),
// RAMP_ROOMS (50), RAMP_MSGS (2), RAMP_READY_P95_MS (1000), RAMP_P95_MS (1000).

import exec from 'k6/execution';
import { envNum, envSecs, identity, newRunId, tokenSource, wsUrlFor } from './lib/config.js';
import { correctnessThresholds, runConnection } from './lib/chorus.js';

const VUS = envNum('RAMP_VUS', 500);
const UP = envSecs('RAMP_UP', 60);
const HOLD = envSecs('RAMP_HOLD', 30);
const DOWN = envSecs('RAMP_DOWN', 10);
const CONN_SECS = envSecs('RAMP_CONN_SECS', 20);
const ROOMS = envNum('RAMP_ROOMS', 50);
const MSGS = envNum('RAMP_MSGS', 2);
const READY_P95_MS = envNum('RAMP_READY_P95_MS', 1000);
const P95_MS = envNum('RAMP_P95_MS', 1000);

const DEADLINE_SECS = CONN_SECS + 20;

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: `${UP}s`, target: VUS },
        { duration: `${HOLD}s`, target: VUS },
        { duration: `${DOWN}s`, target: 0 },
      ],
      // a connection that is open when its VU is retired still finishes its life
      gracefulRampDown: `${Math.ceil(DEADLINE_SECS)}s`,
      gracefulStop: `${Math.ceil(DEADLINE_SECS)}s`,
    },
  },
  thresholds: Object.assign(
    {
      chorus_connect_to_ready: [`p(95)<${READY_P95_MS}`],
      chorus_send_to_deliver: [`p(95)<${P95_MS}`],
    },
    correctnessThresholds(VUS * MSGS, VUS * MSGS, VUS),
  ),
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  const run = newRunId();
  console.log(
    `ramp run ${run}: 0 → ${VUS} connections over ${UP}s, hold ${HOLD}s, down over ${DOWN}s; each lives ${CONN_SECS}s in one of ${ROOMS} rooms; ${tokenSource()}`,
  );
  return { run };
}

export default function (data) {
  // one connection number per iteration, so every connection is a new user
  const n = exec.scenario.iterationInTest + 1;
  const room = `k6-ramp-${data.run}-${(n - 1) % ROOMS}`;
  const { user, token } = identity(n, DEADLINE_SECS + 600);
  runConnection({
    url: wsUrlFor(n),
    user,
    token,
    conn: n,
    group: 'ramp',
    rooms: [room],
    since: null,
    sends: MSGS,
    rate: 1,
    // spread the sends over the connection's life
    sendDelayMs: Math.random() * Math.max(0, CONN_SECS - MSGS - 1) * 1000,
    expect: null,
    minHoldMs: CONN_SECS * 1000,
    deadlineMs: DEADLINE_SECS * 1000,
  });
}
