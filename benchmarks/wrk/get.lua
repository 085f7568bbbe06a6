-- GET /evaluations/{id} over `count` seeded records (args: id prefix, count).
-- get_hot reads them from the cache; get_cold reads the same way from an instance
-- started with ENABLE_CACHING=false.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prefix, count

function init(args)
  prefix, count = args[1], tonumber(args[2])
end

function request()
  local n = next_request()
  return wrk.format("GET", "/evaluations/" .. prefix .. tostring((tid * 7919 + n) % count))
end
