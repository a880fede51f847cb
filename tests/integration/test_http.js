// HTTP/1.1 on the shared port: static files, Lua routes, keep-alive and pipelining, error
// statuses, path traversal, IPv6. Raw sockets throughout, so every byte is the test's.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, sleep, ROOT, HERE } = require('./lib/server');
const { RawConn } = require('./lib/raw');
const { Client } = require('./lib/wsclient');

// One request on a fresh connection; returns the response.
async function request(srv, method, target, { headers = {}, body = null, host = srv.host } = {}) {
  const c = await RawConn.connect(srv.port, host);
  try {
    c.write(buildRequest(method, target, { headers, body }));
    return await c.readResponse({ noBody: method === 'HEAD' });
  } finally {
    c.destroy();
  }
}

function buildRequest(method, target, { headers = {}, body = null, version = '1.1' } = {}) {
  let head = `${method} ${target} HTTP/${version}\r\nHost: test\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  const b = body === null ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
  if (b) head += `Content-Length: ${b.length}\r\n`;
  return Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), b || Buffer.alloc(0)]);
}

const PUBLIC = path.join(HERE, 'apps/public');
const SECRET = fs.readFileSync(path.join(HERE, 'apps/secret.txt'), 'utf8').trim();

describe('static files', () => {
  let srv;
  before(async () => { srv = await startServer({ app: 'apps/echo.lua' }); });
  after(async () => { await srv.stop(); });

  const cases = [
    ['/files/', 'index.html', 'text/html; charset=utf-8'],
    ['/files', 'index.html', 'text/html; charset=utf-8'],
    ['/files/index.html', 'index.html', 'text/html; charset=utf-8'],
    ['/files/style.css', 'style.css', 'text/css; charset=utf-8'],
    ['/files/app.js', 'app.js', 'text/javascript; charset=utf-8'],
    ['/files/data.json', 'data.json', 'application/json'],
    ['/files/note.txt', 'note.txt', 'text/plain; charset=utf-8'],
    ['/files/pixel.png', 'pixel.png', 'image/png'],
    ['/files/sub/', 'sub/index.html', 'text/html; charset=utf-8'],
    ['/files/sub', 'sub/index.html', 'text/html; charset=utf-8'],
    ['/files/s%74yle.css', 'style.css', 'text/css; charset=utf-8'],
    ['/files/note.txt?v=3#frag', 'note.txt', 'text/plain; charset=utf-8'],
  ];
  for (const [target, file, type] of cases) {
    test(`GET ${target} serves ${file} as ${type}`, async () => {
      const res = await request(srv, 'GET', target);
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], type);
      const want = fs.readFileSync(path.join(PUBLIC, file));
      assert.equal(Number(res.headers['content-length']), want.length);
      assert.ok(Buffer.compare(res.body, want) === 0, 'body differs from the file');
    });
  }

  test('HEAD gives the headers of GET and no body', async () => {
    const c = await RawConn.connect(srv.port);
    c.write(buildRequest('HEAD', '/files/style.css'));
    c.write(buildRequest('GET', '/files/note.txt'));
    const head = await c.readResponse({ noBody: true });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), fs.statSync(path.join(PUBLIC, 'style.css')).size);
    // The next bytes on the connection must be the next response, not a stray body.
    const next = await c.readResponse();
    assert.equal(next.status, 200);
    assert.equal(next.text, 'just text\n');
    c.destroy();
  });

  test('a missing file is 404, and so is an unrouted path', async () => {
    for (const target of ['/files/nope.txt', '/files/sub/nope/', '/nowhere', '/']) {
      const res = await request(srv, 'GET', target);
      assert.equal(res.status, 404, target);
    }
  });
});

describe('path traversal never leaves the app folder', () => {
  let srv, chat, tmp, tsrv;
  before(async () => {
    srv = await startServer({ app: 'apps/echo.lua' });
    chat = await startServer({ app: path.join(ROOT, 'apps/chat.lua') });
    // An app whose static folder holds symlinks that point out of it.
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-static-'));
    fs.mkdirSync(path.join(tmp, 'www'));
    fs.writeFileSync(path.join(tmp, 'app.lua'), 'local rt = require "rt"\nrt.static("/", "www")\n');
    fs.writeFileSync(path.join(tmp, 'secret.txt'), SECRET + '\n');
    fs.writeFileSync(path.join(tmp, 'www/ok.txt'), 'ok\n');
    fs.symlinkSync('../secret.txt', path.join(tmp, 'www/leak.txt'));
    fs.symlinkSync('/etc', path.join(tmp, 'www/etc'));
    fs.symlinkSync('ok.txt', path.join(tmp, 'www/inside.txt'));
    tsrv = await startServer({ app: path.join(tmp, 'app.lua') });
  });
  after(async () => {
    await srv.stop();
    await chat.stop();
    await tsrv.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const attempts = [
    '/files/../secret.txt', '/files/%2e%2e/secret.txt', '/files/%2E%2E/secret.txt',
    '/files/.%2e/secret.txt', '/files/..%2fsecret.txt', '/files/..%2Fsecret.txt',
    '/files/%2e%2e%2fsecret.txt', '/files/..%2fecho.lua', '/files/sub/../../secret.txt',
    '/files/sub/%2e%2e/%2e%2e/secret.txt', '/files/..%5csecret.txt', '/files/..\\secret.txt',
    '/files/....//secret.txt', '/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/files//etc/passwd', '/files/%2fetc%2fpasswd', '/files/%252e%252e/secret.txt',
    '/files/..;/secret.txt', '/files/%c0%ae%c0%ae/secret.txt', 'http://test/files/../secret.txt',
    '/files/../../../../../../etc/passwd',
  ];
  for (const target of attempts) {
    test(`GET ${target}`, async () => {
      const res = await request(srv, 'GET', target);
      assert.ok([400, 404].includes(res.status), `status ${res.status}`);
      assert.ok(!res.text.includes(SECRET), 'served the secret');
      assert.ok(!res.text.includes('rt.websocket'), 'served the app script');
      assert.ok(!/root:.*:0:0:/.test(res.text), 'served /etc/passwd');
    });
  }

  test('a static folder at / does not serve its own app script', async () => {
    for (const target of ['/../chat.lua', '/%2e%2e/chat.lua', '/..%2fchat.lua', '/%2e%2e%2fchat.lua', '/chat/../../chat.lua']) {
      const res = await request(chat, 'GET', target);
      assert.ok([400, 404].includes(res.status), `${target}: status ${res.status}`);
      assert.ok(!res.text.includes('rt.websocket'), `${target} served the app script`);
    }
    const page = await request(chat, 'GET', '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(page.text, /new WebSocket/);
  });

  test('symlinks that point out of the folder are not followed', async () => {
    assert.equal((await request(tsrv, 'GET', '/ok.txt')).text, 'ok\n');
    assert.equal((await request(tsrv, 'GET', '/inside.txt')).text, 'ok\n');
    for (const target of ['/leak.txt', '/etc/passwd', '/etc/hostname']) {
      const res = await request(tsrv, 'GET', target);
      assert.equal(res.status, 404, target);
      assert.ok(!res.text.includes(SECRET) && !/root:.*:0:0:/.test(res.text), `${target} leaked`);
    }
  });
});

describe('Lua HTTP routes', () => {
  let srv;
  before(async () => { srv = await startServer({ app: 'apps/echo.lua' }); });
  after(async () => { await srv.stop(); });

  const json = (res) => {
    assert.equal(res.headers['content-type'], 'application/json');
    return JSON.parse(res.text);
  };

  test('POST, GET and PUT with :params and JSON in and out', async () => {
    let res = await request(srv, 'POST', '/items', {
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'wrench', tags: ['tool', 'steel'], offset: 40 }),
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.location, '/items/41');
    assert.deepEqual(json(res), { id: '41', name: 'wrench', tags: ['tool', 'steel'] });

    res = await request(srv, 'GET', '/items/41');
    assert.equal(res.status, 200);
    assert.deepEqual(json(res), { id: '41', name: 'wrench', tags: ['tool', 'steel'] });

    res = await request(srv, 'PUT', '/items/41', { body: JSON.stringify({ name: 'spanner ✓' }) });
    assert.equal(res.status, 200);
    assert.deepEqual(json(res), { updated: '41', name: 'spanner ✓' });
    assert.equal(json(await request(srv, 'GET', '/items/41')).name, 'spanner ✓');

    res = await request(srv, 'GET', '/users/u%207/posts/42?q=a+b%21&x=1');
    assert.deepEqual(json(res), { uid: 'u 7', pid: '42', q: 'a b!' });
  });

  test('rt.http_error and bad JSON give their status; a handler error gives 500 and a traceback', async () => {
    let res = await request(srv, 'GET', '/items/999');
    assert.equal(res.status, 404);
    assert.deepEqual(json(res), { error: 'no item 999' });

    res = await request(srv, 'POST', '/items', { body: '{not json' });
    assert.equal(res.status, 400);
    assert.match(json(res).error, /JSON/);

    const from = srv.stderr.length;
    res = await request(srv, 'GET', '/fail');
    assert.equal(res.status, 500);
    assert.ok(!res.text.includes('route exploded'), 'the error text leaked to the client');
    const log = (await srv.waitForStderr(/Lua error: [^\n]*route exploded\nstack traceback:/, { from }))[0];
    assert.match(log, /echo\.lua:\d+: route exploded/);
  });

  test('plain-text bodies and custom headers; HEAD on a GET route', async () => {
    const res = await request(srv, 'GET', '/text');
    assert.equal(res.status, 200);
    assert.equal(res.text, 'plain words');
    assert.equal(res.headers['x-test'], 'yes');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    const head = await request(srv, 'HEAD', '/text');
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers['content-length']), 'plain words'.length);
  });

  test('a method the route lacks is 405 with Allow', async () => {
    let res = await request(srv, 'DELETE', '/items/41');
    assert.equal(res.status, 405);
    assert.deepEqual(res.headers.allow.split(/,\s*/).sort(), ['GET', 'PUT']);
    res = await request(srv, 'POST', '/users/1/posts/2', { body: '{}' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET');
  });

  test('keep-alive: several requests, one after another, on one connection', async () => {
    const c = await RawConn.connect(srv.port);
    for (let i = 0; i < 5; i++) {
      c.write(buildRequest('POST', '/echo-body', { body: `request ${i}` }));
      const res = await c.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.text, `request ${i}`);
      assert.notEqual((res.headers.connection || '').toLowerCase(), 'close');
    }
    // A 404 and a 405 do not end the connection either.
    c.write(buildRequest('GET', '/nowhere'));
    assert.equal((await c.readResponse()).status, 404);
    c.write(buildRequest('DELETE', '/text'));
    assert.equal((await c.readResponse()).status, 405);
    c.write(buildRequest('GET', '/text'));
    assert.equal((await c.readResponse()).text, 'plain words');
    assert.equal(c.ended, false);
    // Connection: close is honoured.
    c.write(buildRequest('GET', '/text', { headers: { Connection: 'close' } }));
    const last = await c.readResponse();
    assert.equal(last.headers.connection, 'close');
    assert.ok(await c.waitClosed(), 'the server kept the connection open after Connection: close');
  });

  test('HTTP/1.0 without keep-alive is answered and closed', async () => {
    const c = await RawConn.connect(srv.port);
    c.write('GET /text HTTP/1.0\r\n\r\n');
    const res = await c.readResponse();
    assert.equal(res.text, 'plain words');
    assert.ok(await c.waitClosed());
  });

  test('HTTP/1.0 with Connection: keep-alive is told the connection is kept, and it is', async () => {
    // A 1.0 client closes by default: without "Connection: keep-alive" in the answer it
    // would wait for the end of a connection the server keeps open.
    const c = await RawConn.connect(srv.port);
    for (let i = 0; i < 2; i++) {
      c.write('GET /text HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n');
      const res = await c.readResponse();
      assert.equal(res.text, 'plain words');
      assert.equal(res.headers.connection, 'keep-alive');
      assert.equal(res.headers['content-length'], '11');
    }
    assert.equal(c.ended, false);
    // HTTP/1.1 keeps connections by default and says nothing.
    c.write('GET /text HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await c.readResponse()).headers.connection, undefined);
    c.sock.destroy();
  });

  test('pipelined requests are answered in order', async () => {
    const c = await RawConn.connect(srv.port);
    c.write(Buffer.concat([
      buildRequest('GET', '/text'),
      buildRequest('POST', '/echo-body', { body: 'second body' }),
      buildRequest('GET', '/files/note.txt'),
      buildRequest('GET', '/nowhere'),
      buildRequest('HEAD', '/files/data.json'),
      buildRequest('PUT', '/items/77', { body: '{"name":"piped"}' }),
      buildRequest('GET', '/items/77'),
    ]));
    assert.equal((await c.readResponse()).text, 'plain words');
    assert.equal((await c.readResponse()).text, 'second body');
    assert.equal((await c.readResponse()).text, 'just text\n');
    assert.equal((await c.readResponse()).status, 404);
    const head = await c.readResponse({ noBody: true });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse((await c.readResponse()).text), { updated: '77', name: 'piped' });
    assert.equal(JSON.parse((await c.readResponse()).text).name, 'piped');
    await sleep(50);
    assert.equal(c.buf.length, 0, 'extra bytes after the last response');
    c.destroy();
  });

  test('a request that arrives one byte at a time', async () => {
    const c = await RawConn.connect(srv.port);
    c.sock.setNoDelay(true);
    const bytes = buildRequest('POST', '/echo-body', { body: 'slowly' });
    for (const b of bytes) {
      c.write(Buffer.from([b]));
      await sleep(1);
    }
    assert.equal((await c.readResponse()).text, 'slowly');
    c.destroy();
  });
});

describe('HTTP errors', () => {
  let srv;
  before(async () => { srv = await startServer({ app: 'apps/echo.lua', args: ['--max-body', '1024'] }); });
  after(async () => { await srv.stop(); });

  async function rawExchange(bytes) {
    const c = await RawConn.connect(srv.port);
    c.write(bytes);
    const res = await c.readResponse();
    // Only an error is expected to close; do not sit out the timeout on a 200.
    const closed = res.status >= 400 ? await c.waitClosed() : false;
    c.destroy();
    return { res, closed };
  }

  const garbage = [
    ['binary junk', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a])],
    ['a header line without a colon', 'GET /text HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n'],
    // RFC 9112 5.1: "A server MUST reject, with 400, any received request message that
    // contains whitespace between a header field name and colon."
    ['whitespace between a header name and its colon', 'GET /text HTTP/1.1\r\nHost: x\r\nX-Foo : v\r\n\r\n'],
    ['Transfer-Encoding with Content-Length', 'POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['a bad percent-escape', 'GET /files/%zz HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a NUL in the path', 'GET /files/a%00b HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a bad version', 'GET /text HTTP/x.y\r\nHost: x\r\n\r\n'],
    ['a bad Content-Length', 'POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n'],
    ['two different Content-Lengths', 'POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['a bad chunk size', 'POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
  ];
  for (const [what, bytes] of garbage) {
    test(`400 and close for ${what}`, async () => {
      const { res, closed } = await rawExchange(bytes);
      assert.equal(res.status, 400);
      assert.ok(closed, 'connection left open after a 400');
    });
  }

  test('an unknown method token is 501 (or 400)', async () => {
    const { res } = await rawExchange('BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok([400, 501].includes(res.status), `status ${res.status}`);
  });

  test('413 for a body over --max-body, by Content-Length or chunked', async () => {
    let res = await request(srv, 'POST', '/echo-body', { body: 'a'.repeat(1024) });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 1024);
    const big = await rawExchange(buildRequest('POST', '/echo-body', { body: 'a'.repeat(1025) }));
    assert.equal(big.res.status, 413);
    assert.ok(big.closed);
    // The limit holds before the body is sent: a client announcing 1 GB gets 413 at once.
    const announced = await rawExchange('POST /echo-body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n');
    assert.equal(announced.res.status, 413);
    // Chunked: 3 chunks of 500 bytes.
    let chunked = 'POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    for (let i = 0; i < 3; i++) chunked += `1f4\r\n${'b'.repeat(500)}\r\n`;
    chunked += '0\r\n\r\n';
    const ch = await rawExchange(chunked);
    assert.equal(ch.res.status, 413);
    // A chunked body under the limit is fine.
    const small = await RawConn.connect(srv.port);
    small.write('POST /echo-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
    assert.equal((await small.readResponse()).text, 'hello world');
    small.destroy();
  });

  test('431 for huge headers', async () => {
    const big = await rawExchange(`GET /text HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20000)}\r\n\r\n`);
    assert.equal(big.res.status, 431);
    assert.ok(big.closed);
    let many = 'GET /text HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 2000; i++) many += `X-H${i}: v\r\n`;
    const m = await rawExchange(many + '\r\n');
    assert.equal(m.res.status, 431);
    const longUrl = await rawExchange(`GET /files/${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.ok([414, 431].includes(longUrl.res.status), `status ${longUrl.res.status}`);
    // Headers under the limit are fine.
    const ok = await request(srv, 'GET', '/text', { headers: { 'X-Fine': 'f'.repeat(8000) } });
    assert.equal(ok.status, 200);
  });

  test('the server still serves after all of that', async () => {
    assert.equal((await request(srv, 'GET', '/text')).text, 'plain words');
  });
});

describe('IPv6', () => {
  test('--listen ::1 serves HTTP and WebSocket over IPv6', async () => {
    const srv = await startServer({ app: 'apps/echo.lua', args: ['--listen', '::1'] });
    try {
      assert.equal(srv.host, '::1');
      assert.match(srv.stderr, new RegExp(`rtserver listening on http://\\[::1\\]:${srv.port}/`));
      const res = await request(srv, 'GET', '/text', { host: '::1' });
      assert.equal(res.text, 'plain words');
      const c = await Client.open(srv.wsUrl('/echo'));
      assert.equal(await c.nextText(), 'hello -');
      await c.send('over v6');
      assert.equal(await c.nextText(), 'over v6');
      await c.close(1000);
      // Not on IPv4.
      await assert.rejects(RawConn.connect(srv.port, '127.0.0.1'));
    } finally {
      await srv.stop();
    }
  });
});
