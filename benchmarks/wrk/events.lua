-- POST /evaluations/{id}/events with a new event_id every request, round-robin over this
-- thread's records (args: id prefix, records per thread, event id prefix).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, per_thread, event_prefix
local body = '{"type": "progress", "message": "step %d", "metadata": {"step": %d}, '
  .. '"event_id": "%s%d-%d"}'

function init(args)
  prefix, per_thread, event_prefix = args[1], tonumber(args[2]), args[3]
end

function request()
  local n = next_request()
  local path = "/evaluations/" .. seeded_id(prefix, per_thread, n) .. "/events"
  return wrk.format("POST", path, nil, string.format(body, n, n, event_prefix, tid, n))
end
