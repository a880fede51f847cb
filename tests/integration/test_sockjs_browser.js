// The order page over SockJS in a real browser (Debian's headless chromium): apps/order/
// sockjs.html runs the seed's client code unchanged (`Stomp.over(new SockJS('/ws'))`,
// stomp.js 2.3.3 and sockjs-client 1.6.1 served by the app) against apps/order_push.lua
// with `sockjs = true` on its STOMP endpoint (apps/sockjs_order.lua). Each transport is
// forced in turn by wrapping the page's SockJS constructor before the page runs; the page
// must see an order change made over HTTP and a chat line typed on another page.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { launchBrowser } = require('./lib/browser');
const { startServer, SLOW } = require('./lib/server');

const TIMEOUT = 15000 * SLOW;

let srv, context, browser;

before(async () => {
  srv = await startServer({ app: 'apps/sockjs_order.lua', env: { RT_STOMP_TCP_PORT: '0' } });
  browser = await launchBrowser();
  context = browser.context;
});

after(async () => {
  if (browser) await browser.close();
  if (srv) await srv.stop();
});

async function api(method, p, body) {
  const res = await fetch(srv.url(p), { method, body: JSON.stringify(body) });
  assert.ok(res.ok, `${method} ${p}: ${res.status}`);
  return res.json();
}

// Opens sockjs.html with SockJS limited to one transport (null: the page as it is).
async function openPage(transport, query = '') {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  if (transport) {
    await page.addInitScript((t) => {
      let Real;
      Object.defineProperty(window, 'SockJS', {
        configurable: true,
        set(v) { Real = v; },
        get() {
          if (!Real) return undefined;
          return function ForcedSockJS(url, protocols, options) {
            return new Real(url, protocols, Object.assign({}, options, { transports: [t] }));
          };
        },
      });
    }, transport);
  }
  const res = await page.goto(srv.url(`/sockjs.html${query}`));
  assert.equal(res.status(), 200);
  await page.waitForFunction(() => document.getElementById('conn').textContent === 'connected');
  return { page, errors };
}

async function orderRoundTrip(transport) {
  const order = await api('POST', '/orders', { item: `lamp-${transport}` });
  const { page, errors } = await openPage(transport, `?order=${order.id}`);
  assert.equal(await page.evaluate(() => document.body.dataset.transport), transport);
  await page.waitForFunction((id) => document.body.dataset.subscribed === String(id), order.id);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'created');
  await api('PUT', `/orders/${order.id}/status`, { status: 'shipped' });
  await page.waitForFunction(() => document.getElementById('status').textContent === 'shipped');
  assert.deepEqual(errors, []);
  return page;
}

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource', 'htmlfile', 'jsonp-polling']) {
  test(`an order change made over HTTP arrives live over SockJS ${transport}`, async () => {
    const page = await orderRoundTrip(transport);
    await page.close();
  });
}

test('without forcing, sockjs-client picks the websocket transport', async () => {
  const { page, errors } = await openPage(null);
  assert.equal(await page.evaluate(() => document.body.dataset.transport), 'websocket');
  assert.deepEqual(errors, []);
  await page.close();
});

test('chat typed over xhr-polling appears on an xhr-streaming page (/app/chat)', async () => {
  const a = (await openPage('xhr-polling')).page;
  const b = (await openPage('xhr-streaming')).page;
  await a.fill('#user', 'ann');
  const text = `你好 ${Date.now()}`;
  // The page subscribes to /topic/messages in its connect callback without a receipt:
  // send until the line lands.
  for (let i = 0; i < 30; i++) {
    await a.fill('#content', text);
    await a.click('#chat-form button');
    if (await b.locator('#messages li', { hasText: `ann: ${text}` }).count()) break;
    await b.waitForTimeout(150);
  }
  await b.locator('#messages li', { hasText: `ann: ${text}` }).first().waitFor();
  await a.close();
  await b.close();
});
