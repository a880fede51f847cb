-- The STOMP side of `make bench`: the built-in broker over WebSocket (/stomp) and over
-- TCP (a free port, logged at info level as "STOMP over TCP listening on ..."), with
-- no login and no heart-beats. SEND /topic/fan reaches every subscriber through the
-- broker alone; SEND /app/fan goes through a Lua handler that returns the body, which
-- publishes it to /topic/fan (the @MessageMapping + @SendTo path). /queue/jobs is a
-- queue: each message to one consumer.
local rt = require "rt"

local stomp = rt.stomp {
  endpoint = "/stomp",
  tcp_port = 0,
  broker = { "/topic", "/queue" },
  heartbeat = { 0, 0 },
}

stomp:on("/fan", function(msg) return msg.body end)
