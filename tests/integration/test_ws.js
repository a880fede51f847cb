// WebSocket behaviour seen through npm `ws`: apps/chat.lua and the echo test app.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { startServer, sleep, ROOT, SLOW } = require('./lib/server');
const { Client } = require('./lib/wsclient');

describe('apps/chat.lua', () => {
  let srv;
  before(async () => { srv = await startServer({ app: path.join(ROOT, 'apps/chat.lua') }); });
  after(async () => { await srv.stop(); });

  test('join notices, relayed messages and leave notices reach every client', async () => {
    const a = await Client.open(srv.wsUrl('/chat'));
    assert.equal(await a.nextText(), 'server: welcome, you are guest1');
    assert.equal(await a.nextText(), 'server: guest1 joined (1 online)');

    const b = await Client.open(srv.wsUrl('/chat'));
    assert.equal(await b.nextText(), 'server: welcome, you are guest2');
    assert.equal(await b.nextText(), 'server: guest2 joined (2 online)');
    assert.equal(await a.nextText(), 'server: guest2 joined (2 online)');

    const c = await Client.open(srv.wsUrl('/chat'));
    assert.equal(await c.nextText(), 'server: welcome, you are guest3');
    for (const x of [a, b, c]) assert.equal(await x.nextText(), 'server: guest3 joined (3 online)');

    await a.send('hello, all — ünïcödé ✓');
    for (const x of [a, b, c]) assert.equal(await x.nextText(), 'server relays guest1: hello, all — ünïcödé ✓');

    await c.send('second');
    for (const x of [a, b, c]) assert.equal(await x.nextText(), 'server relays guest3: second');

    const closed = await b.close(1000);
    assert.equal(closed.code, 1000);
    for (const x of [a, c]) assert.equal(await x.nextText(), 'server: guest2 left');

    // b is gone from the topic: the next message reaches exactly a and c.
    await a.send('after');
    for (const x of [a, c]) assert.equal(await x.nextText(), 'server relays guest1: after');
    assert.equal(b.queue.length, 0);
    a.close(1000);
    assert.equal(await c.nextText(), 'server: guest1 left');
    await c.close(1000);
  });

  test('a 512 KiB message is relayed whole to every subscriber', async () => {
    const a = await Client.open(srv.wsUrl('/chat'));
    const b = await Client.open(srv.wsUrl('/chat'));
    const big = crypto.randomBytes(384 * 1024).toString('base64');   // 512 KiB of text
    assert.equal(big.length, 512 * 1024);
    const name = (await a.nextText()).match(/you are (guest\d+)$/)[1];
    // Skip the join notices.
    while (!(await a.nextText()).includes('joined (2 online)'));
    while (!(await b.nextText()).includes('joined (2 online)'));
    await a.send(big);
    for (const x of [a, b]) {
      const got = await x.nextText(10000 * SLOW);
      assert.equal(got.length, `server relays ${name}: `.length + big.length);
      assert.ok(got === `server relays ${name}: ${big}`, 'relayed text differs from what was sent');
    }
    await a.close(1000);
    await b.close(1000);
  });
});

