-- gRPC on the main port and on a port of its own (rt.grpc.listen).
local rt = require "rt"
local users = rt.grpc.service("../../../proto/user.proto", "user.UserService")
function users.GetUser(req) return { id = req.id, name = "Zhang San" } end
rt.grpc.listen(0)
