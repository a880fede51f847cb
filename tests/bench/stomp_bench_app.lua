-- The STOMP side of `make bench`: the built-in broker over WebSocket (/stomp) and over
-- TCP (a free port, logged at info level as "STOMP over TCP listening on ..."), with
-- no login and no heart-beats. SEND /topic/fan reaches every subscriber through the
-- broker alone; SEND /app/fan goes through a Lua handler that returns the body, which
-- publishes it to /topic/fan (the @MessageMapping + @SendTo path). /queue/jobs is a
-- queue: each message to one consumer.
local rt = require "rt"

-- RT_BENCH_RELAY=<port>: /topic and /queue on the RabbitMQ there (the broker relay).
local relay_port = tonumber(os.getenv("RT_BENCH_RELAY") or "")

local stomp = rt.stomp {
  endpoint = "/stomp",
  tcp_port = 0,
  broker = { "/topic", "/queue" },
  heartbeat = { 0, 0 },
  relay = relay_port and { host = "127.0.0.1", port = relay_port } or nil,
}

stomp:on("/fan", function(msg) return msg.body end)
