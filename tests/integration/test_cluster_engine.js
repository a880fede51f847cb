// Several rtserver nodes sharing topics through Redis (--engine): three nodes and a Redis
// on loopback. Chat across nodes (WebSocket, SockJS), the STOMP order push with the PUT on
// another node, user destinations and patterns across nodes, binary and headers intact,
// no echo on the publishing node, subscriptions in Redis following local subscribers,
// Redis down at start and restarted mid-stream (failures reported), two shards, a node
// killed with -9, and garbage from Redis.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const { within, stompConnect: connectStomp } = require('./lib/stomp');
const { startServer, sleep, SLOW } = require('./lib/server');
const { Client: WsClient } = require('./lib/wsclient');
const { startRedis, freePort } = require('./lib/redis');

const WAIT = 5000 * SLOW;
const APP = 'apps/cluster.lua';
let redis;
const nodes = [];
const stompClients = [];

async function node(name, engine, extra = []) {
  const args = [];
  for (const e of [].concat(engine)) args.push('--engine', e);
  const srv = await startServer({ app: APP, args: [...args, '--metrics', '/metrics', ...extra],
                                  env: { NODE_NAME: name } });
  srv.name = name;
  nodes.push(srv);
  return srv;
}

// Resolves when every node logged its Redis connection (subscriptions made after it go
// straight to Redis).
async function connected(srv, label) {
  await srv.waitForStderr(new RegExp(`engine: redis ${label ? label.replace(/\./g, '\\.') : '\\S+'} connected`), { timeoutMs: WAIT });
}

before(async () => {
  redis = await startRedis();
});

after(async () => {
  for (const c of stompClients) await c.deactivate().catch(() => {});
  for (const n of nodes) if (!n.exited) await n.stop({ allowFailure: true });
  if (redis) await redis.remove();
});


const stompConnect = (srv, login) => connectStomp(srv.wsUrl('/ws'), { login, track: stompClients });

async function stompSubscribe(client, destination) {
  const inbox = [];
  let wake = null;
  const receipt = `r-${Math.random()}`;
  const confirmed = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  client.subscribe(destination, (m) => { inbox.push(m); if (wake) wake(); }, { receipt });
  await within(confirmed, `receipt for ${destination}`);
  return {
    inbox,
    next: async () => {
      while (!inbox.length) await within(new Promise((r) => { wake = r; }), `a message on ${destination}`);
      return inbox.shift();
    },
  };
}

async function http(srv, method, p, body, headers = {}) {
  const res = await fetch(srv.url(p), { method, body, headers });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* not JSON */ }
  return { status: res.status, json, text };
}

// The engine subscribes asynchronously: wait until Redis has the channel.
async function redisHas(r, channel, want = true) {
  const until = Date.now() + WAIT;
  for (;;) {
    const chans = await r.cli('PUBSUB', 'CHANNELS', 'rt:*');
    if (chans.includes(channel) === want) return chans;
    if (Date.now() > until) throw new Error(`redis channel ${channel} ${want ? 'never appeared' : 'stayed'}: ${chans}`);
    await sleep(30);
  }
}

