// The command line: every startup error is one line on stderr and a non-zero exit.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, runServer, ROOT } = require('./lib/server');

const CHAT = path.join(ROOT, 'apps/chat.lua');

function oneLine(stderr) {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${stderr}`);
  return lines[0];
}

async function fails(args, re) {
  const r = await runServer(args);
  assert.notEqual(r.code, 0, `exit code 0 for rtserver ${args.join(' ')}`);
  assert.equal(r.signal, null, `killed by ${r.signal}`);
  const line = oneLine(r.stderr);
  assert.match(line, /^rtserver: /);
  if (re) assert.match(line, re);
  return { ...r, line };
}

describe('command line', () => {
  let tmp;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-cli-')); });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  function script(name, text) {
    const p = path.join(tmp, name);
    fs.writeFileSync(p, text);
    return p;
  }

  test('--help and --version succeed', async () => {
    const help = await runServer(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /usage: rtserver \[options\] app\.lua/);
    assert.match(help.stdout, /--max-output/);
    const v = await runServer(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^rtserver \d+\.\d+\.\d+\n$/);
  });

  test('no script, two scripts', async () => {
    await fails([], /no app script given/);
    await fails([CHAT, CHAT], /only one app script/);
  });

  test('a missing script names the path and the reason', async () => {
    const missing = path.join(tmp, 'nope.lua');
    await fails(['--port', '0', missing], new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*No such file`));
  });

  test('a Lua syntax error gives file:line', async () => {
    const bad = script('syntax.lua', 'local rt = require "rt"\n\nlocal x = = 1\n');
    await fails(['--port', '0', bad], /syntax\.lua:3: /);
  });

  test('an error raised while loading gives file:line', async () => {
    const bad = script('raises.lua', 'local rt = require "rt"\nlocal t = nil\nt.x = 1\n');
    await fails(['--port', '0', bad], /raises\.lua:3: attempt to index/);
  });

  test('misuse of the rt API at load names the app file and line, not rt.lua', async () => {
    const bad = script('misuse.lua', 'local rt = require "rt"\n\nrt.websocket("no-slash", {})\n');
    await fails(['--port', '0', bad], /misuse\.lua:3: .*rt\.websocket/);
  });

  test('a port in use', async () => {
    const srv = await startServer({ app: CHAT });
    try {
      await fails(['--port', String(srv.port), CHAT], new RegExp(`${srv.port}|in use`));
    } finally {
      await srv.stop();
    }
  });

  test('an address that cannot be listened on', async () => {
    await fails(['--port', '0', '--listen', '999.1.1.1', CHAT]);
    await fails(['--port', '0', '--listen', '192.0.2.1', CHAT]);   // not an address of this host
  });

  test('unknown flags and bad values', async () => {
    await fails(['--bogus', CHAT], /--bogus/);
    await fails(['-x', CHAT], /-x/);
    await fails(['--port', 'abc', CHAT], /--port.*abc/);
    await fails(['--port', '70000', CHAT], /--port/);
    await fails([CHAT, '--port'], /needs a value/);
    await fails(['--log-level', 'loud', CHAT], /--log-level/);
    await fails(['--max-message', '-5', CHAT], /--max-message/);
    await fails(['--ws-ping', 'often', CHAT], /--ws-ping/);
  });
});

describe('print() in a script', () => {
  let tmp;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-print-')); });
  after(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  test('writes one info line to the log at once, with the script and line that printed', async () => {
    // stdout is not a terminal here: a plain print would sit in stdout's buffer unseen.
    const app = path.join(tmp, 'printer.lua');
    fs.writeFileSync(app, [
      'local rt = require "rt"',
      'print("loaded", 42, nil, true)',
      'rt.http.get("/p", function() print("two\\nlines"); print(); return "ok" end)',
      '',
    ].join('\n'));
    const srv = await startServer({ app });
    try {
      await srv.waitForStderr(/ info  printer\.lua:2: loaded\t42\tnil\ttrue\n/);
      const from = srv.stderr.length;
      assert.equal(await (await fetch(srv.url('/p'))).text(), 'ok');
      const m = await srv.waitForStderr(/ info  printer\.lua:3: two\\nlines\n(.*)\n/, { from });
      assert.match(m[1], / info  printer\.lua:3: $/);
    } finally {
      await srv.stop();
    }
    // Below the log level it says nothing.
    const quiet = await startServer({ app, args: ['--log-level', 'warn'] });
    try {
      assert.equal(await (await fetch(quiet.url('/p'))).text(), 'ok');
      assert.doesNotMatch(quiet.stderr, /printer\.lua/);
    } finally {
      await quiet.stop();
    }
  });
});
