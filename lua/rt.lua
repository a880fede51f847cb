-- rt: the Lua API of rtserver.
--
-- An app script registers handlers here; the C core calls rt._dispatch.* for every
-- event, each in its own coroutine. Routes live in an "app" table that load_app builds
-- afresh each time the script is loaded, so a reload swaps all routes at once and a
-- failed load leaves the old ones serving.
local core = require "rt.core"
local cjson = require "cjson"

local rt = { c = {}, version = "0.1.0" }
package.loaded.rt = rt  -- so protocol modules required below can require "rt" back

local current_app      -- the app serving events
local loading_app      -- the app being built by a load in progress

local function new_app(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  return { path = path, dir = dir, ws = {}, http = {}, static = {},
           files = { path }, modules = {}, timers = {}, history = {}, presence = {} }
end

-- State a script keeps across reloads: rt.state survives, everything else is rebuilt.
--   local orders = rt.state.orders or {}; rt.state.orders = orders
rt.state = {}

local function registering()
  return loading_app or current_app or error("rt: no app is loading", 3)
end

---------------------------------------------------------------------------------------
-- Logging and JSON

rt.log = {}
for _, level in ipairs { "debug", "info", "warn", "error" } do
  rt.log[level] = function(fmt, ...)
    if not core.log_enabled(level) then return end
    local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
    core.log(level, msg)
  end
end

-- print() writes one log line at info, named after the script and line that printed (as
-- nginx's and Redis's Lua do): stdout is block-buffered when it is a file or a pipe
-- (systemd, docker), where a print would sit unseen until the buffer fills.
function print(...)
  if not core.log_enabled("info") then return end
  local n, parts = select("#", ...), {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  local where = debug.getinfo(2, "Sl")
  local from = where and where.currentline and where.currentline > 0
               and (where.short_src:match("[^/]*$") .. ":" .. where.currentline .. ": ") or ""
  core.log("info", from .. table.concat(parts, "\t"):gsub("\r?\n", "\\n"))
end

rt.json = {
  encode = cjson.encode,
  decode = cjson.decode,
  null = cjson.null,
}

---------------------------------------------------------------------------------------
-- Path patterns: "/orders/:id/status", "/files/*rest"

local function compile_pattern(pattern)
  local parts, names = {}, {}
  for seg in pattern:gmatch("[^/]+") do
    local name = seg:match("^:(.+)$")
    local rest = seg:match("^%*(.*)$")
    if name then
      parts[#parts + 1] = { param = name }
    elseif rest then
      parts[#parts + 1] = { rest = rest ~= "" and rest or "rest" }
    else
      parts[#parts + 1] = { lit = seg }
    end
  end
  return parts
end

local function match_pattern(parts, path)
  local params, i = {}, 0
  local segs = {}
  for seg in path:gmatch("[^/]+") do segs[#segs + 1] = seg end
  for _, p in ipairs(parts) do
    i = i + 1
    if p.rest then
      params[p.rest] = table.concat(segs, "/", i)
      return params
    end
    local s = segs[i]
    if not s then return nil end
    if p.lit then
      if p.lit ~= s then return nil end
    else
      params[p.param] = s
    end
  end
  if i ~= #segs then return nil end
  return params
end

---------------------------------------------------------------------------------------
-- WebSocket

local conns = {}   -- id -> ws object, while open

local WS = {}
WS.__index = WS

-- A connection object holds only what every connection has; ws.data, ws.params (empty
-- for a path without parameters) and ws.peer (asked of the core; dispatch.ws_close keeps
-- it before the connection goes) are made when first read. Most connections are idle,
-- and each table or string left out is memory an idle connection does not cost.
local lazy_fields = {
  data = function() return {} end,
  params = function() return {} end,
  peer = function(ws) return core.conn_peer(ws.id) end,
}
local WSConn = {
  __index = function(ws, k)
    local m = WS[k]
    if m ~= nil then return m end
    local make = lazy_fields[k]
    if not make then return nil end
    local v = make(ws)
    rawset(ws, k, v)
    return v
  end,
}

function WS:send(data, binary)
  return core.ws_send(self.id, data, binary)
end

function WS:close(code, reason)
  core.ws_close(self.id, code or 1000, reason or "")
end

function WS:subscribe(topic, opts) return rt.topic(topic):subscribe(self, opts) end
-- Who this connection is, in presence lists (ws.user is set too).
function WS:set_user(name)
  if name ~= nil and type(name) ~= "string" then error("ws:set_user: name must be a string or nil", 2) end
  self.user = name
  return core.conn_set_user(self.id, name)
end
function WS:unsubscribe(topic) return rt.topic(topic):unsubscribe(self) end

-- rt.websocket(path, { open=, message=, close=, protocols=, origins=, max_message=,
--                      deflate= (false: no permessage-deflate on this endpoint) })
function rt.websocket(path, handlers)
  if type(path) ~= "string" or path:sub(1, 1) ~= "/" then error("rt.websocket: path must start with /", 2) end
  if type(handlers) ~= "table" then error("rt.websocket: handlers must be a table", 2) end
  local app = registering()
  app.ws[#app.ws + 1] = { path = path, parts = compile_pattern(path), handlers = handlers }
end

local function find_ws_route(app, path)
  for _, r in ipairs(app.ws) do
    local params = match_pattern(r.parts, path)
    if params then return r, params end
  end
end

-- The handlers of a connection's route in the current app, remembered per app version
-- (a reload makes a new app table, so the next message looks them up again).
local function ws_route_handlers(ws)
  local app = current_app
  if rawget(ws, "_app") == app then return rawget(ws, "_h") end
  local h
  for _, r in ipairs(app.ws) do
    if r.path == ws.route then h = r.handlers break end
  end
  rawset(ws, "_app", app)
  rawset(ws, "_h", h)
  return h
end

---------------------------------------------------------------------------------------
-- Topics

local Topic = {}
Topic.__index = Topic

function rt.topic(name)
  if not (type(name) == "string" and name ~= "") then error("rt.topic: name must be a non-empty string", 2) end
  return setmetatable({ name = name }, Topic)
end

local function conn_id(ws)
  if type(ws) == "table" then return ws.id end
  return ws
end

-- topic:subscribe(ws [, { since = { epoch = e, offset = n } }]) -> true [, recovered]
-- With a position, what the connection missed since then comes first.
-- opts.since checked: epoch, offset, or nothing when there is no position. level: the
-- caller to blame for a bad one.
local function since_arg(opts, level)
  local since = type(opts) == "table" and opts.since or nil
  if since == nil then return nil end
  if type(since) ~= "table" or type(since.epoch) ~= "string" or type(since.offset) ~= "number" then
    error("topic:subscribe: since must be { epoch = string, offset = number }", level + 1)
  end
  return since.epoch, since.offset
end

function Topic:subscribe(ws, opts)
  local epoch, offset = since_arg(opts, 2)
  if epoch == nil then return core.topic_subscribe(self.name, conn_id(ws)) end
  return core.topic_subscribe(self.name, conn_id(ws), epoch, offset)
end
function Topic:unsubscribe(ws) return core.topic_unsubscribe(self.name, conn_id(ws)) end
-- -> deliveries [, offset when the topic keeps history]
function Topic:publish(data, binary)
  if type(data) == "table" then data = cjson.encode(data) end
  return core.topic_publish(self.name, tostring(data), binary)
end
-- Distinct subscribed connections: of the whole cluster for a topic that matches an
-- rt.presence pattern, of this process for any other.
function Topic:count() return core.topic_count(self.name) end
-- -> epoch, offset of the latest message; a topic with history gets its epoch now if it
-- has none yet ("", 0 for a topic without history)
function Topic:position() return core.topic_position(self.name) end
-- topic:history{ since = n, limit = k, epoch = e } -> { {offset, data, binary}, ... }, epoch,
-- latest offset, complete (false: the history no longer reaches back to since, or epoch
-- is not the topic's)
function Topic:history(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("topic:history: expected { since = n, limit = k }", 2) end
  return core.topic_history(self.name, opts.since, opts.limit, opts.epoch)
end

-- topic:presence() -> { { id = conn id, user = name or nil, node = "host:pid" }, ... }: who
-- is subscribed. For a topic that matches an rt.presence pattern, on every worker and node
-- (--workers, --engine); for any other, on this process.
function Topic:presence() return core.topic_presence(self.name) end

-- rt.presence(pattern [, { join = fn(topic, who), leave = fn(topic, who), ttl = s }]):
-- topics whose names match have presence across the cluster; the handlers hear of each
-- connection that comes or goes, on any node, on the loop turn after (who = { id, user,
-- node, local = true when it is this process's }). They run on every node that hears of
-- it: each node's app can tell its own clients. ttl (default 30 s; the smallest of the
-- app's patterns applies): a node that stops saying it is alive leaves within it.
function rt.presence(pattern, handlers)
  if type(pattern) ~= "string" or pattern == "" or #pattern > 1024 then
    error("rt.presence: pattern must be a non-empty string of up to 1024 bytes", 2)
  end
  handlers = handlers or {}
  if type(handlers) ~= "table" then error("rt.presence: handlers must be a table { join =, leave = }", 2) end
  for _, k in ipairs { "join", "leave" } do
    if handlers[k] ~= nil and type(handlers[k]) ~= "function" then
      error("rt.presence: " .. k .. " must be a function", 2)
    end
  end
  local ttl = handlers.ttl
  if ttl ~= nil and (type(ttl) ~= "number" or not (ttl >= 0.3 and ttl <= 86400)) then
    error("rt.presence: ttl must be a number of seconds from 0.3 to 86400", 2)
  end
  local list = registering().presence
  if #list >= 64 then error("rt.presence: at most 64 patterns", 2) end
  list[#list + 1] = { pattern = pattern, join = handlers.join, leave = handlers.leave, ttl = ttl }
end

-- rt.history(pattern, { size = N, ttl = SECONDS [, lost = fn(topic, ws)]
--             [, recovered = fn(topic, ws, ok)] }): topics whose names match keep their
-- last N messages for up to SECONDS, each with an offset, so clients can recover.
-- lost: ws (a subscriber here) may have missed messages that cannot be had (with --engine:
-- a gap the history no longer covers, or Redis lost the history). recovered: the outcome
-- of a topic:subscribe{since} that had to wait for Redis (it returned nil).
function rt.history(pattern, opts)
  if type(pattern) ~= "string" or pattern == "" or #pattern > 1024 then
    error("rt.history: pattern must be a non-empty string of up to 1024 bytes", 2)
  end
  opts = opts or {}
  local size, ttl = opts.size or 100, opts.ttl or 300
  if type(size) ~= "number" or size < 1 or size > 100000 or size % 1 ~= 0 then
    error("rt.history: size must be a whole number from 1 to 100000", 2)
  end
  if type(ttl) ~= "number" or not (ttl > 0) then error("rt.history: ttl must be a positive number of seconds", 2) end
  for _, k in ipairs({ "lost", "recovered" }) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then error("rt.history: " .. k .. " must be a function", 2) end
  end
  local list = registering().history
  if #list >= 64 then error("rt.history: at most 64 patterns", 2) end
  list[#list + 1] = { pattern, size, ttl, lost = opts.lost, recovered = opts.recovered }
end

function rt.publish(name, data, binary) return rt.topic(name):publish(data, binary) end

---------------------------------------------------------------------------------------
-- Timers

-- level: how far up the caller's code is (errors name the app's file:line, not ours).
local function check_handler(fn, what, level)
  if type(fn) ~= "function" then error(what .. ": expected a function", (level or 2) + 1) end
end

-- Timers started while a script loads belong to that version of the app: a reload
-- cancels them (the new code starts its own). Timers started by handlers run out.
local function own_timer(t)
  if loading_app then loading_app.timers[#loading_app.timers + 1] = t end
  return t
end

function rt.after(seconds, fn)
  check_handler(fn, "rt.after")
  return own_timer(core.timer(seconds, 0, fn))
end

function rt.every(seconds, fn)
  check_handler(fn, "rt.every")
  if type(seconds) ~= "number" or seconds <= 0 then error("rt.every: interval must be a positive number", 2) end
  return own_timer(core.timer(seconds, seconds, fn))
end

rt.sleep = core.sleep
rt.now = core.now

---------------------------------------------------------------------------------------
-- HTTP

local HttpError = {}
HttpError.__index = HttpError
HttpError.__tostring = function(e) return e.status .. " " .. e.message end

-- Raise from a handler to answer with a status: rt.http_error(404, "no such order")
function rt.http_error(status, message)
  error(setmetatable({ status = status, message = message or "" }, HttpError), 2)
end

local Request = {}
Request.__index = function(req, k)
  if k == "json" then
    local ok, v = pcall(cjson.decode, req.body)
    if not ok then rt.http_error(400, "request body is not valid JSON") end
    rawset(req, "json", v)
    return v
  end
  return nil
end

local function add_route(method, pattern, fn)
  if not (type(pattern) == "string" and pattern:sub(1, 1) == "/") then error("rt.http: path must start with /", 3) end
  check_handler(fn, "rt.http." .. method:lower(), 3)
  local app = registering()
  app.http[#app.http + 1] = { method = method, parts = compile_pattern(pattern), fn = fn, pattern = pattern }
end

rt.http = {}
for _, m in ipairs { "GET", "POST", "PUT", "DELETE", "PATCH" } do
  rt.http[m:lower()] = function(pattern, fn) add_route(m, pattern, fn) end
end
function rt.http.route(method, pattern, fn) add_route(method:upper(), pattern, fn) end

-- rt.static(url_prefix, folder): folder is relative to the app script's folder.
function rt.static(prefix, folder)
  local app = registering()
  if not (type(prefix) == "string" and prefix:sub(1, 1) == "/") then error("rt.static: prefix must start with /", 2) end
  if folder:sub(1, 1) ~= "/" then folder = app.dir .. "/" .. folder end
  prefix = prefix:gsub("/+$", "")
  app.static[#app.static + 1] = { prefix = prefix, dir = folder }
end

local function parse_query(q)
  local t = {}
  for k, v in q:gmatch("([^&=]+)=?([^&]*)") do
    local function unescape(s)
      s = s:gsub("+", " ")
      return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    t[unescape(k)] = unescape(v)
  end
  return t
end

local function respond(id, status, body, headers)
  headers = headers or {}
  if type(body) == "table" then
    body = cjson.encode(body)
    if not headers["Content-Type"] then headers["Content-Type"] = "application/json" end
  elseif body == nil then
    body = ""
  else
    body = tostring(body)
  end
  return core.http_respond(id, status, headers, body)
end

local function traceback(e)
  if getmetatable(e) == HttpError then return e end
  return debug.traceback(tostring(e), 2)
end

local function serve_http(app, id, req)
  local allowed = {}
  for _, r in ipairs(app.http) do
    local params = match_pattern(r.parts, req.path)
    if params then
      if r.method == req.method or (req.method == "HEAD" and r.method == "GET") then
        req.params = params
        local ok, status, body, headers = xpcall(r.fn, traceback, req)
        if not ok then
          local e = status
          if getmetatable(e) == HttpError then
            return respond(id, e.status, { error = e.message })
          end
          core.script_error(e)
          return respond(id, 500, { error = "internal error" })
        end
        if type(status) ~= "number" then  -- handler returned just a body
          status, body, headers = 200, status, body
        end
        return respond(id, status, body, headers)
      end
      allowed[#allowed + 1] = r.method
    end
  end
  if #allowed > 0 then
    return respond(id, 405, { error = "method not allowed" }, { Allow = table.concat(allowed, ", ") })
  end
  if req.method == "GET" or req.method == "HEAD" then
    for _, s in ipairs(app.static) do
      local p = req.path
      if s.prefix == "" or p == s.prefix or p:sub(1, #s.prefix + 1) == s.prefix .. "/" then
        return core.http_file(id, s.dir, p:sub(#s.prefix + 1))
      end
    end
  end
  return respond(id, 404, { error = "not found" })
end

---------------------------------------------------------------------------------------
-- Dispatch: called from C, each call in a new coroutine.

local dispatch = {}
rt._dispatch = dispatch

function dispatch.http(id, req, peer)
  local app = current_app
  setmetatable(req, Request)
  req.id, req.peer = id, peer
  req.args = parse_query(req.query)
  if req.upgrade and (req.headers.upgrade or ""):lower():find("websocket", 1, true) then
    local route, params = find_ws_route(app, req.path)
    if route then
      local h = route.handlers
      local protocol = core.ws_accept(id, h)
      if not protocol then return end
      local ws = setmetatable({ id = id, route = route.path }, WSConn)
      if next(params) then ws.params = params end
      if protocol ~= "" then ws.protocol = protocol end
      if req.tls then ws.tls = req.tls end
      conns[id] = ws
      if h.open then h.open(ws, req) end
      return
    end
  end
  return serve_http(app, id, req)
end

function dispatch.ws_message(id, data, binary)
  local ws = conns[id]
  if not ws then return end
  local h = ws_route_handlers(ws)
  if h and h.message then h.message(ws, data, binary) end
end

function dispatch.ws_close(id, code, reason, peer)
  local ws = conns[id]
  if not ws then return end
  if rawget(ws, "peer") == nil then rawset(ws, "peer", peer) end  -- the last chance to ask
  conns[id] = nil
  ws.closed = true
  local h = ws_route_handlers(ws)
  if h and h.close then h.close(ws, code, reason) end
end

function dispatch.timer(fn) fn() end

-- Modules loaded before any app (rt itself, cjson, protocol modules) are never reloaded.
local base_modules = {}

-- Loads (or reloads) the app script into a fresh environment. Returns true, or nil and a
-- one-line error (file:line: message); on failure the running app is untouched.
function dispatch.load_app(path)
  if not next(base_modules) then
    for name in pairs(package.loaded) do base_modules[name] = true end
  end
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local env = setmetatable({}, { __index = _G })
  setfenv(chunk, env)
  local app = new_app(path)
  -- The app's own modules load afresh, so an edit to one of them takes effect.
  local previous = {}
  for name in pairs(package.loaded) do
    if not base_modules[name] then
      previous[name] = package.loaded[name]
      package.loaded[name] = nil
    end
  end
  loading_app = app
  local old_path = package.path
  package.path = app.dir .. "/?.lua;" .. old_path    -- the app's folder first
  local ok, lerr = xpcall(chunk, function(e) return debug.traceback(tostring(e), 2) end)
  local search_path = package.path
  package.path = old_path
  loading_app = nil
  if not ok then
    -- Put the old modules back: the old code keeps running with them.
    for name, m in pairs(previous) do
      if package.loaded[name] == nil then package.loaded[name] = m end
    end
    for _, t in ipairs(app.timers) do t:cancel() end
    local first = tostring(lerr):match("^[^\n]*")
    core.log("debug", lerr)
    return nil, first
  end
  for name in pairs(package.loaded) do
    if not base_modules[name] then
      local file = package.searchpath(name, search_path)
      if file then app.files[#app.files + 1] = file end
    end
  end
  local old = current_app
  current_app = app
  core.history_policies(app.history)
  local patterns, ttl = {}, nil
  for i, p in ipairs(app.presence) do
    patterns[i] = p.pattern
    if p.ttl and (not ttl or p.ttl < ttl) then ttl = p.ttl end
  end
  core.presence_policies(patterns, ttl)
  if old then
    for _, t in ipairs(old.timers) do t:cancel() end
  end
  return true
end

function dispatch.presence(topic, id, user, joined, node, is_local)
  local app = current_app
  if not app then return end
  local who = { id = id, user = user, node = node, ["local"] = is_local }
  for _, p in ipairs(app.presence) do
    local fn = joined and p.join or p.leave
    if fn and core.topic_match(p.pattern, topic) then fn(rt.topic(topic), who) end
  end
end

function dispatch.history(topic, id, what, ok)
  local app, ws = current_app, conns[id]
  if not app or not ws then return end
  for _, p in ipairs(app.history) do
    if core.topic_match(p[1], topic) then
      local fn = p[what]
      if fn then fn(rt.topic(topic), ws, ok) end
      return
    end
  end
end

function dispatch.watched_files()
  return current_app and current_app.files or {}
end

-- Per-connection handles for scripts that keep ids around.
function rt.connection(id) return conns[id] end

-- What protocol modules written in Lua (lua/rt_*.lua) need from here. Not for apps.
rt._internal = {
  core = core,
  registering = registering,
  current_app = function() return current_app end,
  compile_pattern = compile_pattern,
  since_arg = since_arg,
  match_pattern = match_pattern,
  find_ws_route = find_ws_route,
  conns = conns,
  WS = WS,
  -- a protocol module that reads a file for the app (a .proto) asks to watch it
  watch = function(file)
    local app = loading_app or current_app
    if app then app.files[#app.files + 1] = file end
  end,
}

-- Protocol modules add themselves to rt (rt.stomp, rt.grpc) if they are installed.
for _, name in ipairs { "rt_stomp", "rt_grpc", "rt_grpc_client", "rt_sockjs" } do
  local ok, err = pcall(require, name)
  if not ok and not tostring(err):find("module '" .. name .. "' not found", 1, true) then
    error(err, 0)
  end
end

return rt
