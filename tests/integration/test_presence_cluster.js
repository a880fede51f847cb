// Presence across nodes (--engine redis://, a private Redis) and workers (--workers 2):
// topic:presence() and topic:count() list and count every node's subscribers, join/leave
// handlers hear of other nodes' joins and leaves, a node killed with SIGKILL drops out of
// the others' presence within the TTL, a restarted Redis gets every node's members again
// (and a node started afterwards sees them all), and two workers count the whole host.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { startServer, sleep, SLOW } = require('./lib/server');
const { Client: WsClient } = require('./lib/wsclient');
const { startRedis } = require('./lib/redis');

const APP = 'apps/presence_cluster.lua';
const TTL = 2;  // seconds: a dead node must be gone within it
let redis;
const servers = [];
const clients = [];

before(async () => { redis = await startRedis(); });
after(async () => {
  for (const c of clients) c.ws.terminate();
  for (const s of servers) if (!s.exited) await s.stop({ allowFailure: true });
  if (redis) await redis.remove();
});

async function node(args) {
  const srv = await startServer({ app: APP, args, env: { PRESENCE_TTL: String(TTL) } });
  servers.push(srv);
  return srv;
}

async function redisNode() {
  const srv = await node(['--engine', redis.url]);
  await srv.waitForStderr(/engine: redis \S+ connected/, { timeoutMs: 5000 * SLOW });
  return srv;
}

// One request on a fresh connection (so that --workers spreads them).
function get(srv, p) {
  return new Promise((resolve, reject) => {
    http.get(srv.url(p), { agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => { try { resolve(JSON.parse(body)); } catch (e) { reject(e); } });
    }).on('error', reject);
  });
}

const heard = async (srv) => {
  const h = (await get(srv, '/heard')).heard;
  return Array.isArray(h) ? h : [];
};

async function until(fn, check, what, ms = 5000 * SLOW) {
  let v;
  const end = Date.now() + ms;
  do {
    // A request that lands on a worker being killed is reset: ask again.
    try { v = await fn(); } catch (e) { v = `${e.message}`; }
    if (check(v)) return v;
    await sleep(50);
  } while (Date.now() < end);
  assert.fail(`${what}: last saw ${JSON.stringify(v)}`);
}

async function join(srv, user) {
  const c = await WsClient.open(srv.wsUrl(`/room?user=${user}`));
  clients.push(c);
  await c.next();  // "pid N": subscribed
  return c;
}

// An empty Lua table comes as {}.
const usersOf = (p) => (Array.isArray(p.users) ? p.users : []);
const same = (want) => (p) => JSON.stringify(usersOf(p)) === JSON.stringify(want) && p.count === want.length &&
  p.listed === want.length;

let A, B;

test('two nodes: every node lists and counts both nodes\' subscribers; handlers hear remote joins and leaves', async () => {
  A = await redisNode();
  B = await redisNode();
  const ann = await join(A, 'ann');
  const bob = await join(B, 'bob');
  for (const n of [A, B]) {
    const p = await until(() => get(n, '/presence'), same(['ann', 'bob']), 'ann and bob everywhere');
    assert.equal(p.nodes, 2);
  }
  await until(() => heard(A), (h) => h.includes('join room bob remote') && h.includes('join room ann local'), 'A hears bob join');
  await until(() => heard(B), (h) => h.includes('join room ann remote'), 'B hears ann join');
  // What Redis holds: each node's hash under the topic, the nodes' index.
  const nodesKey = await redis.cli('ZRANGE', 'rt-presence:n:room', '0', '-1');
  assert.equal(nodesKey.length, 2);

  bob.ws.close();
  await until(() => get(A, '/presence'), same(['ann']), 'bob gone on A');
  await until(() => heard(A), (h) => h.includes('leave room bob remote'), 'A hears bob leave');
  ann.ws.close();
  await until(() => get(B, '/presence'), same([]), 'the room empty on B');
  const h = await heard(B);
  assert.equal(h.filter((x) => x === 'join room ann remote').length, 1, 'one join each');
});

test('a node stopped longer than the TTL leaves, and comes back when it wakes', async () => {
  const cy = await join(A, 'cy');
  const dee = await join(B, 'dee');
  await until(() => get(A, '/presence'), same(['cy', 'dee']), 'cy and dee on A');
  B.child.kill('SIGSTOP');
  try {
    await until(() => get(A, '/presence'), same(['cy']), 'dee gone from A while B sleeps', (TTL * 1000 + 2000) * SLOW);
    // Long enough for Redis to expire B's hash too: B must write it again when it wakes.
    await until(async () => (await redis.cli('KEYS', 'rt-presence:m:*')).length, (n) => n === 1,
                'B\'s hash expired in Redis', (TTL * 1000 + 3000) * SLOW);
  } finally {
    B.child.kill('SIGCONT');
  }
  await until(() => get(A, '/presence'), same(['cy', 'dee']), 'dee back on A once B is heard again');
  const h = await heard(A);
  assert.ok(h.includes('leave room dee remote'));
  assert.equal(h.filter((x) => x === 'join room dee remote').length, 2);
  cy.ws.close();
  dee.ws.close();
  await until(() => get(A, '/presence'), same([]), 'both gone');
});

