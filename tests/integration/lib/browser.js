// Headless Debian chromium for page tests, driven by playwright-core.
//
//   const { launchBrowser } = require('./lib/browser');
//   const browser = await launchBrowser();   // browser.context: a fresh profile
//   launchBrowser({ args: [...] })            // more chromium flags
//   ...
//   await browser.close();                   // closes it and removes the profile
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { SLOW } = require('./server');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15000 * SLOW;

async function launchBrowser({ args = [] } = {}) {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rt-chromium-'));
  // Without the background-networking flags chromium keeps dialing hosts this closed
  // network refuses.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: TIMEOUT,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--no-proxy-server', ...args],
  });
  context.setDefaultTimeout(TIMEOUT);
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

module.exports = { launchBrowser, TIMEOUT };
