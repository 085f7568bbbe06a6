-- POST /evaluations as create.lua does, each with an Idempotency-Key of its own, as the
-- client sends every write (args: id prefix unique to this run).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix
local body = '{"id": "%s%d-%d", "code": "import math\\nprint(sum(math.sqrt(i) for i in '
  .. 'range(1000)))\\n", "language": "python", "status": "queued", '
  .. '"metadata": {"user": "bench", "tags": ["a", "b"]}}'

function init(args)
  prefix = args[1]
end

function request()
  local n = next_request()
  local headers = { ["Idempotency-Key"] = string.format("%s%d-%d", prefix, tid, n) }
  return wrk.format("POST", "/evaluations", headers, string.format(body, prefix, tid, n))
end
