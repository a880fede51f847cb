-- rt.grpc.client: calling gRPC servers from handlers.
--
--   local users = rt.grpc.client("127.0.0.1:9090", "proto/user.proto", "user.UserService",
--                                { timeout = 2, metadata = { ["x-app"] = "orders" } })
--
--   -- unary: yields this coroutine (not the loop) until the reply
--   local u, err, md = users:GetUser({ id = 1 }, { timeout = 1, metadata = { k = "v" } })
--   if not u then print(err.code, err.status, err.message) end
--
--   -- server streaming: iterate; after the loop, stream:status() says how it ended
--   local stream = users:ListUsers({})
--   for u in stream do ... end
--   local ok, err = stream:status()
--
--   -- client streaming
--   local call = users:CreateUsers()
--   call:send { id = 1 }; call:send { id = 2 }
--   local summary, err = call:close_and_recv()
--
--   -- bidi
--   local chat = users:ChatUsers()
--   chat:send { text = "hi" }; local reply, err = chat:recv(); chat:close_send()
--
-- Errors: misuse raises (a request table that does not fit the message, a bad option, an
-- unknown method, send after close_send); anything the network or the server decides
-- comes back as nil, err with err = { code = 14, status = "UNAVAILABLE", message = "...",
-- trailers = {...} } (tostring(err) gives "UNAVAILABLE: message").
--
-- One HTTP/2 connection per target is shared by every client object and every call to
-- that target; it is opened on the first call and again after it drops.
local rt = require "rt"
local core = rt._internal.core

rt.grpc = rt.grpc or {}

local Err = {}
Err.__index = Err
Err.__tostring = function(e) return e.status .. ": " .. tostring(e.message) end

local function as_err(err)
  if type(err) == "table" and getmetatable(err) == nil then setmetatable(err, Err) end
  return err
end

local function check_opts(o, what)
  if o == nil then return {} end
  if type(o) ~= "table" then error(what .. ": options must be a table", 3) end
  if o.timeout ~= nil and (type(o.timeout) ~= "number" or o.timeout <= 0) then
    error(what .. ": timeout must be a positive number of seconds", 3)
  end
  if o.metadata ~= nil and type(o.metadata) ~= "table" then
    error(what .. ": metadata must be a table", 3)
  end
  if o.tls ~= nil and type(o.tls) ~= "boolean" and type(o.tls) ~= "table" then
    error(what .. ": tls must be true or { ca =, server_name =, cert =, key =, verify = }", 3)
  end
  return o
end

-- The client's default metadata under the call's own; numbers become strings here, so
-- the C side sees only strings (it keeps pointers into this table until the call starts).
local function merge_md(a, b)
  if not a and not b then return nil end
  local m = {}
  for _, src in ipairs { a or {}, b or {} } do
    for k, v in pairs(src) do
      if type(v) == "number" then
        v = tostring(v)
      elseif type(v) == "table" then
        local list = {}
        for i, x in ipairs(v) do list[i] = type(x) == "number" and tostring(x) or x end
        v = list
      end
      m[k] = v
    end
  end
  return m
end

---------------------------------------------------------------------------------------
-- A call in progress (streaming methods hand it to the script)

local Call = {}
Call.__index = Call

-- for msg in call do ... end: the loop ends at the last message or at a failure.
Call.__call = function(self)
  local m, err = self._c:recv()
  if m == nil then self.err = as_err(err) end
  return m
end

function Call:send(msg)
  if type(msg) ~= "table" then error("send: expected a message table", 2) end
  local ok, err = self._c:send(msg)
  if not ok then return nil, as_err(err) end
  return true
end

function Call:recv()
  local m, err = self._c:recv()
  if m == nil and err then return nil, as_err(err) end
  return m
end

function Call:close_send() self._c:close_send() end

-- Client streaming: ends the request stream and waits for the one reply.
function Call:close_and_recv()
  self._c:close_send()
  local m, err = self._c:recv()
  if m == nil then
    if err then return nil, as_err(err) end
    return nil, as_err { code = 13, status = "INTERNAL", message = "the server sent no response message" }
  end
  local ok, ferr = self._c:finish()
  if not ok then return nil, as_err(ferr) end
  return m
end

function Call:headers()
  local h, err = self._c:headers()
  if h == nil then return nil, as_err(err) end
  return h
end

function Call:trailers() return self._c:trailers() end

-- Waits for the end of the call: true, or nil, err.
function Call:status()
  local ok, err = self._c:finish()
  if not ok then return nil, as_err(err) end
  return true
end

