-- STOMP over SockJS: the seed's Spring setup (.withSockJS(), /app, /topic), and a plain
-- WebSocket chat on the same topic to show the broker is shared.
local rt = require "rt"

local stomp = rt.stomp {
  endpoint = "/ws",
  sockjs = { heartbeat = tonumber(os.getenv("SOCKJS_HEARTBEAT") or "25") },
  app = "/app",
  broker = { "/topic", "/queue" },
  heartbeat = { tonumber(os.getenv("STOMP_HEARTBEAT") or "0"), tonumber(os.getenv("STOMP_HEARTBEAT") or "0") },
}

stomp:on("/chat", function(msg)
  local m = msg.json
  return "/topic/messages", { user = m.user, content = m.content }
end)

-- A raw WebSocket client of the same topic sees STOMP publishes too.
rt.websocket("/raw", { open = function(ws) ws:subscribe("/topic/messages") end })

rt.http.post("/publish", function(req)
  stomp:send("/topic/messages", req.body)
  return 204
end)
