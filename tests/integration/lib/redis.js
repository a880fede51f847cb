// A throwaway redis-server (Debian's) on a free loopback port, with a temp dir.
//
//   const { startRedis } = require('./lib/redis');
//   const r = await startRedis();        // r.port, r.url ('redis://127.0.0.1:PORT')
//   await r.cli('PUBSUB', 'CHANNELS');   // redis-cli's output, as lines
//   await r.stop(); await r.start();     // the same port again (a restart mid-test)
//   await r.waitSubscribers('rt:chat', 2); // two nodes subscribed to a name
'use strict';
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

class Redis {
  constructor(port, extraArgs = []) {
    this.port = port;
    this.extraArgs = extraArgs;
    const pw = extraArgs.indexOf('--requirepass');
    this.password = pw >= 0 ? extraArgs[pw + 1] : null;
    this.url = `redis://127.0.0.1:${port}`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-redis-'));
    this.child = null;
  }

  start() {
    return new Promise((resolve, reject) => {
      const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1',
        '--dir', this.dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no',
        '--loglevel', 'warning', ...this.extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
      this.child = child;
      this.exited = new Promise((r) => child.once('exit', r));
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`redis-server did not start: ${out}`));
      }, 10000);
      const ping = async () => {
        // Ready when it answers.
        for (;;) {
          if (child.exitCode !== null) { clearTimeout(timer); return reject(new Error(`redis-server exited: ${out}`)); }
          try {
            const lines = await this.cli('PING');
            if (lines[0] === 'PONG') { clearTimeout(timer); return resolve(this); }
          } catch (_) { /* not yet */ }
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      ping();
    });
  }

  // SIGKILL: a crash, not a shutdown (clients see the connection drop).
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  cli(...args) {
    return new Promise((resolve, reject) => {
      const auth = this.password ? ['--no-auth-warning', '-a', this.password] : [];
      execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(this.port), ...auth, ...args], { timeout: 5000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout.split('\n').filter((l) => l !== ''))));
    });
  }

  // Resolves when channel has n subscribers (nodes subscribe once per name): a publish
  // after it reaches every node. Polls; throws after timeoutMs.
  async waitSubscribers(channel, n, timeoutMs = 10000) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = await this.cli('PUBSUB', 'NUMSUB', channel).catch(() => []);
      if (r[1] === String(n)) return;
      if (Date.now() > until) throw new Error(`${channel} has ${r[1]} subscribers in Redis, not ${n}`);
      await new Promise((res) => setTimeout(res, 30));
    }
  }

  async remove() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function startRedis(extraArgs = []) {
  const r = new Redis(await freePort(), extraArgs);
  return r.start();
}

module.exports = { startRedis, freePort, Redis };
