// Mutual TLS (--tls-client-ca): a client certificate is required and verified; handlers
// see the verified peer in req.tls, ws.tls and the gRPC call's tls. Peers: node https,
// npm ws, @grpc/grpc-js with a client certificate, openssl s_client.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const https = require('node:https');
const path = require('node:path');
const WebSocket = require('ws');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const { execFile } = require('node:child_process');
const { makeCerts } = require('./lib/certs');
const { startServer, ROOT, SLOW } = require('./lib/server');

let certs, srv, ca, alice, mallory;

before(async () => {
  certs = makeCerts();
  ca = certs.read('ca');
  alice = { cert: certs.read('alice'), key: certs.read('alice.key') };
  mallory = { cert: certs.read('mallory'), key: certs.read('mallory.key') };
  srv = await startServer({
    app: 'apps/tls_app.lua',
    args: certs.serverArgs(['--tls-client-ca', certs.clientCa, '--metrics', '/metrics']),
  });
});

after(async () => {
  if (srv) await srv.stop();
  if (certs) certs.remove();
});

function get(p, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get(srv.url(p), { ca, agent: false, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
  });
}

const EXPECT_ALICE = { peer: 'alice@example.test', subject: 'O=rtserver test,CN=alice' };

test('without a client certificate, or with one from another CA, the handshake fails', async () => {
  const before = (await get('/metrics', alice)).body;
  const count = (m) => Number(m.match(/^rtserver_tls_handshake_failures_total\{reason="verify"\} (\d+)$/m)[1]);
  await assert.rejects(get('/whoami'), /certificate required|alert|ECONNRESET|socket hang up/i);
  await assert.rejects(get('/whoami', mallory), /unknown ca|alert|ECONNRESET|socket hang up/i);
  const after = (await get('/metrics', alice)).body;
  assert.equal(count(after), count(before) + 2);
});

test('https with alice\'s certificate: req.tls names her', async () => {
  const r = await get('/whoami', alice);
  assert.equal(r.status, 200);
  const who = JSON.parse(r.body);
  assert.equal(who.peer, EXPECT_ALICE.peer);
  assert.equal(who.subject, EXPECT_ALICE.subject);
});

test('wss with alice\'s certificate: ws.tls names her', async () => {
  const ws = new WebSocket(srv.wsUrl('/echo'), { ca, ...alice });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send('whoami');
  const who = JSON.parse((await new Promise((resolve) => ws.once('message', resolve))).toString());
  assert.equal(who.peer, EXPECT_ALICE.peer);
  assert.equal(who.subject, EXPECT_ALICE.subject);
  ws.close();

  const refused = new WebSocket(srv.wsUrl('/echo'), { ca });
  await new Promise((resolve) => { refused.once('error', resolve); refused.once('open', () => resolve(assert.fail('opened without a client certificate'))); });
});

test('grpc-js with a client certificate: the call\'s tls names the peer; without one it fails', async () => {
  const def = loader.loadSync(path.join(ROOT, 'proto/user.proto'), { longs: String });
  const UserService = grpc.loadPackageDefinition(def).user.UserService;
  const c = new UserService(`localhost:${srv.port}`, grpc.credentials.createSsl(ca, alice.key, alice.cert));
  const u = await new Promise((resolve, reject) => c.GetUser({ id: 3 }, (e, v) => (e ? reject(e) : resolve(v))));
  assert.equal(u.email, EXPECT_ALICE.peer);
  assert.equal(u.name, 'over TLSv1.3 h2');
  c.close();

  const anon = new UserService(`localhost:${srv.port}`, grpc.credentials.createSsl(ca));
  const err = await new Promise((resolve) => anon.GetUser({ id: 3 }, { deadline: Date.now() + 5000 * SLOW }, (e) => resolve(e)));
  assert.ok(err, 'a call without a client certificate went through');
  assert.equal(err.code, grpc.status.UNAVAILABLE);
  anon.close();
});

test('openssl s_client: the server asks for a certificate from the client CA', async () => {
  const out = await new Promise((resolve) => {
    execFile('sh', ['-c', `sleep ${0.3 * SLOW} | openssl s_client -connect 127.0.0.1:${srv.port} -servername localhost ` +
                          `-CAfile "${certs.ca}" -cert "${certs.aliceCert}" -key "${certs.aliceKey}"`],
             { encoding: 'utf8' }, (e, so, se) => resolve(so + se));
  });
  assert.match(out, /Acceptable client certificate CA names\n.*CN ?= ?rtserver test client CA/);
  assert.match(out, /Verify return code: 0 \(ok\)/);
});
