-- Which frame type a send picks: "auto <text>" sends without a flag, "bytes" sends bytes that
-- are not UTF-8 without a flag, "forced-text" insists on text for such bytes (an error).
local rt = require "rt"
local t = rt.topic "ft"
rt.websocket("/ft", {
  open = function(ws) t:subscribe(ws) end,
  message = function(ws, m)
    if m == "bytes" then ws:send("\255\254 not utf-8")
    elseif m == "publish-bytes" then t:publish("\255 via topic")
    elseif m == "forced-text" then
      local ok, err = pcall(ws.send, ws, "\255", false)
      ws:send(ok and "sent" or ("refused: " .. tostring(err):match("text message.*")))
    else ws:send("auto " .. m) end
  end,
})
