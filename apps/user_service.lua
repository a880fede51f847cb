-- The user service of the seed tutorial, in Lua: all four kinds of gRPC call.
--
--   build/rtserver --port 9090 apps/user_service.lua
--   grpcurl -plaintext localhost:9090 list          (reflection: no .proto needed)
--   grpcurl -plaintext -d '{"id": 1}' localhost:9090 user.UserService/GetUser
--
-- gRPC and HTTP share the port: GET /users answers the same data as JSON.
local rt = require "rt"

-- "proto/user.proto" is looked up next to this script, then one folder up (the repo's).
local users = rt.grpc.service("proto/user.proto", "user.UserService")

-- Kept across hot reloads (rt.state survives, the rest of the script is run again).
local db = rt.state.users
if not db then
  db = { next_id = 4, byid = {
    [1] = { id = 1, name = "Zhang San", email = "zhangsan@example.com" },
    [2] = { id = 2, name = "Li Si", email = "lisi@example.com" },
    [3] = { id = 3, name = "Wang Wu", email = "wangwu@example.com" },
  } }
  rt.state.users = db
end

local function sorted_ids()
  local ids = {}
  for id in pairs(db.byid) do ids[#ids + 1] = id end
  table.sort(ids)
  return ids
end

-- Unary: int64 fields arrive as LuaJIT 64-bit integers; tonumber makes them table keys.
function users.GetUser(req, ctx)
  local id = tonumber(req.id)
  local u = db.byid[id]
  if not u then rt.grpc.error(rt.grpc.status.NOT_FOUND, "no user " .. tostring(id)) end
  return u
end

-- Server streaming: send yields while the client's flow-control window is full.
function users.ListUsers(_, stream)
  for _, id in ipairs(sorted_ids()) do stream:send(db.byid[id]) end
end

-- Client streaming: messages() ends when the client half-closes.
function users.CreateUsers(stream)
  local n = 0
  for u in stream:messages() do
    local id = tonumber(u.id)
    if not id or id == 0 then
      id = db.next_id
      db.next_id = db.next_id + 1
    end
    db.byid[id] = { id = id, name = u.name, email = u.email }
    n = n + 1
  end
  return { count = n }
end

-- Bidirectional: each message is answered as it arrives.
function users.ChatUsers(stream)
  for m in stream:messages() do
    stream:send { text = "server received: " .. m.text }
  end
end

rt.http.get("/users", function()
  local list = {}
  for _, id in ipairs(sorted_ids()) do list[#list + 1] = db.byid[id] end
  return list
end)
