// Raw TCP helpers for tests that must send exactly the bytes they mean: HTTP requests that
// a client library would normalise, and hand-built WebSocket frames.
//
//   const c = await RawConn.connect(srv.port);
//   c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
//   const res = await c.readResponse();      // { status, headers, body }
//   await c.waitClosed();
'use strict';
const net = require('node:net');
const crypto = require('node:crypto');
const { SLOW } = require('./server');

class RawConn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false;       // the peer closed (FIN or reset)
    this.error = null;
    this._wake = null;
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this._notify(); });
    sock.on('end', () => { this.ended = true; this._notify(); });
    sock.on('close', () => { this.ended = true; this._notify(); });
    sock.on('error', (e) => { this.error = e; this.ended = true; this._notify(); });
  }

  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host });
      sock.once('connect', () => { sock.removeListener('error', reject); resolve(new RawConn(sock)); });
      sock.once('error', reject);
    });
  }

  _notify() { if (this._wake) { const w = this._wake; this._wake = null; w(); } }

  write(data) { this.sock.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data); }

  // Waits until fn(buf) returns a non-undefined value; fn may consume with this.consume(n).
  async waitFor(fn, what = 'data', timeoutMs = 5000 * SLOW) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = fn(this.buf);
      if (r !== undefined) return r;
      if (this.ended) throw new Error(`connection closed while waiting for ${what}; have ${this.buf.length} bytes: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; have ${this.buf.length} bytes: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        this._wake = () => { clearTimeout(t); resolve(); };
      });
    }
  }

  consume(n) { const head = this.buf.subarray(0, n); this.buf = this.buf.subarray(n); return head; }

  // One HTTP/1.1 response (Content-Length bodies; HEAD responses with noBody).
  readResponse({ noBody = false, timeoutMs } = {}) {
    return this.waitFor((buf) => {
      const res = parseResponse(buf, noBody);
      if (!res) return undefined;
      this.consume(res.size);
      return res;
    }, 'an HTTP response', timeoutMs);
  }

  // One WebSocket frame from the server.
  readFrame({ timeoutMs } = {}) {
    return this.waitFor((buf) => {
      const f = parseFrame(buf);
      if (!f) return undefined;
      this.consume(f.size);
      return f;
    }, 'a WebSocket frame', timeoutMs);
  }

  // Reads frames until a close frame; returns { code, reason, frames } (frames before it).
  async readClose({ timeoutMs } = {}) {
    const frames = [];
    for (;;) {
      const f = await this.readFrame({ timeoutMs });
      if (f.opcode === 8) {
        const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
        return { code, reason: f.payload.subarray(2).toString('utf8'), frames };
      }
      frames.push(f);
    }
  }

  // Resolves true once the peer has closed the TCP connection, false on timeout.
  async waitClosed(timeoutMs = 5000 * SLOW) {
    try {
      await this.waitFor(() => (this.ended ? true : undefined), 'the connection to close', timeoutMs);
      return true;
    } catch (e) {
      if (this.ended) return true;
      return false;
    }
  }

  destroy() { this.sock.destroy(); }
}

function parseResponse(buf, noBody) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = head[0].match(/^HTTP\/1\.([01]) (\d{3}) ?(.*)$/);
  if (!m) throw new Error(`not an HTTP response: ${JSON.stringify(head[0])}`);
  const headers = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const status = Number(m[2]);
  const len = noBody || status === 101 || status === 204 || status === 304 ? 0 : Number(headers['content-length'] || 0);
  if (buf.length < end + 4 + len) return null;
  const body = buf.subarray(end + 4, end + 4 + len);
  return { status, reason: m[3], headers, body, text: body.toString('utf8'), size: end + 4 + len };
}

function parseFrame(buf) {
  if (buf.length < 2) return null;
  const b0 = buf[0], b1 = buf[1];
  let len = b1 & 0x7f, off = 2;
  if (len === 126) { if (buf.length < 4) return null; len = buf.readUInt16BE(2); off = 4; }
  else if (len === 127) { if (buf.length < 10) return null; len = Number(buf.readBigUInt64BE(2)); off = 10; }
  const masked = !!(b1 & 0x80);
  let mask = null;
  if (masked) { if (buf.length < off + 4) return null; mask = buf.subarray(off, off + 4); off += 4; }
  if (buf.length < off + len) return null;
  let payload = Buffer.from(buf.subarray(off, off + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return { fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, masked, payload, size: off + len };
}

// A client frame: masked unless mask === false.
function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0 } = {}) {
  payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = payload.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode) & 0xff];
  const mbit = mask ? 0x80 : 0;
  if (len < 126) head.push(mbit | len);
  else if (len < 65536) head.push(mbit | 126, len >> 8, len & 0xff);
  else {
    head.push(mbit | 127);
    const l = Buffer.alloc(8);
    l.writeBigUInt64BE(BigInt(len));
    head.push(...l);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = crypto.randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

function closePayload(code, reason = '') {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

function acceptKey(key) {
  return crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

// Connects and upgrades; returns { conn, res } with the 101 (or refusal) response read.
async function wsConnect(port, path, { host = '127.0.0.1', headers = {} } = {}) {
  const conn = await RawConn.connect(port, host);
  const key = crypto.randomBytes(16).toString('base64');
  const h = {
    Host: `${host}:${port}`, Upgrade: 'websocket', Connection: 'Upgrade',
    'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers,
  };
  let req = `GET ${path} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(h)) if (v !== null) req += `${k}: ${v}\r\n`;
  conn.write(req + '\r\n');
  const res = await conn.readResponse();
  if (res.status === 101 && res.headers['sec-websocket-accept'] !== acceptKey(h['Sec-WebSocket-Key'])) {
    throw new Error(`bad Sec-WebSocket-Accept ${res.headers['sec-websocket-accept']}`);
  }
  return { conn, res };
}

module.exports = { RawConn, parseResponse, parseFrame, frame, closePayload, acceptKey, wsConnect };
