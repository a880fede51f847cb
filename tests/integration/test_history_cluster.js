// History in Redis (--engine with rt.history): two nodes and a private Redis. Offsets are
// assigned in Redis, so every node sees the same ones; a STOMP client recovers on the
// other node with x-since (@stomp/stompjs); a raw WebSocket recovers through the Lua API;
// and the faults: Redis killed and restarted three times while messages flow, and the
// nodes' pub/sub connections killed alone (CLIENT KILL TYPE pubsub). The rule checked
// for every subscriber: no message is silently missed — each offset of an epoch arrives
// once, in order, or the subscriber was told (x-recovered:false / the lost handler).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { within, stompConnect: connectStomp } = require('./lib/stomp');
const { startServer, sleep, SLOW } = require('./lib/server');
const { Client: WsClient } = require('./lib/wsclient');
const { startRedis } = require('./lib/redis');

const WAIT = 8000 * SLOW;
const APP = 'apps/history_cluster.lua';
let redis, A, B;
const nodes = [];
const stompClients = [];


async function node(name) {
  const srv = await startServer({ app: APP, args: ['--engine', redis.url, '--metrics', '/metrics'],
                                  env: { NODE_NAME: name } });
  nodes.push(srv);
  await srv.waitForStderr(/engine: redis \S+ connected/, { timeoutMs: WAIT });
  return srv;
}

async function post(srv, path, body = '') {
  const res = await fetch(srv.url(path), { method: 'POST', body });
  return { status: res.status, json: await res.json() };
}

const stompConnect = (srv) => connectStomp(srv.wsUrl('/ws'), { track: stompClients });

// Subscribes (with a receipt) and collects every MESSAGE; resolves with the RECEIPT.
async function subscribe(client, destination, headers = {}) {
  const inbox = [];
  const waiters = [];
  const receipt = `r-${Math.random()}`;
  const confirmed = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  client.subscribe(destination, (m) => {
    inbox.push(m);
    while (waiters.length && waiters[0].n <= inbox.length) waiters.shift().resolve();
  }, { receipt, ...headers });
  const frame = await within(confirmed, `receipt for ${destination}`);
  return {
    frame, inbox,
    async count(n, what = `${n} messages`) {
      if (inbox.length >= n) return;
      await within(new Promise((resolve) => waiters.push({ n, resolve })), what);
    },
  };
}

// The topic's latest offset in Redis, once the flow has stopped and every subscriber's last
// message carries it (or after a while: the checks then say what is missing).
async function settledTop(topic, subs) {
  let top = 0;
  for (let i = 0; i < 200; i++) {
    top = Number((await redis.cli('HGET', `rt:hmeta:${topic}`, 'o'))[0]);
    const lastOf = (s) => Number(s.inbox.length ? s.inbox[s.inbox.length - 1].headers['x-offset'] : 0);
    if (i > 5 && subs.every((s) => lastOf(s) === top)) break;
    await sleep(50);
  }
  return top;
}

// Every subscriber's record: offsets in order within an epoch, each once; a new epoch or
// a jump only right after a notice. Returns what it saw, for the caller's other checks.
function checkNoSilentLoss(events, who) {
  let epoch = null, last = 0, told = false, notices = 0, messages = 0;
  for (const e of events) {
    if (e.lost) { told = true; notices++; continue; }
    messages++;
    if (epoch === null) {
      epoch = e.epoch;
    } else if (e.epoch !== epoch) {
      assert.ok(told, `${who}: the epoch changed (${epoch} -> ${e.epoch}) at offset ${e.offset} without a notice`);
      epoch = e.epoch;
      last = e.offset - 1;
      told = false;
    }
    if (last && e.offset !== last + 1) {
      assert.ok(told && e.offset > last,
        `${who}: offset ${e.offset} after ${last} in epoch ${epoch}${told ? '' : ' without a notice'}`);
    }
    told = false;
    last = e.offset;
  }
  return { epoch, last, notices, messages };
}

function stompEvents(inbox) {
  return inbox.map((m) => (m.headers['x-recovered'] === 'false'
    ? { lost: true }
    : { epoch: m.headers['x-epoch'], offset: Number(m.headers['x-offset']), body: m.body }));
}

before(async () => {
  redis = await startRedis();
  A = await node('A');
  B = await node('B');
});

after(async () => {
  for (const c of stompClients) await c.deactivate().catch(() => {});
  for (const n of nodes) if (!n.exited) await n.stop({ allowFailure: true });
  if (redis) await redis.remove();
});

