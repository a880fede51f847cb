-- Presence across nodes and workers for test_presence_cluster.js: a room of WebSockets
-- (/room?user=NAME), join/leave handlers that write down what they hear (and from where),
-- and HTTP routes that read the room's presence, its count and what was heard.
local rt = require "rt"

local PID = (io.open("/proc/self/stat"):read("*l"):match("^(%d+)"))
local heard = {}
local function note(kind)
  return function(topic, who)
    heard[#heard + 1] = ("%s %s %s %s"):format(kind, topic.name, who.user or "-",
                                               who["local"] and "local" or "remote")
  end
end
rt.presence("room", { join = note("join"), leave = note("leave"),
                      ttl = tonumber(os.getenv("PRESENCE_TTL") or "") or nil })
local room = rt.topic "room"

rt.websocket("/room", {
  open = function(ws, req)
    local name = (req.args or {}).user
    if name then ws:set_user(name) end
    room:subscribe(ws)
    ws:send("pid " .. PID)
  end,
})

rt.http.get("/presence", function()
  local list = room:presence()
  local users, nodes = {}, {}
  for _, who in ipairs(list) do
    users[#users + 1] = who.user or "-"
    nodes[who.node] = true
  end
  table.sort(users)
  local n = 0
  for _ in pairs(nodes) do n = n + 1 end
  return 200, { users = users, count = room:count(), listed = #list, nodes = n, pid = PID }
end)

rt.http.get("/heard", function() return 200, { heard = heard, pid = PID } end)
