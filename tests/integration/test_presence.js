// Presence (rt.presence): who is subscribed to a topic, WebSocket and STOMP subscribers
// alike, with the user each connection authenticated as, and join/leave handlers.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { startServer, sleep, SLOW } = require('./lib/server');
const ws = require('./lib/wsclient');

let srv;
before(async () => { srv = await startServer({ app: 'apps/presence_app.lua' }); });
after(async () => { if (srv) await srv.stop(); });

async function get(p) {
  const res = await fetch(srv.url(p));
  assert.equal(res.status, 200);
  const body = await res.json();
  return body;
}
const heard = async () => { const h = await get('/heard'); return Array.isArray(h) ? h : []; };

// Polls until check(value) holds (join/leave news arrive on the loop turn after).
async function until(fn, check, what) {
  let v;
  for (let i = 0; i < 100; i++) {
    v = await fn();
    if (check(v)) return v;
    await sleep(20 * SLOW);
  }
  assert.fail(`${what}: last saw ${JSON.stringify(v)}`);
}

test('WebSocket subscribers: the list names their users; joins and leaves are heard once each', async () => {
  const ann = await ws.Client.open(srv.wsUrl('/lobby?user=ann'));
  const bob = await ws.Client.open(srv.wsUrl('/lobby?user=bob'));
  const anon = await ws.Client.open(srv.wsUrl('/lobby'));
  let p = await until(() => get('/presence/lobby'), (v) => v.count === 3, 'three in the lobby');
  assert.deepEqual(p.users, ['-', 'ann', 'bob']);
  await until(heard, (h) => h.length === 3, 'three joins');
  assert.deepEqual((await heard()).sort(), ['join lobby -', 'join lobby ann', 'join lobby bob']);

  await bob.close(1000);
  p = await until(() => get('/presence/lobby'), (v) => v.count === 2, 'bob gone');
  assert.deepEqual(p.users, ['-', 'ann']);
  await until(heard, (h) => h.includes('leave lobby bob'), 'bob\'s leave');
  // A connection that just drops (no close frame) leaves too.
  ann.terminate();
  await until(heard, (h) => h.includes('leave lobby ann'), 'ann\'s leave');
  await anon.close(1000);
  await until(() => get('/presence/lobby'), (v) => v.count === 0, 'lobby empty');
  // A topic without an rt.presence pattern still lists who is there, but no news of it.
  const other = await ws.Client.open(srv.wsUrl('/lobby?user=cy&topic=elsewhere'));
  p = await until(() => get('/presence/elsewhere'), (v) => v.count === 1, 'cy elsewhere');
  assert.deepEqual(p.users, ['cy']);
  await sleep(100);
  const h = await heard();
  assert.equal(h.filter((x) => x.includes('elsewhere')).length, 0);
  assert.equal(h.length, 6);  // 3 joins, 3 leaves: once each
  await other.close(1000);
});

test('STOMP subscribers appear under their login', async () => {
  const client = new Client({
    webSocketFactory: () => new WebSocket(srv.wsUrl('/ws'), ['v12.stomp']),
    connectHeaders: { login: 'dora', passcode: 'x' },
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
  });
  const connected = new Promise((resolve) => { client.onConnect = resolve; });
  client.activate();
  await connected;
  client.subscribe('/topic/lobby', () => {});
  const p = await until(() => get('/presence/stomp'), (v) => v.count === 1, 'dora in /topic/lobby');
  assert.deepEqual(p.users, ['dora']);
  await until(heard, (h) => h.includes('join /topic/lobby dora'), 'dora\'s join');
  await client.deactivate();
  await until(heard, (h) => h.includes('leave /topic/lobby dora'), 'dora\'s leave');
});
