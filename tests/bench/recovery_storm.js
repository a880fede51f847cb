// The client side of the recovery storm (tests/bench/history_run.sh; server:
// recovery_app.lua). Two steps, each its own process, so the script can read Redis's and
// the node's counters between them:
//
//   node recovery_storm.js prepare --port P --topic T -c 1000 -n 100
//     C clients subscribe to T on P and each gets one message; then all disconnect and N
//     messages are published on P. Prints "POSITION <epoch> <offset>": where the clients
//     were when they left. A witness client stays subscribed and sees the N messages
//     through, so they are all in the history (in Redis too) before this step ends.
//   node recovery_storm.js recover --port P --topic T --epoch E --offset O -c 1000 -n 100
//     C clients reconnect to P, then all ask at once to resume from their place (the Lua
//     API over WebSocket); each must get the N messages, in order and once each, and
//     "recovered:true". Prints "RESULT secs=... open_secs=... clients=... recovered=...
//     not_recovered=... bad=... missing=...": secs from the asking to the last client
//     done; open_secs, before it, the time to open the C connections.
'use strict';
const WebSocket = require('ws');

const TIMEOUT_MS = 60000;

function parseArgs(argv) {
  const o = { step: argv[0], port: 0, topic: 'storm/0', c: 1000, n: 100, epoch: '', offset: 0 };
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i].replace(/^-+/, ''), v = argv[i + 1];
    o[k] = ['port', 'c', 'n', 'offset'].includes(k) ? Number(v) : v;
  }
  return o;
}

function url(o, path) { return `http://127.0.0.1:${o.port}${path}`; }
function wsUrl(o, query) { return `ws://127.0.0.1:${o.port}/storm?topic=${encodeURIComponent(o.topic)}${query}`; }

function within(promise, ms, what) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

// Opens a client that hands every text message to onText; resolves once open.
function open(address, onText) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(address, { perMessageDeflate: false });
    ws.on('message', (data) => onText(data.toString()));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

// A client that resolves `done` once it has seen `want` messages matching pred.
function counting(address, want, pred) {
  let seen = 0, finish;
  const done = new Promise((resolve) => { finish = resolve; });
  return open(address, (text) => { if (pred(text) && ++seen === want) finish(); })
    .then((ws) => ({ ws, done }));
}

async function publish(o, from, n) {
  const res = await fetch(url(o, `/storm/publish?topic=${encodeURIComponent(o.topic)}&from=${from}&n=${n}`),
                          { method: 'POST' });
  if (res.status !== 200) throw new Error(`publish: HTTP ${res.status} ${await res.text()}`);
}

async function prepare(o) {
  // Subscribed: each client has "subscribed", then message m0 (its last before leaving).
  const clients = await Promise.all([...Array(o.c)].map(() => counting(wsUrl(o, ''), 1, (t) => t === 'm0')));
  const witness = await counting(wsUrl(o, ''), 1 + o.n, (t) => /^m\d+$/.test(t));
  await publish(o, 0, 1);
  await within(Promise.all(clients.map((c) => c.done)), TIMEOUT_MS, 'every client to get m0');
  const pos = await (await fetch(url(o, `/storm/position?topic=${encodeURIComponent(o.topic)}`))).json();
  if (!pos.epoch || !pos.offset) throw new Error(`no position: ${JSON.stringify(pos)}`);
  // All away; the topic moves on by n messages meanwhile.
  await Promise.all(clients.map((c) => new Promise((resolve) => { c.ws.once('close', resolve); c.ws.close(); })));
  await publish(o, 1, o.n);
  await within(witness.done, TIMEOUT_MS, `the witness to get ${o.n} messages`);
  witness.ws.close();
  console.log(`POSITION ${pos.epoch} ${pos.offset}`);
}

// One returning client, connected and waiting: after ask(), expects m1..mN in order and,
// before or after them, the outcome.
function returning(o, stats) {
  let next = 1, outcome = null, finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const check = () => { if (outcome !== null && next > o.n) finish(); };
  return open(wsUrl(o, '&hold=1'), (text) => {
    if (text.startsWith('recovered:')) {
      outcome = text === 'recovered:true';
      stats[outcome ? 'recovered' : 'not_recovered']++;
      if (!outcome) next = o.n + 1;  // nothing old comes: the app would reload its state
    } else if (text === `m${next}`) {
      next++;
    } else if (next <= o.n) {
      stats.bad++;                   // out of order, a duplicate, or a "lost" notice
    }
    check();
  }).then((ws) => ({
    ws, done,
    ask: () => ws.send(`since ${o.epoch} ${o.offset}`),
    missing: () => Math.max(0, o.n + 1 - next),
  }));
}

async function recover(o) {
  const stats = { recovered: 0, not_recovered: 0, bad: 0 };
  // Connected first (not timed: the client opens them one loop turn at a time), then all
  // ask in one go, so every request reaches the server within a few of its loop turns.
  const o0 = process.hrtime.bigint();
  const clients = await Promise.all([...Array(o.c)].map(() => returning(o, stats)));
  const openSecs = Number(process.hrtime.bigint() - o0) / 1e9;
  const t0 = process.hrtime.bigint();
  for (const c of clients) c.ask();
  let timedOut = 0;
  await within(Promise.all(clients.map((c) => c.done)), TIMEOUT_MS, 'every client to recover')
    .catch(() => { timedOut = 1; });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const missing = clients.reduce((sum, c) => sum + c.missing(), 0);
  for (const c of clients) c.ws.terminate();
  console.log(`RESULT secs=${secs.toFixed(3)} open_secs=${openSecs.toFixed(3)} clients=${o.c} ` +
              `recovered=${stats.recovered} not_recovered=${stats.not_recovered} bad=${stats.bad} ` +
              `missing=${missing} timed_out=${timedOut}`);
}

const o = parseArgs(process.argv.slice(2));
const steps = { prepare, recover };
if (!steps[o.step]) {
  console.error('usage: recovery_storm.js prepare|recover --port P --topic T [-c C] [-n N] [--epoch E --offset O]');
  process.exit(2);
}
steps[o.step](o).then(() => process.exit(0), (e) => { console.error(`recovery_storm: ${e.message}`); process.exit(1); });
