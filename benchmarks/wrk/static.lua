-- GET of one fixed path (args: path): the ceiling app's routes, health and the filtered list.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local request_text

function init(args)
  request_text = wrk.format("GET", args[1])
end

function request()
  next_request()
  return request_text
end
