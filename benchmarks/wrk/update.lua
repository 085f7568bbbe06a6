-- PUT /evaluations/{id} with an output of `size` bytes (args: id prefix, records per
-- thread, size, and optionally the path before the id, "/evaluations/" by default:
-- "/large/" drives the minimal app's 200 KB update). Round-robin over this thread's
-- records, so no two requests in flight touch the same record; the first line differs
-- per request, so no update is a no-op.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, per_thread, tail, path

-- Program-output-like lines (JSON-escaped newlines), `size` bytes in all.
local function output_of(size)
  math.randomseed(tid + 1)
  local lines, length, step = {}, 0, 0
  while length < size do
    step = step + 1
    local line = string.format(
      "step %d/100000 loss=%.4f lr=%.1e grad_norm=%.3f elapsed=%.1fs\\n",
      step, math.random() * 2, math.random() * 1e-3, math.random() * 10, step * 0.37
    )
    lines[#lines + 1] = line
    length = length + #line - 1  -- "\\n" is one byte once decoded
  end
  return table.concat(lines)
end

function init(args)
  prefix, per_thread = args[1], tonumber(args[2])
  tail = output_of(tonumber(args[3]))
  path = args[4] or "/evaluations/"
end

function request()
  local n = next_request()
  local id = seeded_id(prefix, per_thread, n)
  local body = '{"output": "request ' .. tid .. "-" .. n .. '\\n' .. tail .. '"}'
  return wrk.format("PUT", path .. id, nil, body)
end
