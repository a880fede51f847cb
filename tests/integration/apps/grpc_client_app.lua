-- Test app for the gRPC client (tests/integration/test_grpc_client.py): each route makes
-- calls to the python grpcio server named by $GRPC_TARGET and answers with JSON.
local rt = require "rt"

local target = os.getenv("GRPC_TARGET") or "127.0.0.1:9090"
local down_target = os.getenv("GRPC_DOWN_TARGET") or "127.0.0.1:1"
local proto = "../../../proto/user.proto"  -- the repository's, as apps/ use it

local users = rt.grpc.client(target, proto, "user.UserService",
                             { timeout = 10, metadata = { ["x-client"] = "rtserver-test" } })
-- A second client object for the same target must share the one connection.
local users2 = rt.grpc.client(target, proto, "user.UserService")
local down = rt.grpc.client(down_target, proto, "user.UserService", { timeout = 5 })

local function errt(err)
  if not err then return nil end
  return { code = err.code, status = err.status, message = err.message,
           trailers = err.trailers, text = tostring(err) }
end

local function user_json(u)
  return { id = tonumber(u.id), name = u.name, email = u.email }
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

rt.http.get("/unary", function(req)
  local t0 = rt.now()
  local md = nil
  if req.args.md then
    md = { ["x-trace"] = req.args.md, ["x-blob-bin"] = "\0\1\2\255", ["X-Multi"] = { "a", "b" } }
  end
  local u, err, info = users:GetUser({ id = tonumber(req.args.id or "1") },
                                     { timeout = tonumber(req.args.timeout), metadata = md })
  local elapsed = rt.now() - t0
  if not u then return { error = errt(err), elapsed = elapsed } end
  local hdr = {}
  for k, v in pairs(info.headers) do hdr[k] = type(v) == "string" and v or v end
  local tr = {}
  for k, v in pairs(info.trailers) do tr[k] = k:match("%-bin$") and hex(v) or v end
  return { user = user_json(u), headers = hdr, trailers = tr, elapsed = elapsed }
end)

rt.http.get("/unary2", function(req)
  local u, err = users2:GetUser({ id = tonumber(req.args.id or "1") })
  if not u then return { error = errt(err) } end
  return { user = user_json(u) }
end)

rt.http.get("/many", function(req)
  local n, names = tonumber(req.args.n or "10"), {}
  for i = 1, n do
    local u, err = users:GetUser({ id = i })
    if not u then return { error = errt(err), at = i } end
    names[#names + 1] = u.name
  end
  return { count = #names, last = names[#names] }
end)

rt.http.get("/list", function(req)
  local stream = users:ListUsers({}, { metadata = { ["x-count"] = req.args.n or "5",
                                                    ["x-size"] = req.args.size or "0",
                                                    ["x-fail"] = req.args.fail } })
  local n, last, ordered = 0, nil, true
  for u in stream do
    n = n + 1
    if tonumber(u.id) ~= n then ordered = false end
    last = u.name:sub(1, 20)
    if req.args.slow then rt.sleep(0.001) end
  end
  local ok, err = stream:status()
  return { count = n, last = last, ordered = ordered, ok = ok or false, error = errt(err or stream.err) }
end)

rt.http.get("/create", function(req)
  local call = users:CreateUsers()
  local n, size = tonumber(req.args.n or "3"), tonumber(req.args.size or "10")
  local name = string.rep("x", size)
  for i = 1, n do
    local ok, err = call:send { id = i, name = name }
    if not ok then return { error = errt(err), at = i } end
  end
  local summary, err = call:close_and_recv()
  if not summary then return { error = errt(err) } end
  return { count = summary.count }
end)

rt.http.get("/chat", function(req)
  local call = users:ChatUsers()
  local replies = {}
  for i = 1, tonumber(req.args.n or "3") do
    assert(call:send { text = "m" .. i })
    local r, err = call:recv()
    if not r then return { error = errt(err) } end
    replies[#replies + 1] = r.text
  end
  call:close_send()
  local tail, err = call:recv()
  return { replies = replies, tail = tail and tail.text or rt.json.null, error = errt(err) }
end)

-- Bidi with a separate sender coroutine: the handler only receives.
rt.http.get("/chat2", function(req)
  local call = users:ChatUsers()
  local n = tonumber(req.args.n or "50")
  rt.after(0, function()
    for i = 1, n do call:send { text = "p" .. i } end
    call:close_send()
  end)
  local got = 0
  while true do
    local r, err = call:recv()
    if not r then
      if err then return { error = errt(err), got = got } end
      break
    end
    got = got + 1
  end
  return { got = got }
end)

rt.http.get("/cancel", function(req)
  local stream = users:ListUsers({}, { metadata = { ["x-count"] = 1000, ["x-delay"] = 0.05 } })
  local first = stream:recv()
  stream:cancel("enough")
  local m, err = stream:recv()
  -- messages that were already queued may still come; then the error
  while m do m, err = stream:recv() end
  return { first = first and tonumber(first.id), error = errt(err) }
end)

rt.http.get("/down", function(req)
  local t0 = rt.now()
  local u, err = down:GetUser({ id = 1 })
  return { ok = u ~= nil, error = errt(err), elapsed = rt.now() - t0 }
end)

rt.http.get("/bad", function(req)
  local ok, e = pcall(users.GetUser, users, { id = "not a number" })
  local ok2, e2 = pcall(users.GetUser, users, { nosuchfield = 1 })
  local ok3, e3 = pcall(function() return users.GetUser({ id = 1 }) end)
  local ok4, e4 = pcall(users.GetUser, users, { id = 1 }, { metadata = { ["grpc-x"] = "v" } })
  return { raised = not ok and not ok2 and not ok3 and not ok4,
           msgs = { tostring(e), tostring(e2), tostring(e3), tostring(e4) } }
end)

rt.http.get("/stats", function(req)
  return users:stats()
end)
