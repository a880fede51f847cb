-- A log agent written with rt.grpc.client: ships entries to the log_agg server named by
-- $LOG_TARGET over LogService/CollectLogs (tests/integration/test_grpc_client_logagg.py).
local rt = require "rt"

local logs = rt.grpc.client(os.getenv("LOG_TARGET") or "127.0.0.1:8080", "../../../proto/log.proto",
                            "log.LogService", { timeout = 10 })

-- GET /ship?n=50&service=x -> the summary the log service answered
rt.http.get("/ship", function(req)
  local n, service = tonumber(req.args.n or "10"), req.args.service or "agent"
  local call = logs:CollectLogs()
  for i = 1, n do
    local ok, err = call:send { service = service, level = i % 2 == 0 and "WARN" or "INFO",
                                message = "shipped " .. i, timestamp = 1700000000000 + i }
    if not ok then return { error = tostring(err) } end
  end
  local summary, err = call:close_and_recv()
  if not summary then return { error = tostring(err) } end
  local stats, serr = logs:GetStats { service = service }
  if not stats then return { error = tostring(serr) } end
  return { total = tonumber(summary.total), warn = tonumber(summary.by_level.WARN or 0),
           service_total = tonumber(stats.total) }
end)
