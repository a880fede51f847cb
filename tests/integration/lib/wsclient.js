// npm `ws` with a queue: `await c.next()` returns the next message in order.
'use strict';
const WebSocket = require('ws');
const { SLOW } = require('./server');

class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.pings = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        resolve(this.closeInfo);
        this._flush();
      });
    });
    ws.on('message', (data, binary) => {
      this.queue.push({ data: binary ? data : data.toString('utf8'), binary });
      this._flush();
    });
    ws.on('ping', (data) => { this.pings.push({ at: Date.now(), data: data.toString('latin1') }); });
    ws.on('error', (e) => { this.error = e; });
  }

  static open(url, { protocols, ...opts } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { handshakeTimeout: 5000 * SLOW, ...opts });
      const c = new Client(ws);
      ws.once('open', () => resolve(c));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    });
  }

  _flush() {
    while (this.waiters.length && (this.queue.length || this.closeInfo)) {
      const w = this.waiters.shift();
      clearTimeout(w.timer);
      if (this.queue.length) w.resolve(this.queue.shift());
      else w.reject(new Error(`closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for a message`));
    }
  }

  // The next message: { data: string | Buffer, binary }.
  next(timeoutMs = 5000 * SLOW) {
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
      this._flush();
    });
  }

  async nextText(timeoutMs) {
    const m = await this.next(timeoutMs);
    if (m.binary) throw new Error('expected a text message, got binary');
    return m.data;
  }

  send(data, opts = {}) {
    return new Promise((resolve, reject) => this.ws.send(data, opts, (e) => (e ? reject(e) : resolve())));
  }

  close(code, reason) { this.ws.close(code, reason); return this.closed; }

  async waitClosed(timeoutMs = 5000 * SLOW) {
    let t;
    const timeout = new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
    });
    try { return await Promise.race([this.closed, timeout]); } finally { clearTimeout(t); }
  }

  terminate() { this.ws.terminate(); }
}

module.exports = { Client, WebSocket };
