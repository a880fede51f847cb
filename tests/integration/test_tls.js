// TLS on the listening port (--tls-cert/--tls-key), against real peers: curl and node's
// https for pages, npm ws over wss://, @grpc/grpc-js with SSL credentials (ALPN h2 on the
// same port), openssl s_client for ALPN, versions and resumption, and raw bytes for the
// bad cases (plain HTTP, garbage, a stalled handshake, TLS 1.1). Certificates are made by
// openssl when the file starts (lib/certs.js).
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');
const tls = require('node:tls');
const WebSocket = require('ws');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const { makeCerts } = require('./lib/certs');
const { startServer, sleep, ROOT, SLOW } = require('./lib/server');

let certs, srv, ca;

before(async () => {
  certs = makeCerts();
  ca = certs.read('ca');
  srv = await startServer({
    app: 'apps/tls_app.lua',
    args: certs.serverArgs(['--metrics', '/metrics', '--tls-handshake-timeout', String(0.5 * SLOW)]),
  });
});

after(async () => {
  if (srv) await srv.stop();
  if (certs) certs.remove();
});

function run(cmd, args, { input = '', timeoutMs = 10000 * SLOW } = {}) {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, out: stdout + stderr });
    });
    child.stdin.end(input);
  });
}

// openssl s_client with stdin held open a little, so TLS 1.3 tickets arrive before it quits.
function sClient(args) {
  return run('sh', ['-c', `sleep ${0.3 * SLOW} | openssl s_client -connect 127.0.0.1:${srv.port} ` +
                          `-servername localhost -CAfile "${certs.ca}" ${args}`]);
}

function get(url, opts = {}) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

async function metrics() {
  return (await get(srv.url('/metrics'))).body;
}

function metric(text, name) {
  const m = text.match(new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

function openWs(p, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(srv.wsUrl(p), { ca, ...opts });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    ws.once('message', (d, binary) => resolve(binary ? d : d.toString()));
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
  });
}

// Resolves with what a raw TCP peer received until the server closed (or timeoutMs).
function rawExchange(bytes, { timeoutMs = 5000 * SLOW } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(srv.port, '127.0.0.1');
    const chunks = [];
    const t0 = Date.now();
    const timer = setTimeout(() => { s.destroy(); resolve({ data: Buffer.concat(chunks), closed: false }); }, timeoutMs);
    s.on('connect', () => { if (bytes) s.write(bytes); });
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closed: true, ms: Date.now() - t0 });
    });
  });
}

test('an https page: node https (no ALPN) and curl --cacert (h2 offered) both get HTTP/1.1', async () => {
  const r = await get(srv.url('/index.html'));
  assert.equal(r.status, 200);
  assert.match(r.body, /rtserver test page/);
  // node's https offers no ALPN: HTTP/1.1, as without TLS.
  const who = JSON.parse((await get(srv.url('/whoami'))).body);
  assert.deepEqual(who, { tls: true, version: 'TLSv1.3', alpn: null, resumed: false,
                          peer: null, subject: null });

  // curl offers h2 and http/1.1; HTTP/2 here is for gRPC, so it gets http/1.1.
  const c = await run('curl', ['-sS', '--http2', '--cacert', certs.ca, '-w', '\n%{http_code} %{http_version}',
                               `https://localhost:${srv.port}/whoami`]);
  assert.equal(c.code, 0, c.out);
  const [json, status] = c.out.trim().split('\n');
  assert.equal(status, '200 1.1');
  assert.equal(JSON.parse(json).alpn, 'http/1.1');
  // Without the test CA, curl refuses the certificate: it is verified, not just accepted.
  const bad = await run('curl', ['-sS', `https://localhost:${srv.port}/`]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.out, /certificate/i);
});

