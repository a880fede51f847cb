// Starts the real rtserver binary for a test and stops it again.
//
//   const { startServer } = require('./lib/server');
//   const srv = await startServer({ app: 'apps/chat.lua', args: ['--ws-ping', '0.2'] });
//   ... srv.port, srv.url('/chat'), srv.wsUrl('/chat'), srv.stderr ...
//   await srv.stop();   // SIGTERM, SIGKILL after a timeout; throws on a sanitizer report
//
// The binary is $RTSERVER (run.sh exports it), else build/rtserver. `app` is relative to
// tests/integration/ unless absolute. Every server's stderr is also written to
// $RT_TEST_LOGDIR (when set) so run.sh can scan all of them for sanitizer reports.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const HERE = path.resolve(__dirname, '..');
const ROOT = process.env.RT_REPO_ROOT || path.resolve(HERE, '..', '..');
const BINARY = path.resolve(ROOT, process.env.RTSERVER || 'build/rtserver');
const ASAN = !!process.env.RT_ASAN;
// Sanitizer builds are several times slower: scale the waits, not the assertions.
const SLOW = ASAN ? 3 : 1;

const SANITIZER_MARKERS = [
  'ERROR: AddressSanitizer',
  'ERROR: LeakSanitizer',
  'runtime error:',
];

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch (_) { /* already gone */ }
  }
});

let serial = 0;

function sanitizerReport(stderr) {
  const hit = SANITIZER_MARKERS.find((m) => stderr.includes(m));
  if (!hit) return null;
  const at = stderr.indexOf(hit);
  return stderr.slice(Math.max(0, at - 200), at + 3000);
}

function resolveApp(app) {
  return path.isAbsolute(app) ? app : path.resolve(HERE, app);
}

function hasFlag(args, ...names) {
  return args.some((a) => names.includes(a) || names.some((n) => a.startsWith(n + '=')));
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// Runs rtserver to completion (for CLI tests): resolves { code, signal, stdout, stderr }.
function runServer(args, { timeoutMs = 10000 * SLOW, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rtserver ${args.join(' ')} did not exit in ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      writeLog('cli', stderr);
      const report = sanitizerReport(stderr);
      if (report) reject(new Error(`sanitizer report from rtserver ${args.join(' ')}:\n${report}`));
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

function writeLog(tag, stderr) {
  const dir = process.env.RT_TEST_LOGDIR;
  if (!dir) return;
  const base = path.basename(process.argv[1] || 'test', path.extname(process.argv[1] || ''));
  serial += 1;
  try {
    fs.writeFileSync(path.join(dir, `${base}.${process.pid}.${serial}.${tag}.stderr`), stderr);
  } catch (_) { /* the log is a convenience; the assertion below still runs */ }
}

class Server {
  constructor(child, args) {
    this.child = child;
    this.args = args;
    this._stderr = '';
    this.exited = null;           // { code, signal } once it is gone
    this.host = null;
    this.port = null;
    this._waiters = [];
    this._exitWaiters = [];
  }

  get stderr() { return this._stderr; }
  get pid() { return this.child.pid; }

  // host as it goes into a URL: [::1] for IPv6
  get urlHost() { return this.host.includes(':') ? `[${this.host}]` : this.host; }
  url(p = '/') { return `${this.tls ? 'https' : 'http'}://${this.urlHost}:${this.port}${p}`; }
  wsUrl(p = '/') { return `${this.tls ? 'wss' : 'ws'}://${this.urlHost}:${this.port}${p}`; }

  _onStderr(chunk) {
    this._stderr += chunk;
    for (const w of [...this._waiters]) {
      const m = this._stderr.slice(w.from).match(w.re);
      if (m) { this._waiters.splice(this._waiters.indexOf(w), 1); clearTimeout(w.timer); w.resolve(m); }
    }
  }

  _cancelWaiters() {
    for (const w of this._waiters.splice(0)) clearTimeout(w.timer);
  }

  // Resolves with the match once stderr (from offset `from`) matches re.
  waitForStderr(re, { timeoutMs = 5000 * SLOW, from = 0 } = {}) {
    const m = this._stderr.slice(from).match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const w = { re, from, resolve };
      w.timer = setTimeout(() => {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        reject(new Error(`rtserver stderr did not match ${re} within ${timeoutMs} ms; stderr:\n${this._stderr}`));
      }, timeoutMs);
      this._waiters.push(w);
    });
  }

  // Resident memory of the server process in KiB (Linux /proc).
  rssKiB() {
    const status = fs.readFileSync(`/proc/${this.child.pid}/status`, 'utf8');
    const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) : NaN;
  }

  _waitExit(ms) {
    if (this.exited) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this._exitWaiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }

  // Stops the server: SIGTERM, then SIGKILL after timeoutMs (it drains up to 10 s by default). Throws if it needed SIGKILL,
  // exited with a failure, or its stderr holds a sanitizer report.
  async stop({ timeoutMs = 12000 * SLOW, allowFailure = false } = {}) {
    let killed = false;
    if (!this.exited) {
      this.child.kill('SIGTERM');
      if (!(await this._waitExit(timeoutMs))) {
        killed = true;
        this.child.kill('SIGKILL');
        await this._waitExit(5000);
      }
    }
    // stderr may still be draining after 'exit'
    await this._stderrClosed;
    writeLog('server', this._stderr);
    const report = sanitizerReport(this._stderr);
    if (report) throw new Error(`sanitizer report from rtserver:\n${report}`);
    if (allowFailure) return this.exited;
    if (killed) throw new Error(`rtserver did not exit within ${timeoutMs} ms of SIGTERM; stderr:\n${this._stderr}`);
    if (this.exited.code !== 0) {
      throw new Error(`rtserver exited with ${JSON.stringify(this.exited)} after SIGTERM; stderr:\n${this._stderr}`);
    }
    return this.exited;
  }
}

