// STOMP over WebSocket with @stomp/stompjs (npm `ws` as its WebSocket): the seed chat
// (/app/chat -> /topic/messages), order status pushed after an HTTP update, patterns, raw
// WebSocket and STOMP subscribers of one topic, ERROR frames and heart-beats.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { startServer, ROOT, SLOW } = require('./lib/server');

const WAIT = 5000 * SLOW;
let orderSrv, testSrv;
const clients = [];

before(async () => {
  orderSrv = await startServer({ app: path.join(ROOT, 'apps/order_push.lua'), env: { RT_STOMP_TCP_PORT: 'off' } });
  testSrv = await startServer({ app: 'apps/stomp_app.lua' });
});

after(async () => {
  for (const c of clients) await c.deactivate().catch(() => {});
  if (orderSrv) await orderSrv.stop();
  if (testSrv) await testSrv.stop();
});

function within(promise, what, ms = WAIT) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

// A connected stompjs client. opts go to the Client (heartbeats, connectHeaders ...).
async function connect(srv, opts = {}) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(srv.wsUrl('/ws'), ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    ...opts,
  });
  clients.push(client);
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(`STOMP ERROR ${f.headers.message}: ${f.body}`));
    client.onWebSocketError = (e) => reject(new Error(`WebSocket error ${e.message || e}`));
  });
  client.activate();
  const frame = await within(connected, 'CONNECTED');
  return { client, frame };
}

// Subscribes and resolves once the server confirmed it (receipt); messages queue up.
async function subscribe(client, destination, headers = {}) {
  const inbox = [];
  let wake = null;
  const receipt = `r-${Math.random()}`;
  const confirmed = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  const sub = client.subscribe(destination, (m) => { inbox.push(m); if (wake) wake(); }, { ...headers, receipt });
  await within(confirmed, `receipt for SUBSCRIBE ${destination}`);
  const next = async (what = destination) => {
    while (!inbox.length) await within(new Promise((r) => { wake = r; }), `a message on ${what}`);
    return inbox.shift();
  };
  return { sub, inbox, next };
}

