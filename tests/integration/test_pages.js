// The pages the apps ship, as headless Debian chromium parses them: each declares its icon
// (inline), so a browser never asks for /favicon.ico and logs a 404 for it on every load.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { ROOT } = require('./lib/server');
const { launchBrowser } = require('./lib/browser');

const PAGES = ['apps/chat/index.html', 'apps/order/index.html', 'apps/order/sockjs.html', 'apps/log_agg/index.html'];

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { if (browser) await browser.close(); });

for (const page of PAGES) {
  test(`${page} declares an icon that needs no request`, async () => {
    const p = await browser.context.newPage();
    // Only the document itself: the page's scripts and sockets have no server here.
    await p.route(/^(?!file:)/, (route) => route.abort());
    await p.goto(pathToFileURL(path.join(ROOT, page)).href, { waitUntil: 'domcontentloaded' });
    const icon = await p.evaluate(async () => {
      const l = document.querySelector('link[rel~="icon"]');
      if (!l) return null;
      const img = new Image();
      img.src = l.href;
      const decodes = await img.decode().then(() => img.naturalWidth > 0, () => false);
      return { href: l.href, inHead: l.parentElement === document.head, decodes };
    });
    await p.close();
    assert.ok(icon, `${page} has no <link rel="icon">`);
    assert.ok(icon.inHead, 'the icon link is not in <head>');
    assert.match(icon.href, /^data:image\/svg\+xml,/);
    assert.ok(icon.decodes, 'the icon is not an image chromium can decode');
  });
}
