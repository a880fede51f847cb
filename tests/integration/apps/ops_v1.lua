-- Hot-reload test app, version 1 (the test copies it to a temp dir and rewrites it).
local rt = require "rt"
local helper = require "ops_helper"
rt.state.loads = (rt.state.loads or 0) + 1
local news = rt.topic "news"
rt.websocket("/ws", {
  open = function(ws) news:subscribe(ws) end,
  message = function(ws, m)
    if m == "publish" then news:publish("news from v1") return end
    ws:send("v1 " .. helper.tag .. " " .. m .. " loads=" .. rt.state.loads)
  end,
})
rt.http.get("/slow", function(req)
  rt.sleep(tonumber(req.args.s or "1"))
  return 200, { slept = true }
end)
rt.http.get("/boom", function() error("deliberate failure") end)
