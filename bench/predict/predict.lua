-- wrk script for POST /v1/predict: rotates over a fixed set of JSON bodies (one a line in a file)
-- and prints one machine-readable summary line.
--   wrk -t2 -c64 -d10s --latency -s bench/predict/predict.lua URL/v1/predict -- BODIES [THINK_MS]
-- BODIES: one request body a line (bench/predict/tool.py requests writes it).
-- THINK_MS: a pause before each request of a connection (wrk's delay(), whole milliseconds),
--   used to hold the rate below the server's peak; 0 or absent: closed loop, as fast as it goes.
-- No response() callback: wrk then does not hand bodies to Lua, which would slow the client.
-- Errors come from wrk's own counters: `status` counts responses with a status >= 400 (the
-- servers here send no 1xx/3xx, so that is every non-2xx), the others socket errors.

local requests = {}
local next_request = 1
local think_ms = 0

function init(args)
  local path = args[1] or error("usage: -- BODIES [THINK_MS]")
  think_ms = tonumber(args[2] or "0")
  local headers = { ["Content-Type"] = "application/json" }
  for line in io.lines(path) do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  if #requests == 0 then error("no request bodies in " .. path) end
  -- Threads start at different places of the rotation.
  next_request = (thread_index or 0) % #requests + 1
  -- wrk looks for delay() once init() has run: define it only when asked to pause.
  if think_ms > 0 then
    delay = function() return think_ms end
  end
end

-- Runs in wrk's main Lua state, once per thread, before that thread's init().
local threads_set_up = 0
function setup(thread)
  threads_set_up = threads_set_up + 1
  thread:set("thread_index", threads_set_up * 37)
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
    "non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
