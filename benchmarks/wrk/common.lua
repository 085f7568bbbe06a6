-- Shared by every scenario (loaded with dofile by each script).
--
-- setup() numbers the threads (each thread's Lua state sees its own `tid`, 0-based),
-- response() tallies status codes per thread, and done() prints one machine-readable
-- line that benchmarks/wrk_load.py parses:
--   BENCH_RESULT {"requests": ..., "duration_us": ..., "p50_us": ..., ...}
-- Latencies are wrk's, in microseconds.

wrk.headers["Content-Type"] = "application/json"

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

-- The i-th request of this thread (1-based), counted per thread.
sent = 0
function next_request()
  sent = sent + 1
  return sent
end

-- Seeded record `k` (0-based) of this thread's share of `per_thread` records.
function seeded_id(prefix, per_thread, k)
  return prefix .. tostring(tid * per_thread + (k % per_thread))
end

function done(summary, latency, requests)
  local tally = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, count in pairs(counts) do
      tally[status] = (tally[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(tally) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, '
      .. '"statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean,
    errors.connect, errors.read, errors.write, errors.timeout, errors.status,
    table.concat(parts, ", ")
  ))
end
