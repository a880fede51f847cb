-- The classic chat: every message a client sends goes to everyone, with a server prefix.
-- Run: rtserver apps/chat.lua   then open http://127.0.0.1:8080/
local rt = require "rt"

local room = rt.topic "chat"
local names = 0

rt.websocket("/chat", {
  open = function(ws)
    names = names + 1
    ws.data.name = "guest" .. names
    room:subscribe(ws)
    ws:send("server: welcome, you are " .. ws.data.name)
    room:publish("server: " .. ws.data.name .. " joined (" .. room:count() .. " online)")
  end,

  message = function(ws, text)
    rt.log.debug("%s says %s", ws.data.name, text)
    room:publish("server relays " .. ws.data.name .. ": " .. text)
  end,

  close = function(ws, code)
    room:publish("server: " .. ws.data.name .. " left")
  end,
})

rt.static("/", "chat")   -- the page: apps/chat/index.html
