// Room fan-out: one room, many receivers, a few senders. Measures how long a message takes
// to reach every member of a big room, and checks every member gets every message.
//
// FANOUT_RECEIVERS connections only receive; FANOUT_SENDERS connections each send
// FANOUT_RATE messages/s for FANOUT_DURATION (FANOUT_RATE × FANOUT_DURATION messages each).
// Everyone joins with since 0 and must receive the room's whole log in seq order: a receiver
// that connects after the first sends gets those by replay (replayed messages are not timed).
// The room accepts 200 entries/s from all senders together by default (CHORUS_ROOM_RATE), so
// FANOUT_SENDERS × FANOUT_RATE must stay below it, or sends are refused and the run fails.
//
// Environment (defaults in parentheses): CHORUS_URL, CHORUS_JWT_SECRET or CHORUS_TOKENS[_FILE],
// FANOUT_RECEIVERS (200), FANOUT_SENDERS (4), FANOUT_RATE (5), FANOUT_DURATION (30s),
// FANOUT_SEND_DELAY (3s: senders wait this long after joining, so receivers are in),
// FANOUT_P95_MS (1000), FANOUT_P99_MS (2000).

import exec from 'k6/execution';
import { envNum, envSecs, identity, newRunId, tokenSource, wsUrlFor } from './lib/config.js';
import { correctnessThresholds, runConnection } from './lib/chorus.js';

const RECEIVERS = envNum('FANOUT_RECEIVERS', 200);
const SENDERS = envNum('FANOUT_SENDERS', 4);
const RATE = envNum('FANOUT_RATE', 5);
const DURATION = envSecs('FANOUT_DURATION', 30);
const SEND_DELAY = envSecs('FANOUT_SEND_DELAY', 3);
const P95_MS = envNum('FANOUT_P95_MS', 1000);
const P99_MS = envNum('FANOUT_P99_MS', 2000);

const MSGS = Math.max(1, Math.round(RATE * DURATION)); // per sender
const TOTAL = SENDERS * MSGS; // the room's log
const MEMBERS = RECEIVERS + SENDERS;
const DEADLINE_SECS = SEND_DELAY + DURATION + 60;

export const options = {
  scenarios: {
    receivers: {
      executor: 'per-vu-iterations',
      exec: 'receiver',
      vus: RECEIVERS,
      iterations: 1,
      maxDuration: `${Math.ceil(DEADLINE_SECS + 10)}s`,
    },
    senders: {
      executor: 'per-vu-iterations',
      exec: 'sender',
      vus: SENDERS,
      iterations: 1,
      maxDuration: `${Math.ceil(DEADLINE_SECS + 10)}s`,
    },
  },
  thresholds: Object.assign(
    {
      chorus_send_to_deliver: [`p(95)<${P95_MS}`, `p(99)<${P99_MS}`],
      'chorus_send_to_deliver{path:peer}': [`p(95)<${P95_MS}`],
    },
    correctnessThresholds(TOTAL, TOTAL * MEMBERS, MEMBERS),
  ),
  summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
};

export function setup() {
  const run = newRunId();
  console.log(
    `fanout run ${run}: ${RECEIVERS} receivers, ${SENDERS} senders × ${MSGS} msgs at ${RATE}/s (${SENDERS * RATE} msgs/s into the room); ${tokenSource()}`,
  );
  return { room: `k6-fanout-${run}` };
}

function member(data, sends) {
  const n = exec.vu.idInTest;
  const { user, token } = identity(n, DEADLINE_SECS + 600);
  runConnection({
    url: wsUrlFor(n),
    user,
    token,
    conn: n,
    group: sends > 0 ? 'sender' : 'receiver',
    rooms: [data.room],
    since: 0,
    sends,
    rate: RATE,
    sendDelayMs: SEND_DELAY * 1000,
    expect: { [data.room]: TOTAL },
    deadlineMs: DEADLINE_SECS * 1000,
  });
}

export function receiver(data) {
  member(data, 0);
}

export function sender(data) {
  member(data, MSGS);
}
