-- wrk: GET /contacts/:id over contacts created beforehand.
--   wrk -s infra/bench/get_contact.lua URL -- IDS_FILE
-- IDS_FILE: "<secret key> <contact id>" a line, each id with its own project's key; requests
-- cycle through the lines (threads start at different places).

dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./") .. "common.lua")

local targets, counter = {}, 0

function init(args)
   for _, line in ipairs(read_lines(args[1])) do
      local key, id = line:match("^(%S+)%s+(%S+)$")
      targets[#targets + 1] = { path = "/contacts/" .. id, headers = { ["Authorization"] = "Bearer " .. key } }
   end
   counter = (tid - 1) * math.floor(#targets / 2)
end

function request()
   counter = counter + 1
   local t = targets[counter % #targets + 1]
   return wrk.format("GET", t.path, t.headers)
end
