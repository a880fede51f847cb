-- The seed's order service calling UserService.GetUser (case 2), as apps/order_push.lua
-- would: creating an order fills in the user's name through rt.grpc.client, and takes the
-- order anyway (name unknown) when the user service is down or slow. Tested by
-- tests/integration/test_grpc_client.py (GrpcClientOrderTest).
local rt = require "rt"

local users = rt.grpc.client(os.getenv("USER_SERVICE") or "127.0.0.1:9090",
                             "../../../proto/user.proto", "user.UserService", { timeout = 1 })

local orders, next_id = {}, 1

rt.http.post("/orders", function(req)
  local body = req.body ~= "" and req.json or {}
  if type(body) ~= "table" then rt.http_error(400, "expected a JSON object") end
  local user_id = tonumber(body.user_id)
  local user_name, user_error
  if user_id then
    local u, err = users:GetUser({ id = user_id })  -- yields this handler, not the server
    if u then
      user_name = u.name
    elseif err.status == "NOT_FOUND" then
      rt.http_error(404, "no user " .. user_id)
    else
      -- The user service is down or slow: take the order, the name can come later.
      user_name, user_error = "(unknown)", err.status
      rt.log.warn("orders: user service: %s", tostring(err))
    end
  end
  local order = { id = next_id, item = body.item or "something", user_id = user_id,
                  user_name = user_name, user_error = user_error, status = "created" }
  orders[order.id] = order
  next_id = next_id + 1
  return 201, order
end)
