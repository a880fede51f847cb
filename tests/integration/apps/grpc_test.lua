-- gRPC test app: user.UserService with knobs the integration tests turn.
--   GetUser id: 1-3 users, 7 NOT_FOUND (+ trailer), 42 slow (sleeps 1 s, records whether it
--     saw the deadline pass), 50 echoes metadata, 60 replies over max_send_size, 61 tells
--     the remaining deadline, 70 raises a plain Lua error, 99 returns a table that does not
--     fit user.User
--   ListUsers metadata: x-count, x-size (name length), x-tag (progress kept in state),
--     x-sleep (seconds between sends)
--   CreateUsers counts (x-stall: seconds before it starts reading); ChatUsers echoes, "bye" ends it
--   GET /state -> what handlers recorded; POST /health?service=&status= sets health
local rt = require "rt"

-- Relative to this folder, then its parent: tests/integration/apps -> repo/proto.
local users = rt.grpc.service("../../../proto/user.proto", "user.UserService",
                              { max_recv_size = 256 * 1024, max_send_size = 1024 * 1024 })

local state = rt.state.grpc_test or {}
rt.state.grpc_test = state

function users.GetUser(req, ctx)
  local id = tonumber(req.id)
  if id == 7 then
    rt.grpc.error("NOT_FOUND", "no user 7", { ["x-reason"] = "missing" })
  elseif id == 42 then
    state.slow_deadline = ctx.deadline and true or false
    rt.sleep(1.0)
    local cancelled, why = ctx:cancelled()
    state.slow_done = cancelled and why == "deadline exceeded" and "expired" or tostring(why)
    return { id = 42, name = "late" }
  elseif id == 50 then
    for k, v in pairs(ctx.metadata) do
      if k:sub(1, 2) == "x-" then
        ctx:set_header(k, v)
        local tk = k:match("^(.*)%-bin$")
        ctx:set_trailer(tk and (tk .. "-t-bin") or (k .. "-t"), v)
      end
    end
    return { id = 50, name = ctx.peer, email = ctx.encoding or "none" }
  elseif id == 60 then
    return { id = 60, name = string.rep("x", 2 * 1024 * 1024) }
  elseif id == 61 then
    return { id = 61, name = tostring(ctx:remaining() or "none") }
  elseif id == 70 then
    error("boom")
  elseif id == 99 then
    return { id = "not a number" }
  elseif id >= 1 and id <= 3 then
    return { id = id, name = "user" .. id, email = "u" .. id .. "@example.com" }
  end
  rt.grpc.error(rt.grpc.status.NOT_FOUND, "no user " .. id)
end

function users.ListUsers(_, stream)
  local md = stream.metadata
  local n = tonumber(md["x-count"] or "3")
  local name = string.rep("n", tonumber(md["x-size"] or "0"))
  local tag, pause = md["x-tag"], tonumber(md["x-sleep"] or "0")
  if tag then state[tag] = 0 end
  local ok, err = pcall(function()
    for i = 1, n do
      if pause > 0 then rt.sleep(pause) end
      if pause > 0 and stream:cancelled() then error("noticed", 0) end
      stream:send { id = i, name = name }
      if tag then state[tag] = i end
    end
  end)
  if tag then
    state[tag .. "_done"] = ok and "completed" or (err == "noticed" and "noticed") or
                            (stream:cancelled() and "cancelled") or tostring(err)
  end
  if not ok and err ~= "noticed" then error(err, 0) end
end

function users.CreateUsers(stream)
  local n, bytes = 0, 0
  local stall = tonumber(stream.metadata["x-stall"] or "0")
  if stall > 0 then  -- a slow reader: the client must be held back by flow control
    state.stalled = true
    rt.sleep(stall)
    state.stalled = false
  end
  for u in stream:messages() do
    n = n + 1
    bytes = bytes + #u.name
  end
  state.created_bytes = bytes
  return { count = n }
end

function users.ChatUsers(stream)
  for m in stream:messages() do
    if m.text == "bye" then return end
    stream:send { text = "echo: " .. m.text }
  end
end

rt.http.get("/state", function() return state end)
rt.http.post("/health", function(req)
  rt.grpc.health.set(req.args.service or "", req.args.status or "SERVING")
  return { ok = true }
end)
