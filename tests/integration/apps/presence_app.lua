-- Presence for test_presence.js: a lobby of WebSockets (/lobby?user=NAME) and STOMP
-- sessions (login NAME), join/leave handlers that write down what they hear, and HTTP
-- routes to read both.
local rt = require "rt"

local heard = {}
local handlers = {
  join = function(topic, who) heard[#heard + 1] = ("join %s %s"):format(topic.name, who.user or "-") end,
  leave = function(topic, who) heard[#heard + 1] = ("leave %s %s"):format(topic.name, who.user or "-") end,
}
rt.presence("lobby", handlers)
rt.presence("/topic/lobby", handlers)

rt.stomp {
  endpoint = "/ws", app = "/app", broker = { "/topic" },
  auth = function(login) return true, login end,
}

rt.websocket("/lobby", {
  open = function(ws, req)
    local name = (req.args or {}).user
    if name then ws:set_user(name) end
    ws:subscribe((req.args or {}).topic or "lobby")
  end,
})

rt.http.get("/presence/:topic", function(req)
  local list = rt.topic(req.params.topic == "stomp" and "/topic/lobby" or req.params.topic):presence()
  local users = {}
  for _, who in ipairs(list) do
    assert(type(who.id) == "number" and type(who.node) == "string" and who.node:find(":"))
    users[#users + 1] = who.user or "-"
  end
  table.sort(users)
  return 200, { users = users, count = #list }
end)

rt.http.get("/heard", function() return 200, heard end)
