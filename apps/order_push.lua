-- Order status pushed live over STOMP, and the seed tutorial's STOMP chat.
--
--   rtserver apps/order_push.lua      then open http://127.0.0.1:8080/
--
--   curl -X POST localhost:8080/orders -d '{"item":"book"}'            -> {"id":1,...}
--   curl -X PUT  localhost:8080/orders/1/status -d '{"status":"shipped"}'
--
-- Every change goes as JSON to /topic/order/<id>; the page (apps/order/index.html) watches
-- it with @stomp/stompjs over WebSocket (/ws). STOMP over TCP listens on 61613 too
-- (RT_STOMP_TCP_PORT overrides; 0 picks a free port, "off" disables it).
--
-- The seed's second case: creating an order with a user_id asks the user service
-- (apps/user_service.lua, over gRPC) for the user's name:
--   rtserver --port 9090 apps/user_service.lua &
--   curl -X POST localhost:8080/orders -d '{"item":"book","user_id":1}'   -> "user_name":"..."
-- USER_SERVICE names another address; if the user service is down the order is still taken.
-- Over TLS (the user service started with --tls-cert/--tls-key): USER_SERVICE_CA names the
-- CA file to verify it with ("system" for the system's CAs), USER_SERVICE_NAME the name its
-- certificate carries (default: the host in USER_SERVICE), and USER_SERVICE_CERT and
-- USER_SERVICE_KEY a client certificate when it asks for one (--tls-client-ca).
local rt = require "rt"

local function user_service_tls()
  local ca = os.getenv("USER_SERVICE_CA")
  if not ca then return nil end
  return { ca = ca ~= "system" and ca or nil, server_name = os.getenv("USER_SERVICE_NAME"),
           cert = os.getenv("USER_SERVICE_CERT"), key = os.getenv("USER_SERVICE_KEY") }
end

local users = rt.grpc.client(os.getenv("USER_SERVICE") or "127.0.0.1:9090",
                             "../proto/user.proto", "user.UserService",
                             { timeout = 1, tls = user_service_tls() })

local tcp = os.getenv("RT_STOMP_TCP_PORT") or "61613"
-- RT_STOMP_RELAY=host:port puts /topic and /queue on that STOMP broker (RabbitMQ with its
-- STOMP plugin), so every node sharing it pushes to every subscriber: Spring's
-- enableStompBrokerRelay.
local relay_at = os.getenv("RT_STOMP_RELAY")
local relay
if relay_at and relay_at ~= "" then
  local host, port = relay_at:match("^(.+):(%d+)$")
  assert(host, "RT_STOMP_RELAY must be host:port")
  relay = { host = host, port = tonumber(port) }
end

local stomp = rt.stomp {
  endpoint = "/ws",
  -- Spring's .withSockJS(): the seed's `Stomp.over(new SockJS('/ws'))` works too
  -- (apps/order/sockjs.html), with HTTP fallbacks when WebSocket is blocked.
  sockjs = { sockjs_url = "/vendor/sockjs-client/sockjs.min.js" },
  tcp_port = tcp ~= "off" and tonumber(tcp) or nil,
  app = "/app",
  broker = { "/topic", "/queue" },
  relay = relay,
}

-- Each order's topic keeps its last 20 changes for 10 minutes: a page that lost its
-- connection resubscribes from the last change it saw (x-since) and gets the ones it missed.
rt.history("/topic/order/*", { size = 20, ttl = 600 })

-- Orders outlive a reload (rt.state), not a restart: this is a demo, not a database.
local orders = rt.state.orders or {}
rt.state.orders = orders
rt.state.next_id = rt.state.next_id or 1

local STATUSES = { created = true, paid = true, packed = true, shipped = true,
                   delivered = true, cancelled = true }

local function push(order)
  -- Every STOMP subscriber of the order's topic (and raw WebSocket ones) gets it.
  stomp:send("/topic/order/" .. order.id, order)
end

local function find(req)
  local order = orders[tonumber(req.params.id)]
  if not order then rt.http_error(404, "no order " .. req.params.id) end
  return order
end

rt.http.post("/orders", function(req)
  local body = req.body ~= "" and req.json or {}
  if type(body) ~= "table" then rt.http_error(400, "expected a JSON object") end
  local item = body.item or "something"
  if type(item) ~= "string" or #item > 200 then rt.http_error(400, "item must be a short string") end
  local user_id = tonumber(body.user_id)
  local user_name, user_error
  if user_id then
    local u, err = users:GetUser({ id = user_id })   -- yields this handler, not the server
    if u then
      user_name = u.name
    elseif err.status == "NOT_FOUND" then
      rt.http_error(404, "no user " .. user_id)
    else  -- the user service is down or slow: take the order anyway
      user_name, user_error = "(unknown)", err.status
      rt.log.warn("orders: user service: %s", tostring(err))
    end
  end
  local id = rt.state.next_id
  rt.state.next_id = id + 1
  local order = { id = id, item = item, user_id = user_id, user_name = user_name,
                  user_error = user_error, status = "created", updated = rt.now() }
  orders[id] = order
  push(order)
  return 201, order
end)

rt.http.get("/orders", function()
  local list = {}
  for _, o in pairs(orders) do list[#list + 1] = o end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end)

rt.http.get("/orders/:id", function(req) return find(req) end)

rt.http.put("/orders/:id/status", function(req)
  local order = find(req)
  local status = type(req.json) == "table" and req.json.status
  if not STATUSES[status] then
    rt.http_error(400, "status must be one of created, paid, packed, shipped, delivered, cancelled")
  end
  order.status = status
  order.updated = rt.now()
  push(order)
  return order
end)

-- The seed chat: SEND /app/chat {user, content} -> everyone on /topic/messages.
stomp:on("/chat", function(msg)
  local m = msg.json
  if type(m) ~= "table" or type(m.user) ~= "string" or type(m.content) ~= "string" then
    rt.stomp_error("bad chat message", "Send JSON like {\"user\": \"ann\", \"content\": \"hi\"}.")
  end
  return "/topic/messages", { user = m.user, content = m.content }
end)

-- Where the STOMP TCP port ended up (useful with RT_STOMP_TCP_PORT=0).
rt.http.get("/stomp", function()
  return { websocket = "/ws", tcp_port = stomp:tcp_port() or rt.json.null }
end)

rt.static("/", "order")
