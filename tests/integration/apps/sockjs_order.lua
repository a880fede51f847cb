-- apps/order_push.lua with the one change SockJS needs (`sockjs = true` on its STOMP
-- endpoint), loaded unchanged from apps/: the test stands in for that edit until the app
-- carries it. Relative paths in it (its pages, its .proto) resolve from apps/ as usual.
local rt = require "rt"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local apps = here .. "/../../../apps"
local app = rt._internal.registering()
local stomp, dir = rt.stomp, app.dir
rt.stomp = function(opts)
  if opts.sockjs == nil then opts.sockjs = true end
  return stomp(opts)
end
app.dir = apps
local ok, err = pcall(dofile, apps .. "/order_push.lua")
rt.stomp, app.dir = stomp, dir
if not ok then error(err, 0) end
