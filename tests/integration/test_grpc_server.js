// gRPC server calls against the real binary with @grpc/grpc-js: the four kinds of call,
// statuses raised by handlers, metadata both ways (-bin included), deadlines, client
// cancellation as the handler sees it, gzip, message size limits, and a slow reader that
// must not make the server buffer a whole stream.
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const http = require('node:http');
const fs = require('node:fs');
const os = require('node:os');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const { startServer, sleep, ROOT, SLOW } = require('./lib/server');

const def = loader.loadSync(path.join(ROOT, 'proto/user.proto'), { longs: String, defaults: true });
const UserService = grpc.loadPackageDefinition(def).user.UserService;

function client(srv, options = {}) {
  return new UserService(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure(), options);
}

function unary(c, method, req, { metadata = new grpc.Metadata(), deadline } = {}) {
  return new Promise((resolve) => {
    let headers = null;
    const call = c[method](req, metadata, deadline ? { deadline } : {}, (err, res) => {
      call.on('status', (st) => resolve({ err, res, headers, trailers: st.metadata }));
    });
    call.on('metadata', (md) => { headers = md; });
  });
}

function getJSON(srv, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: srv.port, path: p }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });
}

async function waitState(srv, key, want, timeoutMs = 5000 * SLOW) {
  const until = Date.now() + timeoutMs;
  let st;
  while (Date.now() < until) {
    st = await getJSON(srv, '/state');
    if (st[key] === want) return st;
    await sleep(50);
  }
  assert.fail(`state.${key} never became ${JSON.stringify(want)}; state: ${JSON.stringify(st)}`);
}

function collect(stream) {
  return new Promise((resolve) => {
    const msgs = [];
    let error = null;
    stream.on('data', (m) => msgs.push(m));
    stream.on('error', (e) => { error = e; });
    stream.on('status', (st) => resolve({ msgs, error, status: st }));
  });
}

