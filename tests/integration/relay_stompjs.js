// Run by test_stomp_relay.py (which owns the RabbitMQ): the seed's order push with the
// broker relay on two rtserver nodes, watched with @stomp/stompjs over WebSocket. An order
// created on node A and updated on node B reaches subscribers on both nodes.
//   RT_NODE_A, RT_NODE_B: the nodes' http://host:port
'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');

const A = process.env.RT_NODE_A, B = process.env.RT_NODE_B;
const WAIT = 10000;
const clients = [];

after(async () => { for (const c of clients) await c.deactivate().catch(() => {}); });

function within(promise, what, ms = WAIT) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

async function connect(base, opts = {}) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(base.replace('http', 'ws') + '/ws', ['v12.stomp']),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, ...opts,
  });
  clients.push(client);
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(`STOMP ERROR ${f.headers.message}: ${f.body}`));
    client.onWebSocketError = (e) => reject(new Error(`WebSocket error ${e.message || e}`));
  });
  client.activate();
  await within(connected, 'CONNECTED');
  return client;
}

async function subscribe(client, destination) {
  const inbox = [];
  let wake = null;
  const receipt = `r-${Math.random()}`;
  const confirmed = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  client.subscribe(destination, (m) => { inbox.push(m); if (wake) wake(); }, { receipt });
  await within(confirmed, `receipt for SUBSCRIBE ${destination}`);
  return async () => {
    while (!inbox.length) await within(new Promise((r) => { wake = r; }), `a message on ${destination}`);
    return inbox.shift();
  };
}

async function http(base, method, p, body) {
  const res = await fetch(base + p, { method, body: JSON.stringify(body) });
  assert.ok(res.ok, `${method} ${p}: ${res.status}`);
  return res.json();
}

test('order push through the relay reaches subscribers on both nodes', async () => {
  const [ca, cb] = [await connect(A), await connect(B)];
  // Orders are per node (rt.state): node B's first order has id 1 too, so both watch it.
  const order = await http(A, 'POST', '/orders', { item: 'book' });
  const [na, nb] = [await subscribe(ca, `/topic/order/${order.id}`), await subscribe(cb, `/topic/order/${order.id}`)];
  await http(A, 'PUT', `/orders/${order.id}/status`, { status: 'shipped' });
  for (const next of [na, nb]) {
    const m = await next();
    const body = JSON.parse(m.body);
    assert.equal(body.status, 'shipped');
    assert.equal(body.item, 'book');
    assert.equal(m.headers.destination, `/topic/order/${order.id}`);
    assert.equal(m.headers['content-type'], 'application/json');
  }
});

test('the seed chat: SEND /app/chat on node B reaches a subscriber on node A', async () => {
  const [ca, cb] = [await connect(A), await connect(B)];
  const next = await subscribe(ca, '/topic/messages');
  cb.publish({ destination: '/app/chat', body: JSON.stringify({ user: 'ann', content: 'hi from B' }) });
  const m = await next();
  assert.deepEqual(JSON.parse(m.body), { user: 'ann', content: 'hi from B' });
});