test('offsets come from Redis: subscribers on both nodes see the same offsets, each message once', async () => {
  const onA = await subscribe(await stompConnect(A), '/topic/same');
  const onB = await subscribe(await stompConnect(B), '/topic/same');
  for (let i = 1; i <= 10; i++) {
    const res = await post(i % 2 ? A : B, '/publish?topic=/topic/same', `m${i}`);
    assert.equal(res.status, 200);
  }
  await onA.count(10);
  await onB.count(10);
  await sleep(200);
  // The order is Redis's (a publish's HTTP answer comes before its script reaches Redis, so
  // two publishes through two nodes may swap): the same on both nodes, offsets 1..10.
  const seq = (sub) => sub.inbox.map((m) => `${m.headers['x-offset']}:${m.body}`);
  for (const s of [onA, onB]) {
    assert.equal(s.inbox.length, 10, 'each message once (the publishing node delivers only what Redis sends back)');
    assert.deepEqual(s.inbox.map((m) => m.body).sort(), [...Array(10).keys()].map((i) => `m${i + 1}`).sort());
    assert.deepEqual(s.inbox.map((m) => Number(m.headers['x-offset'])), [...Array(10).keys()].map((i) => i + 1));
  }
  assert.deepEqual(seq(onA), seq(onB));
  assert.equal(onA.inbox[0].headers['x-epoch'], onB.inbox[0].headers['x-epoch']);
  const meta = await redis.cli('HGET', 'rt:hmeta:/topic/same', 'o');
  assert.equal(meta[0], '10');
});

test('a STOMP client that comes back on the other node recovers with x-since', async () => {
  const first = await stompConnect(A);
  const sub = await subscribe(first, '/topic/order/7');
  await post(B, '/publish?topic=/topic/order/7', '{"status":"created"}');
  await sub.count(1);
  const epoch = sub.inbox[0].headers['x-epoch'];
  assert.match(epoch, /^[0-9a-f]{1,16}$/);
  await first.deactivate();
  // Away: the order moves on, published on both nodes.
  await post(A, '/publish?topic=/topic/order/7', '{"status":"paid"}');
  await post(B, '/publish?topic=/topic/order/7', '{"status":"shipped"}');
  const back = await subscribe(await stompConnect(B), '/topic/order/7', { 'x-since': `${epoch}:1` });
  assert.equal(back.frame.headers['x-recovered'], 'true');
  await back.count(2);
  assert.deepEqual(back.inbox.map((m) => JSON.parse(m.body).status), ['paid', 'shipped']);
  assert.deepEqual(back.inbox.map((m) => m.headers['x-offset']), ['2', '3']);
  await post(A, '/publish?topic=/topic/order/7', '{"status":"delivered"}');
  await back.count(3);
  assert.equal(back.inbox[2].headers['x-offset'], '4');
  await sleep(200);
  assert.equal(back.inbox.length, 3, 'no duplicate between the replay and live messages');

  // Another epoch: told, nothing replayed.
  const other = await subscribe(await stompConnect(A), '/topic/order/7', { 'x-since': 'abc:1' });
  assert.equal(other.frame.headers['x-recovered'], 'false');
  await sleep(200);
  assert.equal(other.inbox.length, 0);
});

test('clients recovering on a node with no cache read Redis, in order, then get live messages', async () => {
  // No subscriber on B: its cache of the topic is empty, so recoveries there read Redis.
  for (let i = 1; i <= 50; i++) await post(A, '/publish?topic=feed', `f${i}`);
  const pos = await (await fetch(A.url('/position?topic=feed'))).json();
  const meta = await redis.cli('HMGET', 'rt:hmeta:feed', 'e', 'o');
  assert.equal(meta[1], '50');
  const before = await metric(B, 'rtserver_history_reads_total');
  const clients = await Promise.all([...Array(20)].map(() =>
    WsClient.open(B.wsUrl(`/feed?epoch=${meta[0]}&offset=10`))));
  for (const c of clients) {
    const got = [];
    for (let i = 0; i < 41; i++) got.push(await c.nextText());
    assert.equal(got[40], 'recovered:true');
    assert.deepEqual(got.slice(0, 40), [...Array(40).keys()].map((i) => `f${i + 11}`));
  }
  // One read is out at a time per topic, and it serves everyone waiting when it answers
  // (tests/unit/net/test_stream.c checks that exactly; here clients arrive one by one).
  const reads = (await metric(B, 'rtserver_history_reads_total')) - before;
  assert.ok(reads < 20, `20 recovering clients cost ${reads} history reads`);
  await post(A, '/publish?topic=feed', 'live');
  for (const c of clients) assert.equal(await c.nextText(), 'live');
  for (const c of clients) c.ws.close();
  assert.equal(pos.epoch === '' || pos.epoch === meta[0], true);
});

