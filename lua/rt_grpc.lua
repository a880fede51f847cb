-- rt.grpc: gRPC services written in Lua (the server side; the client is rt_grpc_client).
--
--   local users = rt.grpc.service("proto/user.proto", "user.UserService")
--   function users.GetUser(req, ctx) return { id = req.id, name = "Ann" } end
--   function users.ListUsers(req, stream) for i = 1, 3 do stream:send { id = i } end end
--   function users.CreateUsers(stream)
--     local n = 0
--     for _ in stream:messages() do n = n + 1 end
--     return { count = n }
--   end
--   function users.ChatUsers(stream)
--     for m in stream:messages() do stream:send { text = "got " .. m.text } end
--   end
--
-- HTTP/2 and the gRPC framing live in C (core/h2.c, core/grpc_server.c, core/lua_grpc.c).
-- Every call runs its handler in a coroutine of its own; the handler is looked up when the
-- call arrives, in the app generation current then, so a reload changes handlers for new
-- calls while running ones finish on their old closures.
local rt = require "rt"
local I = rt._internal
local core = I.core
local dispatch = rt._dispatch

local grpc = {}
rt.grpc = grpc

---------------------------------------------------------------------------------------
-- Status codes and errors

local names = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
  "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
  "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" }

grpc.status = {}
for i, n in ipairs(names) do grpc.status[n] = i - 1 end
function grpc.status_name(code) return names[(tonumber(code) or -1) + 1] end

local S = grpc.status

local GrpcError = {}
GrpcError.__index = GrpcError
GrpcError.__tostring = function(e)
  return "gRPC " .. (names[e.code + 1] or tostring(e.code)) .. ": " .. e.message
end
grpc.Error = GrpcError

local function to_code(code, level)
  if type(code) == "string" then
    local c = S[code:upper()]
    if not c then error("rt.grpc: unknown status '" .. code .. "'", level + 1) end
    return c
  end
  if type(code) ~= "number" or code < 0 or code > 16 or code % 1 ~= 0 then
    error("rt.grpc: a status is 0-16 or a name like \"NOT_FOUND\"", level + 1)
  end
  return code
end

-- Raises a gRPC status from a handler: rt.grpc.error(rt.grpc.status.NOT_FOUND, "no user 7")
-- or rt.grpc.error("NOT_FOUND", "no user 7", { ["x-retry-in"] = "5" }) with trailers.
function grpc.error(code, message, trailers)
  code = to_code(code, 2)
  error(setmetatable({ code = code, message = message ~= nil and tostring(message) or "",
                       trailers = trailers }, GrpcError), 2)
end

-- Raised by send and messages() once the call is over (the client cancelled, the deadline
-- passed): it unwinds the handler quietly, since nobody is listening any more.
local Over = setmetatable({}, { __tostring = function() return "rt.grpc: the call is over" end })
grpc.Over = Over

---------------------------------------------------------------------------------------
-- The call: a unary handler's ctx and a streaming handler's stream are the same object.
--   call.metadata       { key = first value }; -bin values decoded to bytes
--   call.metadata_list  { {key, value}, ... } in arrival order, repeats included
--   call.deadline       absolute, on rt.now()'s clock, or nil; call:remaining() seconds
--   call.peer, call.authority, call.path, call.service, call.method, call.encoding

local Call = {}
Call.__index = Call

function Call:send(msg)
  local ok, err, code = core.grpc_send(self._c, msg)
  if ok then return true end
  if code then grpc.error(code, err) end
  error(Over, 0)
end

-- One message, nil at the end of the client's stream, or nil, why when the call is over.
function Call:recv() return core.grpc_recv(self._c) end

function Call:messages()
  return function()
    local m, why = core.grpc_recv(self._c)
    if m == nil and why then error(Over, 0) end
    return m
  end
end

-- true once the client cancelled, the deadline passed or the connection went; the second
-- value says which ("cancelled", "deadline exceeded").
function Call:cancelled()
  local cancelled, why = core.grpc_state(self._c)
  if cancelled then return true, why end
  return false
end
function Call:set_header(k, v) core.grpc_meta(self._c, false, k, tostring(v)) end
function Call:set_trailer(k, v) core.grpc_meta(self._c, true, k, tostring(v)) end
function Call:send_headers() return core.grpc_send_headers(self._c) end
-- Waits until the call is cancelled, expires or ends; returns why.
function Call:wait() return core.grpc_wait(self._c) end
function Call:remaining()
  if self.deadline then return math.max(0, self.deadline - rt.now()) end
end

---------------------------------------------------------------------------------------
-- Built-in services: health and server reflection