describe('echo app', () => {
  let srv;
  before(async () => { srv = await startServer({ app: 'apps/echo.lua' }); });
  after(async () => { await srv.stop(); });

  async function echoClient() {
    const c = await Client.open(srv.wsUrl('/echo'));
    assert.equal(await c.nextText(), 'hello -');
    return c;
  }

  async function monitor() {
    const m = await Client.open(srv.wsUrl('/events'));
    assert.equal(await m.nextText(), 'ready');
    return m;
  }

  test('binary messages come back binary and byte-exact', async () => {
    const c = await echoClient();
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    for (const payload of [all, crypto.randomBytes(100 * 1024), Buffer.alloc(0), Buffer.from([0, 0, 0])]) {
      await c.send(payload, { binary: true });
      const m = await c.next();
      assert.equal(m.binary, true);
      assert.ok(Buffer.compare(m.data, payload) === 0, `binary echo of ${payload.length} bytes differs`);
    }
    await c.close(1000);
  });

  test('a 512 KiB text message echoes whole', async () => {
    const c = await echoClient();
    const big = 'é'.repeat(256 * 1024);  // 512 KiB of two-byte characters
    assert.equal(Buffer.byteLength(big), 512 * 1024);
    await c.send(big);
    const got = await c.nextText(10000 * SLOW);
    assert.ok(got === big, 'echoed text differs');
    await c.close(1000);
  });

  test('messages the client fragments are reassembled (with a ping between fragments)', async () => {
    const c = await echoClient();
    await c.send('part one, ', { fin: false });
    await c.send('part two, ', { fin: false });
    c.ws.ping('mid');   // control frames may come between fragments (RFC 6455 5.4)
    await c.send('end', { fin: true });
    assert.equal(await c.nextText(), 'part one, part two, end');

    // A two-byte character split across fragments is still valid UTF-8 as a message.
    const bytes = Buffer.from('héllo');
    await c.send(bytes.subarray(0, 2), { fin: false, binary: false });
    await c.send(bytes.subarray(2), { fin: true, binary: false });
    assert.equal(await c.nextText(), 'héllo');

    // 512 KiB in eight 64 KiB fragments.
    const chunks = Array.from({ length: 8 }, (_, i) => String.fromCharCode(97 + i).repeat(64 * 1024));
    for (let i = 0; i < chunks.length; i++) await c.send(chunks[i], { fin: i === chunks.length - 1 });
    const got = await c.nextText(10000 * SLOW);
    assert.ok(got === chunks.join(''), 'reassembled message differs');

    // Binary fragments too.
    const bin = crypto.randomBytes(3000);
    await c.send(bin.subarray(0, 1000), { binary: true, fin: false });
    await c.send(bin.subarray(1000), { binary: true, fin: true });
    const m = await c.next();
    assert.equal(m.binary, true);
    assert.ok(Buffer.compare(m.data, bin) === 0);
    await c.close(1000);
  });

  test('a ping between fragments is answered before the reply to the message (Autobahn 5.6-5.8)', async () => {
    const c = await echoClient();
    const order = [];
    c.ws.on('pong', (d) => order.push(`pong ${d}`));
    c.ws.on('message', (d) => order.push(`message ${d}`));
    // Corked into one write, so the server sees the ping and the last fragment in one read.
    const sock = c.ws._socket;
    sock.cork();
    c.ws.send('first ', { fin: false });
    c.ws.ping('mid');
    c.ws.send('last', { fin: true });
    c.ws.ping('after');
    c.ws.send('next');
    sock.uncork();
    assert.equal(await c.nextText(), 'first last');
    assert.equal(await c.nextText(), 'next');
    assert.deepEqual(order, ['pong mid', 'message first last', 'pong after', 'message next']);
    await c.close(1000);
  });

  test('the server answers a ping with a pong carrying the same payload', async () => {
    const c = await echoClient();
    const pong = new Promise((resolve) => c.ws.once('pong', (d) => resolve(d.toString())));
    c.ws.ping('are you there?');
    assert.equal(await pong, 'are you there?');
    await c.close(1000);
  });

  test("the close handler sees the client's close code and reason", async () => {
    const m = await monitor();
    const a = await echoClient();
    assert.equal((await a.close(1000)).code, 1000);
    assert.equal(await m.nextText(), 'close /echo 1000 ');

    const b = await echoClient();
    assert.equal((await b.close(4000, 'custom reason')).code, 4000);
    assert.equal(await m.nextText(), 'close /echo 4000 custom reason');

    // No code at all is reported as 1005, a dropped TCP connection as 1006.
    const c = await echoClient();
    await c.close();
    assert.equal(await m.nextText(), 'close /echo 1005 ');
    const d = await echoClient();
    d.terminate();
    assert.equal(await m.nextText(), 'close /echo 1006 ');
    await m.close(1000);
  });

  test('ws.peer, ws.params and ws.data (made on first read) work in every handler', async () => {
    const m = await monitor();
    const c = await Client.open(srv.wsUrl('/fields/alice'));
    const open = await c.nextText();
    const port = c.ws._socket.localPort;
    assert.equal(open, `open alice 127.0.0.1:${port}`);
    await c.send('x');
    assert.equal(await c.nextText(), 'count 1 nil');
    await c.send('set');
    assert.equal(await c.nextText(), 'count 100 x');
    await c.close(1000);
    assert.equal(await m.nextText(), `close /fields alice 127.0.0.1:${port} 100`);

    // Nothing read before the close: the close handler still gets the peer it had.
    const d = await Client.open(srv.wsUrl('/fields'));
    const dport = d.ws._socket.localPort;
    d.terminate();
    assert.equal(await m.nextText(), `close /fields-late 127.0.0.1:${dport} nil nil`);
    await m.close(1000);
  });

  test('ws:close(4001, "bye") from the script reaches the client', async () => {
    const m = await monitor();
    const c = await echoClient();
    await c.send('close 4001 bye');
    const closed = await c.waitClosed();
    assert.deepEqual(closed, { code: 4001, reason: 'bye' });
    // The server's close handler runs once the handshake completes.
    assert.match(await m.nextText(), /^close \/echo 4001\b/);
    await m.close(1000);
  });

  test('a Lua error in a message handler closes only that connection, with 1011 and a traceback', async () => {
    const from = srv.stderr.length;
    const victim = await echoClient();
    const other = await echoClient();
    await victim.send('boom');
    const closed = await victim.waitClosed();
    assert.equal(closed.code, 1011);
    await srv.waitForStderr(/Lua error: [^\n]*echo\.lua:\d+: boom from the message handler\nstack traceback:\n/, { from });
    await other.send('still here');
    assert.equal(await other.nextText(), 'still here');
    // A new client works too.
    const fresh = await echoClient();
    await fresh.send('fresh');
    assert.equal(await fresh.nextText(), 'fresh');
    await other.close(1000);
    await fresh.close(1000);
  });

  test('a close code the script may not send is a script error: 1011, logged', async () => {
    const from = srv.stderr.length;
    const c = await echoClient();
    await c.send('bad-close-code');
    assert.equal((await c.waitClosed()).code, 1011);
    await srv.waitForStderr(/close code 1005 may not be sent/, { from });
  });
});