test('topic:history in a handler reads Redis, on a node that does not follow the topic', async () => {
  for (let i = 1; i <= 5; i++) await post(A, '/publish?topic=/topic/h', `h${i}`);
  const get = async (q) => (await fetch(B.url(`/history?topic=/topic/h&${q}`))).json();
  let h = await get('since=2');
  assert.deepEqual(h.messages.map((m) => [m.offset, m.data]), [[3, 'h3'], [4, 'h4'], [5, 'h5']]);
  assert.equal(h.offset, 5);
  assert.equal(h.complete, true);
  const epoch = h.epoch;
  assert.match(epoch, /^[0-9a-f]+$/);
  h = await get(`since=0&limit=2&epoch=${epoch}`);
  assert.deepEqual(h.messages.map((m) => m.data), ['h1', 'h2']);
  h = await get('since=1&epoch=abc');
  assert.equal(h.complete, false);
  assert.equal(Object.keys(h.messages).length, 0);  // (cjson writes an empty table as {})
});

async function metric(srv, name) {
  const text = await (await fetch(srv.url('/metrics'))).text();
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : 0;
}

// A raw WebSocket feed subscriber's record (messages are the publisher's counters; the
// offsets are not on the wire, so the check is on the counters: in order, each once, and
// any jump comes right after a "lost").
function feedClient(srv) {
  return WsClient.open(srv.wsUrl('/feed')).then(async (c) => {
    assert.equal(await c.nextText(), 'subscribed');
    const events = [];
    c.ws.on('message', (d) => events.push(String(d)));
    c.events = events;
    return c;
  });
}

test('Redis killed and restarted three times while messages flow: nobody silently misses one', async () => {
  const stompA = await subscribe(await stompConnect(A), '/topic/flow');
  const stompB = await subscribe(await stompConnect(B), '/topic/flow');
  const wsB = await feedClient(B);
  await post(A, '/flow/start?topics=/topic/flow,feed&every=0.005');
  for (let round = 0; round < 3; round++) {
    await sleep(400);
    redis.child.kill('SIGKILL');
    await redis.exited;
    await sleep(300);
    await redis.start();
    await redis.waitSubscribers('rt:/topic/flow', 2);
  }
  await sleep(800);
  const flow = (await post(A, '/flow/stop')).json;
  assert.ok(flow.sent > 50, `the flow published ${flow.sent}`);
  const finalTop = await settledTop('/topic/flow', [stompA, stompB]);
  for (const [who, s] of [['STOMP on A', stompA], ['STOMP on B', stompB]]) {
    const seen = checkNoSilentLoss(stompEvents(s.inbox), who);
    assert.ok(seen.notices >= 1, `${who}: Redis lost the history three times, and was told ${seen.notices} times`);
    assert.equal(seen.last, finalTop, `${who}: caught up with the last epoch's latest offset`);
  }
  // The raw feed: counters in order; a jump only after "lost".
  let last = 0, told = false, lost = 0;
  for (const e of wsB.events) {
    if (e === 'lost') { told = true; lost++; continue; }
    const n = Number(e);
    assert.ok(n > last, `feed on B: ${n} after ${last}`);
    if (n !== last + 1 && last) assert.ok(told, `feed on B: ${n} after ${last} without "lost"`);
    told = false;
    last = n;
  }
  assert.ok(lost >= 1, 'the WebSocket subscriber was told through the lost handler');
  wsB.ws.close();
});

test('pub/sub connections killed alone (CLIENT KILL TYPE pubsub): the gap is read back, nothing lost', async () => {
  await redis.cli('FLUSHALL');
  const stompA = await subscribe(await stompConnect(A), '/topic/kill');
  const stompB = await subscribe(await stompConnect(B), '/topic/kill');
  await post(A, '/flow/start?topics=/topic/kill&every=0.003');
  for (let round = 0; round < 3; round++) {
    await sleep(300);
    await redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await redis.waitSubscribers('rt:/topic/kill', 2);
  }
  await sleep(500);
  await post(A, '/flow/stop');
  const top = await settledTop('/topic/kill', [stompA, stompB]);
  assert.ok(top > 30, `published ${top}`);
  for (const [who, s] of [['STOMP on A', stompA], ['STOMP on B', stompB]]) {
    const events = stompEvents(s.inbox);
    const seen = checkNoSilentLoss(events, who);
    assert.equal(seen.notices, 0, `${who}: the history had everything: no notice`);
    assert.equal(seen.messages, top, `${who}: every message, once`);
    assert.equal(seen.last, top);
  }
  const reads = await metric(B, 'rtserver_history_reads_total');
  assert.ok(reads > 0);
});
