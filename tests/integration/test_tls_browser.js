// A real browser over TLS: headless chromium loads the chat page from https:// and the
// page chats over wss:// (same origin). Chromium trusts the test server's key through
// --ignore-certificate-errors-spki-list (the SPKI hash of that one key, nothing else),
// since a headless profile has no certificate store to add the test CA to.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execSync } = require('node:child_process');
const path = require('node:path');
const { launchBrowser } = require('./lib/browser');
const { makeCerts } = require('./lib/certs');
const { startServer, ROOT } = require('./lib/server');

let certs, srv, browser;

before(async () => {
  certs = makeCerts();
  srv = await startServer({ app: path.join(ROOT, 'apps/chat.lua'), args: certs.serverArgs() });
  const spki = execSync(`openssl x509 -in "${certs.serverCert}" -pubkey -noout | openssl pkey -pubin -outform der | ` +
                        'openssl dgst -sha256 -binary | base64', { encoding: 'utf8' }).trim();
  browser = await launchBrowser({ args: [`--ignore-certificate-errors-spki-list=${spki}`] });
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
  if (certs) certs.remove();
});

test('the chat page over https: two tabs talk over wss', async () => {
  assert.ok(srv.url('/').startsWith('https://'));
  const errors = [];
  const open = async () => {
    const page = await browser.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    const res = await page.goto(srv.url('/'));
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).protocol, 'https:');
    const sec = await res.securityDetails();
    assert.match(sec.protocol, /TLS 1\.3/);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    return page;
  };
  const alice = await open();
  const bob = await open();
  await alice.locator('#log div', { hasText: /guest\d+ joined \(2 online\)/ }).waitFor();
  const aliceName = (await alice.locator('#log div').first().textContent()).match(/you are (guest\d+)/)[1];
  const text = `over wss ${Date.now()}`;
  await alice.fill('#text', text);
  await alice.click('#send');
  await bob.locator('#log div', { hasText: `server relays ${aliceName}: ${text}` }).waitFor();
  assert.deepEqual(errors, []);
  await alice.close();
  await bob.close();
});
