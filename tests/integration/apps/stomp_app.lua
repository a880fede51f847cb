-- The STOMP integration tests' app: every broker feature behind small handlers.
local rt = require "rt"

local users = { alice = "secret", bob = "secret" }

local stomp = rt.stomp {
  endpoint = "/ws",
  tcp_port = 0,
  heartbeat = { 200, 200 },   -- short, so a test can see the timeout; clients ask for more
  max_body = 64 * 1024,
  max_unacked = 50,
  connect_timeout = 3,
  auth = function(login, passcode, info)
    if login == nil then return true end             -- anonymous is fine
    if login == "slow" then rt.sleep(0.05); return true, "slowpoke" end  -- yields
    if users[login] ~= passcode then return false, "wrong login or passcode" end
    return true
  end,
}

-- The seed chat.
stomp:on("/chat", function(msg) return "/topic/messages", msg.json end)
-- Default destination: the same path under /topic.
stomp:on("/shout", function(msg) return msg.body:upper() end)
-- Path parameters and a table result (JSON).
stomp:on("/rooms/:room/say", function(msg, s)
  return "/topic/rooms." .. msg.params.room, { room = msg.params.room, from = s.user or "anon", text = msg.body }
end)
-- Only the sender hears back (at /user/queue/echo).
stomp:on("/echo", function(msg, s) s:reply("echo: " .. msg.body) end)
stomp:on("/whoami", function(_, s) s:reply({ user = s.user or rt.json.null, session = s.id }) end)
stomp:on("/notify/:user", function(msg)
  stomp:send_to_user(msg.params.user, "/queue/notes", msg.body)
end)
stomp:on("/boom", function() error("handler exploded on purpose") end)
stomp:on("/later", function(msg) rt.sleep(0.05); return "/topic/later", msg.body end)

-- HTTP into the broker (convertAndSend from any handler).
rt.http.post("/publish", function(req)
  local n, err = stomp:send(req.args.dest, req.body, { ["x-from"] = "http" })
  if not n then return 400, { error = err } end
  return { delivered = n }
end)
rt.http.post("/raw-publish", function(req)
  return { delivered = rt.publish(req.args.topic, req.body) }
end)
rt.http.get("/stomp", function()
  return { tcp_port = stomp:tcp_port() }
end)
rt.http.get("/depth", function(req) return { depth = stomp:queue_depth(req.args.dest) } end)

-- Raw WebSocket subscribers of the same topics (?topic=/topic/x).
rt.websocket("/raw", {
  open = function(ws, req) ws:subscribe(req.args.topic) end,
})
