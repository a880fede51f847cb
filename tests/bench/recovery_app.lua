-- The rtserver side of the recovery storm (tests/bench/history_run.sh, recovery_storm.js):
-- topics "storm/<run>" keep history (in memory, or in Redis with --engine); clients
-- subscribe, go away, and come back with their place through the Lua API.
local rt = require "rt"

rt.history("storm/*", {
  size = 1000, ttl = 600,
  -- A recovery that had to wait for Redis ends here; one that did not is told in `open`.
  recovered = function(topic, ws, ok) ws:send("recovered:" .. tostring(ok)) end,
  lost = function(topic, ws) ws:send("lost") end,
})

-- Subscribes ws to t from (epoch, offset), or from now when epoch is nil; says how it went
-- when it is known now (a recovery that waits for Redis is told by `recovered` above).
local function subscribe(ws, t, epoch, offset)
  if epoch and offset then
    local _, recovered = t:subscribe(ws, { since = { epoch = epoch, offset = offset } })
    if recovered ~= nil then ws:send("recovered:" .. tostring(recovered)) end
  else
    t:subscribe(ws)
    ws:send("subscribed")
  end
end

-- /storm?topic=T subscribes; /storm?topic=T&epoch=E&offset=N recovers from that place;
-- /storm?topic=T&hold=1 waits for a message "since E N" (so a storm's clients can all be
-- connected first and then ask at once).
rt.websocket("/storm", {
  open = function(ws, req)
    local q = req.args or {}
    ws.data.topic = rt.topic(q.topic or "storm/0")
    if not q.hold then subscribe(ws, ws.data.topic, q.epoch, tonumber(q.offset)) end
  end,
  message = function(ws, data)
    local epoch, offset = data:match("^since (%S+) (%d+)$")
    if epoch then subscribe(ws, ws.data.topic, epoch, tonumber(offset)) end
  end,
})

-- POST /storm/publish?topic=T&n=N&from=I publishes "m<I>" .. "m<I+N-1>" (from 1 by default).
rt.http.post("/storm/publish", function(req)
  local q = req.args or {}
  local t = rt.topic(q.topic or "storm/0")
  local from, n = tonumber(q.from) or 1, tonumber(q.n) or 1
  for i = from, from + n - 1 do
    local ok, err = t:publish("m" .. i)
    if not ok then return 503, { error = err, published = i - from } end
  end
  return 200, { published = n }
end)

-- Where this node stands in T: the epoch and the latest offset it delivered.
rt.http.get("/storm/position", function(req)
  local epoch, offset = rt.topic((req.args or {}).topic or "storm/0"):position()
  return 200, { epoch = epoch, offset = offset }
end)
