// permessage-deflate with npm `ws` as the peer: every perMessageDeflate variant, bytes on
// the wire, one compression per publish however many subscribers, STOMP over WebSocket
// (@stomp/stompjs) and SockJS's websocket transport, and opt-in context takeover.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Client: StompClient } = require('@stomp/stompjs');
const { startServer, SLOW } = require('./lib/server');

const WAIT = 5000 * SLOW;
const CHEAP = 'permessage-deflate; server_no_context_takeover; client_no_context_takeover';
const JSON_MSG = JSON.stringify({
  type: 'order', id: 12345, symbol: 'ACME', side: 'buy',
  lines: Array.from({ length: 40 }, (_, i) => ({ sku: `sku-${i}`, qty: i, price: 10.5 + i, note: 'ünïcödé ✓' })),
});

let srv, stompSrv, sockjsSrv;
before(async () => {
  srv = await startServer({ app: 'apps/echo.lua', args: ['--metrics', '/metrics', '--ws-ping', '0'] });
  stompSrv = await startServer({ app: 'apps/stomp_app.lua', args: ['--metrics', '/metrics'] });
  sockjsSrv = await startServer({ app: 'apps/sockjs_echo.lua', args: ['--metrics', '/metrics'] });
});
after(async () => {
  for (const s of [srv, stompSrv, sockjsSrv]) if (s) await s.stop();
});

function within(promise, what, ms = WAIT) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

// An open ws with a message queue; `answer` is the server's Sec-WebSocket-Extensions.
function open(url, opts = {}) {
  return within(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols, { perMessageDeflate: true, ...opts });
    const queue = [], waiters = [];
    ws.on('message', (data, binary) => {
      queue.push(binary ? data : data.toString());
      while (waiters.length && queue.length) waiters.shift()(queue.shift());
    });
    ws.next = () => (queue.length ? Promise.resolve(queue.shift())
      : within(new Promise((r) => waiters.push(r)), 'a message'));
    ws.on('upgrade', (res) => { ws.answer = res.headers['sec-websocket-extensions']; });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  }), `open ${url}`);
}

async function metrics(s) {
  const text = await (await fetch(s.url('/metrics'))).text();
  const get = (name) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))[1]);
  return { in: get('rtserver_ws_compressed_in_total'), out: get('rtserver_ws_compressed_out_total'),
           compressions: get('rtserver_ws_compressions_total') };
}

test('every perMessageDeflate variant negotiates and echoes, compressed both ways', async () => {
  const variants = [
    [true, CHEAP],
    [{ serverNoContextTakeover: true }, CHEAP],
    [{ clientNoContextTakeover: true }, CHEAP],
    [{ serverMaxWindowBits: 10 }, `${CHEAP}; server_max_window_bits=10`],
    [{ clientMaxWindowBits: 9 }, CHEAP],
    [{ serverMaxWindowBits: 12, clientMaxWindowBits: 12, threshold: 0 }, `${CHEAP}; server_max_window_bits=12`],
    [false, undefined],
  ];
  for (const [pmd, want] of variants) {
    const before = await metrics(srv);
    const ws = await open(srv.wsUrl('/echo'), { perMessageDeflate: pmd });
    assert.equal(ws.answer, want, JSON.stringify(pmd));
    assert.equal(await ws.next(), 'hello -');
    const read0 = ws._socket.bytesRead;
    for (let i = 0; i < 3; i++) {
      ws.send(JSON_MSG);
      assert.equal(await ws.next(), JSON_MSG);
    }
    const wire = (ws._socket.bytesRead - read0) / 3;
    const after = await metrics(srv);
    if (want) {
      assert.ok(wire < JSON_MSG.length / 4, `${JSON.stringify(pmd)}: ${wire} bytes on the wire per ${JSON_MSG.length}-byte message`);
      assert.equal(after.in - before.in, 3, 'compressed messages received');
      assert.equal(after.out - before.out, 3, 'compressed messages sent');
    } else {
      assert.ok(wire > JSON_MSG.length);
      assert.equal(after.out, before.out);
    }
    ws.close();
  }
});

test('an endpoint with deflate = false declines the offer', async () => {
  const ws = await open(srv.wsUrl('/plain'));
  assert.equal(ws.answer, undefined);
  assert.equal(ws.extensions, '');
  ws.send(JSON_MSG);
  assert.equal(await ws.next(), JSON_MSG);
  ws.close();
});

