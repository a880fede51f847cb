-- The rtserver side of `make bench`: echo through a Lua handler, and a topic that one
-- publisher fans out to every subscriber (the frame is built once per message).
local rt = require "rt"

rt.websocket("/echo", {
  message = function(ws, data, is_binary) ws:send(data, is_binary) end,
})

local topic = rt.topic("fan")
rt.websocket("/sub", { open = function(ws) topic:subscribe(ws) end })
rt.websocket("/pub", { message = function(ws, data) topic:publish(data) end })
