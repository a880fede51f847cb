// Issue 6's "done when": two browser tabs stay connected to the chat while apps/chat.lua is
// edited (rtserver --watch), and the next message shows the new behaviour in both.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { startServer, ROOT, SLOW } = require('./lib/server');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15000 * SLOW;

let srv, context, profile, appDir;

before(async () => {
  // A copy of the chat app (script + page) that the test can edit.
  appDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-chat-reload-'));
  fs.copyFileSync(path.join(ROOT, 'apps/chat.lua'), path.join(appDir, 'chat.lua'));
  fs.mkdirSync(path.join(appDir, 'chat'));
  fs.copyFileSync(path.join(ROOT, 'apps/chat/index.html'), path.join(appDir, 'chat/index.html'));
  srv = await startServer({ app: path.join(appDir, 'chat.lua'), args: ['--watch'] });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: TIMEOUT,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-proxy-server'],
  });
  context.setDefaultTimeout(TIMEOUT);
});

after(async () => {
  if (context) await context.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
  if (srv) await srv.stop();
  if (appDir) fs.rmSync(appDir, { recursive: true, force: true });
});

test('editing chat.lua while two tabs are connected: same connections, new code', async () => {
  const open = async () => {
    const page = await context.newPage();
    await page.goto(srv.url('/'));
    await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    return page;
  };
  const alice = await open();
  const bob = await open();
  await alice.fill('#text', 'before');
  await alice.click('#send');
  await bob.locator('#log div', { hasText: /server relays guest\d+: before/ }).waitFor();

  // The developer edits the relay line.
  const script = path.join(appDir, 'chat.lua');
  const src = fs.readFileSync(script, 'utf8');
  const edited = src.replace('"server relays "', '"server (edited) relays "');
  assert.notEqual(edited, src, 'the chat script changed shape: update this test');
  fs.writeFileSync(script, edited);
  await srv.waitForStderr(/reloaded .*chat\.lua/);

  await bob.fill('#text', 'after');
  await bob.click('#send');
  await alice.locator('#log div', { hasText: /server \(edited\) relays guest\d+: after/ }).waitFor();
  await bob.locator('#log div', { hasText: /server \(edited\) relays guest\d+: after/ }).waitFor();
  // Nobody was disconnected by the reload.
  for (const p of [alice, bob]) {
    assert.equal(await p.locator('#status').textContent(), 'connected');
  }
  await alice.close();
  await bob.close();
});
