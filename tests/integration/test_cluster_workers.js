// --workers 2: one supervisor, two worker processes on one port (SO_REUSEPORT). Clients on
// both workers chat with each other, STOMP across workers, /metrics totals, a killed worker
// comes back while the other keeps its connections, SIGHUP reloads both, SIGTERM drains
// both and the supervisor exits 0. Also --workers with --engine.
'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { within, stompConnect: connectStomp } = require('./lib/stomp');
const { startServer, sleep, SLOW } = require('./lib/server');
const { Client: WsClient } = require('./lib/wsclient');
const { startRedis } = require('./lib/redis');

const WAIT = 5000 * SLOW;
const APP = 'apps/cluster.lua';
const servers = [];
const stompClients = [];
let redis;

after(async () => {
  for (const c of stompClients) await c.deactivate().catch(() => {});
  for (const s of servers) if (!s.exited) await s.stop({ allowFailure: true });
  if (redis) await redis.remove();
});

async function start(args = []) {
  const srv = await startServer({ app: APP, args: ['--workers', '2', '--metrics', '/metrics', ...args] });
  servers.push(srv);
  return srv;
}


// Chat sockets until there is one on each of two worker pids: { pid: client }.
async function onBothWorkers(srv, path = '/chat-pid') {
  const byPid = new Map();
  const extra = [];
  for (let i = 0; i < 60 && byPid.size < 2; i++) {
    const c = await WsClient.open(srv.wsUrl(path));
    const pid = (await c.next()).data.replace(/^pid /, '');
    if (byPid.has(pid)) extra.push(c);
    else byPid.set(pid, c);
  }
  for (const c of extra) c.ws.close();
  assert.equal(byPid.size, 2, 'connections never landed on two workers');
  return byPid;
}