describe('gRPC server (grpc-js)', () => {
  let srv, c;
  before(async () => {
    srv = await startServer({ app: 'apps/grpc_test.lua' });
    c = client(srv);
  });
  after(async () => {
    c.close();
    await srv.stop();
  });

  test('unary call returns the handler\'s table', async () => {
    const { err, res } = await unary(c, 'GetUser', { id: 2 });
    assert.equal(err, null);
    assert.deepEqual(res, { id: '2', name: 'user2', email: 'u2@example.com' });
  });

  test('rt.grpc.error becomes the status, with its trailers', async () => {
    const { err, trailers } = await unary(c, 'GetUser', { id: 7 });
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(err.details, 'no user 7');
    assert.deepEqual(trailers.get('x-reason'), ['missing']);
  });

  test('a reply that does not fit the message is INTERNAL, naming the field', async () => {
    const { err } = await unary(c, 'GetUser', { id: 99 });
    assert.equal(err.code, grpc.status.INTERNAL);
    assert.match(err.details, /user\.User/);
    assert.match(err.details, /\bid\b/);
  });

  test('a handler that raises a plain error is UNKNOWN and logged', async () => {
    const from = srv.stderr.length;
    const { err } = await unary(c, 'GetUser', { id: 70 });
    assert.equal(err.code, grpc.status.UNKNOWN);
    assert.doesNotMatch(err.details, /boom/);  // internals stay in the log
    await srv.waitForStderr(/boom/, { from });
  });

  test('server streaming sends every message in order', async () => {
    const md = new grpc.Metadata();
    md.set('x-count', '500');
    md.set('x-size', '10');
    const { msgs, error, status } = await collect(c.ListUsers({}, md));
    assert.equal(error, null);
    assert.equal(status.code, grpc.status.OK);
    assert.equal(msgs.length, 500);
    msgs.forEach((m, i) => assert.equal(m.id, String(i + 1)));
    assert.equal(msgs[0].name, 'nnnnnnnnnn');
  });

  test('server streaming with no messages ends OK', async () => {
    const md = new grpc.Metadata();
    md.set('x-count', '0');
    const { msgs, status } = await collect(c.ListUsers({}, md));
    assert.equal(msgs.length, 0);
    assert.equal(status.code, grpc.status.OK);
  });

  test('client streaming reads every message and replies once', async () => {
    const got = new Promise((resolve) => {
      const call = c.CreateUsers((err, res) => resolve({ err, res }));
      for (let i = 0; i < 300; i++) call.write({ id: i, name: `n${i}`, email: '' });
      call.end();
    });
    const { err, res } = await got;
    assert.equal(err, null);
    assert.equal(res.count, 300);
  });

  test('bidi streaming answers each message before the next is sent', async () => {
    const call = c.ChatUsers();
    const queue = [];
    let wake = null;
    call.on('data', (m) => { queue.push(m); if (wake) wake(); });
    const next = async () => {
      while (!queue.length) await new Promise((r) => { wake = r; });
      return queue.shift();
    };
    const done = new Promise((r) => call.on('status', r));
    for (const word of ['one', 'two', 'three']) {
      call.write({ text: word });
      assert.deepEqual(await next(), { text: `echo: ${word}` });
    }
    call.end();
    assert.equal((await done).code, grpc.status.OK);
  });

  test('metadata round trip: text and -bin, in headers and trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-text', 'hello world');
    const bin = Buffer.from([0, 1, 2, 254, 255, 10, 13]);
    md.set('x-data-bin', bin);
    const { err, res, headers, trailers } = await unary(c, 'GetUser', { id: 50 }, { metadata: md });
    assert.equal(err, null);
    assert.match(res.name, /^127\.0\.0\.1:\d+$/);  // ctx.peer
    assert.equal(res.email, 'none');               // no grpc-encoding
    assert.deepEqual(headers.get('x-text'), ['hello world']);
    assert.deepEqual(headers.get('x-data-bin'), [bin]);
    assert.deepEqual(trailers.get('x-text-t'), ['hello world']);
    assert.deepEqual(trailers.get('x-data-t-bin'), [bin]);
  });

  test('the handler sees the deadline it has left', async () => {
    const { err, res } = await unary(c, 'GetUser', { id: 61 }, { deadline: Date.now() + 5000 });
    assert.equal(err, null);
    const left = Number(res.name);
    assert.ok(left > 3 && left <= 5, `remaining ${res.name}`);
    const none = await unary(c, 'GetUser', { id: 61 });
    assert.equal(none.res.name, 'none');
  });

  test('a slow handler ends DEADLINE_EXCEEDED and sees its call expired', async () => {
    const t0 = Date.now();
    const { err } = await unary(c, 'GetUser', { id: 42 }, { deadline: Date.now() + 300 });
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 900 * SLOW, 'the status came at the deadline, not after the handler');
    const st = await waitState(srv, 'slow_done', 'expired');
    assert.equal(st.slow_deadline, true);
  });

  test('cancelling a server stream stops the handler (send raises)', async () => {
    const md = new grpc.Metadata();
    md.set('x-count', '100000000');
    md.set('x-size', '100');
    md.set('x-tag', 'cancel1');
    const call = c.ListUsers({}, md);
    call.on('error', () => {});
    let n = 0;
    await new Promise((resolve) => call.on('data', () => { if (++n === 20) resolve(); }));
    call.cancel();
    await waitState(srv, 'cancel1_done', 'cancelled');
  });

  test('a handler polling ctx:cancelled() notices the cancellation', async () => {
    const md = new grpc.Metadata();
    md.set('x-count', '1000');
    md.set('x-sleep', '0.02');
    md.set('x-tag', 'cancel2');
    const call = c.ListUsers({}, md);
    call.on('error', () => {});
    await new Promise((resolve) => call.once('data', resolve));
    call.cancel();
    await waitState(srv, 'cancel2_done', 'noticed');
    const st = await getJSON(srv, '/state');
    assert.ok(st.cancel2 < 1000, `handler went on to ${st.cancel2}`);
  });

  test('gzip both ways (grpc.default_compression_algorithm)', async () => {
    const gz = client(srv, { 'grpc.default_compression_algorithm': 2 });
    try {
      const { err, res } = await unary(gz, 'GetUser', { id: 50 });
      assert.equal(err, null);
      assert.equal(res.email, 'gzip');  // the request arrived with grpc-encoding: gzip
      const md = new grpc.Metadata();
      md.set('x-count', '20');
      md.set('x-size', '20000');
      const { msgs, status } = await collect(gz.ListUsers({}, md));
      assert.equal(status.code, grpc.status.OK);
      assert.equal(msgs.length, 20);
      assert.equal(msgs[19].name.length, 20000);
      const big = await new Promise((resolve) => {
        const call = gz.CreateUsers((e, r) => resolve({ e, r }));
        call.write({ name: 'z'.repeat(200000) });  // compresses far below the limit
        call.end();
      });
      assert.equal(big.e, null);
      assert.equal(big.r.count, 1);
    } finally {
      gz.close();
    }
  });

  test('a request message over max_recv_size is RESOURCE_EXHAUSTED', async () => {
    const { err } = await new Promise((resolve) => {
      const call = c.CreateUsers((e, r) => resolve({ err: e, res: r }));
      call.on('error', () => {});
      call.write({ name: 'y'.repeat(300 * 1024) });
      call.end();
    });
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  test('a reply over max_send_size is RESOURCE_EXHAUSTED', async () => {
    const { err } = await unary(c, 'GetUser', { id: 60 });
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  test('unknown services and methods are UNIMPLEMENTED', async () => {
    const call = (p) => new Promise((resolve) => {
      c.makeUnaryRequest(p, (x) => x, (x) => x, Buffer.alloc(0), (err) => resolve(err));
    });
    const e1 = await call('/user.UserService/NoSuchMethod');
    assert.equal(e1.code, grpc.status.UNIMPLEMENTED);
    assert.match(e1.details, /NoSuchMethod/);
    const e2 = await call('/nope.Nope/Call');
    assert.equal(e2.code, grpc.status.UNIMPLEMENTED);
    assert.match(e2.details, /nope\.Nope/);
  });

  test('many concurrent calls on one connection', async () => {
    const calls = [];
    for (let i = 0; i < 200; i++) calls.push(unary(c, 'GetUser', { id: (i % 3) + 1 }));
    const all = await Promise.all(calls);
    all.forEach(({ err, res }, i) => {
      assert.equal(err, null);
      assert.equal(res.id, String((i % 3) + 1));
    });
  });

  test('a slow reader does not make the server buffer the stream', async (t) => {
    const COUNT = 20000, SIZE = 1000;  // 20 MB in all
    const md = new grpc.Metadata();
    md.set('x-count', String(COUNT));
    md.set('x-size', String(SIZE));
    md.set('x-tag', 'slow');
    const rss0 = srv.rssKiB();
    const call = c.ListUsers({}, md);
    let n = 0;
    const done = new Promise((resolve, reject) => {
      call.on('data', () => { n++; });
      call.on('error', reject);
      call.on('status', resolve);
    });
    await new Promise((resolve) => call.once('data', resolve));
    call.pause();
    await sleep(1500);
    const st = await getJSON(srv, '/state');
    const rss1 = srv.rssKiB();
    t.diagnostic(`while paused: handler sent ${st.slow} of ${COUNT}, RSS +${rss1 - rss0} KiB`);
    // The handler is parked in send: what left it fits the flow-control windows and the
    // socket buffers, not the 20 MB it wants to send.
    assert.ok(st.slow > 0 && st.slow * SIZE < 8 * 1024 * 1024, `handler sent ${st.slow} messages while the client read none`);
    assert.ok(rss1 - rss0 < 16 * 1024, `server RSS grew ${rss1 - rss0} KiB`);
    call.resume();
    const status = await done;
    assert.equal(status.code, grpc.status.OK);
    assert.equal(n, COUNT);
    assert.equal((await getJSON(srv, '/state')).slow_done, 'completed');
  });
  test('a handler that reads slowly holds the client back (inbound flow control)', async (t) => {
    const COUNT = 2000, SIZE = 10000;  // 20 MB in all
    const md = new grpc.Metadata();
    md.set('x-stall', String(1.5 * SLOW));
    const rss0 = srv.rssKiB();
    let res;
    const done = new Promise((resolve) => {
      const call = c.CreateUsers(md, (err, r) => { res = { err, r }; resolve(); });
      const name = 'w'.repeat(SIZE);
      let i = 0;
      const pump = () => {
        while (i < COUNT) {
          i++;
          if (!call.write({ name })) { call.once('drain', pump); return; }
        }
        call.end();
      };
      pump();
    });
    await sleep(1000 * SLOW);
    const rss1 = srv.rssKiB();
    t.diagnostic(`while the handler stalled: server RSS +${rss1 - rss0} KiB`);
    assert.equal((await getJSON(srv, '/state')).stalled, true);
    assert.ok(rss1 - rss0 < 8 * 1024, `server RSS grew ${rss1 - rss0} KiB while the handler read nothing`);
    await done;
    assert.equal(res.err, null);
    assert.equal(res.r.count, COUNT);
    assert.equal((await getJSON(srv, '/state')).created_bytes, COUNT * SIZE);
  });
});

describe('gRPC server on the same port as HTTP/1.1 and on its own', () => {
  test('rt.grpc.listen opens an HTTP/2-only port', async () => {
    const srv = await startServer({ app: 'apps/grpc_listen.lua' });
    try {
      const m = await srv.waitForStderr(/gRPC \(HTTP\/2 only\) listening on 127\.0\.0\.1:(\d+)/);
      const other = new UserService(`127.0.0.1:${m[1]}`, grpc.credentials.createInsecure());
      const main = client(srv);
      const a = await unary(other, 'GetUser', { id: 1 });
      const b = await unary(main, 'GetUser', { id: 1 });
      assert.equal(a.err, null);
      assert.equal(a.res.name, 'Zhang San');
      assert.equal(b.res.name, 'Zhang San');
      other.close();
      main.close();
    } finally {
      await srv.stop();
    }
  });
});

describe('hot reload', () => {
  test('new calls get the reloaded handlers; a running stream keeps its old one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-grpc-reload-'));
    const app = path.join(dir, 'app.lua');
    const source = (tag) => `local rt = require "rt"
local users = rt.grpc.service(${JSON.stringify(path.join(ROOT, 'proto/user.proto'))}, "user.UserService")
function users.GetUser(req) return { id = req.id, name = "${tag}" } end
function users.ListUsers(_, s) for i = 1, 10 do rt.sleep(0.05) s:send { id = i, name = "${tag}" } end end
`;
    fs.writeFileSync(app, source('v1'));
    const srv = await startServer({ app });
    const c = client(srv);
    try {
      assert.equal((await unary(c, 'GetUser', { id: 1 })).res.name, 'v1');
      const running = collect(c.ListUsers({}));
      await sleep(100);
      fs.writeFileSync(app, source('v2'));
      const from = srv.stderr.length;
      srv.child.kill('SIGHUP');
      await srv.waitForStderr(/reloaded/, { from });
      assert.equal((await unary(c, 'GetUser', { id: 1 })).res.name, 'v2');
      const { msgs, status } = await running;
      assert.equal(status.code, grpc.status.OK);
      assert.equal(msgs.length, 10);
      assert.ok(msgs.every((m) => m.name === 'v1'), 'the stream that started on v1 ends on v1');
    } finally {
      c.close();
      await srv.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
