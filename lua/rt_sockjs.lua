-- rt.sockjs: SockJS endpoints (protocol 0.3.3, what sockjs-client 1.x speaks), and
-- STOMP over SockJS (rt.stomp { ..., sockjs = true }).
--
--   rt.sockjs("/echo", {
--     open    = function(ws, req) ws:subscribe("news") end,
--     message = function(ws, text) ws:send(text) end,
--     close   = function(ws, code, reason) end,
--     -- options (all optional): heartbeat = 25, disconnect_delay = 5,
--     -- response_limit = 131072, websocket = true, cookie = false, origins = {...},
--     -- sockjs_url = "...", max_message, max_queue, max_queue_bytes, max_sessions
--   })
--
-- The handler shape is rt.websocket's: a handler does not know whether a message came
-- over a WebSocket, XHR streaming or JSONP polling. ws:send, ws:close, ws:subscribe,
-- ws.data, ws.peer work alike; ws.transport and ws.session say what SockJS used. A raw
-- WebSocket (no SockJS framing) is served at <prefix>/websocket with the same handlers.
--
-- Sessions live in C (core/sockjs*.c) and survive a reload; handlers are looked up by
-- endpoint when an event arrives, so a reload swaps them at once.
local rt = require "rt"
local cjson = require "cjson"

local I = rt._internal
local core = I.core
local dispatch = rt._dispatch

local sessions = {}   -- session connection id -> connection object, while open

local Conn = {}
Conn.__index = Conn

function Conn:send(data)
  if type(data) == "table" then data = cjson.encode(data) end
  return core.sockjs_send(self.id, tostring(data))
end

-- SockJS close codes: 1000, or 3000-4999 for the application (default 3000 "Go away!").
function Conn:close(code, reason)
  core.sockjs_close(self.id, code or 3000, reason or "Go away!")
end

function Conn:subscribe(topic, opts) return rt.topic(topic):subscribe(self, opts) end
function Conn:unsubscribe(topic) return rt.topic(topic):unsubscribe(self) end

-- Topics: a SockJS session subscribes with its own deliver function (C), so one publish
-- reaches WebSocket, STOMP and SockJS subscribers alike.
local Topic = getmetatable(rt.topic "rt")
local topic_subscribe, topic_unsubscribe = Topic.subscribe, Topic.unsubscribe
local function session_id(ws)
  local id = type(ws) == "table" and ws.id or ws
  if sessions[id] then return id end
end
function Topic:subscribe(ws, opts)
  local id = session_id(ws)
  if not id then return topic_subscribe(self, ws, opts) end
  local epoch, offset = I.since_arg(opts, 2)
  if epoch == nil then return core.sockjs_subscribe(self.name, id) end
  return core.sockjs_subscribe(self.name, id, epoch, offset)
end
function Topic:unsubscribe(ws)
  local id = session_id(ws)
  if id then return core.sockjs_unsubscribe(self.name, id) end
  return topic_unsubscribe(self, ws)
end

local OPTIONS = { "heartbeat", "disconnect_delay", "response_limit", "websocket", "cookie", "hixie76",
                  "origins", "sockjs_url", "max_message", "max_queue", "max_queue_bytes",
                  "max_sessions" }

local function normalize(prefix, what, level)
  if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" then
    error(what .. ": path must start with /", level + 1)
  end
  prefix = prefix:gsub("/+$", "")
  if prefix == "" then error(what .. ": the path may not be /", level + 1) end
  return prefix
end

