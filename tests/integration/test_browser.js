// A real browser: Debian's headless chromium loads the chat page that rtserver serves in
// two tabs; a message typed in one shows up in the other.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { launchBrowser } = require('./lib/browser');
const { startServer, ROOT, SLOW } = require('./lib/server');

const TIMEOUT = 15000 * SLOW;

let srv, context, browser;

before(async () => {
  srv = await startServer({ app: path.join(ROOT, 'apps/chat.lua') });
  browser = await launchBrowser();
  context = browser.context;
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

test('two chat pages: a message sent from one appears in the other', async () => {
  const errors = [];
  const open = async () => {
    const page = await context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    const res = await page.goto(srv.url('/'));
    assert.equal(res.status(), 200);
    assert.equal(res.headers()['content-type'], 'text/html; charset=utf-8');
    await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    return page;
  };
  const alice = await open();
  const bob = await open();
  assert.equal(await alice.title(), 'rtserver chat');

  // Alice sees Bob join.
  await alice.locator('#log div', { hasText: /guest\d+ joined \(2 online\)/ }).waitFor();
  const bobName = (await bob.locator('#log div').first().textContent()).match(/you are (guest\d+)/)[1];
  const aliceName = (await alice.locator('#log div').first().textContent()).match(/you are (guest\d+)/)[1];
  assert.notEqual(aliceName, bobName);

  const text = `hello from the browser ${Date.now()} ✓`;
  await alice.fill('#text', text);
  await alice.click('#send');
  const line = `server relays ${aliceName}: ${text}`;
  await bob.locator('#log div', { hasText: line }).waitFor();
  await alice.locator('#log div', { hasText: line }).waitFor();
  assert.equal(await alice.inputValue('#text'), '', 'the input was not cleared');

  // And back the other way, with Enter instead of the button.
  await bob.fill('#text', 'reply from bob');
  await bob.press('#text', 'Enter');
  await alice.locator('#log div', { hasText: `server relays ${bobName}: reply from bob` }).waitFor();

  // Closing a tab is a leave notice for the other.
  await bob.close();
  await alice.locator('#log div', { hasText: `server: ${bobName} left` }).waitFor();
  assert.deepEqual(errors, []);
  await alice.close();
});