test('wss:// with npm ws: the handler sees TLS, big and many messages come back intact', async () => {
  const ws = await openWs('/echo');
  ws.send('whoami');
  const who = JSON.parse(await nextMessage(ws));
  assert.equal(who.tls, true);
  assert.equal(who.version, 'TLSv1.3');

  // Larger than the TLS record size and the read buffer: many records each way.
  const big = Buffer.alloc(600 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
  ws.send(big);
  const back = await nextMessage(ws);
  assert.ok(Buffer.isBuffer(back));
  assert.ok(back.equals(big), 'the 600 KiB echo differs');

  // Many small messages in one burst: they are batched into records and arrive in order.
  const got = [];
  const done = new Promise((resolve) => {
    ws.on('message', (d) => { got.push(d.toString()); if (got.length === 2000) resolve(); });
  });
  for (let i = 0; i < 2000; i++) ws.send(`m${i}`);
  await done;
  assert.deepEqual(got, Array.from({ length: 2000 }, (_, i) => `m${i}`));
  ws.close(1000);
});

test('TLS 1.2 works too, and a client that only speaks TLS 1.1 is refused', async () => {
  const ws = await openWs('/echo', { maxVersion: 'TLSv1.2' });
  ws.send('whoami');
  assert.equal(JSON.parse(await nextMessage(ws)).version, 'TLSv1.2');
  ws.close();

  const before = metric(await metrics(), 'rtserver_tls_handshake_failures_total{reason="protocol"}');
  const r = await sClient('-tls1_1 -cipher DEFAULT@SECLEVEL=0');
  assert.match(r.out, /alert protocol version|no protocols available|unsupported protocol/i, r.out);
  assert.doesNotMatch(r.out, /^New, TLSv1/m);
  const after = metric(await metrics(), 'rtserver_tls_handshake_failures_total{reason="protocol"}');
  assert.equal(after, before + 1);
});

test('gRPC over TLS on the same port: grpc-js with SSL credentials gets ALPN h2', async () => {
  const def = loader.loadSync(path.join(ROOT, 'proto/user.proto'), { longs: String });
  const UserService = grpc.loadPackageDefinition(def).user.UserService;
  const c = new UserService(`localhost:${srv.port}`, grpc.credentials.createSsl(ca));
  const u = await new Promise((resolve, reject) => c.GetUser({ id: 7 }, (e, v) => (e ? reject(e) : resolve(v))));
  assert.equal(u.id, '7');
  assert.equal(u.name, 'over TLSv1.3 h2');
  const msgs = await new Promise((resolve, reject) => {
    const out = [];
    const s = c.ListUsers({});
    s.on('data', (m) => out.push(m));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
  assert.equal(msgs.length, 50);
  assert.equal(msgs[49].name.length, 5000);
  c.close();

  // An insecure (plain) gRPC channel to the TLS port fails cleanly: the server says 400.
  const plain = new UserService(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  const err = await new Promise((resolve) => plain.GetUser({ id: 1 }, { deadline: Date.now() + 3000 * SLOW }, (e) => resolve(e)));
  assert.ok(err, 'a plaintext gRPC call to a TLS port must fail');
  plain.close();
});

test('openssl s_client: ALPN h2 and http/1.1, the certificate verifies, sessions resume', async () => {
  const h2 = await sClient('-alpn h2');
  assert.match(h2.out, /ALPN protocol: h2/);
  assert.match(h2.out, /Verify return code: 0 \(ok\)/);
  assert.match(h2.out, /subject=.*CN ?= ?localhost/);
  const both = await sClient('-alpn h2,http/1.1');
  assert.match(both.out, /ALPN protocol: http\/1\.1/);
  const none = await sClient('');
  assert.match(none.out, /No ALPN negotiated/);

  const before = metric(await metrics(), 'rtserver_tls_resumed_total');
  for (const v of ['-tls1_2', '-tls1_3']) {
    const sess = path.join(certs.dir, `sess${v}`);
    const first = await sClient(`${v} -sess_out ${sess}`);
    assert.match(first.out, /^New, TLSv1\.[23]/m, first.out);
    const again = await sClient(`${v} -sess_in ${sess}`);
    assert.match(again.out, /^Reused, TLSv1\.[23]/m, again.out);
  }
  const m = await metrics();
  assert.equal(metric(m, 'rtserver_tls_resumed_total'), before + 2);
  assert.ok(metric(m, 'rtserver_tls_handshakes_total') >= 6);
});

test('node tls session reuse: the handler sees resumed = true', async () => {
  const ask = (session) => new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca, session,
                            ALPNProtocols: ['http/1.1'] });
    let tickets = null;
    let body = '';
    s.on('session', (t) => { tickets = t; });
    s.on('secureConnect', () => s.write('GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    s.on('data', (d) => { body += d; });
    s.on('end', () => resolve({ who: JSON.parse(body.slice(body.indexOf('\r\n\r\n') + 4)), tickets, reused: s.isSessionReused() }));
    s.on('error', reject);
  });
  const first = await ask();
  assert.equal(first.who.resumed, false);
  assert.ok(first.tickets, 'the server sent no session ticket');
  const second = await ask(first.tickets);
  assert.equal(second.reused, true);
  assert.equal(second.who.resumed, true);
});

test('plain HTTP on the TLS port gets a 400 that says why, garbage is just closed', async () => {
  const before = await metrics();
  const r = await rawExchange('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.ok(r.closed);
  const text = r.data.toString();
  assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(text, /This port speaks TLS: use https:\/\/ or wss:\/\//);
  const junk = await rawExchange(Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe]));
  assert.ok(junk.closed);
  assert.equal(junk.data.length, 0);
  // A handshake record with a nonsense body: a TLS alert, then the close.
  const bad = await rawExchange(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]));
  assert.ok(bad.closed);
  assert.ok(bad.data.length === 0 || bad.data[0] === 0x15, 'expected nothing or an alert record');
  const after = await metrics();
  const reason = (m, r2) => metric(m, `rtserver_tls_handshake_failures_total{reason="${r2}"}`);
  assert.equal(reason(after, 'plain_http'), reason(before, 'plain_http') + 2);
  assert.equal(reason(after, 'protocol'), reason(before, 'protocol') + 1);
  // Everyone else is still served.
  assert.equal((await get(srv.url('/whoami'))).status, 200);
});

