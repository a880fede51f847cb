-- The presence bench's app (presence_run.sh): every WebSocket at /room subscribes to the
-- topic "room"; with PRESENCE=1 the topic has presence (TTL from PRESENCE_TTL), without
-- it the same subscribers are the baseline. GET /count says the room's count.
local rt = require "rt"

if os.getenv("PRESENCE") == "1" then
  rt.presence("room", { ttl = tonumber(os.getenv("PRESENCE_TTL") or "") or nil })
end
local room = rt.topic "room"
rt.websocket("/room", { open = function(ws) ws:set_user("u" .. ws.id) room:subscribe(ws) end })
rt.http.get("/count", function() return 200, { count = room:count() } end)
