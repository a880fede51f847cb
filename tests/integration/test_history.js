// Topic history and recovery (rt.history): offsets from publish, topic:history, a raw
// WebSocket that comes back from a position (npm ws), STOMP MESSAGE x-offset/x-epoch and
// SUBSCRIBE x-since with @stomp/stompjs (the RECEIPT says x-recovered), an expired history,
// and a bad x-since.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { within, stompConnect: connectStomp } = require('./lib/stomp');
const { startServer, sleep, SLOW } = require('./lib/server');
const ws = require('./lib/wsclient');

const WAIT = 5000 * SLOW;
let srv;
const clients = [];

before(async () => { srv = await startServer({ app: 'apps/history_app.lua' }); });
after(async () => {
  for (const c of clients) await c.deactivate().catch(() => {});
  if (srv) await srv.stop();
});


async function post(p, body) {
  const res = await fetch(srv.url(p), { method: 'POST', body });
  assert.equal(res.status, 200);
  return res.json();
}
async function history(topic, query = '') {
  const res = await fetch(srv.url(`/history/${topic}${query}`));
  assert.equal(res.status, 200);
  const h = await res.json();
  if (!Array.isArray(h.messages)) h.messages = [];  // cjson writes an empty table as {}
  return h;
}

const stompConnect = () => connectStomp(srv.wsUrl('/ws'), { track: clients });

// Subscribes; resolves with the RECEIPT frame and an inbox of MESSAGE frames.
async function subscribe(client, destination, headers = {}) {
  const inbox = [];
  let wake = null;
  const receipt = `r-${Math.random()}`;
  const confirmed = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  client.subscribe(destination, (m) => { inbox.push(m); if (wake) wake(); }, { ...headers, receipt });
  const frame = await within(confirmed, `receipt for ${destination}`);
  const next = async () => {
    while (!inbox.length) await within(new Promise((r) => { wake = r; }), `a message on ${destination}`);
    return inbox.shift();
  };
  return { frame, inbox, next };
}

test('publish returns growing offsets; topic:history returns what is kept after a position', async () => {
  const offsets = [];
  for (let i = 1; i <= 5; i++) offsets.push((await post('/publish/room', `line ${i}`)).offset);
  assert.deepEqual(offsets, [1, 2, 3, 4, 5]);
  // size = 3: offsets 3..5 are kept; from 3 on nothing is missing.
  let h = await history('room', '?since=3');
  assert.equal(h.complete, true);
  assert.deepEqual(h.messages.map((m) => [m.offset, m.data]), [[4, 'line 4'], [5, 'line 5']]);
  assert.match(h.epoch, /^[0-9a-f]{16}$/);
  assert.equal(h.offset, 5);
  // From 1 on, offset 2 is gone: what is kept comes back, marked incomplete.
  h = await history('room', '?since=1');
  assert.equal(h.complete, false);
  assert.deepEqual(h.messages.map((m) => m.offset), [3, 4, 5]);
  h = await history('room', '?since=3&limit=1');
  assert.deepEqual(h.messages.map((m) => m.offset), [4]);
  // Another epoch's offsets mean nothing here.
  h = await history('room', '?since=3&epoch=0000000000000000');
  assert.equal(h.complete, false);
  assert.equal(h.messages.length, 0);
  // A topic without a policy keeps nothing and publishes without an offset.
  assert.equal((await post('/publish/plain', 'x')).offset, false);
});

