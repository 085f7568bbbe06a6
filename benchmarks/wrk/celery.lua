-- POST /evaluations/{id}/celery-update, round-robin over this thread's queued records
-- (args: id prefix, records per thread): STARTED on even rounds (queued -> running),
-- RETRY on odd ones (running -> queued, retries counted), so every update applies.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, per_thread
local body = '{"task_state": "%s", "celery_task_id": "celery-%s"}'

function init(args)
  prefix, per_thread = args[1], tonumber(args[2])
end

function request()
  local n = next_request() - 1
  local id = seeded_id(prefix, per_thread, n)
  local state = math.floor(n / per_thread) % 2 == 0 and "STARTED" or "RETRY"
  return wrk.format("POST", "/evaluations/" .. id .. "/celery-update", nil, string.format(body, state, id))
end
