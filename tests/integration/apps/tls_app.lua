-- The TLS tests' app: what each kind of handler sees of TLS (req.tls, ws.tls, a STOMP
-- session's tls, a gRPC call's tls), an echo, a gRPC user service and STOMP over TLS TCP.
local rt = require "rt"

local function tls_of(t)
  if not t then return { tls = false } end
  return { tls = true, version = t.version, alpn = t.alpn or rt.json.null, resumed = t.resumed,
           peer = t.peer or rt.json.null, subject = t.subject or rt.json.null }
end

rt.http.get("/whoami", function(req) return 200, tls_of(req.tls) end)
rt.static("/", "public")

rt.websocket("/echo", {
  message = function(ws, data, binary)
    if data == "whoami" then return ws:send(rt.json.encode(tls_of(ws.tls))) end
    ws:send(data, binary)
  end,
})

local chat = rt.topic "chat"
rt.websocket("/chat", {
  open = function(ws) chat:subscribe(ws) end,
  message = function(ws, data) chat:publish(data) end,
})

local users = rt.grpc.service("../../../proto/user.proto", "user.UserService")
function users.GetUser(req, ctx)
  local t = ctx.tls
  return { id = req.id, name = t and ("over " .. t.version .. " " .. (t.alpn or "-")) or "plain",
           email = t and t.peer or "" }
end
function users.ListUsers(_, stream)
  for i = 1, 50 do stream:send { id = i, name = string.rep("x", i * 100) } end
end

local stomp = rt.stomp { endpoint = "/stomp", sockjs = {}, tcp_port = 0, tls = true }
stomp:on("/whoami", function(_, s) s:reply(tls_of(s.tls)) end)
rt.http.get("/stomp-port", function() return 200, { port = stomp:tcp_port() } end)
