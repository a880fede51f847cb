// SockJS with the npm sockjs-client (1.6.1, in Node) against apps/sockjs_echo.lua and
// apps/sockjs_stomp.lua: each transport forced in turn, messages both ways, a clean close
// from either side; one chat topic shared by SockJS sessions on different transports and a
// plain WebSocket; the raw WebSocket at <prefix>/websocket; the SockJS websocket transport
// from raw frames (heartbeats, broken framing); STOMP over SockJS with @stomp/stompjs.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const SockJS = require('sockjs-client');
const WebSocket = require('ws');
const { Client: StompClient } = require('@stomp/stompjs');
const { startServer, SLOW } = require('./lib/server');
const { Client: WsClient } = require('./lib/wsclient');

const WAIT = 5000 * SLOW;
// sockjs-client's transport names, and what the server calls them (ws.transport).
const TRANSPORTS = { websocket: 'websocket', 'xhr-streaming': 'xhr_streaming', 'xhr-polling': 'xhr', eventsource: 'eventsource' };

let echo, stomp;

before(async () => {
  echo = await startServer({ app: 'apps/sockjs_echo.lua' });
  stomp = await startServer({ app: 'apps/sockjs_stomp.lua', env: { SOCKJS_HEARTBEAT: '0.2', STOMP_HEARTBEAT: '200' } });
});

after(async () => {
  if (echo) await echo.stop();
  if (stomp) await stomp.stop();
});

function within(promise, what, ms = WAIT) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

// A SockJS client with a message queue: await s.next().
function open(srv, prefix, transport) {
  const sock = new SockJS(srv.url(prefix), null, { transports: [transport] });
  const queue = [], waiters = [];
  const s = { sock, queue };
  s.closed = new Promise((resolve) => { sock.onclose = (e) => { s.closeEvent = e; resolve(e); }; });
  sock.onmessage = (e) => {
    queue.push(e.data);
    while (waiters.length && queue.length) waiters.shift()(queue.shift());
  };
  s.next = (what = 'a message') => within(new Promise((resolve) => {
    if (queue.length) resolve(queue.shift());
    else waiters.push(resolve);
  }), `${what} over ${transport}`);
  s.opened = within(new Promise((resolve, reject) => {
    sock.onopen = () => resolve(s);
    s.closed.then((e) => reject(new Error(`closed before open: ${e.code} ${e.reason}`)));
  }), `open over ${transport}`);
  return s;
}

async function closes() {
  return (await fetch(echo.url('/closes'))).json();
}

for (const [transport, name] of Object.entries(TRANSPORTS)) {
  test(`echo over ${transport}: messages both ways, closed by the server`, async () => {
    const s = await open(echo, '/echo', transport).opened;
    assert.equal(s.sock.transport, transport);
    s.sock.send('who');
    assert.equal(await s.next(), `transport=${name}`);
    // Text that JSON and SockJS's escaping must carry unchanged.
    const texts = ['plain', 'quote " backslash \\ slash /', 'line\nbreak\ttab', '你好，服务器',
                   'emoji 😀 and U+2028 \u2028 U+FEFF \ufeff', '', 'x'.repeat(10000), '</script>'];
    for (const t of texts) s.sock.send(t);
    for (const t of texts) assert.equal(await s.next(), t);
    s.sock.send('close');
    const e = await within(s.closed, 'the close');
    assert.equal(e.code, 3001);
    assert.equal(e.reason, 'asked to close');
  });

  test(`echo over ${transport}: closed by the client, the server's close handler runs`, async () => {
    const s = await open(echo, '/tight', transport).opened;
    s.sock.send('ping');
    assert.equal(await s.next(), 'ping');
    const before = (await closes()).length;
    s.sock.close();
    await within(s.closed, 'the close');
    // A WebSocket says so at once (1006). Over HTTP, sockjs-client's close aborts the
    // receiving request, which closes the session at once with 1002 (what was written to
    // that request may be lost). xhr-polling may be between two polls instead, with no
    // request to abort: then the disconnect delay (0.5 s) ends the session (1006).
    await within((async () => {
      while ((await closes()).length === before) await new Promise((r) => setTimeout(r, 50));
    })(), 'the server-side close');
    const last = (await closes()).at(-1);
    if (transport === 'websocket') assert.deepEqual([last.code, last.reason], [1006, 'client went away']);
    else if (transport === 'xhr-polling' && last.code === 1006) assert.equal(last.reason, 'session timed out');
    else assert.deepEqual([last.code, last.reason], [1002, 'Connection interrupted']);
  });
}