test('a WebSocket that comes back from its last offset gets what it missed, then live ones', async () => {
  const { epoch, offset } = await history('room');
  const before = offset;
  await post('/publish/room', 'missed A');
  await post('/publish/room', 'missed B');
  const c = await ws.Client.open(srv.wsUrl(`/room?epoch=${epoch}&offset=${before}`));
  assert.equal(await c.nextText(), 'missed A');
  assert.equal(await c.nextText(), 'missed B');
  assert.equal(await c.nextText(), 'recovered:true');
  await post('/publish/room', 'live C');
  assert.equal(await c.nextText(), 'live C');
  await c.close(1000);

  // Too far back (size 3 keeps only the last three): told, nothing replayed.
  const old = await ws.Client.open(srv.wsUrl(`/room?epoch=${epoch}&offset=1`));
  assert.equal(await old.nextText(), 'recovered:false');
  await post('/publish/room', 'live D');
  assert.equal(await old.nextText(), 'live D');
  await old.close(1000);

  // Another epoch (say, a server restart): told, nothing replayed.
  const other = await ws.Client.open(srv.wsUrl('/room?epoch=00000000deadbeef&offset=2'));
  assert.equal(await other.nextText(), 'recovered:false');
  await other.close(1000);
});

test('STOMP: MESSAGE carries x-offset/x-epoch; SUBSCRIBE x-since replays the gap once, in order', async () => {
  const a = await stompConnect();
  const first = await subscribe(a, '/topic/order/1');
  assert.equal(first.frame.headers['x-recovered'], undefined);  // no x-since asked
  await post('/order/1', '{"status":"created"}');
  const m1 = await first.next();
  assert.equal(m1.headers['x-offset'], '1');
  assert.match(m1.headers['x-epoch'], /^[0-9a-f]{16}$/);
  const epoch = m1.headers['x-epoch'];
  await a.deactivate();

  // Away: two changes happen.
  await post('/order/1', '{"status":"paid"}');
  await post('/order/1', '{"status":"packed"}');

  const b = await stompConnect();
  const back = await subscribe(b, '/topic/order/1', { 'x-since': `${epoch}:1` });
  assert.equal(back.frame.headers['x-recovered'], 'true');
  await post('/order/1', '{"status":"shipped"}');
  const got = [];
  for (let i = 0; i < 3; i++) got.push(await back.next());
  assert.deepEqual(got.map((m) => [m.headers['x-offset'], JSON.parse(m.body).status]),
                   [['2', 'paid'], ['3', 'packed'], ['4', 'shipped']]);
  await sleep(100);
  assert.equal(back.inbox.length, 0, 'no duplicate after the live message');

  // Up to date: recovered, nothing replayed.
  const c = await stompConnect();
  const current = await subscribe(c, '/topic/order/1', { 'x-since': `${epoch}:4` });
  assert.equal(current.frame.headers['x-recovered'], 'true');
  await sleep(100);
  assert.equal(current.inbox.length, 0);

  // Another epoch: not recovered, nothing replayed, live messages still come.
  const d = await stompConnect();
  const stale = await subscribe(d, '/topic/order/1', { 'x-since': '0123456789abcdef:2' });
  assert.equal(stale.frame.headers['x-recovered'], 'false');
  await post('/order/1', '{"status":"delivered"}');
  const live = await stale.next();
  assert.equal(live.headers['x-offset'], '5');
  assert.equal(stale.inbox.length, 0);
});

test('STOMP: a malformed x-since is an ERROR that says what it should be', async () => {
  const client = await stompConnect();
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  client.subscribe('/topic/order/2', () => {}, { 'x-since': 'not-a-position' });
  const f = await within(error, 'ERROR');
  assert.equal(f.headers.message, 'bad x-since');
  assert.match(f.body, /<epoch>:<offset>/);
});

test('an expired history is not recovered; an empty one is forgotten and comes back with a new epoch', async () => {
  const { offset } = await post('/publish/blink', 'soon gone');
  assert.equal(offset, 1);
  const { epoch } = await history('blink');
  await sleep(600 * SLOW);  // ttl 0.3 s
  let h = await history('blink', `?since=0&epoch=${epoch}`);
  assert.equal(h.complete, false);
  assert.equal(h.messages.length, 0);
  // The record itself goes one ttl after its last message (the sweep runs each second).
  for (let i = 0; i < 30 && (await history('blink')).epoch !== ''; i++) await sleep(200);
  h = await history('blink');
  assert.equal(h.epoch, '');
  assert.equal((await post('/publish/blink', 'again')).offset, 1);
  assert.notEqual((await history('blink')).epoch, epoch);
});
