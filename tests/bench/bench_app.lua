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
