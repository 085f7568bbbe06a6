-- POST /evaluations with a new id every request (args: id prefix unique to this run, and
-- "keyed" to send each with an Idempotency-Key of its own, as the client sends writes).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, keyed
local body = '{"id": "%s%d-%d", "code": "import math\\nprint(sum(math.sqrt(i) for i in '
  .. 'range(1000)))\\n", "language": "python", "status": "queued", '
  .. '"metadata": {"user": "bench", "tags": ["a", "b"]}}'

function init(args)
  prefix, keyed = args[1], args[2] == "keyed"
end

function request()
  local n = next_request()
  local headers = nil
  if keyed then
    headers = { ["Idempotency-Key"] = string.format("%s%d-%d", prefix, tid, n) }
  end
  return wrk.format("POST", "/evaluations", headers, string.format(body, prefix, tid, n))
end