async function metric(srv, name) {
  const { text } = await http(srv, 'GET', '/metrics');
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// No further message arrives within ms.
async function quiet(c, ms = 300) {
  await assert.rejects(c.next(ms), /no message within/);
}

let A, B, C;

test('three nodes start and connect to Redis', async () => {
  [A, B, C] = await Promise.all([node('A', redis.url), node('B', redis.url), node('C', redis.url)]);
  await Promise.all([A, B, C].map((n) => connected(n)));
});

test('a WebSocket chat with a client on each node: everyone gets every message once', async () => {
  const clients = await Promise.all([A, B, C].map((n) => WsClient.open(n.wsUrl('/chat'))));
  await redisHas(redis, 'rt:chat');
  const nsub = await redis.cli('PUBSUB', 'NUMSUB', 'rt:chat');
  assert.equal(nsub[1], '3', 'one Redis subscription per node, not per client');
  for (const [i, c] of clients.entries()) c.ws.send(`hello from ${'ABC'[i]}`);
  for (const c of clients) {
    const got = [];
    for (let i = 0; i < 3; i++) got.push((await c.next()).data);
    assert.deepEqual(got.sort(), ['hello from A', 'hello from B', 'hello from C']);
    await quiet(c);  // nothing twice: the publishing node skips its own echo
  }
  for (const c of clients) c.ws.close();
  // The last local subscriber left: every node unsubscribed.
  await redisHas(redis, 'rt:chat', false);
});

test('binary and text frames cross nodes as they were sent', async () => {
  const sub = await WsClient.open(B.wsUrl('/sub/bin'));
  assert.equal((await sub.next()).data, 'subscribed bin');
  await redisHas(redis, 'rt:bin');
  const pub = await WsClient.open(A.wsUrl('/pub/bin'));
  const bytes = Buffer.from([0, 1, 2, 255, 254, 0x80, 10]);
  pub.ws.send(bytes, { binary: true });
  assert.equal((await pub.next()).data, 'delivered 0');
  const m = await sub.next();
  assert.equal(m.binary, true);
  assert.deepEqual(Buffer.from(m.data), bytes);
  pub.ws.send('tëxt ✓');
  const t = await sub.next();
  assert.equal(t.binary, false);
  assert.equal(t.data, 'tëxt ✓');
  sub.ws.close(); pub.ws.close();
});

test('the order push: a STOMP subscriber on B gets the PUT made on A, headers intact', async () => {
  const browser = await stompConnect(B);
  const order = await stompSubscribe(browser, '/topic/order/42');
  await redisHas(redis, 'rt:/topic/order/42');
  const res = await http(A, 'PUT', '/orders/42/status', JSON.stringify({ status: 'shipped' }));
  assert.equal(res.status, 200);
  const m = await order.next();
  assert.deepEqual(JSON.parse(m.body), { id: 42, status: 'shipped' });
  assert.equal(m.headers.destination, '/topic/order/42');
  assert.equal(m.headers['content-type'], 'application/json');
  assert.equal(m.headers['x-node'], 'A');
  assert.ok(m.headers['message-id']);
  // An explicit content type and a binary body survive too.
  const r2 = await http(C, 'POST', '/stomp-send?dest=/topic/order/42', Buffer.from([1, 2, 0, 3]),
                        { 'content-type': 'application/x-thing' });
  assert.equal(r2.status, 200);
  const m2 = await order.next();
  assert.equal(m2.headers['content-type'], 'application/x-thing');
  assert.deepEqual([...m2.binaryBody], [1, 2, 0, 3]);
});

test('a user destination reaches the user on another node', async () => {
  const bob = await stompConnect(C, 'bob');
  const notes = await stompSubscribe(bob, '/user/queue/notes');
  const alice = await stompConnect(A, 'alice');
  await redisHas(redis, 'rt:/user/bob/queue/notes');  // the engine subscribes asynchronously
  alice.publish({ destination: '/app/notify/bob', body: 'lunch?' });
  const m = await notes.next();
  assert.equal(m.body, 'lunch?');
  assert.equal(m.headers.destination, '/user/queue/notes');
  assert.equal(m.headers['x-kind'], 'note');
  // Somebody else's notes do not arrive.
  alice.publish({ destination: '/app/notify/carol', body: 'not for bob' });
  await sleep(300);
  assert.equal(notes.inbox.length, 0);
});

test('a pattern subscription on B matches publishes on A and C (segments respected)', async () => {
  const s = await stompConnect(B);
  const pat = await stompSubscribe(s, '/topic/price.*');
  const until = Date.now() + WAIT;
  while (!(await redis.cli('PUBSUB', 'NUMPAT'))[0].match(/[1-9]/)) {
    if (Date.now() > until) throw new Error('no PSUBSCRIBE reached Redis');
    await sleep(30);
  }
  await http(A, 'POST', '/stomp-send?dest=/topic/price.eur', 'eur 1.1');
  await http(C, 'POST', '/stomp-send?dest=/topic/price.usd.x', 'no: two segments');
  await http(C, 'POST', '/stomp-send?dest=/topic/price.usd', 'usd 1.0');
  const got = [(await pat.next()).body, (await pat.next()).body].sort();
  assert.deepEqual(got, ['eur 1.1', 'usd 1.0']);
  await sleep(300);
  assert.equal(pat.inbox.length, 0, 'a name the pattern does not match arrived');
});

test('a STOMP SEND from a client on A reaches STOMP and raw WebSocket subscribers on C', async () => {
  const raw = await WsClient.open(C.wsUrl('/raw?topic=/topic/news'));
  await raw.next();
  const s = await stompConnect(C);
  const news = await stompSubscribe(s, '/topic/news');
  await redisHas(redis, 'rt:/topic/news');
  const sender = await stompConnect(A);
  sender.publish({ destination: '/topic/news', body: 'extra!', headers: { 'x-a': '1' } });
  const m = await news.next();
  assert.equal(m.body, 'extra!');
  assert.equal(m.headers['x-a'], '1');
  assert.equal((await raw.next()).data, 'extra!');
  raw.ws.close();
});

test('a SockJS xhr-polling session on B is in the chat with a WebSocket on A', async () => {
  const base = B.url('/sockchat/000/s' + Date.now());
  let r = await fetch(base + '/xhr', { method: 'POST' });
  assert.equal(await r.text(), 'o\n');
  await redisHas(redis, 'rt:chat');
  const a = await WsClient.open(A.wsUrl('/chat'));
  await redisHas(redis, 'rt:chat');
  a.ws.send('to sockjs');
  assert.equal((await a.next()).data, 'to sockjs');
  r = await fetch(base + '/xhr', { method: 'POST' });
  assert.equal(await r.text(), 'a["to sockjs"]\n');
  a.ws.close();
});

test('Redis restarted mid-stream: publishes fail and are reported, then delivery resumes', async () => {
  const a = await WsClient.open(A.wsUrl('/chat'));
  const b = await WsClient.open(B.wsUrl('/chat'));
  await redis.waitSubscribers('rt:chat', 2);
  a.ws.send('before');
  assert.equal((await b.next()).data, 'before');
  assert.equal((await a.next()).data, 'before');
  const failed0 = await metric(A, 'rtserver_engine_publish_failures_total');
  const from = A.stderr.length;
  await redis.stop();
  await A.waitForStderr(/engine: redis \S+ lost/, { from, timeoutMs: WAIT });
  a.ws.send('during');
  // Local subscribers still get it; the sender hears the failure.
  assert.equal((await a.next()).data, 'during');
  assert.match((await a.next()).data, /^publish failed: redis \S+ is down/);
  const r = await http(A, 'POST', '/publish?topic=chat', 'via http');
  assert.equal(r.status, 503);
  assert.match(r.json.error, /is down/);
  assert.equal((await a.next()).data, 'via http');
  assert.ok(await metric(A, 'rtserver_engine_publish_failures_total') >= failed0 + 2);
  assert.ok(await metric(A, 'rtserver_engine_outages_total') >= 1);
  await quiet(b);
  await redis.start();
  await A.waitForStderr(/engine: redis \S+ back after [\d.]+ s/, { from, timeoutMs: WAIT });
  await B.waitForStderr(/engine: redis \S+ back after/, { from: 0, timeoutMs: WAIT });
  // Delivery resumes within seconds: B subscribed again.
  await redisHas(redis, 'rt:chat');
  const until = Date.now() + WAIT;
  for (;;) {
    a.ws.send('after');
    const got = await b.next(300).catch(() => null);
    if (got) { assert.equal(got.data, 'after'); break; }
    if (Date.now() > until) throw new Error('delivery did not resume');
  }
  a.ws.close(); b.ws.close();
});

test('a STOMP SEND with a receipt gets an ERROR while Redis is down; without one, the session lives', async () => {
  const s = await stompConnect(A);
  const local = await stompSubscribe(s, '/topic/outage');
  const from = A.stderr.length;
  await redis.stop();
  await A.waitForStderr(/lost/, { from, timeoutMs: WAIT });
  await sleep(100);
  s.publish({ destination: '/topic/outage', body: 'no receipt' });
  assert.equal((await local.next()).body, 'no receipt');
  const err = new Promise((resolve) => { s.onStompError = resolve; });
  s.publish({ destination: '/topic/outage', body: 'with receipt', headers: { receipt: 'r1' } });
  const f = await within(err, 'ERROR for a SEND with a receipt');
  assert.equal(f.headers.message, 'cannot send');
  assert.match(f.body, /is down/);
  await redis.start();
  for (const n of [A, B, C]) await n.waitForStderr(/back after/, { from: n === A ? from : 0, timeoutMs: WAIT });
});

test('two shards: names spread over both Redis instances and still cross nodes', async () => {
  const r2 = await startRedis();
  try {
    const spec = [redis.url, r2.url];
    const [X, Y] = await Promise.all([node('X', spec), node('Y', [spec.join(',')])]);
    const topics = Array.from({ length: 16 }, (_, i) => `shard${i}`);
    const subs = [];
    for (const t of topics) {
      const c = await WsClient.open(Y.wsUrl('/sub/' + t));
      await c.next();
      subs.push(c);
    }
    // Every name subscribed on one shard or the other before looking.
    for (let i = 0; i < 300; i++) {
      const n = (await redis.cli('PUBSUB', 'CHANNELS', 'rt:shard*')).length +
                (await r2.cli('PUBSUB', 'CHANNELS', 'rt:shard*')).length;
      if (n >= topics.length) break;
      await sleep(30);
    }
    const on1 = (await redis.cli('PUBSUB', 'CHANNELS', 'rt:shard*')).sort();
    const on2 = (await r2.cli('PUBSUB', 'CHANNELS', 'rt:shard*')).sort();
    assert.ok(on1.length > 0 && on2.length > 0, `both shards used: ${on1} | ${on2}`);
    assert.deepEqual([...on1, ...on2].sort(), topics.map((t) => 'rt:' + t).sort());
    assert.equal(on1.filter((c) => on2.includes(c)).length, 0, 'a name on both shards');
    for (const t of topics) await http(X, 'POST', '/publish?topic=' + t, 'to ' + t);
    for (const [i, c] of subs.entries()) assert.equal((await c.next()).data, 'to ' + topics[i]);
    for (const c of subs) c.ws.close();
    await X.stop(); await Y.stop();
  } finally {
    await r2.remove();
  }
});

test('a node killed with -9 costs only its own connections', async () => {
  const a = await WsClient.open(A.wsUrl('/chat'));
  const b = await WsClient.open(B.wsUrl('/chat'));
  const c = await WsClient.open(C.wsUrl('/chat'));
  await redis.waitSubscribers('rt:chat', 3);
  C.child.kill('SIGKILL');
  const closed = await c.closed;
  assert.equal(closed.code, 1006);
  a.ws.send('still here');
  assert.equal((await b.next()).data, 'still here');
  assert.equal((await a.next()).data, 'still here');
  await redisHas(redis, 'rt:chat');  // A's and B's subscriptions stay
  a.ws.close(); b.ws.close();
});

test('garbage on a channel is logged and dropped; the node serves on', async () => {
  const b = await WsClient.open(B.wsUrl('/chat'));
  await redisHas(redis, 'rt:chat');
  const bad0 = await metric(B, 'rtserver_engine_bad_messages_total');
  await redis.cli('PUBLISH', 'rt:chat', 'this is not an rtserver message');
  await B.waitForStderr(/engine: dropped a message: not an rtserver message/, { timeoutMs: WAIT });
  assert.equal(await metric(B, 'rtserver_engine_bad_messages_total'), bad0 + 1);
  await http(A, 'POST', '/publish?topic=chat', 'fine');
  assert.equal((await b.next()).data, 'fine');
  b.ws.close();
});

test('Redis down at start: the node starts, says so, and connects when Redis comes', async () => {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const lone = await node('L', url);
  await lone.waitForStderr(/engine: redis 127\.0\.0\.1:\d+ unreachable \(.*\); retrying/, { timeoutMs: WAIT });
  assert.equal((await http(lone, 'GET', '/whoami')).json.node, 'L');
  const r = await http(lone, 'POST', '/publish?topic=x', 'y');
  assert.equal(r.status, 503);
  const { Redis } = require('./lib/redis');
  const late = new Redis(port);
  await late.start();
  try {
    await lone.waitForStderr(/engine: redis \S+ back after/, { timeoutMs: WAIT });
    assert.equal((await http(lone, 'POST', '/publish?topic=x', 'y')).status, 200);
  } finally {
    await lone.stop();
    await late.remove();
  }
});

test('a Redis that answers garbage is logged and survived', async () => {
  // Speaks anything but RESP: hiredis gives up on the connection, the engine retries.
  const fake = net.createServer((s) => { s.on('data', () => s.write('?? not redis\r\n')); s.write('%%%\r\n'); });
  await new Promise((r) => fake.listen(0, '127.0.0.1', r));
  try {
    const g = await node('G', `redis://127.0.0.1:${fake.address().port}`);
    await g.waitForStderr(/engine: redis \S+ (lost|unreachable)/, { timeoutMs: WAIT });
    const c = await WsClient.open(g.wsUrl('/chat'));
    c.ws.send('alone');
    assert.equal((await c.next()).data, 'alone');
    c.ws.close();
    await g.stop();
  } finally {
    fake.close();
  }
});

test('a bad --engine is refused at start with one line', async () => {
  const { runServer } = require('./lib/server');
  const r = await runServer(['--engine', 'http://nope', require('node:path').resolve(__dirname, APP)]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--engine: 'http:\/\/nope' is not redis:\/\/HOST\[:PORT\]\[\/DB\]/);
});

test('an app with STOMP queues hears once, at start, that queues stay per node', async () => {
  const q = await startServer({ app: 'apps/stomp_app.lua', args: ['--engine', redis.url] });
  nodes.push(q);
  await q.waitForStderr(/STOMP queue destinations \(\/queue\.\.\.\) stay in this node/);
  assert.equal((q.stderr.match(/STOMP queue destinations/g) || []).length, 1);
  assert.doesNotMatch(A.stderr, /STOMP queue destinations/);  // cluster.lua has no queues
  await q.stop();
});

test('a name with spaces and glob characters crosses nodes as one channel', async () => {
  const [X, Y] = await Promise.all([node('X2', redis.url), node('Y2', redis.url)]);
  await Promise.all([connected(X), connected(Y)]);
  const sub = await WsClient.open(Y.wsUrl('/sub/two%20words%20%5Bx%5D%3F'));
  assert.equal((await sub.next()).data, 'subscribed two words [x]?');
  await redisHas(redis, 'rt:two words [x]?');
  const r = await http(X, 'POST', '/publish?topic=' + encodeURIComponent('two words [x]?'), 'spaced');
  assert.equal(r.status, 200);
  assert.equal((await sub.next()).data, 'spaced');
  sub.ws.close();
  await redisHas(redis, 'rt:two words [x]?', false);
  await X.stop(); await Y.stop();
});

test('a Redis that answers errors (it wants a password) is logged and counted; the node serves on', async () => {
  const locked = await startRedis(['--requirepass', 'sesame']);
  try {
    const n = await node('N', locked.url);
    await n.waitForStderr(/engine: redis \S+ connected/, { timeoutMs: WAIT });
    const c = await WsClient.open(n.wsUrl('/chat'));
    // Its SUBSCRIBE is refused: hiredis drops the connection, the engine retries, backing
    // off, and says so at powers of two, not on every attempt.
    await n.waitForStderr(/engine: redis \S+ lost \(NOAUTH Authentication required\.\)/, { timeoutMs: WAIT });
    const r = await http(n, 'POST', '/publish?topic=chat', 'locked out');
    assert.equal(r.status, 200);  // taken: the refusal comes back later, asynchronously
    assert.equal((await c.next()).data, 'locked out');
    await n.waitForStderr(/engine: redis \S+ refused a PUBLISH \(1 so far\): NOAUTH/, { timeoutMs: WAIT });
    assert.ok(await metric(n, 'rtserver_engine_publish_failures_total') >= 1);
    await sleep(2500);
    const lost = (n.stderr.match(/ lost \(NOAUTH/g) || []).length;
    const outages = await metric(n, 'rtserver_engine_outages_total');
    assert.ok(outages >= 4, `outages ${outages}`);
    assert.ok(lost <= Math.log2(outages) + 2, `${lost} log lines for ${outages} outages`);
    c.ws.close();
    await n.stop();
  } finally {
    await locked.remove();
  }
});