-- Registers prefix with the C side and with the app (longest prefix first).
local function add_endpoint(app, prefix, opts, entry)
  local c = {}
  for _, k in ipairs(OPTIONS) do c[k] = opts[k] end
  c.stomp = entry.stomp
  core.sockjs_endpoint(prefix, c)
  app.sockjs = app.sockjs or {}
  for _, e in ipairs(app.sockjs) do
    if e.prefix == prefix then error("rt.sockjs: " .. prefix .. " is already a SockJS endpoint", 4) end
  end
  entry.prefix = prefix
  app.sockjs[#app.sockjs + 1] = entry
  table.sort(app.sockjs, function(a, b) return #a.prefix > #b.prefix end)
end

-- rt.sockjs(path, handlers_and_options)
function rt.sockjs(prefix, handlers)
  prefix = normalize(prefix, "rt.sockjs", 2)
  if type(handlers) ~= "table" then error("rt.sockjs: handlers must be a table", 2) end
  local app = I.registering()
  add_endpoint(app, prefix, handlers, { handlers = handlers })
  if handlers.websocket ~= false then
    -- The same handlers; only open is wrapped, so ws.transport says what carried it.
    local raw = setmetatable({ open = function(ws, req)
      ws.transport = "raw_websocket"
      if handlers.open then return handlers.open(ws, req) end
    end }, { __index = handlers })
    rt.websocket(prefix .. "/websocket", raw)
  end
end

local function handlers_of(ws)
  local app = I.current_app()
  for _, e in ipairs(app and app.sockjs or {}) do
    if e.prefix == ws.route then return e.handlers end
  end
end

---------------------------------------------------------------------------------------
-- STOMP over SockJS: rt.stomp { endpoint = "/ws", sockjs = true | { SockJS options } }
-- serves the SockJS protocol under each endpoint (Spring's .withSockJS()), STOMP over a
-- raw WebSocket at <endpoint> and <endpoint>/websocket, all with the same broker,
-- /app handlers and heart-beats.

local stomp = rt.stomp
if stomp then
  function rt.stomp(opts)
    if type(opts) ~= "table" or not opts.sockjs then return stomp(opts) end
    local sj = opts.sockjs
    if sj ~= true and type(sj) ~= "table" then
      error("rt.stomp: sockjs must be true or a table of SockJS options", 2)
    end
    sj = sj == true and {} or sj
    local eps = opts.endpoint
    if eps == nil then eps = "/ws" end
    if type(eps) == "string" then eps = { eps } end
    local copy, all, names = {}, {}, {}
    for k, v in pairs(opts) do copy[k] = v end
    for _, e in ipairs(eps or {}) do
      e = normalize(e, "rt.stomp", 2)
      names[#names + 1] = e
      all[#all + 1] = e
      if sj.websocket ~= false then all[#all + 1] = e .. "/websocket" end
    end
    eps = names
    copy.endpoint, copy.sockjs = all, nil
    local st = stomp(copy)
    local app = I.registering()
    for _, e in ipairs(eps) do
      local o = {}
      for k, v in pairs(sj) do o[k] = v end
      if o.origins == nil then o.origins = opts.origins end
      -- One SockJS message carries a frame: as big as STOMP lets a body be, and headers.
      if o.max_message == nil then o.max_message = (opts.max_body or 1048576) + 65536 end
      add_endpoint(app, e, o, { stomp = true })
    end
    return st
  end
end

---------------------------------------------------------------------------------------
-- Events from C, each in its own coroutine.

local http = dispatch.http
function dispatch.http(id, req, peer)
  local app = I.current_app()
  local path = req.path
  for _, e in ipairs(app and app.sockjs or {}) do
    local p = e.prefix
    if path == p or path:sub(1, #p + 1) == p .. "/" then
      -- WebSocket upgrades of <prefix> and <prefix>/websocket are WebSocket routes.
      if not (req.upgrade and (path == p or path == p .. "/websocket")) then
        return core.sockjs_http(id, p)
      end
      break
    end
  end
  return http(id, req, peer)
end

function dispatch.sockjs_open(id, prefix, req)
  local ws = setmetatable({ id = id, route = prefix, session = req.session, transport = req.transport,
                            peer = req.peer, request = req, data = {}, sockjs = true }, Conn)
  sessions[id] = ws
  I.conns[id] = ws    -- rt.connection(id) finds it too
  local h = handlers_of(ws)
  if h and h.open then h.open(ws, req) end
end

function dispatch.sockjs_message(id, data)
  local ws = sessions[id]
  if not ws then return end
  local h = handlers_of(ws)
  if h and h.message then h.message(ws, data, false) end
end

function dispatch.sockjs_close(id, code, reason)
  local ws = sessions[id]
  if not ws then return end
  sessions[id] = nil
  if I.conns[id] == ws then I.conns[id] = nil end
  ws.closed = true
  local h = handlers_of(ws)
  if h and h.close then h.close(ws, code, reason) end
end

-- The number of sessions at an endpoint (closed ones count until they expire).
function rt.sockjs_sessions(prefix) return core.sockjs_sessions(prefix) end

return rt.sockjs
