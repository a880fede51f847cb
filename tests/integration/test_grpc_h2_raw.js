// HTTP/2 and gRPC below the client libraries: hand-made frames on a raw socket (preface
// detection, GOAWAY on garbage, stream errors that leave the connection up) and node's
// http2 client for exact requests (Trailers-Only answers, 405/415, messages cut into
// one-byte DATA frames, gzip replies, malformed gRPC headers, GOAWAY on shutdown that
// lets calls in flight finish).
'use strict';
const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http2 = require('node:http2');
const zlib = require('node:zlib');
const { startServer, sleep, SLOW } = require('./lib/server');
const { RawConn } = require('./lib/raw');

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8 };

function frame(type, flags, sid, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(sid, 5);
  return Buffer.concat([h, payload]);
}

// HPACK "literal header field without indexing, new name", no Huffman; short strings only.
function hpack(headers) {
  const parts = [];
  for (const [k, v] of headers) {
    const kb = Buffer.from(k), vb = Buffer.from(v);
    assert.ok(kb.length < 127 && vb.length < 127);
    parts.push(Buffer.from([0, kb.length]), kb, Buffer.from([vb.length]), vb);
  }
  return Buffer.concat(parts);
}

function readFrame(conn) {
  return conn.waitFor((buf) => {
    if (buf.length < 9) return undefined;
    const len = buf.readUIntBE(0, 3);
    if (buf.length < 9 + len) return undefined;
    const f = { type: buf[3], flags: buf[4], sid: buf.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(buf.subarray(9, 9 + len)) };
    conn.consume(9 + len);
    return f;
  }, 'an HTTP/2 frame');
}

async function readUntil(conn, pred) {
  const seen = [];
  for (;;) {
    const f = await readFrame(conn);
    seen.push(f);
    if (pred(f)) return { f, seen };
  }
}

function grpcFrame(payload, compressed = 0) {
  const h = Buffer.alloc(5);
  h[0] = compressed;
  h.writeUInt32BE(payload.length, 1);
  return Buffer.concat([h, payload]);
}

// A request over node's http2 client: resolves { headers, trailers, data }.
function h2request(session, headers, body, { chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: false });
    const out = { headers: null, trailers: null, data: Buffer.alloc(0), rst: null };
    req.on('response', (h) => { out.headers = h; });
    req.on('trailers', (t) => { out.trailers = t; });
    req.on('data', (d) => { out.data = Buffer.concat([out.data, d]); });
    req.on('close', () => { out.rst = req.rstCode; resolve(out); });
    req.on('error', (e) => { if (!out.headers) reject(e); });
    (async () => {
      if (body && chunked) {
        for (const b of body) { req.write(Buffer.from([b])); await sleep(1); }
      } else if (body) {
        req.write(body);
      }
      req.end();
    })();
  });
}

const grpcHeaders = (p, extra = {}) => ({
  ':method': 'POST', ':path': p, 'content-type': 'application/grpc', te: 'trailers', ...extra,
});

