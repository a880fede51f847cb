// Certificate reload: SIGHUP (and --watch when the files change) loads the new certificate
// and key; open connections stay up, new handshakes get the new certificate (openssl
// s_client shows it); a bad new certificate keeps the old one and the log says why.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const path = require('node:path');
const WebSocket = require('ws');
const { makeCerts } = require('./lib/certs');
const { startServer, SLOW } = require('./lib/server');

let certs, ca, live;

before(() => {
  certs = makeCerts();
  ca = certs.read('ca');
  live = { cert: path.join(certs.dir, 'live.pem'), key: path.join(certs.dir, 'live.key') };
});

after(() => { if (certs) certs.remove(); });

function install(certName, keyName) {
  // Replace by rename, as certificate tools do: a reader never sees half a file.
  for (const [from, to] of [[keyName, live.key], [certName, live.cert]]) {
    fs.copyFileSync(path.join(certs.dir, from), `${to}.tmp`);
    fs.renameSync(`${to}.tmp`, to);
  }
}

function subjectSeen(srv) {
  return new Promise((resolve) => {
    execFile('sh', ['-c', `openssl s_client -connect 127.0.0.1:${srv.port} -servername localhost ` +
                          `-CAfile "${certs.ca}" </dev/null`], { encoding: 'utf8' }, (e, so, se) => {
      const m = (so + se).match(/^subject=(.*)$/m);
      assert.match(so + se, /Verify return code: 0 \(ok\)/);
      resolve(m ? m[1] : null);
    });
  });
}

function openWs(srv) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(srv.wsUrl('/echo'), { ca });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function echo(ws, text) {
  return new Promise((resolve, reject) => {
    ws.once('message', (d) => resolve(d.toString()));
    ws.once('close', (code) => reject(new Error(`closed ${code}`)));
    ws.send(text);
  });
}

function metrics(srv) {
  return new Promise((resolve, reject) => {
    https.get(srv.url('/metrics'), { ca }, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
}

test('SIGHUP: new handshakes get the new certificate, open connections stay', async () => {
  install('server.pem', 'server.key');
  const srv = await startServer({ app: 'apps/tls_app.lua',
                                  args: ['--tls-cert', live.cert, '--tls-key', live.key, '--metrics', '/metrics'] });
  try {
    assert.match(await subjectSeen(srv), /O ?= ?rtserver test$/);
    const ws = await openWs(srv);
    assert.equal(await echo(ws, 'before'), 'before');

    install('server2.pem', 'server2.key');
    let from = srv.stderr.length;
    process.kill(srv.pid, 'SIGHUP');
    await srv.waitForStderr(/TLS certificate reloaded: .*rtserver renewed/, { from });
    assert.match(await subjectSeen(srv), /O ?= ?rtserver renewed$/);
    assert.equal(await echo(ws, 'after'), 'after', 'the open connection did not survive the reload');
    const ws2 = await openWs(srv);
    assert.equal(await echo(ws2, 'new'), 'new');

    // A certificate that does not match the key: refused, the renewed one stays.
    install('server.pem', 'server2.key');
    from = srv.stderr.length;
    process.kill(srv.pid, 'SIGHUP');
    await srv.waitForStderr(/TLS reload failed, the previous certificate stays: the key .* does not match the certificate/, { from });
    assert.match(await subjectSeen(srv), /O ?= ?rtserver renewed$/);

    // Not a certificate at all.
    fs.writeFileSync(live.cert, 'not a certificate\n');
    from = srv.stderr.length;
    process.kill(srv.pid, 'SIGHUP');
    await srv.waitForStderr(/TLS reload failed, the previous certificate stays: cannot load the certificate/, { from });
    assert.match(await subjectSeen(srv), /O ?= ?rtserver renewed$/);
    assert.equal(await echo(ws, 'still'), 'still');

    const m = await metrics(srv);
    assert.match(m, /^rtserver_tls_reloads_total 1$/m);
    assert.match(m, /^rtserver_tls_reload_failures_total 2$/m);
    ws.close();
    ws2.close();
  } finally {
    await srv.stop();
  }
});

test('--watch: replacing the files reloads them without a signal', async () => {
  install('server.pem', 'server.key');
  const srv = await startServer({ app: 'apps/tls_app.lua',
                                  args: ['--tls-cert', live.cert, '--tls-key', live.key, '--watch'] });
  try {
    const ws = await openWs(srv);
    assert.match(await subjectSeen(srv), /O ?= ?rtserver test$/);
    const from = srv.stderr.length;
    install('server2.pem', 'server2.key');
    await srv.waitForStderr(/TLS certificate reloaded: .*rtserver renewed/, { from, timeoutMs: 10000 * SLOW });
    assert.match(await subjectSeen(srv), /O ?= ?rtserver renewed$/);
    assert.equal(await echo(ws, 'kept'), 'kept');
    ws.close();
  } finally {
    await srv.stop();
  }
});

test('startup refuses a missing, unreadable or mismatched certificate with one line', async () => {
  const { runServer } = require('./lib/server');
  const app = path.resolve(__dirname, 'apps/tls_app.lua');
  const cases = [
    [['--tls-cert', certs.serverCert], /TLS needs both --tls-cert and --tls-key/],
    [['--tls-cert', path.join(certs.dir, 'nope.pem'), '--tls-key', certs.serverKey], /cannot load the certificate '.*nope\.pem'/],
    [['--tls-cert', certs.serverCert, '--tls-key', certs.server2Key], /does not match the certificate/],
    [['--tls-client-ca', certs.clientCa], /TLS needs both --tls-cert and --tls-key/],
  ];
  for (const [args, re] of cases) {
    const r = await runServer(['--port', '0', ...args, app]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, re);
  }
  // Without a certificate the app's rt.stomp { tls = true } is an error that says so.
  const r = await runServer(['--port', '0', app]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /tls = true needs the server's certificate/);
});
