-- The rtserver side of `make bench`: echo through a Lua handler, and a topic that one
-- publisher fans out to every subscriber (the frame is built once per message).
local rt = require "rt"

rt.websocket("/echo", {
  message = function(ws, data, is_binary) ws:send(data, is_binary) end,
})

-- The bench sends binary payloads: publish them as binary, or a client that checks
-- UTF-8 (as npm ws and browsers do) would drop the connection with 1007.
local topic = rt.topic("fan")
rt.websocket("/sub", { open = function(ws) topic:subscribe(ws) end })
rt.websocket("/pub", {
  message = function(ws, data, is_binary) topic:publish(data, is_binary) end,
})

-- (g) the same fan-out on a topic that keeps history (rt.history): every publish is also
-- kept with its offset; compared against "fan" in the same runs.
rt.history("hfan", { size = 1000, ttl = 60 })
local htopic = rt.topic("hfan")
rt.websocket("/hsub", { open = function(ws) htopic:subscribe(ws) end })
rt.websocket("/hpub", {
  message = function(ws, data, is_binary) htopic:publish(data, is_binary) end,
})
