// STOMP over WebSocket with @stomp/stompjs, for tests: connect and wait for CONNECTED.
//
//   const { within, stompConnect } = require('./lib/stomp');
//   const client = await stompConnect(srv.wsUrl('/ws'), { track: clients, login: 'ann' });
//   await within(promise, 'what it waits for');   // rejects after WAIT ms, saying what
'use strict';
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');
const { SLOW } = require('./server');

const WAIT = 5000 * SLOW;

function within(promise, what, ms = WAIT) {
  let t;
  return Promise.race([promise, new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}

// A client with no reconnects and no heart-beats (tests drive both themselves); track: a
// list the client is pushed onto, for the test's after() to deactivate.
async function stompConnect(url, { login, track, timeoutMs = WAIT } = {}) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
    reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
    connectHeaders: login ? { login, passcode: 'x' } : {},
  });
  if (track) track.push(client);
  const up = new Promise((resolve, reject) => {
    client.onConnect = resolve;
    client.onStompError = (f) => reject(new Error(`STOMP ERROR ${f.headers.message}`));
  });
  client.activate();
  await within(up, 'CONNECTED', timeoutMs);
  return client;
}

module.exports = { within, stompConnect, WAIT };