// startServer({ app, args, env, timeoutMs, binary }) -> Server, ready for connections.
// --port 0 is added unless args name a port; binary is for the harness's own tests.
async function startServer({ app = 'apps/echo.lua', args = [], env = {}, timeoutMs = 10000 * SLOW, binary = BINARY } = {}) {
  const full = [...args];
  if (!hasFlag(full, '--port', '-p')) full.unshift('--port', '0');
  full.push(resolveApp(app));
  const child = spawn(binary, full, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(child);
  const srv = new Server(child, full);
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => srv._onStderr(d));
  srv._stderrClosed = new Promise((r) => child.stderr.on('close', r));
  const spawnError = new Promise((_, reject) => child.on('error', reject));
  child.on('exit', (code, signal) => {
    live.delete(child);
    srv.exited = { code, signal };
    for (const w of srv._exitWaiters.splice(0)) w();
  });

  const ready = srv.waitForStderr(/rtserver listening on (https?):\/\/(\[[^\]]+\]|[^:/\s]+):(\d+)\//, { timeoutMs });
  const died = new Promise((_, reject) => {
    child.on('exit', async () => {
      if (srv.port) return;
      await srv._stderrClosed;
      reject(new Error(`rtserver exited before it was ready (${JSON.stringify(srv.exited)}); ` +
                       `args: ${full.join(' ')}\nstderr:\n${srv.stderr}`));
    });
  });
  // Whichever loses the race must not become an unhandled rejection later.
  died.catch(() => {});
  spawnError.catch(() => {});
  ready.catch(() => {});
  let m;
  try {
    m = await Promise.race([ready, died, spawnError]);
  } catch (e) {
    if (!srv.exited) child.kill('SIGKILL');
    srv._cancelWaiters();
    throw e;
  }
  srv.tls = m[1] === 'https';
  srv.host = m[2].replace(/^\[|\]$/g, '');
  srv.port = Number(m[3]);
  return srv;
}

module.exports = { startServer, runServer, sanitizerReport, sleep, BINARY, ROOT, HERE, ASAN, SLOW };
