-- The relay tests' app: the built-in STOMP server with its broker prefixes on RabbitMQ
-- (RT_RELAY_PORT), auth here first, /app handlers here, server sends through the relay.
local rt = require "rt"

local users = { alice = "secret", bob = "secret" }

local stomp = rt.stomp {
  endpoint = "/ws",
  tcp_port = 0,
  heartbeat = { 0, 0 },
  connect_timeout = 5,
  auth = function(login, passcode)
    if login == nil then return true end
    if users[login] ~= passcode then return false, "wrong login or passcode" end
    return true
  end,
  relay = {
    host = "127.0.0.1",
    port = tonumber(os.getenv("RT_RELAY_PORT") or "61613"),
    login = "guest", passcode = "guest", vhost = "/",
    heartbeat = { 1000, 1000 },
    connect_timeout = 2,
    reconnect_min = 0.2, reconnect_max = 1,
    -- RT_RELAY_TLS_CA: the broker speaks TLS; its certificate must chain to that CA.
    tls = os.getenv("RT_RELAY_TLS_CA") and { ca = os.getenv("RT_RELAY_TLS_CA"), server_name = "localhost" },
  },
}

stomp:on("/chat", function(msg) return "/topic/messages", msg.json end)
stomp:on("/work", function(msg) return "/queue/work", msg.body end)
stomp:on("/echo", function(msg, s) s:reply("echo: " .. msg.body) end)
stomp:on("/notify/:user", function(msg)
  local n, err = stomp:send_to_user(msg.params.user, "/queue/notes", msg.body)
  assert(n, err)
end)

rt.http.post("/publish", function(req)
  local n, err = stomp:send(req.args.dest, req.body, { ["x-from"] = "http" })
  if not n then return 503, { error = err } end
  return { delivered = n }
end)
rt.http.post("/to-user", function(req)
  local n, err = stomp:send_to_user(req.args.user, req.args.dest, req.body)
  if not n then return 503, { error = err } end
  return { delivered = n }
end)
rt.http.get("/stomp", function()
  return { tcp_port = stomp:tcp_port() }
end)