local builtin_names = { "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                        "grpc.reflection.v1alpha.ServerReflection" }
local builtin_set = {}
for _, n in ipairs(builtin_names) do builtin_set[n] = true end

local builtin_schemas   -- loaded once per process, for reflection to describe the built-ins
local function load_builtin_schemas()
  if builtin_schemas then return builtin_schemas end
  builtin_schemas = {}
  local src = debug.getinfo(1, "S").source
  local here = src:match("^@(.*)/[^/]*$") or "."
  local dir = os.getenv("RTSERVER_PROTO_DIR") or (here .. "/../proto")
  for _, f in ipairs { "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
                       "grpc/reflection/v1alpha/reflection.proto" } do
    local s, err = core.grpc_load(dir .. "/" .. f, { dir })
    if s then
      builtin_schemas[#builtin_schemas + 1] = s
    else
      rt.log.warn("rt.grpc: reflection will not describe %s: %s", f, err)
    end
  end
  return builtin_schemas
end

local SERVING = { UNKNOWN = 0, SERVING = 1, NOT_SERVING = 2, SERVICE_UNKNOWN = 3 }
local health_status = {}                                  -- name -> status the app set
local watchers = setmetatable({}, { __mode = "k" })       -- call -> service it watches

local function app_grpc(app)
  local g = app.grpc
  if not g then
    g = { routes = {}, services = {}, names = {}, schemas = {}, loaded = {} }
    app.grpc = g
  end
  return g
end

local function health_of(service)
  local st = health_status[service]
  if st then return SERVING[st] end
  if service == "" or builtin_set[service] then return SERVING.SERVING end
  local app = I.current_app()
  if app and app.grpc and app.grpc.services[service] then return SERVING.SERVING end
end

grpc.health = {}
-- rt.grpc.health.set("user.UserService", "NOT_SERVING"); "" is the whole server.
function grpc.health.set(service, status)
  assert(type(service) == "string", "rt.grpc.health.set: service must be a string")
  if SERVING[status] == nil then
    error("rt.grpc.health.set: status is SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN", 2)
  end
  health_status[service] = status
  local reply = core.grpc_health_response(SERVING[status])
  for call, name in pairs(watchers) do
    if name == service then core.grpc_send(call._c, reply, true) end
  end
end

local function health_service(req)
  local service, err = core.grpc_health_request(req)
  if not service then grpc.error(S.INVALID_ARGUMENT, err) end
  return service
end

local function health_check(req)
  local service = health_service(req)
  local st = health_of(service)
  if not st then grpc.error(S.NOT_FOUND, "unknown service " .. service) end
  return core.grpc_health_response(st)
end

local function health_watch(req, call)
  local service = health_service(req)
  watchers[call] = service
  call:send(core.grpc_health_response(health_of(service) or SERVING.SERVICE_UNKNOWN))
  call:wait()
  watchers[call] = nil
end

local function reflection(call)
  for req in call:messages() do
    local app = I.current_app()
    local g = app and app.grpc or app_grpc({})
    local schemas, list = {}, {}
    for _, s in ipairs(g.schemas) do schemas[#schemas + 1] = s end
    for _, s in ipairs(builtin_schemas or {}) do schemas[#schemas + 1] = s end
    for _, n in ipairs(g.names) do list[#list + 1] = n end
    for _, n in ipairs(builtin_names) do
      if not g.services[n] then list[#list + 1] = n end
    end
    local reply, err = core.grpc_reflect(req, schemas, list)
    if not reply then grpc.error(S.INVALID_ARGUMENT, err) end
    call:send(reply)
  end
end

local builtin = {
  ["/grpc.health.v1.Health/Check"] = { fn = health_check },
  ["/grpc.health.v1.Health/Watch"] = { fn = health_watch, server_streaming = true },
  ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] =
    { fn = reflection, client_streaming = true, server_streaming = true },
  ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] =
    { fn = reflection, client_streaming = true, server_streaming = true },
}

---------------------------------------------------------------------------------------
-- Services

local function exists(p)
  local f = io.open(p, "r")
  if f then f:close() end
  return f ~= nil
end

-- A relative path names a file in the app's folder or, failing that, in its parent (so
-- apps/x.lua can say "proto/user.proto" for the repository's proto/ folder).
local function resolve(app, p)
  if p:sub(1, 1) == "/" then return p end
  local first = app.dir .. "/" .. p
  if exists(first) then return first end
  local parent = app.dir:match("^(.*)/[^/]+$")
  if parent then
    local second = (parent == "" and "" or parent) .. "/" .. p
    if exists(second) then return second end
  end
  return first
end

-- rt.grpc.service(proto, "pkg.Service", { include = { dirs }, max_recv_size = bytes,
--   max_send_size = bytes, compression = "gzip" }) -> a table to put handlers in.
-- proto is a .proto file (compiled with protoc at load) or a descriptor set (.pb).
function grpc.service(proto, name, opts)
  assert(type(proto) == "string", "rt.grpc.service: proto must be a path")
  assert(type(name) == "string", "rt.grpc.service: name must be a full service name")
  opts = opts or {}
  local app = I.registering()
  local g = app_grpc(app)
  load_builtin_schemas()
  local path = resolve(app, proto)
  local includes = {}
  for i, d in ipairs(opts.include or {}) do includes[i] = resolve(app, d) end
  local key = path .. "\0" .. table.concat(includes, "\0")
  local schema = g.loaded[key]
  if not schema then
    local s, err = core.grpc_load(path, includes)
    if not s then error("rt.grpc.service: " .. err, 2) end
    schema = s
    g.loaded[key] = s
    g.schemas[#g.schemas + 1] = s
  end
  local info, err = core.grpc_service(schema, name)
  if not info then error("rt.grpc.service: " .. err, 2) end
  if g.services[name] then error("rt.grpc.service: " .. name .. " is registered twice", 2) end
  local methods = {}
  for _, m in ipairs(info.methods) do methods[m.name] = m end
  local handlers = setmetatable({}, {
    __newindex = function(t, k, v)
      if not methods[k] then error(("rt.grpc: %s has no method %s"):format(name, tostring(k)), 2) end
      if type(v) ~= "function" then error(("rt.grpc: %s.%s must be a function"):format(name, k), 2) end
      rawset(t, k, v)
    end,
  })
  local svc = { name = name, info = info, handlers = handlers, schema = schema, opts = opts }
  g.services[name] = svc
  g.names[#g.names + 1] = name
  for _, m in ipairs(info.methods) do g.routes[m.path] = { svc = svc, method = m } end
  return handlers
end

-- rt.grpc.listen(port [, host]): HTTP/2-only port for gRPC, besides the main port (which
-- serves gRPC too). Port 0 picks one; returns the port.
function grpc.listen(port, host)
  local p, err = core.grpc_listen(host or "127.0.0.1", port)
  if not p then error("rt.grpc.listen: " .. err, 2) end
  return p
end

---------------------------------------------------------------------------------------
-- Dispatch: C calls this in a new coroutine for every call.

local function find_route(path)
  local app = I.current_app()
  local g = app and app.grpc
  local r = g and g.routes[path]
  if r then return r.method, r.svc, rawget(r.svc.handlers, r.method.name) end
  local b = builtin[path]
  if b then return b, nil, b.fn end
end

local function unimplemented(path)
  local svc, method = path:match("^/([^/]+)/([^/]+)$")
  local app = I.current_app()
  local g = app and app.grpc
  if svc and ((g and g.services[svc]) or builtin_set[svc]) then
    return ("method %s of %s is not implemented"):format(method, svc)
  end
  return "unknown service " .. tostring(svc or path)
end

local function serve(c, path)
  local m, svc, fn = find_route(path)
  if not fn then return core.grpc_finish(c, S.UNIMPLEMENTED, unimplemented(path)) end
  local o = svc and svc.opts or {}
  local ok, err = core.grpc_bind(c, {
    schema = svc and svc.schema, path = path,
    client_streaming = m.client_streaming, server_streaming = m.server_streaming,
    max_recv = o.max_recv_size, max_send = o.max_send_size, compress = o.compression,
  })
  if not ok then return core.grpc_finish(c, S.INTERNAL, err) end
  local call = core.grpc_info(c)
  if not call then return end
  setmetatable(call, Call)
  call._c, call.service = c, svc and svc.name or path:match("^/([^/]+)/")
  call.method = m.name or path:match("/([^/]+)$")
  local reply
  if not m.client_streaming then
    local req, why = core.grpc_recv(c)
    if req == nil then
      if not why then core.grpc_finish(c, S.INTERNAL, "the request has no message") end
      return
    end
    if m.server_streaming then fn(req, call) else reply = fn(req, call) end
  elseif m.server_streaming then
    fn(call)
  else
    reply = fn(call)
  end
  if not m.server_streaming then
    if reply == nil then grpc.error(S.INTERNAL, "the handler returned no reply") end
    call:send(reply)
  end
  core.grpc_finish(c, S.OK, "")
end

local function keep(e)
  if type(e) == "table" then return e end
  return debug.traceback(tostring(e), 2)
end

function dispatch.grpc_call(c, path)
  local ok, err = xpcall(serve, keep, c, path)
  if not ok then
    if err == Over then
      -- the call ended under the handler; its status went out already
    elseif type(err) == "table" and type(err.code) == "number" then
      if type(err.trailers) == "table" then
        for k, v in pairs(err.trailers) do pcall(core.grpc_meta, c, true, k, tostring(v)) end
      end
      core.grpc_finish(c, err.code, err.message and tostring(err.message) or "")
    else
      core.script_error("gRPC " .. path .. ": " .. tostring(err))
      core.grpc_finish(c, S.UNKNOWN, "the handler failed; see the server log")
    end
  end
  core.grpc_done(c)
end

return grpc
