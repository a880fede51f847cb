-- Topic history and recovery for test_history.js: a WebSocket room that keeps its last 3
-- lines, STOMP order topics that keep 50, a short-lived topic, and HTTP routes to publish
-- and to read history.
local rt = require "rt"

rt.history("room", { size = 3, ttl = 60 })
rt.history("/topic/order/*", { size = 50, ttl = 60 })
rt.history("blink", { size = 10, ttl = 0.3 })

local stomp = rt.stomp { endpoint = "/ws", app = "/app", broker = { "/topic", "/queue" } }

-- /room?epoch=E&offset=N subscribes from that position; the first frame says how it went.
rt.websocket("/room", {
  open = function(ws, req)
    local q = req.args or {}
    local epoch, offset = q.epoch, tonumber(q.offset)
    if epoch and offset then
      local _, recovered = ws:subscribe("room", { since = { epoch = epoch, offset = offset } })
      ws:send("recovered:" .. tostring(recovered))
    else
      ws:subscribe("room")
      ws:send("subscribed")
    end
  end,
})

rt.http.post("/publish/:topic", function(req)
  local n, offset = rt.topic(req.params.topic):publish(req.body)
  return 200, { deliveries = n, offset = offset or false }
end)

rt.http.post("/order/:id", function(req)
  stomp:send("/topic/order/" .. req.params.id, req.body)
  return 200, { ok = true }
end)

rt.http.get("/history/:topic", function(req)
  local q = req.args or {}
  local msgs, epoch, top, complete = rt.topic(req.params.topic):history {
    since = tonumber(q.since), limit = tonumber(q.limit), epoch = q.epoch }
  return 200, { messages = msgs, epoch = epoch, offset = top, complete = complete }
end)
