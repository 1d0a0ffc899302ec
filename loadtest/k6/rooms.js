// Many rooms: ROOMS_COUNT connections in ROOMS_COUNT rooms, each connection in
// ROOMS_PER_CONN of them, sending to all of its rooms in turn. Exercises per-room ordering and
// the gateway's room subscriptions at breadth rather than depth.
//
// Connection n joins rooms n, n+1, …, n+ROOMS_PER_CONN-1 (mod ROOMS_COUNT), so every room has
// exactly ROOMS_PER_CONN members, and sends ROOMS_MSGS messages to each of its rooms. Each
// room's log therefore holds ROOMS_PER_CONN × ROOMS_MSGS messages, and every member must
// receive all of them (joined with since 0), in seq order.
//
// Environment (defaults in parentheses): CHORUS_URL, CHORUS_JWT_SECRET or CHORUS_TOKENS[_FILE],
// ROOMS_COUNT (200), ROOMS_PER_CONN (5, at most 100: the server's rooms per connection),
// ROOMS_MSGS (4, per room per member), ROOMS_RATE (4, sends/s per connection),
// ROOMS_SEND_DELAY (3s), ROOMS_P95_MS (1000).

import exec from 'k6/execution';
import { envNum, envSecs, identity, newRunId, tokenSource, wsUrlFor } from './lib/config.js';
import { correctnessThresholds, runConnection } from './lib/chorus.js';

const ROOMS = envNum('ROOMS_COUNT', 200);
const PER_CONN = envNum('ROOMS_PER_CONN', 5);
const MSGS = envNum('ROOMS_MSGS', 4);
const RATE = envNum('ROOMS_RATE', 4);
const SEND_DELAY = envSecs('ROOMS_SEND_DELAY', 3);
const P95_MS = envNum('ROOMS_P95_MS', 1000);

if (PER_CONN > ROOMS) {
  throw new Error(`ROOMS_PER_CONN (${PER_CONN}) must not exceed ROOMS_COUNT (${ROOMS})`);
}

const SENDS = PER_CONN * MSGS; // per connection
const PER_ROOM = PER_CONN * MSGS; // each room's log
const DEADLINE_SECS = SEND_DELAY + SENDS / RATE + 60;

export const options = {
  scenarios: {
    rooms: {
      executor: 'per-vu-iterations',
      vus: ROOMS,
      iterations: 1,
      maxDuration: `${Math.ceil(DEADLINE_SECS + 10)}s`,
    },
  },
  thresholds: Object.assign(
    { chorus_send_to_deliver: [`p(95)<${P95_MS}`] },
    correctnessThresholds(ROOMS * SENDS, ROOMS * PER_ROOM * PER_CONN, ROOMS),
  ),
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  const run = newRunId();
  console.log(
    `rooms run ${run}: ${ROOMS} connections and rooms, ${PER_CONN} rooms per connection, ${MSGS} msgs per room per member at ${RATE}/s; ${tokenSource()}`,
  );
  return { run };
}

export default function (data) {
  const n = exec.vu.idInTest;
  const rooms = [];
  for (let j = 0; j < PER_CONN; j++) {
    rooms.push(`k6-rooms-${data.run}-${(n - 1 + j) % ROOMS}`);
  }
  const expect = {};
  for (const r of rooms) expect[r] = PER_ROOM;
  const { user, token } = identity(n, DEADLINE_SECS + 600);
  runConnection({
    url: wsUrlFor(n),
    user,
    token,
    conn: n,
    group: 'member',
    rooms,
    since: 0,
    sends: SENDS,
    rate: RATE,
    sendDelayMs: SEND_DELAY * 1000,
    expect,
    deadlineMs: DEADLINE_SECS * 1000,
  });
}
