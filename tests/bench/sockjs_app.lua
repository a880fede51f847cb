-- The bench chat (tests/bench/sockjs_run.sh): one room, the same Lua handlers behind a raw
-- WebSocket (/chat-ws) and a SockJS endpoint (/chat), so the figures differ by transport.
local rt = require "rt"

local room = rt.topic "bench-chat"
local handlers = {
  open = function(ws) room:subscribe(ws) end,
  message = function(ws, text) room:publish(text) end,
}
rt.websocket("/chat-ws", handlers)
rt.sockjs("/chat", handlers)