function Call:cancel(message) self._c:cancel(message) end

---------------------------------------------------------------------------------------
-- The client object

local Client = {}
Client.__index = Client

local function start(self, m, o, what)
  o = check_opts(o, what)
  local timeout = o.timeout or self.timeout
  local md = merge_md(self.metadata, o.metadata)
  return core.grpc_call(self._c, m.name, timeout, md)
end

local function unary(m)
  local what = m.name
  return function(self, req, o)
    if getmetatable(self) ~= Client then error(what .. ": call it with ':' (client:" .. what .. "{...})", 2) end
    if type(req) ~= "table" then error(what .. ": expected a request table", 2) end
    local c = start(self, m, o, what)
    local ok, err = c:send(req)
    if not ok then return nil, as_err(err) end
    c:close_send()
    local msg, rerr = c:recv()
    if msg == nil then
      if rerr then return nil, as_err(rerr) end
      return nil, as_err { code = 13, status = "INTERNAL", message = "the server sent no response message",
                           trailers = c:trailers() }
    end
    local fin, ferr = c:finish()
    if not fin then return nil, as_err(ferr) end
    if c:queued() > 0 then
      return nil, as_err { code = 13, status = "INTERNAL", message = "the server sent more than one response message",
                           trailers = c:trailers() }
    end
    return msg, nil, { headers = c:headers(), trailers = c:trailers() }
  end
end

local function server_stream(m)
  local what = m.name
  return function(self, req, o)
    if getmetatable(self) ~= Client then error(what .. ": call it with ':'", 2) end
    if type(req) ~= "table" then error(what .. ": expected a request table", 2) end
    local c = start(self, m, o, what)
    local call = setmetatable({ _c = c, method = what }, Call)
    c:send(req)  -- a failure to send shows up at the first recv
    c:close_send()
    return call
  end
end

local function streaming(m)
  local what = m.name
  return function(self, o)
    if getmetatable(self) ~= Client then error(what .. ": call it with ':'", 2) end
    return setmetatable({ _c = start(self, m, o, what), method = what }, Call)
  end
end

local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() end
  return f ~= nil
end

-- A relative proto path names a file in the app script's folder, else in its parent (as
-- rt.grpc.service does: apps/x.lua can say "proto/user.proto"), else the working folder.
local function resolve(path)
  if path:sub(1, 1) == "/" then return path end
  local ok, app = pcall(rt._internal.registering)
  if ok and app and app.dir then
    local p = app.dir .. "/" .. path
    if exists(p) then return p end
    local parent = app.dir:match("^(.*)/[^/]+$")
    if parent and exists(parent .. "/" .. path) then return parent .. "/" .. path end
  end
  return path
end

-- rt.grpc.client(target, proto, service, { timeout =, metadata =, max_message =, tls = })
-- tls = true verifies the server against the system's CAs for the target's host name;
-- tls = { ca = "ca.pem", server_name = "users.internal", cert = "me.pem", key = "me.key" }
-- names the CAs, the name the certificate must carry, and a client certificate (mutual
-- TLS). Relative paths are taken from the app's folder, like the proto.
function rt.grpc.client(target, proto, service, opts)
  if type(target) ~= "string" then error("rt.grpc.client: target must be \"host:port\"", 2) end
  if type(proto) ~= "string" then error("rt.grpc.client: proto must be a .proto or descriptor set path", 2) end
  if type(service) ~= "string" then error("rt.grpc.client: service must be a full name like \"pkg.Service\"", 2) end
  opts = check_opts(opts, "rt.grpc.client")
  local tls = opts.tls
  if type(tls) == "table" then
    tls = { ca = tls.ca and resolve(tls.ca), cert = tls.cert and resolve(tls.cert),
            key = tls.key and resolve(tls.key), server_name = tls.server_name, verify = tls.verify }
  end
  local c, methods = core.grpc_client_new(target, resolve(proto), service, opts.max_message, tls)
  local self = setmetatable({ _c = c, target = target, service = service,
                              timeout = opts.timeout, metadata = opts.metadata }, Client)
  for _, m in ipairs(methods) do
    if m.client_streaming then
      self[m.name] = streaming(m)
    elseif m.server_streaming then
      self[m.name] = server_stream(m)
    else
      self[m.name] = unary(m)
    end
  end
  return self
end

-- client:stats() -> { connects =, connect_fails =, calls =, open = } for this target.
function Client:stats() return core.grpc_client_stats(self._c) end

-- The client's error metatable (rt.grpc.Error is the server side's raised status).
rt.grpc.ClientError = Err
return rt.grpc
