-- The embed host's app: calls a C function the host registered, and echoes.
local rt = require "rt"
local sum = rt.c.add(2, 3)
rt.websocket("/ws", {
  open = function(ws) rt.topic("news"):subscribe(ws) end,
  message = function(ws, m) ws:send("v1 " .. m .. " " .. sum) end,
})
