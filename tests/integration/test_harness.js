// The harness itself: lib/server.js must fail a test when the server misbehaves, or the
// sanitizer checks of `make asan` would pass without looking.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { startServer, runServer } = require('./lib/server');

// The fake server's made-up reports must not reach run.sh's scan of the server logs.
delete process.env.RT_TEST_LOGDIR;
const FAKE = path.join(__dirname, 'lib/fake_rtserver.sh');
const fake = (mode) => startServer({ binary: FAKE, env: { FAKE_MODE: mode } });

test('the banner gives host and port; a clean exit passes', async () => {
  const srv = await fake('clean');
  assert.equal(srv.host, '127.0.0.1');
  assert.equal(srv.port, 65000);
  assert.deepEqual(await srv.stop(), { code: 0, signal: null });
});

for (const [mode, re] of [['asan', /AddressSanitizer/], ['ubsan', /runtime error/], ['lsan', /LeakSanitizer/]]) {
  test(`stop() throws on a ${mode} report`, async () => {
    const srv = await fake(mode);
    await assert.rejects(srv.stop(), re);
  });
}

test('stop() throws on a failing exit status', async () => {
  const srv = await fake('fail');
  await assert.rejects(srv.stop(), /exited with .*"code":3/);
});

test('stop() kills a server that ignores SIGTERM, and says so', async () => {
  const srv = await fake('hang');
  await assert.rejects(srv.stop({ timeoutMs: 300 }), /did not exit within 300 ms/);
  assert.equal(srv.exited.signal, 'SIGKILL');
});

test('a server that dies at startup fails the start with its stderr', async () => {
  await assert.rejects(fake('early'), /exited before it was ready[^]*cannot do it/);
});

test('the real binary: a bad app fails the start with its error', async () => {
  await assert.rejects(startServer({ app: path.join(__dirname, 'no-such-app.lua') }), /cannot read app script/);
  const r = await runServer(['--version']);
  assert.equal(r.code, 0);
});

test('the real binary: a Lua traceback can be waited for', async () => {
  const srv = await startServer({ app: 'apps/echo.lua' });
  try {
    const from = srv.stderr.length;
    const res = await fetch(srv.url('/fail'));
    assert.equal(res.status, 500);
    const m = await srv.waitForStderr(/Lua error: ([^\n]*)/, { from });
    assert.match(m[1], /route exploded/);
    await assert.rejects(srv.waitForStderr(/never logged/, { timeoutMs: 100 }), /did not match/);
  } finally {
    await srv.stop();
  }
});