test('a node killed with SIGKILL leaves the others\' presence within the TTL', async () => {
  const cy = await join(A, 'cy');
  const dee = await join(B, 'dee');
  await until(() => get(A, '/presence'), same(['cy', 'dee']), 'cy and dee on A');
  B.child.kill('SIGKILL');
  const killedAt = Date.now();
  await dee.closed;
  await until(() => get(A, '/presence'), same(['cy']), 'dee gone from A', (TTL * 1000 + 2000) * SLOW);
  const took = Date.now() - killedAt;
  // Within the TTL, plus the polling.
  assert.ok(took <= (TTL * 1000 + 300) * SLOW, `took ${took} ms`);
  await until(() => heard(A), (h) => h.includes('leave room dee remote'), 'A hears dee leave');
  cy.ws.close();
  await until(() => get(A, '/presence'), same([]), 'cy gone');
});

test('Redis restarted: the nodes write their members again; a node started later sees them all', async () => {
  B = await redisNode();
  await join(A, 'eve');
  await join(B, 'fay');
  await until(() => get(A, '/presence'), same(['eve', 'fay']), 'eve and fay on A');
  const fromA = A.stderr.length, fromB = B.stderr.length;
  await redis.stop();
  await redis.start();
  await A.waitForStderr(/engine: redis \S+ back after/, { from: fromA, timeoutMs: 10000 * SLOW });
  await B.waitForStderr(/engine: redis \S+ back after/, { from: fromB, timeoutMs: 10000 * SLOW });
  await until(async () => (await redis.cli('ZRANGE', 'rt-presence:n:room', '0', '-1')).length,
              (n) => n === 2, 'both nodes back in Redis');
  const hashes = await redis.cli('KEYS', 'rt-presence:m:*');
  assert.equal(hashes.length, 2, 'one hash of members per node');
  const users = [];
  for (const k of hashes) users.push(...(await redis.cli('HVALS', k)));
  assert.deepEqual(users.sort(), ['eve', 'fay']);
  // Nobody left meanwhile: both mirrors kept both members, no leave was heard.
  for (const n of [A, B]) await until(() => get(n, '/presence'), same(['eve', 'fay']), 'both after the restart');
  const C = await redisNode();
  await until(() => get(C, '/presence'), same(['eve', 'fay']), 'a new node reads both from Redis');
  assert.equal((await heard(A)).filter((x) => x.startsWith('leave room fay')).length, 0);
  // The restarted Redis carries news again.
  await join(C, 'gus');
  await until(() => get(A, '/presence'), same(['eve', 'fay', 'gus']), 'gus, joined after the restart, on A');
});

test('the chat app says how many are online on both nodes', async () => {
  const chat = async () => {
    const srv = await startServer({ app: path.join(__dirname, '../../apps/chat.lua'), args: ['--engine', redis.url] });
    servers.push(srv);
    await srv.waitForStderr(/engine: redis \S+ connected/, { timeoutMs: 5000 * SLOW });
    return srv;
  };
  const X = await chat();
  const Y = await chat();
  const a = await WsClient.open(X.wsUrl('/chat'));
  clients.push(a);
  // The join reaches Y through Redis at once; a retry only covers a slow machine.
  let said;
  for (let i = 0; i < 50; i++) {
    const b = await WsClient.open(Y.wsUrl('/chat'));
    clients.push(b);
    while (!(said = await b.nextText()).includes(' online)'));
    if (said.includes('(2 online)')) break;
    b.ws.close();
    await sleep(100);
  }
  assert.match(said, /joined \(2 online\)/);
  // ...and X heard it with the same count.
  let heardOnX;
  while (!(heardOnX = await a.nextText()).includes('(2 online)'));
  assert.match(heardOnX, /joined \(2 online\)/);
});

test('--workers 2 without Redis: counts and lists are the whole host\'s', async () => {
  const W = await node(['--workers', '2']);
  const pids = new Set();
  const names = [];
  const pidOf = {};
  for (let i = 0; i < 40 && (pids.size < 2 || names.length < 6); i++) {
    const name = `w${i}`;
    const c = await WsClient.open(W.wsUrl(`/room?user=${name}`));
    clients.push(c);
    pidOf[name] = (await c.next()).data.replace(/^pid /, '');
    pids.add(pidOf[name]);
    names.push(name);
  }
  assert.equal(pids.size, 2, 'connections never landed on two workers');
  const want = [...names].sort();
  // Ask several times: requests land on either worker, each must say the whole host.
  const seen = new Set();
  for (let i = 0; i < 12; i++) {
    const p = await until(() => get(W, '/presence'), same(want), 'every worker counts all');
    seen.add(p.pid);
    assert.equal(p.nodes, 2);
  }
  assert.equal(seen.size, 2, 'the HTTP requests never reached both workers');
  // A worker killed with -9: the other drops its members within the TTL, and the one the
  // supervisor starts in its place is told the survivor's members (it said "up").
  const victim = pidOf[names[0]];
  const survivors = names.filter((n) => pidOf[n] !== victim).sort();
  process.kill(Number(victim), 'SIGKILL');
  const survivor = [...pids].find((p) => p !== victim);
  const fresh = await until(() => get(W, '/presence'), (p) => p.pid && p.pid !== victim && p.pid !== survivor,
                            'an answer of the restarted worker', 10000 * SLOW);
  await until(() => get(W, '/presence'), (p) => p.pid === fresh.pid && same(survivors)(p),
              'the restarted worker knows the survivor\'s members', 5000 * SLOW);
  await until(() => get(W, '/presence'), (p) => p.pid === survivor && same(survivors)(p),
              'the survivor dropped the dead worker\'s members', (TTL * 1000 + 3000) * SLOW);
  await W.stop();
});
