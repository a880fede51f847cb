-- Test app for the integration tests: echo, scripted closes, errors, events, HTTP routes.
local rt = require "rt"

local events = rt.topic "events"   -- a monitor socket sees what the handlers saw
local closes = {}                  -- the same, for GET /closes

local function report(fmt, ...)
  local line = string.format(fmt, ...)
  closes[#closes + 1] = line
  events:publish(line)
end

-- Echo: text or binary back as it came. A few text commands drive the server side.
rt.websocket("/echo", {
  open = function(ws) ws:send("hello " .. (ws.protocol or "-")) end,
  message = function(ws, data, binary)
    if not binary then
      local code, reason = data:match("^close (%d+) ?(.*)$")
      if code then return ws:close(tonumber(code), reason) end
      if data == "boom" then error("boom from the message handler") end
      if data == "bad-close-code" then return ws:close(1005, "no") end
    end
    ws:send(data, binary)
  end,
  close = function(ws, code, reason) report("close /echo %d %s", code, reason) end,
})

-- Echo that never compresses (permessage-deflate declined on this endpoint).
rt.websocket("/plain", {
  deflate = false,
  message = function(ws, data, binary) ws:send(data, binary) end,
})

-- Echo with a route-level message limit.
rt.websocket("/small", {
  max_message = 100,
  message = function(ws, data, binary) ws:send(data, binary) end,
})

-- Watches what other handlers report.
rt.websocket("/events", {
  open = function(ws) events:subscribe(ws); ws:send("ready") end,
})

-- Subprotocols and origins.
rt.websocket("/proto", {
  protocols = { "v12.stomp", "v11.stomp" },
  open = function(ws) ws:send("protocol " .. (ws.protocol or "-")) end,
})
rt.websocket("/origin", {
  origins = { "http://good.example", "https://also.good.example" },
  open = function(ws) ws:send("origin ok") end,
})

-- Pub/sub for fan-out and slow-consumer tests: /sub/:topic subscribes; every message to
-- /pub/:topic is published to the topic and answered with the number of deliveries.
rt.websocket("/sub/:topic", {
  open = function(ws)
    rt.topic(ws.params.topic):subscribe(ws)
    ws:send("subscribed " .. ws.params.topic)
  end,
})
rt.websocket("/pub/:topic", {
  message = function(ws, data, binary)
    ws:send("delivered " .. rt.topic(ws.params.topic):publish(data, binary))
  end,
})

-- ws.peer, ws.params and ws.data are made when first read (an idle connection holds none
-- of them): each behaves as a plain field, in every handler, the close handler included.
rt.websocket("/fields/:name", {
  open = function(ws)
    ws.data.count = 0
    ws:send(string.format("open %s %s", ws.params.name, ws.peer))
  end,
  message = function(ws, data)
    ws.data.count = ws.data.count + 1
    if data == "set" then ws.params.extra = "x"; ws.data = { count = 100 } end
    ws:send(string.format("count %d %s", ws.data.count, tostring(ws.params.extra)))
  end,
  close = function(ws, code)
    report("close /fields %s %s %d", ws.params.name, tostring(ws.peer), ws.data.count)
  end,
})
rt.websocket("/fields", {
  -- no open handler: nothing is read until the close, after the connection is gone
  close = function(ws, code)
    report("close /fields-late %s %s %s", tostring(ws.peer), tostring(next(ws.params)),
           tostring(next(ws.data)))
  end,
})

-- HTTP routes
local items = {}
rt.http.get("/closes", function() return 200, closes end)
rt.http.get("/items/:id", function(req)
  local item = items[req.params.id]
  if not item then rt.http_error(404, "no item " .. req.params.id) end
  return item
end)
rt.http.post("/items", function(req)
  local body = req.json
  local id = tostring(#items + 1 + (body.offset or 0))
  items[id] = { id = id, name = body.name, tags = body.tags }
  return 201, items[id], { Location = "/items/" .. id }
end)
rt.http.put("/items/:id", function(req)
  local item = items[req.params.id] or { id = req.params.id }
  item.name = req.json.name
  items[req.params.id] = item
  return { updated = item.id, name = item.name }
end)
rt.http.get("/users/:uid/posts/:pid", function(req)
  return { uid = req.params.uid, pid = req.params.pid, q = req.args.q or rt.json.null }
end)
rt.http.get("/fail", function() error("route exploded") end)
rt.http.post("/echo-body", function(req)
  return 200, req.body, { ["Content-Type"] = "application/octet-stream" }
end)
rt.http.get("/text", function() return 200, "plain words", { ["X-Test"] = "yes" } end)

rt.static("/files", "public")
