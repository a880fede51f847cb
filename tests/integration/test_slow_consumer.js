// A subscriber that stops reading is cut off (close 1008) once --max-output bytes wait for
// it; the server's memory stays bounded and the other subscribers get every message.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep, ASAN, SLOW } = require('./lib/server');
const { wsConnect } = require('./lib/raw');
const { Client } = require('./lib/wsclient');

const MAX_OUTPUT = 65536;
const MSG = 16 * 1024;
const TOTAL = 40 * 1024 * 1024;   // far more than the socket buffers and the bound together
const RSS_GROWTH_LIMIT_KIB = 16 * 1024;
const WINDOW = 3;

async function setup() {
  // ASan keeps freed memory in quarantine (256 MB by default), which would look like growth.
  const env = ASAN ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || ''}:quarantine_size_mb=4`.replace(/^:/, '') } : {};
  const srv = await startServer({
    app: 'apps/echo.lua',
    args: ['--max-output', String(MAX_OUTPUT), '--ws-ping', '0', '--ws-idle', '0'],
    env,
  });
  // The slow one: subscribes, then stops reading from its socket.
  const { conn: slow, res } = await wsConnect(srv.port, '/sub/bulk');
  assert.equal(res.status, 101);
  assert.equal((await slow.readFrame()).payload.toString(), 'subscribed bulk');
  slow.sock.pause();

  const fast = await Client.open(srv.wsUrl('/sub/bulk'));
  assert.equal(await fast.nextText(), 'subscribed bulk');
  // Counted as they come instead of queued: thousands of 16 KiB messages.
  const stats = { received: 0, inOrder: true };
  fast.ws.removeAllListeners('message');
  fast.ws.on('message', (data) => {
    const seq = Number(data.toString('latin1', 0, 12));
    if (seq !== stats.received) stats.inOrder = false;
    stats.received += 1;
  });
  const pub = await Client.open(srv.wsUrl('/pub/bulk'));
  return { srv, slow, fast, pub, stats };
}

// Publishes n numbered messages, a few in flight, with the fast reader close behind (as a
// flow-controlled publisher would keep it: the fast one must never look slow itself).
// Stops early once until() is true. Returns the highest RSS seen and how many were sent.
async function flood({ srv, pub, stats }, n, until = () => false) {
  const pad = 'p'.repeat(MSG - 12);
  let acked = 0, rssMax = 0, seq = 0;
  for (; seq < n && !until(); seq++) {
    pub.ws.send(String(seq).padStart(12, '0') + pad);
    while (seq - acked >= WINDOW) {
      await pub.nextText(10000 * SLOW);
      acked += 1;
    }
    while (stats.received < seq - WINDOW) await new Promise((r) => setImmediate(r));
    if (seq % 64 === 0) rssMax = Math.max(rssMax, srv.rssKiB());
  }
  while (acked < seq) { await pub.nextText(10000 * SLOW); acked += 1; }
  const deadline = Date.now() + 10000 * SLOW;
  while (stats.received < seq && Date.now() < deadline) await sleep(5);
  return { rssMax: Math.max(rssMax, srv.rssKiB()), sent: seq };
}

async function deliveries(pub) {
  await pub.send('count');
  return Number((await pub.nextText()).split(' ')[1]);
}

test('a subscriber that never reads is closed with 1008; memory stays bounded; others get everything', async () => {
  const ctx = await setup();
  const { srv, slow, fast, pub, stats } = ctx;
  try {
    await sleep(100);
    const rss0 = srv.rssKiB();
    const cutAt = srv.stderr.length;
    const t0 = Date.now();
    const { rssMax, sent } = await flood(ctx, TOTAL / MSG);
    const floodMs = Date.now() - t0;

    // Memory: a server that queued everything for the slow consumer would grow by ~TOTAL.
    const growth = rssMax - rss0;
    assert.ok(growth < RSS_GROWTH_LIMIT_KIB,
      `server RSS grew by ${growth} KiB (from ${rss0} KiB) while ${TOTAL >> 20} MiB went out in ${floodMs} ms`);

    // The fast subscriber got everything, in order.
    assert.equal(stats.received, sent);
    assert.equal(sent, TOTAL / MSG);
    assert.ok(stats.inOrder, 'messages arrived out of order');

    // The server noticed, at the bound.
    const cut = await srv.waitForStderr(/slow consumer, (\d+) bytes unsent/, { from: cutAt });
    assert.ok(Number(cut[1]) > MAX_OUTPUT && Number(cut[1]) <= MAX_OUTPUT + MSG + 16, `cut at ${cut[1]} bytes`);

    // The slow one reads again: whole frames of the stream, in order, then close 1008.
    slow.sock.resume();
    let close;
    try {
      close = await slow.readClose({ timeoutMs: 10000 * SLOW });
    } catch (e) {
      assert.fail(`no close frame for the slow consumer: ${e.message}`);
    }
    assert.equal(close.code, 1008, `close ${close.code} ${close.reason}`);
    close.frames.forEach((f, i) => {
      assert.equal(Number(f.payload.toString('latin1', 0, 12)), i, `frame ${i} out of order`);
    });
    assert.ok(close.frames.length < sent, 'the slow consumer got everything after all');
    assert.ok(await slow.waitClosed(), "the slow consumer's TCP connection stayed open");

    // It has left the topic; the others are still served.
    stats.received = -Infinity;   // 'count' messages are not part of the sequence
    assert.equal(await deliveries(pub), 1);
    await fast.close(1000);
    await pub.close(1000);
  } finally {
    slow.destroy();
    await srv.stop();
  }
});

test('a cut-off consumer that never reads again is let go after the close grace (5 s)', async () => {
  const ctx = await setup();
  const { srv, slow, fast, pub, stats } = ctx;
  try {
    const cutAt = srv.stderr.length;
    const cutLogged = () => /slow consumer/.test(srv.stderr.slice(cutAt));
    await flood(ctx, TOTAL / MSG, cutLogged);
    await srv.waitForStderr(/slow consumer/, { from: cutAt });
    const tCut = Date.now();
    stats.received = -Infinity;
    // conn.c gives a closing peer CLOSE_GRACE = 5 s to take its last bytes. Wall-clock
    // time, so not scaled for sanitizer builds.
    let n;
    while ((n = await deliveries(pub)) !== 1 && Date.now() - tCut < 8000) await sleep(250);
    assert.equal(n, 1, `the slow consumer was still subscribed ${Date.now() - tCut} ms after it was cut off`);
    await fast.close(1000);
    await pub.close(1000);
  } finally {
    slow.destroy();
    await srv.stop();
  }
});
