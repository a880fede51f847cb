-- SockJS test app: an echo endpoint, a chat room on a topic, a closing endpoint, and one
-- with small limits and short timers for the protocol's edge cases.
local rt = require "rt"

local room = rt.topic "sockjs-chat"

-- Echo: every message comes back; "close" closes, "who" tells the transport.
rt.sockjs("/echo", {
  open = function(ws, req) ws.data.opened = rt.now() end,
  message = function(ws, text)
    if text == "close" then return ws:close(3001, "asked to close") end
    if text == "who" then return ws:send("transport=" .. ws.transport) end
    ws:send(text)
  end,
})

-- Chat: what one says goes to everyone on the topic (WebSocket, STOMP and SockJS alike).
rt.sockjs("/chat", {
  open = function(ws) room:subscribe(ws); ws:send("welcome") end,
  message = function(ws, text) room:publish(text) end,
})
rt.websocket("/chat-ws", {
  open = function(ws) room:subscribe(ws) end,
  message = function(ws, text) room:publish(text) end,
})

-- Closes every session as it opens.
rt.sockjs("/close", { open = function(ws) ws:close(3000, "Go away!") end })

-- Short timers and small bounds; close events are kept for the tests to read.
local closes = {}
rt.sockjs("/tight", {
  heartbeat = 0.3, disconnect_delay = 0.5, response_limit = 4096, max_queue = 5,
  max_message = 1000, max_sessions = 20, cookie = true,
  open = function(ws, req) if req.query:find("flood") then for i = 1, 10 do ws:send("m" .. i) end end end,
  message = function(ws, text) ws:send(text) end,
  close = function(ws, code, reason) closes[#closes + 1] = { session = ws.session, code = code, reason = reason } end,
})

rt.http.get("/closes", function() return closes end)
rt.http.get("/sessions/:prefix", function(req) return { n = rt.sockjs_sessions("/" .. req.params.prefix) } end)