test('fan-out: one compression per publish, the same frame to every compressing subscriber', async () => {
  const subs = [];
  for (let i = 0; i < 30; i++) subs.push(await open(srv.wsUrl('/sub/fan'), { perMessageDeflate: i % 3 !== 0 }));
  for (const s of subs) assert.equal(await s.next(), 'subscribed fan');
  const pub = await open(srv.wsUrl('/pub/fan'), { perMessageDeflate: false });
  const before = await metrics(srv);
  for (let i = 0; i < 5; i++) {
    pub.send(`${JSON_MSG} ${i}`);
    assert.equal(await pub.next(), 'delivered 30');
  }
  for (const s of subs) for (let i = 0; i < 5; i++) assert.equal(await s.next(), `${JSON_MSG} ${i}`);
  const after = await metrics(srv);
  assert.equal(after.compressions - before.compressions, 5);
  assert.equal(after.out - before.out, 5 * 20);
  for (const s of [...subs, pub]) s.close();
});

async function stomp(url, pmd) {
  const client = new StompClient({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp'], { perMessageDeflate: pmd }),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(`STOMP ERROR ${f.headers.message}`));
  });
  client.activate();
  await within(connected, 'CONNECTED');
  return client;
}

test('STOMP over WebSocket: MESSAGE frames compressed once per publish', async () => {
  const clients = [];
  const inboxes = [];
  // the last but one asks for a smaller window: it gets frames compressed for it alone
  for (const pmd of [true, true, true, false, { serverMaxWindowBits: 10 }]) {
    const c = await stomp(stompSrv.wsUrl('/ws'), pmd);
    const inbox = [];
    const receipt = `r-${clients.length}`;
    const ok = new Promise((r) => c.watchForReceipt(receipt, r));
    c.subscribe('/topic/big', (m) => inbox.push(m.body), { receipt });
    await within(ok, 'receipt');
    clients.push(c);
    inboxes.push(inbox);
  }
  const before = await metrics(stompSrv);
  const pub = await stomp(stompSrv.wsUrl('/ws'), true);
  for (let i = 0; i < 3; i++) pub.publish({ destination: '/topic/big', body: `${JSON_MSG} ${i}` });
  await within((async () => { while (inboxes.some((b) => b.length < 3)) await new Promise((r) => setTimeout(r, 20)); })(), 'deliveries');
  for (const inbox of inboxes) assert.deepEqual(inbox, [0, 1, 2].map((i) => `${JSON_MSG} ${i}`));
  const after = await metrics(stompSrv);
  assert.equal(after.in - before.in, 3, 'the SENDs arrived compressed');
  assert.equal(after.compressions - before.compressions, 6,
               'one compression per publish for the shared frame, one for the 10-bit window');
  assert.equal(after.out - before.out, 12);
  for (const c of [...clients, pub]) await c.deactivate();
});

test("SockJS's websocket transport compresses both ways", async () => {
  const ws = await open(sockjsSrv.wsUrl('/echo/000/deflate1/websocket'));
  assert.equal(ws.answer, CHEAP);
  assert.equal(await ws.next(), 'o');
  const before = await metrics(sockjsSrv);
  ws.send(JSON.stringify([JSON_MSG]));
  assert.equal(await ws.next(), `a${JSON.stringify([JSON_MSG])}`);
  const after = await metrics(sockjsSrv);
  assert.equal(after.in - before.in, 1);
  assert.equal(after.out - before.out, 1);
  ws.close();
});

test('--ws-deflate-takeover: context kept per connection while the budget lasts', async () => {
  const t = await startServer({ app: 'apps/echo.lua', args: ['--ws-deflate-takeover', '700000', '--ws-ping', '0'] });
  try {
    const a = await open(t.wsUrl('/echo'));
    const b = await open(t.wsUrl('/echo'));
    const c = await open(t.wsUrl('/echo'));
    assert.equal(a.answer, 'permessage-deflate');
    assert.equal(b.answer, 'permessage-deflate');
    assert.equal(c.answer, CHEAP, 'over the budget: the cheap terms');
    const sizes = [];
    for (const ws of [a, c]) {
      await ws.next();
      const seen = [];
      for (let i = 0; i < 3; i++) {
        const r0 = ws._socket.bytesRead;
        ws.send(JSON_MSG);
        assert.equal(await ws.next(), JSON_MSG);
        seen.push(ws._socket.bytesRead - r0);
      }
      sizes.push(seen);
    }
    assert.ok(sizes[0][2] < sizes[0][0] / 4, `with takeover, repeats shrink: ${sizes[0]}`);
    assert.ok(sizes[1][2] === sizes[1][0], `without, every message costs the same: ${sizes[1]}`);
    for (const ws of [a, b, c]) ws.close();
  } finally {
    await t.stop();
  }
});