test('chat: one topic reaches SockJS sessions on every transport and a plain WebSocket', async () => {
  const socks = [];
  for (const transport of Object.keys(TRANSPORTS)) {
    const s = await open(echo, '/chat', transport).opened;
    assert.equal(await s.next('the welcome'), 'welcome');
    socks.push(s);
  }
  const ws = await WsClient.open(echo.wsUrl('/chat-ws'));
  // Everyone says something; everyone hears everything, in each sender's order.
  const said = [];
  for (const [i, s] of socks.entries()) for (let k = 0; k < 3; k++) { const m = `s${i}-${k}`; said.push(m); s.sock.send(m); }
  for (let k = 0; k < 3; k++) { const m = `ws-${k}`; said.push(m); ws.send(m); }
  for (const s of socks) {
    const got = [];
    for (let i = 0; i < said.length; i++) got.push(await s.next('a chat line'));
    assert.deepEqual([...got].sort(), [...said].sort());
    for (const prefix of ['s0-', 's1-', 's2-', 's3-', 'ws-']) {
      const mine = got.filter((m) => m.startsWith(prefix));
      assert.deepEqual(mine, said.filter((m) => m.startsWith(prefix)), `order of ${prefix}`);
    }
  }
  const wsGot = [];
  for (let i = 0; i < said.length; i++) wsGot.push((await ws.next()).data);
  assert.deepEqual(wsGot.sort(), [...said].sort());
  for (const s of socks) s.sock.close();
  ws.close();
});

test('the raw WebSocket at <prefix>/websocket echoes unframed', async () => {
  const ws = await WsClient.open(echo.wsUrl('/echo/websocket'));
  ws.send('who');
  assert.equal((await ws.next()).data, 'transport=raw_websocket');
  ws.send('hello raw');
  assert.equal((await ws.next()).data, 'hello raw');
  ws.send('close');
  const info = await within(ws.closed, 'the close');
  assert.equal(info.code, 3001);
});

test('the websocket transport from raw frames: o, heartbeats, a[...], broken framing', async () => {
  // The session, and so its 300 ms heartbeat timer, cannot start before we ask for it:
  // timed from here, not from when a busy client got round to reading 'o', the first 'h'
  // comes 300 ms later at the earliest however loaded the machine is.
  const t0 = performance.now();
  const ws = await WsClient.open(echo.wsUrl('/tight/000/rawsession/websocket'));
  assert.equal((await ws.next()).data, 'o');
  assert.equal((await ws.next()).data, 'h');
  const waited = performance.now() - t0;
  assert.ok(waited >= 250, `heartbeat came too early: ${waited.toFixed(0)} ms after the open`);
  // From here on a slow run may see more heartbeats between the frames it waits for.
  const nextData = async () => { for (;;) { const m = await ws.next(); if (m.data !== 'h') return m; } };
  // Two messages in: their echoes, sent in the same loop turn, leave as one frame.
  ws.send('["one","two"]');
  assert.equal((await nextData()).data, 'a["one","two"]');
  ws.send('"single"');
  assert.equal((await nextData()).data, 'a["single"]');
  // Broken JSON ends the WebSocket at once, with no SockJS close frame (as sockjs-node).
  ws.send('["broken');
  const info = await within(ws.closed, 'the close');
  assert.deepEqual([info.code, info.reason], [1002, 'Broken framing.']);
  assert.deepEqual(ws.queue.filter((m) => m.data !== 'h'), [], 'no frame after the broken one');
});

// ---- STOMP over SockJS --------------------------------------------------------------------

async function stompConnect(transport, opts = {}) {
  const client = new StompClient({
    webSocketFactory: () => new SockJS(stomp.url('/ws'), null, { transports: [transport] }),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {}, ...opts,
  });
  const connected = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(`STOMP ERROR ${f.headers.message}`));
    client.onWebSocketClose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
  });
  client.activate();
  const frame = await within(connected, `STOMP CONNECTED over ${transport}`);
  return { client, frame };
}

function subscribed(client, dest, onMessage) {
  return new Promise((resolve) => {
    const receipt = `r-${Math.random()}`;
    client.watchForReceipt(receipt, resolve);
    client.subscribe(dest, onMessage, { receipt });
  });
}

for (const transport of Object.keys(TRANSPORTS)) {
  test(`STOMP over SockJS ${transport}: /app/chat to /topic/messages, shared with a raw WebSocket`, async () => {
    const { client, frame } = await stompConnect(transport);
    assert.equal(frame.headers.version, '1.2');
    const got = [];
    let wake;
    await subscribed(client, '/topic/messages', (m) => { got.push(JSON.parse(m.body)); if (wake) wake(); });
    const raw = await WsClient.open(stomp.wsUrl('/raw'));
    await new Promise((r) => setTimeout(r, 50 * SLOW));  // its subscription happens in open
    client.publish({ destination: '/app/chat', body: JSON.stringify({ user: 'ann', content: `你好 ${transport}` }) });
    await within(new Promise((r) => { wake = r; if (got.length) r(); }), 'the chat message');
    assert.deepEqual(got[0], { user: 'ann', content: `你好 ${transport}` });
    assert.deepEqual(JSON.parse((await raw.next()).data), got[0]);
    // A publish from HTTP reaches it too.
    await fetch(stomp.url('/publish'), { method: 'POST', body: '{"from":"http"}' });
    await within(new Promise((r) => { wake = r; if (got.length > 1) r(); }), 'the HTTP publish');
    assert.deepEqual(got[1], { from: 'http' });
    raw.close();
    await client.deactivate();
  });
}

