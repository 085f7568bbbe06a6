-- POST /evaluations/{id}/logs, one log line per request, round-robin over this thread's
-- running records (args: id prefix, records per thread).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, per_thread

function init(args)
  prefix, per_thread = args[1], tonumber(args[2])
end

function request()
  local n = next_request()
  local body = string.format(
    '{"content": "%d step %d/1000 loss=0.4213 lr=3.0e-4 elapsed=12.4s\\n"}', tid, n
  )
  return wrk.format("POST", "/evaluations/" .. seeded_id(prefix, per_thread, n) .. "/logs", nil, body)
end