async function http(srv, method, p, body) {
  const res = await fetch(srv.url(p), { method, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

test('seed chat: SEND /app/chat is broadcast as JSON on /topic/messages', async () => {
  const { client: ann, frame } = await connect(orderSrv);
  assert.equal(frame.headers.version, '1.2');
  assert.match(frame.headers.server, /^rtserver\//);
  const { client: bob } = await connect(orderSrv);
  const annIn = await subscribe(ann, '/topic/messages');
  const bobIn = await subscribe(bob, '/topic/messages');
  ann.publish({ destination: '/app/chat', body: JSON.stringify({ user: '张三', content: '你好' }) });
  for (const box of [annIn, bobIn]) {
    const m = await box.next();
    assert.deepEqual(JSON.parse(m.body), { user: '张三', content: '你好' });
    assert.equal(m.headers.destination, '/topic/messages');
    assert.equal(m.headers['content-type'], 'application/json');
    assert.ok(m.headers['message-id']);
  }
});

test('order status is pushed to /topic/order/{id} after an HTTP update', async () => {
  const created = await http(orderSrv, 'POST', '/orders', { item: 'tea' });
  assert.equal(created.status, 201);
  const id = created.json.id;
  const { client } = await connect(orderSrv);
  const exact = await subscribe(client, `/topic/order/${id}`);
  const pattern = await subscribe(client, '/topic/order/**');
  const put = await http(orderSrv, 'PUT', `/orders/${id}/status`, { status: 'shipped' });
  assert.equal(put.status, 200);
  for (const box of [exact, pattern]) {
    const m = await box.next();
    assert.equal(m.headers.destination, `/topic/order/${id}`);
    const order = JSON.parse(m.body);
    assert.deepEqual([order.id, order.item, order.status], [id, 'tea', 'shipped']);
  }
  assert.equal((await http(orderSrv, 'PUT', `/orders/${id}/status`, { status: 'teleported' })).status, 400);
  assert.equal(exact.inbox.length, 0);
});

test('a bad chat message gets an ERROR frame and only that connection closes', async () => {
  const { client } = await connect(orderSrv);
  const { client: other } = await connect(orderSrv);
  const otherIn = await subscribe(other, '/topic/messages');
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  const closed = new Promise((resolve) => { client.onWebSocketClose = resolve; });
  client.publish({ destination: '/app/chat', body: 'not json' });
  const f = await within(error, 'ERROR frame');
  assert.equal(f.headers.message, 'body is not valid JSON');
  const ev = await within(closed, 'the close');
  assert.equal(ev.code, 1002);
  other.publish({ destination: '/app/chat', body: JSON.stringify({ user: 'b', content: 'still here' }) });
  assert.equal(JSON.parse((await otherIn.next()).body).content, 'still here');
});

test('one topic, two kinds of subscriber: raw WebSocket and STOMP', async () => {
  const raw = new WebSocket(testSrv.wsUrl('/raw?topic=/topic/mixed'));
  const rawIn = [];
  raw.on('message', (d) => rawIn.push(d.toString()));
  await within(new Promise((r) => raw.on('open', r)), 'raw WebSocket open');
  const { client } = await connect(testSrv);
  const stompIn = await subscribe(client, '/topic/mixed');
  client.publish({ destination: '/topic/mixed', body: 'from stomp' });
  assert.equal((await stompIn.next()).body, 'from stomp');
  const res = await fetch(testSrv.url('/raw-publish?topic=/topic/mixed'), { method: 'POST', body: 'from rt.publish' });
  assert.equal((await res.json()).delivered, 2);
  assert.equal((await stompIn.next()).body, 'from rt.publish');
  const deadline = Date.now() + WAIT;
  while (rawIn.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(rawIn, ['from stomp', 'from rt.publish']);
  raw.close();
});

test('heart-beats both ways keep a quiet connection open', async () => {
  // We ask for a beat every HB each way (the app would go down to 200 ms): without
  // stompjs's beats the server closes after 1.5 HB (by 2 HB), without the server's stompjs
  // does after 2-3 HB. At 200 ms the server allowed only 100 ms beyond stompjs's interval,
  // too little for a loaded, sanitized run; now HB / 2 (see test_sockjs.js).
  const HB = 1000 * SLOW;
  let pings = 0, pongs = 0;
  const debug = (m) => { if (m === '>>> PING') pings++; else if (m === '<<< PONG') pongs++; };
  const { client, frame } = await connect(testSrv, { heartbeatIncoming: HB, heartbeatOutgoing: HB, debug });
  assert.equal(frame.headers['heart-beat'], `${HB},${HB}`);
  let closed = false;
  client.onWebSocketClose = () => { closed = true; };
  await new Promise((r) => setTimeout(r, 2 * HB + 1000));
  assert.equal(closed, false);
  assert.ok(pings >= 1, `${pings} heart-beats sent`);
  assert.ok(pongs >= 2, `${pongs} heart-beats received`);
  const box = await subscribe(client, '/user/queue/echo');
  client.publish({ destination: '/app/echo', body: 'still alive' });
  assert.equal((await box.next()).body, 'echo: still alive');
});

test('client-individual acks over WebSocket, and a NACKed queue message comes back', async () => {
  const { client } = await connect(testSrv);
  const box = await subscribe(client, '/queue/ws-acks', { ack: 'client-individual' });
  client.publish({ destination: '/queue/ws-acks', body: 'once' });
  const m = await box.next();
  assert.ok(m.headers.ack);
  m.nack();
  const again = await box.next();
  assert.equal(again.body, 'once');
  assert.equal(again.headers.redelivered, 'true');
  again.ack();
  const depth = await (await fetch(testSrv.url('/depth?dest=/queue/ws-acks'))).json();
  assert.equal(depth.depth, 0);
});
