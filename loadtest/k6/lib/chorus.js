// One Chorus client connection for k6 (`k6/websockets`, event-based): authenticate, join
// rooms, send at a fixed rate, and check what comes back. Every script is built from it.
//
// What it measures and checks (the metrics below, all prefixed chorus_):
// - send → deliver latency: from this connection's own send to the arrival of the matching
//   `msg` (matched by client_msg_id), and, for messages of other connections, from the send
//   time the sender wrote into the body (all VUs share this machine's clock);
// - counts: messages sent, acked, delivered; expected deliveries that never came; sends never
//   acked; error frames by code; connections that failed or closed unasked;
// - order: per room, each `msg` seq must be exactly the previous one + 1 (from `since` + 1 for
//   a join with `since`, from `last_seq` + 1 for one without), so gaps and duplicates count.
//
// What it deliberately does not do: reconnect and resume. A connection the server closes is
// counted as a failure and ends; that keeps the counts exact and makes a drop visible.

import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout, setInterval, clearInterval } from 'k6/timers';
import { Counter, Trend } from 'k6/metrics';
import { AUTH_MODE, BODY_BYTES } from './config.js';

export const sendToDeliver = new Trend('chorus_send_to_deliver', true);
export const sendToAck = new Trend('chorus_send_to_ack', true);
export const connectToReady = new Trend('chorus_connect_to_ready', true);
export const connsReady = new Counter('chorus_conns_ready');
export const connFailures = new Counter('chorus_conn_failures');
export const msgsSent = new Counter('chorus_msgs_sent');
export const msgsAcked = new Counter('chorus_msgs_acked');
export const msgsDelivered = new Counter('chorus_msgs_delivered');
export const msgsMissing = new Counter('chorus_msgs_missing');
export const msgsUnacked = new Counter('chorus_msgs_unacked');
export const sendRetries = new Counter('chorus_send_retries');
export const seqGaps = new Counter('chorus_seq_gaps');
export const seqDuplicates = new Counter('chorus_seq_duplicates');
export const errorFrames = new Counter('chorus_errors');

/** Counters whose thresholds say "== 0": each connection adds 0 so they always exist. */
const MUST_STAY_ZERO = [connFailures, msgsMissing, msgsUnacked, seqGaps, seqDuplicates, errorFrames];

// The server allows 32 requests in flight per connection; stay well below.
const MAX_IN_FLIGHT = 16;
const READY_TIMEOUT_MS = 10000;

function pad(s, n) {
  return s.length >= n ? s : s + 'x'.repeat(n - s.length);
}

/**
 * Runs one connection to the end. Returns at once; k6 keeps the iteration alive until the
 * socket is closed and no timer is left.
 *
 * opts:
 *   url, user, token, conn    gateway WebSocket URL, identity, connection number (ids, tags)
 *   rooms                     room names to join
 *   since                     0 → join with since 0 (whole log replayed, seq must start at 1);
 *                             null → join without since (live only, from last_seq + 1)
 *   sendTo                    rooms to send to, round-robin (a subset of rooms), default rooms
 *   sends                     messages to send in all (0: only receive)
 *   rate                      sends per second (the server allows 10 sustained)
 *   sendDelayMs               wait after the joins before the first send (lets receivers join)
 *   expect                    { room: n } deliveries expected per room (n chat messages in the
 *                             room's log), or null when unknown: then only own messages count
 *   minHoldMs                 stay connected at least this long after ready
 *   deadlineMs                close after this long whatever happened, counting what is missing
 */