test('STOMP heart-beats over SockJS xhr-polling, both ways, keep the session open', async () => {
  // HB each way and nothing else to say: stompjs drops a connection that stays silent past
  // twice its incoming interval, the server one whose client is silent 1.5 HB (it checks
  // every HB / 2, so it gives up by 2 HB). The server allows only HB / 2 beyond stompjs's
  // interval: 300 ms (150 to spare) failed under load, so 1 s, 3 s in the slower
  // sanitized build; the wait outlasts 2 HB.
  const HB = 1000 * SLOW;
  let pings = 0, pongs = 0;
  const debug = (m) => { if (m === '>>> PING') pings++; else if (m === '<<< PONG') pongs++; };
  const { client, frame } = await stompConnect('xhr-polling', { heartbeatIncoming: HB, heartbeatOutgoing: HB, debug });
  assert.equal(frame.headers['heart-beat'], `${HB},${HB}`);
  let closed = null;
  client.onWebSocketClose = (e) => { closed = e; };
  await new Promise((r) => setTimeout(r, 2 * HB + 1000));
  assert.equal(closed, null, 'the session closed');
  assert.ok(client.connected);
  // Both sides did beat: the session stayed open because of them, not in spite of none.
  assert.ok(pings >= 1, `${pings} heart-beats sent`);
  assert.ok(pongs >= 2, `${pongs} heart-beats received`);
  await client.deactivate();
});

// ---- reload and shutdown ------------------------------------------------------------------

test('a reload swaps the handlers; open SockJS sessions keep going', async () => {
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-sockjs-reload-'));
  const app = path.join(dir, 'app.lua');
  const version = (v) => `local rt = require "rt"\nrt.sockjs("/r", { message = function(ws, t) ws:send("${v}:" .. t) end })\n`;
  fs.writeFileSync(app, version('v1'));
  const srv = await startServer({ app });
  try {
    const socks = [];
    for (const transport of ['xhr-streaming', 'websocket']) {
      const s = await open(srv, '/r', transport).opened;
      s.sock.send('a');
      assert.equal(await s.next(), 'v1:a');
      socks.push(s);
    }
    fs.writeFileSync(app, version('v2'));
    const from = srv.stderr.length;
    srv.child.kill('SIGHUP');
    await srv.waitForStderr(/reloaded/, { from });
    for (const s of socks) {
      s.sock.send('b');
      assert.equal(await s.next(), 'v2:b');
      s.sock.close();
    }
  } finally {
    await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a server that stops closes SockJS sessions with 1001 and exits', async () => {
  const srv = await startServer({ app: 'apps/sockjs_echo.lua' });
  const socks = [];
  for (const transport of Object.keys(TRANSPORTS)) socks.push(await open(srv, '/echo', transport).opened);
  const stopped = srv.stop();
  for (const s of socks) {
    const e = await within(s.closed, `the close over ${s.sock.transport}`);
    assert.equal(e.code, 1001, `${s.sock.transport}: ${e.code} ${e.reason}`);
  }
  const exit = await stopped;
  assert.equal(exit.code, 0);
});

test('STOMP over SockJS on a server that stops: ERROR "server shutting down", then 1001', async () => {
  const srv = await startServer({ app: 'apps/sockjs_stomp.lua' });
  const client = new StompClient({
    webSocketFactory: () => new SockJS(srv.url('/ws'), null, { transports: ['xhr-streaming'] }),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
  });
  const connected = new Promise((resolve) => { client.onConnect = resolve; });
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  const closed = new Promise((resolve) => { client.onWebSocketClose = resolve; });
  client.activate();
  await within(connected, 'CONNECTED');
  const stopped = srv.stop();
  assert.equal((await within(error, 'the ERROR frame')).headers.message, 'server shutting down');
  assert.equal((await within(closed, 'the close')).code, 1001);
  assert.equal((await stopped).code, 0);
  await client.deactivate();
});

test('with sockjs on, STOMP over a raw WebSocket still works at <endpoint> and <endpoint>/websocket', async () => {
  for (const p of ['/ws', '/ws/websocket']) {
    const client = new StompClient({
      webSocketFactory: () => new WebSocket(stomp.wsUrl(p), ['v12.stomp', 'v11.stomp', 'v10.stomp']),
      reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0, debug: () => {},
    });
    const connected = new Promise((resolve, reject) => {
      client.onConnect = resolve;
      client.onWebSocketClose = (e) => reject(new Error(`${p}: closed ${e.code}`));
    });
    client.activate();
    const frame = await within(connected, `CONNECTED at ${p}`);
    assert.equal(frame.headers.version, '1.2');
    await client.deactivate();
  }
});