describe('keepalive and idle timeouts', () => {
  test('--ws-ping 0.2 sends pings that a live client answers, so --ws-idle does not close it', async () => {
    const srv = await startServer({ app: 'apps/echo.lua', args: ['--ws-ping', '0.2', '--ws-idle', '0.8'] });
    try {
      const c = await Client.open(srv.wsUrl('/echo'));
      assert.equal(await c.nextText(), 'hello -');
      const t0 = Date.now();
      await sleep(2000);
      assert.ok(c.pings.length >= 2, `expected at least 2 pings in 2 s, got ${c.pings.length}`);
      assert.equal(c.pings[0].data, 'rt');
      assert.ok(c.pings[0].at - t0 < 1500, `first ping came after ${c.pings[0].at - t0} ms`);
      assert.equal(c.closeInfo, null, `closed although it answered pings: ${JSON.stringify(c.closeInfo)}`);
      await c.send('alive');
      assert.equal(await c.nextText(), 'alive');
      await c.close(1000);
    } finally {
      await srv.stop();
    }
  });

  test('--ws-idle closes a silent WebSocket with 1001', async () => {
    const srv = await startServer({ app: 'apps/echo.lua', args: ['--ws-ping', '0', '--ws-idle', '0.5'] });
    try {
      const t0 = Date.now();
      const c = await Client.open(srv.wsUrl('/echo'), { autoPong: false });
      const closed = await c.waitClosed(5000 * SLOW);
      const took = Date.now() - t0;
      assert.equal(closed.code, 1001);
      assert.equal(closed.reason, 'idle timeout');
      assert.ok(took >= 450, `closed after ${took} ms, before the idle timeout`);
      assert.equal(c.pings.length, 0, 'pings were sent with --ws-ping 0');

      // A client that keeps talking is not idle.
      const d = await Client.open(srv.wsUrl('/echo'));
      assert.equal(await d.nextText(), 'hello -');
      for (let i = 0; i < 6; i++) {
        await sleep(200);
        await d.send(`tick ${i}`);
        assert.equal(await d.nextText(), `tick ${i}`);
      }
      assert.equal(d.closeInfo, null);
      await d.close(1000);
    } finally {
      await srv.stop();
    }
  });
});
