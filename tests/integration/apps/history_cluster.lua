-- History in Redis across nodes, for test_history_cluster.js: STOMP topics and a raw
-- WebSocket feed keep history (offsets assigned in Redis), a node-side publisher that
-- keeps publishing while the test breaks Redis, and HTTP routes to publish and read.
local rt = require "rt"

rt.history("/topic/**", { size = 5000, ttl = 600 })
rt.history("feed", {
  size = 5000, ttl = 600,
  -- Told per subscriber: it may have missed messages that cannot be had.
  lost = function(topic, ws) ws:send("lost") end,
  recovered = function(topic, ws, ok) ws:send("recovered:" .. tostring(ok)) end,
})

rt.stomp { endpoint = "/ws", app = "/app", broker = { "/topic" } }

-- /feed?epoch=E&offset=N subscribes from that position; says how it went (now, or later
-- through the recovered handler when Redis must be read).
rt.websocket("/feed", {
  open = function(ws, req)
    local q = req.args or {}
    local epoch, offset = q.epoch, tonumber(q.offset)
    if epoch and offset then
      local _, recovered = rt.topic("feed"):subscribe(ws, { since = { epoch = epoch, offset = offset } })
      if recovered ~= nil then ws:send("recovered:" .. tostring(recovered)) end
    else
      rt.topic("feed"):subscribe(ws)
      ws:send("subscribed")
    end
  end,
})

-- POST /publish?topic=NAME (a query argument: names hold slashes)
rt.http.post("/publish", function(req)
  local n, err = rt.topic((req.args or {}).topic or "feed"):publish(req.body)
  if not n then return 503, { error = err } end
  return 200, { deliveries = n }
end)

rt.http.get("/position", function(req)
  local epoch, offset = rt.topic((req.args or {}).topic or "feed"):position()
  return 200, { epoch = epoch, offset = offset }
end)

-- A steady publisher: message i to each of the given topics every `every` seconds, until
-- stopped; counts what Redis refused (down).
local flow
rt.http.post("/flow/start", function(req)
  local q = req.args or {}
  local topics, i = {}, 0
  for t in (q.topics or "feed"):gmatch("[^,]+") do topics[#topics + 1] = t end
  flow = { sent = 0, refused = 0 }
  local f = flow
  f.timer = rt.every(tonumber(q.every) or 0.005, function()
    i = i + 1
    for _, t in ipairs(topics) do
      if rt.topic(t):publish(tostring(i)) then f.sent = f.sent + 1 else f.refused = f.refused + 1 end
    end
  end)
  return 200, { ok = true }
end)

rt.http.post("/flow/stop", function()
  if flow then flow.timer:cancel() end
  return 200, { sent = flow and flow.sent or 0, refused = flow and flow.refused or 0 }
end)

-- GET /history?topic=NAME&since=N[&limit=K][&epoch=E]: topic:history reads Redis (the
-- handler waits for the answer).
rt.http.get("/history", function(req)
  local q = req.args or {}
  local msgs, epoch, top, complete = rt.topic(q.topic or "feed"):history {
    since = tonumber(q.since), limit = tonumber(q.limit), epoch = q.epoch }
  if not msgs then return 503, { error = epoch } end
  return 200, { messages = msgs, epoch = epoch, offset = top, complete = complete }
end)
