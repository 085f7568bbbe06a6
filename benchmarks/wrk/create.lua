-- POST /evaluations with a new id every request (args: id prefix unique to this run).
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
  return wrk.format("POST", "/evaluations", nil, string.format(body, prefix, tid, n))
end
