// npm `ws` peers for `make bench`: the same echo (/echo) and broadcast (/sub + /pub)
// as tests/bench/bench_app.lua, written the way the ws README writes them, so that
// rtserver's figures have a peer measured in the same run.
//
// usage: node ws_servers.js [port] [deflate]     (0 or none picks a free one)
// Prints "ws listening on ADDR:PORT" once it accepts. With "deflate", the server takes
// permessage-deflate offers (ws's defaults, and rtserver's 256-byte threshold); the
// bench's clients ask for no context takeover, so ws compresses each send from scratch.
'use strict';
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const server = http.createServer((req, res) => res.writeHead(404).end());
const deflate = process.argv[3] === 'deflate';
const wss = new WebSocketServer({ server, perMessageDeflate: deflate ? { threshold: 256 } : false });
const subscribers = new Set();

wss.on('connection', (ws, req) => {
  if (req.url === '/echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else if (req.url === '/sub') {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  } else if (req.url === '/pub') {
    // The ws README's broadcast: one send per subscriber.
    ws.on('message', (data, isBinary) => {
      for (const sub of subscribers) {
        if (sub.readyState === WebSocket.OPEN) sub.send(data, { binary: isBinary });
      }
    });
  } else {
    ws.close(1008, 'unknown path');
  }
});

const port = Number(process.argv[2] || 0);
server.listen(port, '127.0.0.1', 4096, () => {
  const a = server.address();
  console.log(`ws listening on ${a.address}:${a.port}`);
});
