-- The multi-process tests' app (--engine, --workers): a chat, topics, STOMP topics, user
-- destinations and patterns, and HTTP routes that publish and say what happened.
local rt = require "rt"

local stomp = rt.stomp {
  endpoint = "/ws",
  tcp_port = tonumber(os.getenv("RT_STOMP_TCP_PORT") or "") or nil,
  app = "/app",
  broker = { "/topic" },
  auth = function(login) return true, login end,   -- the login is the user name
}

-- The chat: every message to everyone, on every node. A publish the engine refused is
-- said back to the sender.
local room = rt.topic "chat"
rt.websocket("/chat", {
  open = function(ws) room:subscribe(ws) end,
  message = function(ws, text)
    local n, err = room:publish(text)
    if not n then ws:send("publish failed: " .. err) end
  end,
})

-- Raw subscribers of any topic, binary frames kept binary.
rt.websocket("/sub/:topic", {
  open = function(ws)
    rt.topic(ws.params.topic):subscribe(ws)
    ws:send("subscribed " .. ws.params.topic)
  end,
})
rt.websocket("/pub/:topic", {
  message = function(ws, data, binary)
    local n, err = rt.topic(ws.params.topic):publish(data, binary)
    ws:send(n and ("delivered " .. n) or ("failed " .. err))
  end,
})

stomp:on("/chat", function(msg) return "/topic/messages", msg.json end)
stomp:on("/notify/:user", function(msg)
  local n, err = stomp:send_to_user(msg.params.user, "/queue/notes", msg.body, { ["x-kind"] = "note" })
  if not n then rt.log.warn("notify: %s", err) end
end)

-- The order push: PUT on one node, the browser on another.
rt.http.put("/orders/:id/status", function(req)
  local n, err = stomp:send("/topic/order/" .. req.params.id,
                            { id = tonumber(req.params.id), status = req.json.status },
                            { ["x-node"] = os.getenv("NODE_NAME") or "?" })
  if not n then return 503, { error = err } end
  return { delivered = n }
end)

rt.http.post("/publish", function(req)
  local n, err = rt.publish(req.args.topic, req.body)
  if not n then return 503, { error = err } end
  return { delivered = n }
end)

rt.http.post("/stomp-send", function(req)
  local n, err = stomp:send(req.args.dest, req.body, { ["content-type"] = req.headers["content-type"] })
  if not n then return 503, { error = err } end
  return { delivered = n }
end)

rt.http.get("/whoami", function() return { node = os.getenv("NODE_NAME") or "?" } end)

-- SockJS sessions in the same chat (the HTTP transports too).
rt.sockjs("/sockchat", {
  open = function(ws) room:subscribe(ws) end,
  message = function(ws, text) room:publish(text) end,
})

-- Raw WebSocket subscribers of a STOMP topic (?topic=/topic/x).
rt.websocket("/raw", {
  open = function(ws, req)
    ws:subscribe(req.args.topic)
    ws:send("subscribed " .. req.args.topic)
  end,
})

-- Which process serves: workers of one host differ by pid.
local ffi = require "ffi"
ffi.cdef "int getpid(void);"
local PID = tostring(ffi.C.getpid())
rt.http.get("/pid", function() return { pid = PID } end)
-- The chat again, each socket told which process holds it first.
rt.websocket("/chat-pid", {
  open = function(ws) ws:send("pid " .. PID); room:subscribe(ws) end,
  message = function(ws, text) room:publish(text) end,
})
stomp:on("/pid", function(_, s) s:reply(PID) end)

-- Topics with history under --workers: a worker that fell behind (the supervisor dropped
-- messages relayed to it) tells its subscribers. /hist-pid/NAME subscribes to hist/NAME
-- after saying the pid; a text "N SIZE NAME" publishes N messages of SIZE bytes there.
rt.history("hist/**", {
  size = 10, ttl = 60,
  lost = function(topic, ws) ws:send("lost " .. topic.name) end,
})
rt.websocket("/hist-pid/:name", {
  open = function(ws)
    ws:send("pid " .. PID)
    rt.topic("hist/" .. ws.params.name):subscribe(ws)
  end,
  message = function(ws, text)
    local n, size, name = text:match("^(%d+) (%d+) (%S+)$")
    if not n then return ws:send("bad") end
    local body = ("x"):rep(tonumber(size))
    for _ = 1, tonumber(n) do rt.topic("hist/" .. name):publish(body) end
    ws:send("done")
  end,
})
