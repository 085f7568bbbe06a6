-- GET /evaluations/{id} over `count` seeded records (args: id prefix, count).
-- get_hot reads them from the cache; get_cold reads the same way from an instance
-- started with ENABLE_CACHING=false.
--
-- The requests are formatted once, in init(): formatting one per request in Lua cost
-- wrk about 5 us more CPU a request than static.lua's prepared request, on the cores the
-- service shares with it, so the ceiling (static.lua) would have been favoured.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local prepared, count

function init(args)
  local prefix = args[1]
  count = tonumber(args[2])
  prepared = {}
  for k = 0, count - 1 do
    prepared[k] = wrk.format("GET", "/evaluations/" .. prefix .. tostring(k))
  end
end

function request()
  local n = next_request()
  return prepared[(tid * 7919 + n) % count]
end
