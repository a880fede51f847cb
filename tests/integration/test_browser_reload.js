// Issue 6's "done when": two browser tabs stay connected to the chat while apps/chat.lua is
// edited (rtserver --watch), and the next message shows the new behaviour in both.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { launchBrowser } = require('./lib/browser');
const { startServer, ROOT, SLOW } = require('./lib/server');

const TIMEOUT = 15000 * SLOW;

let srv, context, browser, appDir;

before(async () => {
  // A copy of the chat app (script + page) that the test can edit.
  appDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-chat-reload-'));
  fs.copyFileSync(path.join(ROOT, 'apps/chat.lua'), path.join(appDir, 'chat.lua'));
  fs.mkdirSync(path.join(appDir, 'chat'));
  fs.copyFileSync(path.join(ROOT, 'apps/chat/index.html'), path.join(appDir, 'chat/index.html'));
  srv = await startServer({ app: path.join(appDir, 'chat.lua'), args: ['--watch'] });
  browser = await launchBrowser();
  context = browser.context;
});

after(async () => {
  if (browser) await browser.close();
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
