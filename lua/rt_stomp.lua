-- rt.stomp: STOMP 1.2 (and 1.0/1.1) over WebSocket and TCP, with the built-in broker.
--
--   local stomp = rt.stomp { endpoint = "/ws", tcp_port = 61613 }
--   stomp:on("/chat", function(msg, session) return "/topic/messages", msg.json end)
--   stomp:send("/topic/order/42", { status = "shipped" })
--
-- Sessions, subscriptions and queued messages live in C (core/stomp*.c) and survive a
-- reload; handlers and the auth function belong to the app and are looked up when a frame
-- arrives, so a reload swaps them at once.
local rt = require "rt"
local cjson = require "cjson"

local I = rt._internal
local core = I.core
local dispatch = rt._dispatch

local sessions = {}   -- conn id -> { id, user, peer, data, ... } while connected

local function traceback(e)
  if type(e) == "table" and e.stomp_error then return e end
  return debug.traceback(tostring(e), 2)
end

-- Raised inside a handler: ERROR to the client with this message, nothing logged.
local StompError = {}
StompError.__index = StompError
local function stomp_error(message, detail)
  error(setmetatable({ stomp_error = message, detail = detail }, StompError), 2)
end
rt.stomp_error = stomp_error

-- Body and headers as the C side wants them: a table body becomes JSON.
local function encode(body, headers)
  local h = {}
  if headers then for k, v in pairs(headers) do h[k] = tostring(v) end end
  if type(body) == "table" then
    body = cjson.encode(body)
    h["content-type"] = h["content-type"] or "application/json"
  elseif body == nil then
    body = ""
  else
    body = tostring(body)
  end
  return body, h
end

---------------------------------------------------------------------------------------
-- Sessions as handlers see them: facts about the connection, a data table that lasts as
-- long as it, and ways to answer.

local Session = {}
Session.__index = Session

-- Only to this session's subscriptions to dest.
function Session:send(dest, body, headers)
  local b, h = encode(body, headers)
  return core.stomp_send_session(self.conn, dest, b, h)
end

-- To this session only, at "/user/queue/<path>" (SEND /app/chat -> /user/queue/chat), or
-- at headers.destination.
function Session:reply(body, headers)
  local dest = self._stomp.user_prefix .. "/queue" .. (self.path or "/reply")
  if headers and headers.destination then
    dest = headers.destination
    local h = {}
    for k, v in pairs(headers) do if k ~= "destination" then h[k] = v end end
    headers = h
  end
  return self:send(dest, body, headers)
end

-- ERROR frame with message, then the connection closes.
function Session:close(message, detail)
  core.stomp_error(self.conn, message or "closed by the server", detail)
end

local function view(s, st, path)
  return setmetatable({ id = s.id, conn = s.conn, user = s.user, login = s.login, peer = s.peer,
                        tls = s.tls, version = s.version, transport = s.transport, data = s.data,
                        path = path, _stomp = st }, Session)
end

local Message = {}
Message.__index = function(msg, k)
  if k == "json" then
    local ok, v = pcall(cjson.decode, msg.body)
    if not ok then stomp_error("body is not valid JSON", "The handler for " .. msg.destination .. " expects a JSON body.") end
    rawset(msg, "json", v)
    return v
  end
  return nil
end

---------------------------------------------------------------------------------------
-- The STOMP object an app configures.

local Stomp = {}
Stomp.__index = Stomp

