// A real browser: Debian's headless chromium loads the chat page that rtserver serves in
// two tabs; a message typed in one shows up in the other, and a tab that lost its
// connection comes back with the lines it missed.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { launchBrowser } = require('./lib/browser');
const { startServer, ROOT, SLOW } = require('./lib/server');

const TIMEOUT = 15000 * SLOW;

let srv, context, browser;

before(async () => {
  srv = await startServer({ app: path.join(ROOT, 'apps/chat.lua'), args: ['--metrics', '/metrics'] });
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

test('a chat page that lost its connection comes back with the lines it missed, once each', async () => {
  const open = async () => {
    const page = await context.newPage();
    await page.goto(srv.url('/'));
    await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    return page;
  };
  const alice = await open();
  const bob = await open();
  const bobName = (await bob.locator('#log div', { hasText: 'you are' }).first().textContent()).match(/you are (guest\d+)/)[1];
  const aliceName = (await alice.locator('#log div', { hasText: 'you are' }).first().textContent()).match(/you are (guest\d+)/)[1];
  await alice.locator('#log div', { hasText: `${bobName} joined` }).waitFor();

  // Alice goes offline (the test holds her reconnect back); Bob talks meanwhile.
  await alice.evaluate(() => { ws.onclose = null; ws.close(); });
  await bob.locator('#log div', { hasText: `server: ${aliceName} left` }).waitFor();
  for (const t of ['while you were out 1', 'while you were out 2']) {
    await bob.fill('#text', t);
    await bob.press('#text', 'Enter');
    await bob.locator('#log div', { hasText: t }).waitFor();
  }
  // She comes back: the missed lines first, then the greeting, under the same name.
  await alice.evaluate(() => connect());
  await alice.locator('#log div', { hasText: `welcome back, ${aliceName} (missed lines above)` }).waitFor({ timeout: TIMEOUT });
  const lines = await alice.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
  const missed1 = `server relays ${bobName}: while you were out 1`;
  const missed2 = `server relays ${bobName}: while you were out 2`;
  assert.equal(lines.filter((l) => l === missed1).length, 1);
  assert.equal(lines.filter((l) => l === missed2).length, 1);
  assert.ok(lines.indexOf(missed1) < lines.indexOf(missed2));
  assert.ok(lines.indexOf(missed2) < lines.findIndex((l) => l.includes('welcome back')));
  // And she is live again.
  await bob.fill('#text', 'live again');
  await bob.press('#text', 'Enter');
  await alice.locator('#log div', { hasText: `server relays ${bobName}: live again` }).waitFor();
  await alice.close();
  await bob.close();
});

// Chromium always offers permessage-deflate: the chat page's socket negotiates it, and a
// long line goes up compressed and comes back compressed to both pages.
test('the chat negotiates permessage-deflate with chromium and long lines travel compressed', async () => {
  const counters = async () => {
    const text = await (await fetch(srv.url('/metrics'))).text();
    const get = (name) => Number(text.match(new RegExp(`^${name} (\\d+)$`, 'm'))[1]);
    return { in: get('rtserver_ws_compressed_in_total'), out: get('rtserver_ws_compressed_out_total'),
             compressions: get('rtserver_ws_compressions_total') };
  };
  const open = async () => {
    const page = await context.newPage();
    await page.goto(srv.url('/'));
    await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    return page;
  };
  const alice = await open();
  const bob = await open();
  for (const p of [alice, bob]) {
    assert.equal(await p.evaluate(() => ws.extensions),
                 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
  }
  const before = await counters();
  const long = `a long line ✓ ${'order 12345 filled at 101.25; '.repeat(40)}${Date.now()}`;
  await alice.fill('#text', long);
  await alice.press('#text', 'Enter');
  for (const p of [alice, bob]) await p.locator('#log div', { hasText: long }).waitFor({ timeout: TIMEOUT });
  const after = await counters();
  assert.equal(after.in - before.in, 1, 'chromium sent the line compressed');
  assert.ok(after.out - before.out >= 2, 'both pages got it compressed');
  assert.equal(after.compressions - before.compressions, 1, 'compressed once for both');
  await alice.close();
  await bob.close();
});