export function runConnection(opts) {
  const rooms = opts.rooms;
  const sendTo = opts.sendTo || rooms;
  const sends = opts.sends || 0;
  const rate = opts.rate || 1;
  const expect = opts.expect || null;
  const since = opts.since === undefined ? 0 : opts.since;
  const tags = { conn_group: opts.group || 'default' };
  const started = Date.now();

  const timers = [];
  const intervals = [];
  let ws;
  let closedByUs = false;
  let finished = false;
  let readyAt = 0;
  let nextId = 1;

  // per room: last seq seen (null until known), chat messages received, live from (seq)
  const seen = {};
  for (const r of rooms) {
    seen[r] = { last: since === null ? null : since, count: 0, liveAfter: Infinity };
  }
  let joinsPending = rooms.length;

  // own sends: cmid → { room, body, sentAt, acked, echoed, retries }
  const own = {};
  const byReqId = {}; // request id → cmid (sends) or room (joins)
  let nSent = 0;
  let inFlight = 0;
  const retryQueue = [];

  function later(fn, ms) {
    const t = setTimeout(fn, ms);
    timers.push(t);
    return t;
  }

  function stopTimers() {
    for (const t of timers) clearTimeout(t);
    for (const i of intervals) clearInterval(i);
    timers.length = 0;
    intervals.length = 0;
  }

  function finish(why) {
    if (finished) return;
    finished = true;
    stopTimers();
    let missing = 0;
    if (expect !== null) {
      for (const r of rooms) {
        const want = expect[r] || 0;
        if (seen[r].count < want) missing += want - seen[r].count;
      }
    }
    let unacked = 0;
    for (const cmid of Object.keys(own)) {
      const m = own[cmid];
      if (!m.acked) unacked++;
      // with an expectation, own messages are in it already; without one, an acked own
      // message that never came back is a delivery that went missing
      else if (!m.echoed && expect === null) missing++;
    }
    unacked += sends - nSent; // never even sent (deadline, failure)
    if (missing > 0) msgsMissing.add(missing, tags);
    if (unacked > 0) msgsUnacked.add(unacked, tags);
    for (const c of MUST_STAY_ZERO) c.add(0, tags);
    if (why !== 'done') {
      console.warn(
        `conn ${opts.conn} (${opts.user}) ended early: ${why}; missing ${missing}, unacked ${unacked}`,
      );
    }
    if (ws && ws.readyState <= 1) {
      closedByUs = true;
      try {
        ws.close();
      } catch (err) {
        // still connecting: k6 drops it when the iteration ends
      }
    }
  }

  function fail(reason, detail) {
    connFailures.add(1, Object.assign({ reason }, tags));
    finish(`${reason}${detail ? ` (${detail})` : ''}`);
  }

  function maybeDone() {
    if (finished || readyAt === 0 || joinsPending > 0) return;
    if (nSent < sends) return;
    for (const cmid of Object.keys(own)) {
      const m = own[cmid];
      if (!m.failed && (!m.acked || !m.echoed)) return;
    }
    if (expect !== null) {
      for (const r of rooms) if (seen[r].count < (expect[r] || 0)) return;
    }
    const holdLeft = (opts.minHoldMs || 0) - (Date.now() - readyAt);
    if (holdLeft > 0) {
      later(maybeDone, holdLeft);
      return;
    }
    finish('done');
  }

  function send(cmid) {
    const m = own[cmid];
    const id = nextId++;
    byReqId[id] = cmid;
    inFlight++;
    m.sentAt = Date.now();
    ws.send(JSON.stringify({ type: 'send', id, room: m.room, client_msg_id: cmid, body: m.body }));
  }

  function sendNext() {
    if (finished) return;
    if (retryQueue.length > 0 && inFlight < MAX_IN_FLIGHT) {
      send(retryQueue.shift());
      return;
    }
    if (nSent >= sends || inFlight >= MAX_IN_FLIGHT) return;
    const room = sendTo[nSent % sendTo.length];
    const cmid = `c${opts.conn}-${nSent + 1}`;
    // the send time goes into the body, so other connections can time their delivery
    own[cmid] = {
      room,
      body: pad(`t=${Date.now()};`, BODY_BYTES),
      sentAt: 0,
      acked: false,
      echoed: false,
      failed: false, // refused for good: counts as unacked
      retries: 0,
    };
    nSent++;
    msgsSent.add(1, tags);
    send(cmid);
  }

  function startSending() {
    if (sends === 0) {
      maybeDone();
      return;
    }
    later(() => {
      sendNext();
      intervals.push(setInterval(sendNext, 1000 / rate));
    }, opts.sendDelayMs || 0);
  }

  function onReady() {
    readyAt = Date.now();
    connectToReady.add(readyAt - started, tags);
    connsReady.add(1, tags);
    for (const r of rooms) {
      const id = nextId++;
      byReqId[id] = r;
      const join = { type: 'join', id, room: r };
      if (since !== null) join.since = since;
      ws.send(JSON.stringify(join));
    }
  }

  function onJoined(f) {
    const s = seen[f.room];
    if (!s) return;
    s.liveAfter = f.last_seq; // seqs up to here are replay, not live deliveries
    if (s.last === null) s.last = f.last_seq;
    joinsPending--;
    if (joinsPending === 0) startSending();
  }

  function onMsg(f, arrival) {
    const s = seen[f.room];
    if (!s) return;
    if (s.last !== null) {
      if (f.seq <= s.last) {
        seqDuplicates.add(1, tags);
        return;
      }
      if (f.seq > s.last + 1) {
        seqGaps.add(f.seq - s.last - 1, tags);
        console.warn(`conn ${opts.conn}: gap in ${f.room}: seq ${f.seq} after ${s.last}`);
      }
    }
    s.last = f.seq;
    if (f.kind !== undefined) return; // membership and other log entries: order only
    s.count++;
    msgsDelivered.add(1, tags);
    const m = f.from === opts.user && f.client_msg_id !== undefined ? own[f.client_msg_id] : undefined;
    if (m !== undefined) {
      m.echoed = true;
      sendToDeliver.add(arrival - m.sentAt, Object.assign({ path: 'own' }, tags));
    } else if (f.seq > s.liveAfter && typeof f.body === 'string' && f.body.startsWith('t=')) {
      const t = parseInt(f.body.slice(2), 10);
      if (t > 0) sendToDeliver.add(arrival - t, Object.assign({ path: 'peer' }, tags));
    }
    maybeDone();
  }

  function onAck(f) {
    const cmid = byReqId[f.id];
    delete byReqId[f.id];
    inFlight--;
    const m = cmid !== undefined ? own[cmid] : undefined;
    if (m === undefined || m.acked) return;
    m.acked = true;
    msgsAcked.add(1, tags);
    sendToAck.add(Date.now() - m.sentAt, tags);
    maybeDone();
  }

  function onError(f) {
    errorFrames.add(1, Object.assign({ code: String(f.code) }, tags));
    const what = f.id !== undefined ? byReqId[f.id] : undefined;
    if (f.id !== undefined) delete byReqId[f.id];
    if (what !== undefined && own[what] !== undefined) {
      inFlight--;
      const m = own[what];
      // nothing was stored: retry with the same client_msg_id (protocol.md, send)
      if ((f.code === 'rate_limited' || f.code === 'unavailable') && m.retries < 5) {
        m.retries++;
        sendRetries.add(1, tags);
        later(() => {
          if (!finished) retryQueue.push(what);
        }, f.retry_after_ms || 200);
      } else {
        m.failed = true;
        console.warn(`conn ${opts.conn}: send ${what} refused: ${f.code} ${f.message}`);
        maybeDone();
      }
      return;
    }
    if (what !== undefined && seen[what] !== undefined) {
      fail('join_refused', `${what}: ${f.code} ${f.message}`);
      return;
    }
    if (f.code === 'unauthorized') {
      fail('unauthorized', f.message);
      return;
    }
    console.warn(`conn ${opts.conn}: error frame ${f.code}: ${f.message}`);
  }

  ws = new WebSocket(
    opts.url,
    null,
    AUTH_MODE === 'header' ? { headers: { Authorization: `Bearer ${opts.token}` }, tags } : { tags },
  );

  ws.onopen = () => {
    if (AUTH_MODE === 'frame') {
      ws.send(JSON.stringify({ type: 'auth', id: 0, token: opts.token }));
    }
  };

  ws.onmessage = (e) => {
    let f;
    try {
      f = JSON.parse(e.data);
    } catch (err) {
      fail('bad_frame', String(e.data).slice(0, 80));
      return;
    }
    switch (f.type) {
      case 'msg':
        onMsg(f, e.timestamp);
        break;
      case 'ack':
        onAck(f);
        break;
      case 'ready':
        onReady();
        break;
      case 'joined':
        onJoined(f);
        break;
      case 'error':
        onError(f);
        break;
      case 'reconnect':
        fail('reconnect', f.reason);
        break;
      default:
        break; // presence, typing, receipts, pongs: not ours to check
    }
  };

  ws.onerror = (e) => {
    if (!finished) fail('ws_error', e.error);
  };

  ws.onclose = (e) => {
    if (!closedByUs && !finished) fail(`closed_${e.code || 'none'}`, e.reason);
    stopTimers();
  };

  later(() => {
    if (readyAt === 0) fail('ready_timeout');
  }, READY_TIMEOUT_MS);
  if (opts.deadlineMs) {
    later(() => finish('deadline'), opts.deadlineMs);
  }
}

/**
 * Thresholds every script shares: nothing may be lost, duplicated, refused or dropped, and at
 * least `minAcked` sends (and `minDelivered` deliveries) must have happened, so that an empty
 * run fails instead of passing on empty metrics.
 */
export function correctnessThresholds(minAcked, minDelivered, minReady) {
  return {
    chorus_conns_ready: [`count>=${minReady}`],
    chorus_msgs_acked: [`count>=${minAcked}`],
    chorus_msgs_delivered: [`count>=${minDelivered}`],
    chorus_msgs_missing: ['count==0'],
    chorus_msgs_unacked: ['count==0'],
    chorus_seq_gaps: ['count==0'],
    chorus_seq_duplicates: ['count==0'],
    chorus_errors: ['count==0'],
    chorus_conn_failures: ['count==0'],
  };
}
