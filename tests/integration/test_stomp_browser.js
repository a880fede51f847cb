// The order page in a real browser (Debian's headless chromium): it watches an order over
// STOMP (@stomp/stompjs, served by the app) and shows a status change made over HTTP;
// its chat form goes through /app/chat to every open page.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { launchBrowser } = require('./lib/browser');
const { startServer, ROOT, SLOW } = require('./lib/server');

const TIMEOUT = 15000 * SLOW;

let srv, context, browser;

before(async () => {
  srv = await startServer({ app: path.join(ROOT, 'apps/order_push.lua'), env: { RT_STOMP_TCP_PORT: '0' } });
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

test('the order page shows a status change made over HTTP, live', async () => {
  const order = await api('POST', '/orders', { item: 'bicycle' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const res = await page.goto(srv.url(`/?order=${order.id}`));
  assert.equal(res.status(), 200);
  await page.waitForFunction(() => document.getElementById('conn').textContent === 'connected');
  // The page's SUBSCRIBE carries a receipt: once it is back, the server has it.
  await page.waitForFunction((id) => document.body.dataset.subscribed === String(id), order.id);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'created');
  assert.equal(await page.textContent('#item'), '(bicycle)');

  await api('PUT', `/orders/${order.id}/status`, { status: 'shipped' });
  await page.waitForFunction(() => document.getElementById('status').textContent === 'shipped');
  await api('PUT', `/orders/${order.id}/status`, { status: 'delivered' });
  await page.waitForFunction(() => document.getElementById('status').textContent === 'delivered');
  const history = await page.$$eval('#history li', (lis) => lis.map((li) => li.textContent.split(' ').pop()));
  assert.deepEqual(history, ['created', 'shipped', 'delivered']);

  // The page's own buttons go through HTTP too, and come back over STOMP.
  await page.click('button[data-status="packed"]');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'packed');
  assert.equal((await api('GET', `/orders/${order.id}`)).status, 'packed');
  assert.deepEqual(errors, []);
  await page.close();
});

test('chat typed on one page appears on another (STOMP /app/chat)', async () => {
  const open = async () => {
    const page = await context.newPage();
    await page.goto(srv.url('/'));
    await page.waitForFunction(() => document.getElementById('conn').textContent === 'connected');
    return page;
  };
  const a = await open();
  const b = await open();
  await a.fill('#user', 'ann');
  const text = `hello ${Date.now()}`;
  // A subscription made in onConnect may still be in flight: send until it lands.
  for (let i = 0; i < 20; i++) {
    await a.fill('#content', text);
    await a.click('#chat-form button');
    if (await b.locator('#messages li', { hasText: `ann: ${text}` }).count()) break;
    await b.waitForTimeout(100);
  }
  await b.locator('#messages li', { hasText: `ann: ${text}` }).first().waitFor();
  await a.close();
  await b.close();
});

test('the order page gets the changes it missed while its connection was cut (x-since)', async () => {
  const order = await api('POST', '/orders', { item: 'kayak' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(srv.url(`/?order=${order.id}`));
  await page.waitForFunction((id) => document.body.dataset.subscribed === String(id), order.id);
  await api('PUT', `/orders/${order.id}/status`, { status: 'paid' });
  await page.waitForFunction(() => document.getElementById('status').textContent === 'paid');
  assert.equal(await page.evaluate(() => document.body.dataset.recovered), undefined);

  // The connection drops (the page's client reconnects after its 2 s delay); meanwhile
  // the order moves on twice.
  await page.evaluate(() => { document.body.dataset.subscribed = ''; client.forceDisconnect(); });
  await page.waitForFunction(() => document.getElementById('conn').textContent !== 'connected');
  await api('PUT', `/orders/${order.id}/status`, { status: 'packed' });
  await api('PUT', `/orders/${order.id}/status`, { status: 'shipped' });
  await page.waitForFunction((id) => document.body.dataset.subscribed === String(id), order.id, { timeout: TIMEOUT });
  assert.equal(await page.evaluate(() => document.body.dataset.recovered), 'true');
  await page.waitForFunction(() => document.getElementById('status').textContent === 'shipped');
  // Both missed changes arrived, in order, once each, and live ones follow.
  await api('PUT', `/orders/${order.id}/status`, { status: 'delivered' });
  await page.waitForFunction(() => document.getElementById('status').textContent === 'delivered');
  const history = await page.$$eval('#history li', (lis) => lis.map((li) => li.textContent.split(' ').pop()));
  assert.deepEqual(history, ['created', 'paid', 'packed', 'shipped', 'delivered']);
  assert.deepEqual(errors, []);
  await page.close();
});
