-- The four services the SockJS protocol's reference test suite (test_sockjs_reference.py)
-- expects under one server, with the small response limit (4 KiB) it asks of a test server.
local rt = require "rt"

local function echo(ws, text) ws:send(text) end

-- sockjs-node spoke WebSocket draft 76 too, and the suite checks its handshake: asked for
-- here (echo, close); the other two keep the default (off).
rt.sockjs("/echo", { response_limit = 4096, hixie76 = true, message = echo })
rt.sockjs("/disabled_websocket_echo", { response_limit = 4096, websocket = false, message = echo })
rt.sockjs("/cookie_needed_echo", { response_limit = 4096, cookie = true, message = echo })
rt.sockjs("/close", { response_limit = 4096, hixie76 = true, open = function(ws) ws:close(3000, "Go away!") end })
