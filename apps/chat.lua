-- The classic chat: every message a client sends goes to everyone, with a server prefix.
-- Run: rtserver apps/chat.lua   then open http://127.0.0.1:8080/
--
-- The room keeps its last 100 lines for 10 minutes (rt.history), so a page that lost its
-- connection (a train, a tunnel) comes back with the lines it missed: it reconnects with
-- the room's epoch and the offset of the last line it saw (/chat?epoch=..&offset=..&name=..)
-- and gets the gap first, or a line saying some were lost.
local rt = require "rt"

-- Says how a returning page's recovery went: the gap came first, or it is gone.
local function greet_back(ws, recovered)
  if recovered then
    ws:send("server: welcome back, " .. ws.data.name .. " (missed lines above)")
  else
    -- The room forgot that far back (or restarted): say so, and where it is now, so the
    -- page counts from here.
    local epoch, offset = rt.topic("chat"):position()
    ws:send(("server: welcome back, %s; some lines were lost while you were away [at %s:%d]")
            :format(ws.data.name, epoch, offset))
  end
end

rt.history("chat", {
  size = 100, ttl = 600,
  -- With --engine the history is in Redis: a recovery may wait for it (subscribe returned
  -- nil), and a node that finds lines lost on the way (Redis was down) says so.
  recovered = function(_, ws, ok) greet_back(ws, ok) end,
  lost = function(room, ws)
    local epoch, offset = room:position()
    ws:send(("server: some lines were lost [at %s:%d]"):format(epoch, offset))
  end,
})
rt.presence("chat")   -- who is in the room: "N online" counts it
local room = rt.topic "chat"
local names = 0

-- Where the room is now: a page starts counting lines from here.
rt.http.get("/chat/position", function()
  local epoch, offset = room:position()
  return 200, { epoch = epoch, offset = offset }
end)

rt.websocket("/chat", {
  open = function(ws, req)
    local q = req.args or {}
    local epoch, offset = q.epoch, tonumber(q.offset)
    local back = q.name and q.name:match("^guest%d+$")
    if back then
      ws.data.name = back
    else
      names = names + 1
      ws.data.name = "guest" .. names
    end
    ws:set_user(ws.data.name)
    if epoch and offset then
      -- What was said since that line comes first, then everything new.
      local _, recovered = room:subscribe(ws, { since = { epoch = epoch, offset = offset } })
      if back and recovered ~= nil then
        greet_back(ws, recovered)
      elseif not back then
        ws:send("server: welcome, you are " .. ws.data.name)
      end
    else
      room:subscribe(ws)
      ws:send("server: welcome, you are " .. ws.data.name)
    end
    room:publish("server: " .. ws.data.name .. (back and " is back (" or " joined (") .. room:count() .. " online)")
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
