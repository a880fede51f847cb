-- The four services the SockJS protocol's reference test suite (test_sockjs_reference.py)
-- expects under one server, with the small response limit (4 KiB) it asks of a test server.
local rt = require "rt"

local function echo(ws, text) ws:send(text) end

rt.sockjs("/echo", { response_limit = 4096, message = echo })
rt.sockjs("/disabled_websocket_echo", { response_limit = 4096, websocket = false, message = echo })
rt.sockjs("/cookie_needed_echo", { response_limit = 4096, cookie = true, message = echo })
rt.sockjs("/close", { response_limit = 4096, open = function(ws) ws:close(3000, "Go away!") end })