describe('HTTP/2 on the shared port', () => {
  let srv;
  before(async () => { srv = await startServer({ app: 'apps/grpc_test.lua' }); });
  after(async () => { await srv.stop(); });

  test('the preface followed by garbage gets GOAWAY and the connection ends', async () => {
    const c = await RawConn.connect(srv.port);
    c.write(Buffer.concat([PREFACE, Buffer.from('this is not an HTTP/2 frame at all, just text\r\n')]));
    const { f } = await readUntil(c, (x) => x.type === T.GOAWAY);
    assert.notEqual(f.payload.readUInt32BE(4), 0, 'GOAWAY carries an error code');
    assert.ok(await c.waitClosed(), 'the server closed the connection');
  });

  test('an HTTP/1.1 request still works on the same port', async () => {
    const c = await RawConn.connect(srv.port);
    c.write('GET /state HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await c.readResponse();
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/json');
    c.destroy();
  });

  test('a request that only starts like the preface is HTTP/1.1', async () => {
    const c = await RawConn.connect(srv.port);
    c.write('PRI * HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await c.readResponse();
    assert.ok(res.status >= 400, `an HTTP/1.1 error status, got ${res.status}`);
    c.destroy();
  });

  test('a preface that arrives a byte at a time is still HTTP/2', async () => {
    const c = await RawConn.connect(srv.port);
    for (const b of PREFACE) { c.write(Buffer.from([b])); await sleep(2); }
    c.write(frame(T.SETTINGS, 0, 0));
    const { f } = await readUntil(c, (x) => x.type === T.SETTINGS && !(x.flags & 1));
    // Our SETTINGS: max concurrent streams 100 (id 3) among them.
    const ids = {};
    for (let i = 0; i < f.payload.length; i += 6) ids[f.payload.readUInt16BE(i)] = f.payload.readUInt32BE(i + 2);
    assert.equal(ids[3], 100);
    c.destroy();
  });

  test('a stream error resets the stream and leaves the connection up', async () => {
    const c = await RawConn.connect(srv.port);
    c.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]));
    // Upper-case header names are malformed in HTTP/2 (RFC 9113 8.2.1).
    const block = hpack([[':method', 'POST'], [':scheme', 'http'], [':path', '/user.UserService/GetUser'],
      [':authority', 'x'], ['content-type', 'application/grpc'], ['X-Bad', '1']]);
    c.write(frame(T.HEADERS, 0x4 | 0x1, 1, block));
    const { f } = await readUntil(c, (x) => x.type === T.RST_STREAM);
    assert.equal(f.sid, 1);
    assert.equal(f.payload.readUInt32BE(0), 1, 'PROTOCOL_ERROR');
    c.write(frame(T.PING, 0, 0, Buffer.from('12345678')));
    const { f: pong, seen } = await readUntil(c, (x) => x.type === T.PING && (x.flags & 1));
    assert.equal(pong.payload.toString(), '12345678');
    assert.ok(!seen.some((x) => x.type === T.GOAWAY));
    c.destroy();
  });

  describe('with node\'s http2 client', () => {
    let session;
    before(() => { session = http2.connect(`http://127.0.0.1:${srv.port}`); });
    after(() => { session.close(); });

    test('not POST: 405; not gRPC: 415', async () => {
      const a = await h2request(session, { ':method': 'GET', ':path': '/user.UserService/GetUser' });
      assert.equal(a.headers[':status'], 405);
      const b = await h2request(session, { ':method': 'POST', ':path': '/user.UserService/GetUser', 'content-type': 'text/plain' }, Buffer.from('x'));
      assert.equal(b.headers[':status'], 415);
    });

    test('errors before any message are Trailers-Only', async () => {
      const r = await h2request(session, grpcHeaders('/no.Such/Method'), grpcFrame(Buffer.alloc(0)));
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.headers['grpc-status'], '12');
      assert.match(decodeURIComponent(r.headers['grpc-message']), /unknown service no\.Such/);
      assert.equal(r.trailers, null);
      assert.equal(r.data.length, 0);
    });

    test('a message cut into one-byte DATA frames is put back together', async () => {
      const req = grpcFrame(Buffer.from([0x08, 0x02]));  // GetUserRequest { id = 2 }
      const r = await h2request(session, grpcHeaders('/user.UserService/GetUser'), req, { chunked: true });
      assert.equal(r.trailers['grpc-status'], '0');
      assert.equal(r.data[0], 0);
      assert.equal(r.data.readUInt32BE(1), r.data.length - 5);
      assert.ok(r.data.includes(Buffer.from('user2')));
    });

    test('application/grpc+proto is accepted; +json is UNIMPLEMENTED', async () => {
      const req = grpcFrame(Buffer.from([0x08, 0x03]));
      const a = await h2request(session, grpcHeaders('/user.UserService/GetUser', { 'content-type': 'application/grpc+proto' }), req);
      assert.equal(a.trailers['grpc-status'], '0');
      assert.ok(a.data.includes(Buffer.from('user3')));
      const b = await h2request(session, grpcHeaders('/user.UserService/GetUser', { 'content-type': 'application/grpc+json' }), req);
      assert.equal(b.headers['grpc-status'], '12');
    });

    test('two request messages for a unary method are INTERNAL', async () => {
      const m = grpcFrame(Buffer.from([0x08, 0x01]));
      const r = await h2request(session, grpcHeaders('/user.UserService/GetUser'), Buffer.concat([m, m]));
      const st = (r.trailers || r.headers)['grpc-status'];
      assert.equal(st, '13');
    });

    test('a stream that ends inside a message is INTERNAL', async () => {
      const m = grpcFrame(Buffer.from([0x08, 0x01, 0x12, 0x05]));
      const r = await h2request(session, grpcHeaders('/user.UserService/CreateUsers'), m.subarray(0, 7));
      assert.equal((r.trailers || r.headers)['grpc-status'], '13');
    });

    test('malformed grpc-timeout is INTERNAL, unknown grpc-encoding UNIMPLEMENTED', async () => {
      const m = grpcFrame(Buffer.from([0x08, 0x01]));
      const a = await h2request(session, grpcHeaders('/user.UserService/GetUser', { 'grpc-timeout': 'soon' }), m);
      assert.equal(a.headers['grpc-status'], '13');
      const b = await h2request(session, grpcHeaders('/user.UserService/GetUser', { 'grpc-encoding': 'snappy' }), m);
      assert.equal(b.headers['grpc-status'], '12');
      assert.match(b.headers['grpc-accept-encoding'], /gzip/);
    });

    test('a request that is not the method\'s message is INTERNAL', async () => {
      const r = await h2request(session, grpcHeaders('/user.UserService/GetUser'), grpcFrame(Buffer.from([0xff, 0xff, 0xff])));
      const t = r.trailers || r.headers;
      assert.equal(t['grpc-status'], '13');
      assert.match(decodeURIComponent(t['grpc-message']), /cannot decode the request/);
    });

    test('a compressed flag without grpc-encoding is INTERNAL', async () => {
      const r = await h2request(session, grpcHeaders('/user.UserService/GetUser'), grpcFrame(Buffer.from([0x08, 0x01]), 1));
      assert.equal((r.trailers || r.headers)['grpc-status'], '13');
    });

    test('a gzip request gets gzip replies (grpc-encoding, compressed flag)', async () => {
      const body = grpcFrame(zlib.gzipSync(Buffer.alloc(0)), 1);  // Empty, compressed
      const r = await h2request(session, grpcHeaders('/user.UserService/ListUsers', {
        'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'identity,gzip', 'x-count': '2', 'x-size': '5000',
      }), body);
      assert.equal(r.headers['grpc-encoding'], 'gzip');
      assert.equal(r.trailers['grpc-status'], '0');
      let off = 0, n = 0;
      while (off < r.data.length) {
        const flag = r.data[off], len = r.data.readUInt32BE(off + 1);
        assert.equal(flag, 1, 'each reply is compressed');
        assert.ok(len < 200, `compressed to ${len} bytes`);
        const plain = zlib.gunzipSync(r.data.subarray(off + 5, off + 5 + len));
        assert.ok(plain.includes(Buffer.from('n'.repeat(5000))));
        off += 5 + len;
        n++;
      }
      assert.equal(n, 2);
    });

    test('a client that cannot read gzip gets plain replies', async () => {
      const r = await h2request(session, grpcHeaders('/user.UserService/ListUsers', {
        'grpc-accept-encoding': 'identity', 'x-count': '1', 'x-size': '5000',
      }), grpcFrame(Buffer.alloc(0)));
      assert.equal(r.headers['grpc-encoding'], undefined);
      assert.equal(r.data[0], 0);
    });
  });
});

describe('shutdown', () => {
  test('GOAWAY; calls in flight still finish; then the server exits cleanly', async () => {
    const srv = await startServer({ app: 'apps/grpc_test.lua' });
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    const goaway = new Promise((resolve) => session.on('goaway', (code) => resolve(code)));
    session.on('error', () => {});
    const call = h2request(session, grpcHeaders('/user.UserService/ListUsers', {
      'x-count': '20', 'x-sleep': '0.05',
    }), grpcFrame(Buffer.alloc(0)));
    await sleep(200 * SLOW);
    const stopped = srv.stop();
    assert.equal(await goaway, 0, 'GOAWAY with NO_ERROR');
    const r = await call;
    assert.equal(r.trailers['grpc-status'], '0');
    let n = 0;
    for (let off = 0; off < r.data.length; off += 5 + r.data.readUInt32BE(off + 1)) n++;
    assert.equal(n, 20);
    await stopped;
    session.destroy();
  });
});