// One request on a fresh connection (fetch keeps connections alive: they would all stay
// on one worker).
function get(srv, p) {
  return new Promise((resolve, reject) => {
    http.get(srv.url(p), { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}
const pidOf = async (srv) => JSON.parse((await get(srv, '/pid')).body).pid;

async function metric(srv, name) {
  const text = (await get(srv, '/metrics')).body;
  const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
  return m ? Number(m[1]) : NaN;
}

function workerPids(srv) {
  return [...srv.stderr.matchAll(/rtserver worker (\d+) \(pid (\d+)\) serving/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

let W;

test('two workers start behind one port, the supervisor says so once', async () => {
  W = await start();
  assert.match(W.stderr, /rtserver listening on http:\/\/127\.0\.0\.1:\d+\/ \(2 workers\)/);
  const pids = new Set(workerPids(W).map(([, p]) => p));
  assert.equal(pids.size, 2);
  assert.ok(!pids.has(W.pid), 'the supervisor serves no connection itself');
});

test('clients on both workers (their pids differ) chat with each other', async () => {
  const byPid = await onBothWorkers(W);
  const [[pa, a], [pb, b]] = [...byPid];
  assert.notEqual(pa, pb);
  a.ws.send('from a');
  b.ws.send('from b');
  for (const c of [a, b]) {
    const got = [(await c.next()).data, (await c.next()).data].sort();
    assert.deepEqual(got, ['from a', 'from b']);
    await assert.rejects(c.next(300), /no message within/);  // once each, no echo twice
  }
  a.ws.close(); b.ws.close();
});

async function stompConnect(srv) {
  const client = await connectStomp(srv.wsUrl('/ws'), { track: stompClients });
  // Which worker? It says at /user/queue/pid.
  const pid = new Promise((resolve) => client.subscribe('/user/queue/pid', (m) => resolve(m.body)));
  await sleep(20);
  client.publish({ destination: '/app/pid' });
  client.pid = await within(pid, 'the pid reply');
  return client;
}

test('STOMP across workers: the order push made on one worker reaches a browser on the other', async () => {
  const byPid = new Map();
  for (let i = 0; i < 40 && byPid.size < 2; i++) {
    const c = await stompConnect(W);
    if (!byPid.has(c.pid)) byPid.set(c.pid, c);
  }
  assert.equal(byPid.size, 2, 'STOMP sessions never landed on two workers');
  const inboxes = [];
  for (const c of byPid.values()) {
    const inbox = [];
    const receipt = `r${Math.random()}`;
    const ok = new Promise((r) => c.watchForReceipt(receipt, r));
    c.subscribe('/topic/order/9', (m) => inbox.push(m), { receipt });
    await within(ok, 'subscribe receipt');
    inboxes.push(inbox);
  }
  // HTTP PUTs land on either worker; every browser gets every push. (Order holds per
  // publishing process: two PUTs served by different workers may arrive either way round.)
  for (let i = 0; i < 6; i++) {
    const r = await new Promise((resolve, reject) => {
      const req = http.request(W.url('/orders/9/status'), { method: 'PUT', agent: false }, resolve);
      req.on('error', reject);
      req.end(JSON.stringify({ status: `s${i}` }));
    });
    assert.equal(r.statusCode, 200);
    r.resume();
  }
  const until = Date.now() + WAIT;
  while (inboxes.some((b) => b.length < 6) && Date.now() < until) await sleep(20);
  for (const inbox of inboxes) {
    assert.deepEqual(inbox.map((m) => JSON.parse(m.body).status).sort(), ['s0', 's1', 's2', 's3', 's4', 's5']);
    assert.equal(inbox[0].headers['content-type'], 'application/json');
  }
});

test('/metrics answers for the whole server: requests on both workers are counted', async () => {
  const before = await metric(W, 'rtserver_http_requests_total');
  const pids = new Set();
  for (let i = 0; i < 30; i++) pids.add(await pidOf(W));
  assert.equal(pids.size, 2, 'requests never landed on two workers');
  const afterN = await metric(W, 'rtserver_http_requests_total');
  // One worker alone served about half: only a sum reaches 30.
  assert.ok(afterN - before >= 31, `total went from ${before} to ${afterN}`);
});

function post(srv, p, body = '') {
  return new Promise((resolve, reject) => {
    const req = http.request(srv.url(p), { method: 'POST', agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('SockJS xhr-polling works whichever worker each request of the session lands on', async () => {
  const base = `/sockchat/000/s${Date.now()}`;
  const opened = await post(W, base + '/xhr');
  assert.equal(opened.body, 'o\n');
  const byPid = await onBothWorkers(W);
  // Every request on a fresh connection: the kernel spreads them over both workers; the
  // one without the session passes it on.
  for (let i = 0; i < 12; i++) {
    const sent = await post(W, base + '/xhr_send', JSON.stringify([`m${i}`]));
    assert.equal(sent.status, 204, `xhr_send ${i}: ${sent.status} ${sent.body}`);
    const polled = await post(W, base + '/xhr');
    assert.equal(polled.body, `a["m${i}"]\n`, `poll ${i}`);
    for (const c of byPid.values()) assert.equal((await c.next()).data, `m${i}`);
  }
  for (const c of byPid.values()) c.ws.close();
});

test('a worker that falls behind (relayed messages dropped) tells subscribers of topics with history', async () => {
  const byPid = await onBothWorkers(W, '/hist-pid/big');
  const [[slowPid, slow], [, fast]] = [...byPid];
  const seen = [];
  slow.ws.on('message', (d) => { if (String(d).startsWith('lost')) seen.push(String(d)); });
  // The slow worker stops reading its link; 64 MiB relayed to it pass the link's 32 MiB
  // bound (in batches over several loop turns: the publishing worker's own link is bounded).
  process.kill(Number(slowPid), 'SIGSTOP');
  try {
    for (let batch = 0; batch < 8; batch++) {
      fast.ws.send('8 1048576 big');
      for (;;) {
        const m = await fast.next(30000 * SLOW);
        if (m.data === 'done') break;
      }
      await sleep(100);
    }
    await W.waitForStderr(/worker \d is not keeping up; \d+ relayed message\(s\) dropped/, { timeoutMs: 10000 * SLOW });
  } finally {
    process.kill(Number(slowPid), 'SIGCONT');
  }
  for (let i = 0; i < 200 && !seen.length; i++) await sleep(50);
  assert.deepEqual(seen, ['lost hist/big'], 'the subscriber on the slow worker is told, once');
  slow.ws.close(); fast.ws.close();
});

test('a killed worker is restarted; the other keeps its connections meanwhile', async () => {
  const byPid = await onBothWorkers(W);
  const [[victimPid, victim], [survivorPid, survivor]] = [...byPid];
  const from = W.stderr.length;
  process.kill(Number(victimPid), 'SIGKILL');
  assert.equal((await victim.closed).code, 1006);
  await W.waitForStderr(new RegExp(`worker \\d \\(pid ${victimPid}\\) was killed by signal 9; restarting`), { from });
  await W.waitForStderr(/worker \d \(pid \d+\) is serving again/, { from });
  // The survivor's socket is still open and served; a new worker pid answers again.
  const probe = await WsClient.open(W.wsUrl('/chat-pid'));
  await probe.next();
  probe.ws.send('after the crash');
  assert.equal((await survivor.next()).data, 'after the crash');
  const pids = new Set();
  for (let i = 0; i < 40 && pids.size < 2; i++) pids.add(await pidOf(W));
  assert.equal(pids.size, 2);
  assert.ok(!pids.has(victimPid) && pids.has(survivorPid));
  probe.ws.close(); survivor.ws.close();
});

test('SIGHUP reloads every worker', async () => {
  const from = W.stderr.length;
  process.kill(W.pid, 'SIGHUP');
  await W.waitForStderr(/reloaded [^\n]*cluster\.lua[^]*reloaded [^\n]*cluster\.lua/, { from });
});

test('SIGTERM drains every worker and the supervisor exits 0', async () => {
  const c = await WsClient.open(W.wsUrl('/chat-pid'));
  await c.next();
  const exited = await W.stop();
  assert.equal(exited.code, 0);
  assert.match(W.stderr, /draining 2 worker\(s\)/);
  assert.equal((W.stderr.match(/worker \d \(pid \d+\) exited with status 0/g) || []).length, 2);
  assert.equal((await c.closed).code, 1001);  // a goodbye, not a dropped connection
});

test('a worker that cannot start stops the supervisor with a failure', async () => {
  const { runServer } = require('./lib/server');
  const r = await runServer(['--workers', '2', '--port', '0', require('node:path').resolve(__dirname, 'apps/no-such-app.lua')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /cannot read app script/);
  assert.match(r.stderr, /before the server was up; stopping/);
});

test('--workers 2 with --engine: the workers share topics through Redis', async () => {
  redis = await startRedis();
  const R = await start(['--engine', redis.url]);
  const byPid = await onBothWorkers(R);
  const [a, b] = [...byPid.values()];
  await redis.waitSubscribers('rt:chat', 2);
  a.ws.send('through redis');
  assert.equal((await b.next()).data, 'through redis');
  assert.equal((await a.next()).data, 'through redis');
  const n = await redis.cli('PUBSUB', 'NUMSUB', 'rt:chat');
  assert.equal(n[1], '2', 'each worker subscribed in Redis');
  a.ws.close(); b.ws.close();
  assert.equal((await R.stop()).code, 0);
});

test('a fixed STOMP TCP port is shared by the workers too (SO_REUSEPORT)', async () => {
  const net = require('node:net');
  const { freePort } = require('./lib/redis');
  const tcpPort = await freePort();
  const srv = await startServer({ app: APP, args: ['--workers', '2'], env: { RT_STOMP_TCP_PORT: String(tcpPort) } });
  servers.push(srv);
  // Both workers bind it (one that could not would fail, and the supervisor with it).
  await srv.waitForStderr(new RegExp(`STOMP over TCP listening on [^\n]*:${tcpPort}[^]*STOMP over TCP listening on [^\n]*:${tcpPort}`));
  const reply = await new Promise((resolve, reject) => {
    const s = net.connect(tcpPort, '127.0.0.1', () => s.write('CONNECT\naccept-version:1.2\nhost:x\n\n\0'));
    let got = '';
    s.on('data', (d) => { got += d; if (got.includes('\0')) { s.destroy(); resolve(got); } });
    s.on('error', reject);
  });
  assert.match(reply, /^CONNECTED\n/);
  assert.equal((await srv.stop()).code, 0);
});

test('SIGTERM to the whole group at once (Ctrl-C, systemd) is one drain, not "stop now"', async () => {
  const srv = await start();
  const c = await WsClient.open(srv.wsUrl('/chat-pid'));
  await c.next();
  const all = [srv.pid, ...workerPids(srv).map(([, p]) => p)];
  for (const p of all) process.kill(p, 'SIGTERM');
  for (const p of all) process.kill(p, 'SIGTERM');
  const exited = await srv.stop();
  assert.equal(exited.code, 0);
  assert.doesNotMatch(srv.stderr, /stopping now|stopping the workers now/);
  assert.equal((srv.stderr.match(/worker \d \(pid \d+\) exited with status 0/g) || []).length, 2);
  assert.equal((await c.closed).code, 1001);
});