local function prefix_list(v, what)
  if v == nil then return nil end
  if type(v) == "string" then v = { v } end
  assert(type(v) == "table", "rt.stomp: " .. what .. " must be a string or a list of strings")
  local out = {}
  for _, p in ipairs(v) do out[#out + 1] = (tostring(p):gsub("/+$", "")) end
  return out
end

-- rt.stomp { endpoint = "/ws" | {...} | false, tcp_port = n, tcp_host = "addr",
--            tls = true (the TCP port speaks TLS with the server's --tls-cert),
--            app = "/app", broker = { "/topic", "/queue" } (or topics = {...}, queues = {...}),
--            user = "/user", heartbeat = { send_ms, recv_ms }, auth = function(login,
--            passcode, info) return ok, why_or_user end, origins = {...}, limits... }
function rt.stomp(opts)
  opts = opts or {}
  assert(type(opts) == "table", "rt.stomp: options must be a table")
  local app = I.registering()
  if app.stomp then error("rt.stomp: STOMP is already set up in this app", 2) end
  local topics, queues = prefix_list(opts.topics, "topics"), prefix_list(opts.queues, "queues")
  if opts.broker then
    -- One list: a prefix whose last segment is "queue" has queue semantics.
    topics, queues = topics or {}, queues or {}
    for _, p in ipairs(prefix_list(opts.broker, "broker")) do
      if p:match("queue$") then queues[#queues + 1] = p else topics[#topics + 1] = p end
    end
  end
  topics = topics or { "/topic" }
  queues = queues or { "/queue" }
  local hb = opts.heartbeat or { 10000, 10000 }
  assert(type(hb) == "table", "rt.stomp: heartbeat must be { send_ms, receive_ms }")
  local app_prefix = opts.app == nil and "/app" or (opts.app or "")
  local user_prefix = opts.user or "/user"
  if opts.auth ~= nil then assert(type(opts.auth) == "function", "rt.stomp: auth must be a function") end
  local c = {
    app = (app_prefix:gsub("/+$", "")), user = (user_prefix:gsub("/+$", "")),
    topics = topics, queues = queues,
    heartbeat_send = hb[1] or 0, heartbeat_recv = hb[2] or 0,
    tcp_port = opts.tcp_port, tcp_host = opts.tcp_host, tls = opts.tls and true or false,
    relay = opts.relay,
  }
  for _, k in ipairs { "max_body", "max_headers", "max_header_line", "max_destination",
                       "max_subscriptions", "max_unacked", "max_transactions", "max_tx_frames",
                       "max_tx_bytes", "max_queue_messages", "max_queued_bytes",
                       "connect_timeout" } do
    c[k] = opts[k]
  end
  core.stomp_configure(c)
  local st = setmetatable({ routes = {}, auth = opts.auth, app_prefix = c.app,
                            user_prefix = c.user, topics = topics, queues = queues }, Stomp)
  app.stomp = st

  local endpoints = opts.endpoint
  if endpoints == nil then endpoints = "/ws" end
  if type(endpoints) == "string" then endpoints = { endpoints } end
  for _, ep in ipairs(endpoints or {}) do
    rt.websocket(ep, {
      protocols = { "v12.stomp", "v11.stomp", "v10.stomp" },
      origins = opts.origins,
      -- A frame may span messages; this bounds one message, the session bounds frames.
      max_message = (opts.max_body or 1048576) + 65536,
      open = function(ws)
        local ok, err = core.stomp_ws_attach(ws.id)
        if not ok then ws:close(1011, err) end
      end,
    })
  end
  return st
end

-- stomp:on("/chat", fn) handles SEND to <app prefix>/chat; patterns as for HTTP routes
-- ("/order/:id", "/files/*rest"). The app prefix may be written out ("/app/chat").
function Stomp:on(pattern, fn)
  assert(type(pattern) == "string" and pattern:sub(1, 1) == "/", "stomp:on: destination must start with /")
  assert(type(fn) == "function", "stomp:on: expected a function")
  local ap = self.app_prefix
  if ap ~= "" and pattern:sub(1, #ap + 1) == ap .. "/" then pattern = pattern:sub(#ap + 1) end
  self.routes[#self.routes + 1] = { pattern = pattern, parts = I.compile_pattern(pattern), fn = fn }
  return self
end

function Stomp:on_connect(fn) self.connect_fn = fn; return self end
function Stomp:on_disconnect(fn) self.disconnect_fn = fn; return self end

-- convertAndSend: to a topic (STOMP and raw WebSocket subscribers), a queue, or
-- "/user/<name>/..." from anywhere (HTTP handlers, timers). Returns the number of
-- deliveries (1 for a queue), or nil, err.
function Stomp:send(dest, body, headers)
  local b, h = encode(body, headers)
  return core.stomp_publish(dest, b, h)
end

-- To every session of user subscribed to "/user" .. dest (dest like "/queue/x").
function Stomp:send_to_user(user, dest, body, headers)
  local b, h = encode(body, headers)
  return core.stomp_publish_user(tostring(user), dest, b, h)
end

function Stomp:tcp_port() return core.stomp_tcp_port() end
function Stomp:queue_depth(dest) return core.stomp_queue_depth(dest) end

---------------------------------------------------------------------------------------
-- Events from C, each in its own coroutine.

local function pack(...) return { n = select("#", ...), ... } end

local function current_stomp()
  local app = I.current_app()
  return app and app.stomp
end

local function run_hook(id, fn, ...)
  local ok, err = xpcall(fn, traceback, ...)
  if ok then return true end
  if type(err) == "table" and err.stomp_error then
    core.stomp_error(id, err.stomp_error, err.detail)
  else
    core.script_error(err)
    core.stomp_error(id, "internal error", "A handler failed on the server; see its log.")
  end
  return false
end

function dispatch.stomp_connect(id, info)
  local st = current_stomp()
  local user
  if st and st.auth then
    local ok, allowed, extra = xpcall(st.auth, traceback, info.login, info.passcode, info)
    if not ok then
      core.script_error(type(allowed) == "table" and tostring(allowed.stomp_error) or allowed)
      return core.stomp_refuse(id, "the login could not be checked")
    end
    if not allowed then return core.stomp_refuse(id, extra and tostring(extra) or "access denied") end
    user = type(extra) == "string" and extra or info.login
  end
  -- Registered first: accepting runs the frames that queued behind CONNECT right away.
  local s = { id = info.session, conn = id, user = user, login = info.login, peer = info.peer,
              tls = info.tls, version = info.version, transport = info.transport, data = {} }
  sessions[id] = s
  if not core.stomp_accept(id, user) then
    sessions[id] = nil
    return
  end
  if st and st.connect_fn then run_hook(id, st.connect_fn, view(s, st)) end
end

local function publish_result(st, id, dest, path, r)
  -- return body | return "/dest", body [, headers]
  if r.n == 0 or r[1] == nil then return end
  local to, body, headers
  if r.n >= 2 and type(r[1]) == "string" and r[1]:sub(1, 1) == "/" and r[2] ~= nil then
    to, body, headers = r[1], r[2], r[3]
  else
    to, body = st.topics[1] .. path, r[1]
  end
  local ok, err, engine = st:send(to, body, headers)
  -- An engine outage is counted and logged by the server; this node's subscribers got it.
  if not ok and engine ~= "engine" then core.stomp_error(id, "cannot publish", "The handler for " .. dest .. " returned " .. to .. ": " .. tostring(err)) end
end

function dispatch.stomp_send(id, dest, path, body, headers)
  local s = sessions[id]
  local st = current_stomp()
  if not s or not st then return end
  local route, params
  for _, r in ipairs(st.routes) do
    params = I.match_pattern(r.parts, path)
    if params then route = r; break end
  end
  if not route then
    return core.stomp_error(id, "no handler", "Nothing handles SEND to " .. dest .. ".")
  end
  local msg = setmetatable({ destination = dest, path = path, body = body, headers = headers,
                             params = params }, Message)
  local r
  local ok = run_hook(id, function() r = pack(route.fn(msg, view(s, st, path))) end)
  if ok then publish_result(st, id, dest, path, r) end
end

function dispatch.stomp_closed(id)
  local s = sessions[id]
  if not s then return end
  sessions[id] = nil
  local st = current_stomp()
  if st and st.disconnect_fn then
    local ok, err = xpcall(st.disconnect_fn, traceback, view(s, st))
    if not ok then core.script_error(type(err) == "table" and tostring(err.stomp_error) or err) end
  end
end

-- The sessions of a user, for apps that want to know who is online.
function Stomp:sessions(user)
  local out = {}
  for _, s in pairs(sessions) do
    if user == nil or s.user == user then out[#out + 1] = view(s, self) end
  end
  return out
end

return rt.stomp
