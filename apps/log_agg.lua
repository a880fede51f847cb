-- Log aggregation: agents stream log entries over gRPC (log.LogService/CollectLogs), the
-- service counts them by level and by service, and pushes every line live to WebSocket
-- watchers and a small page.
--
-- Run:   rtserver apps/log_agg.lua        then open http://127.0.0.1:8080/
--   gRPC      127.0.0.1:8080 (the same port), proto/log.proto
--   WS        /logs (every line) or /logs/<service> (one service's lines); each message is
--             {"service":..,"level":..,"message":..,"timestamp":..}; the last lines come
--             first when a watcher connects
--   HTTP      GET /stats  -> {"total":..,"by_level":{..},"by_service":{..}}
local rt = require "rt"

local MAX_SERVICES = 1000   -- distinct service names counted; the rest go under "(other)"
local MAX_LEVELS = 16
local MAX_PUSH = 2000       -- bytes of a message pushed to watchers (counted whole)
local BACKLOG = 100         -- lines a new watcher gets first

-- Counts survive a hot reload (rt.state does; the rest of the script runs again).
local state = rt.state.log_agg
if not state then
  state = { total = 0, by_level = {}, by_service = {}, services = 0, levels = 0,
            recent = {}, next = 1 }
  rt.state.log_agg = state
end

local all = rt.topic "logs"

local function key(map, name, count_field, max)
  if map[name] then return name end
  if state[count_field] >= max then return "(other)" end
  state[count_field] = state[count_field] + 1
  return name
end

local function remember(line)
  state.recent[state.next] = line
  state.next = state.next % BACKLOG + 1
end

local function backlog()
  local out = {}
  for i = 0, BACKLOG - 1 do
    local line = state.recent[(state.next - 1 + i) % BACKLOG + 1]
    if line then out[#out + 1] = line end
  end
  return out
end

-- Counts one entry into the totals and into a stream's own summary; pushes it live.
local function take(e, mine)
  local level = (e.level ~= "" and e.level or "INFO"):upper():sub(1, 16)
  local service = e.service ~= "" and e.service:sub(1, 128) or "(unknown)"
  local lk = key(state.by_level, level, "levels", MAX_LEVELS)
  local sk = key(state.by_service, service, "services", MAX_SERVICES)
  state.total = state.total + 1
  state.by_level[lk] = (state.by_level[lk] or 0) + 1
  state.by_service[sk] = (state.by_service[sk] or 0) + 1
  mine.total = mine.total + 1
  mine.by_level[lk] = (mine.by_level[lk] or 0) + 1
  mine.by_service[sk] = (mine.by_service[sk] or 0) + 1
  local line = rt.json.encode {
    service = service, level = level, message = e.message:sub(1, MAX_PUSH),
    timestamp = tonumber(e.timestamp),
  }
  remember(line)
  all:publish(line)
  rt.publish("logs/" .. sk, line)
end

local logs = rt.grpc.service("proto/log.proto", "log.LogService")

function logs.CollectLogs(stream)
  local mine = { total = 0, by_level = {}, by_service = {} }
  for e in stream:messages() do take(e, mine) end
  rt.log.info("log_agg: %d entries from %s", mine.total, stream.peer or "?")
  return mine
end

function logs.GetStats(req)
  if req.service == "" then
    return { total = state.total, by_level = state.by_level, by_service = state.by_service }
  end
  local n = state.by_service[req.service] or 0
  return { total = n, by_level = {}, by_service = { [req.service] = n } }
end

local function watch(ws)
  for _, line in ipairs(backlog()) do
    if ws.params.service == nil or rt.json.decode(line).service == ws.params.service then
      ws:send(line)
    end
  end
  ws:subscribe(ws.params.service and ("logs/" .. ws.params.service) or "logs")
end

rt.websocket("/logs", { open = watch })
rt.websocket("/logs/:service", { open = watch })

rt.http.get("/stats", function()
  return { total = state.total, by_level = state.by_level, by_service = state.by_service,
           watchers = all:count() }
end)

rt.static("/", "log_agg")   -- the page: apps/log_agg/index.html