test('a handshake that stalls is cut by the handshake timeout', async () => {
  const before = metric(await metrics(), 'rtserver_tls_handshake_failures_total{reason="timeout"}');
  // Nothing at all, and a ClientHello cut short: both wait for bytes that never come.
  const [silent, partial] = await Promise.all([
    rawExchange(null),
    rawExchange(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])),
  ]);
  for (const r of [silent, partial]) {
    assert.ok(r.closed, 'the server kept a stalled handshake open');
    assert.ok(r.ms >= 400 * SLOW && r.ms < 3000 * SLOW, `closed after ${r.ms} ms`);
  }
  const after = metric(await metrics(), 'rtserver_tls_handshake_failures_total{reason="timeout"}');
  assert.equal(after, before + 2);
  // A connection that finished its handshake is not cut: it idles past the timeout.
  const ws = await openWs('/echo');
  await sleep(1000 * SLOW);
  ws.send('still here');
  assert.equal(await nextMessage(ws), 'still here');
  ws.close();
});

test('a bad record after the handshake closes that connection only', async () => {
  const other = await openWs('/echo');
  // Our own TCP socket under node's TLS one, so a forged record can go straight onto it.
  const raw = net.connect(srv.port, '127.0.0.1');
  const s = tls.connect({ socket: raw, servername: 'localhost', ca });
  await new Promise((resolve, reject) => { s.on('secureConnect', resolve); s.on('error', reject); });
  s.on('error', () => {});
  const closed = new Promise((resolve) => raw.on('close', resolve));
  raw.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20, ...Buffer.alloc(32, 7)]));  // a bad MAC
  await Promise.race([closed, sleep(3000 * SLOW).then(() => assert.fail('the connection stayed open'))]);
  other.send('fine');
  assert.equal(await nextMessage(other), 'fine');
  other.close();
});

test('SockJS over https: xhr transport, STOMP CONNECT and CONNECTED through it', async () => {
  const post = (p, body = '') => new Promise((resolve, reject) => {
    const req = https.request(srv.url(p), { method: 'POST', ca }, (res) => {
      let b = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const info = JSON.parse((await get(srv.url('/stomp/info'))).body);
  assert.equal(info.websocket, true);
  const base = `/stomp/000/tls${Date.now()}`;
  assert.deepEqual(await post(`${base}/xhr`), { status: 200, body: 'o\n' });
  const connect = 'CONNECT\naccept-version:1.2\nhost:x\n\n\u0000';
  assert.equal((await post(`${base}/xhr_send`, JSON.stringify([connect]))).status, 204);
  const r = await post(`${base}/xhr`);
  assert.match(r.body, /^a\["CONNECTED\\nversion:1\.2/);
});
