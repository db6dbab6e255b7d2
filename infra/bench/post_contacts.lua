-- wrk: POST /contacts creating a new contact per request.
--   wrk -s infra/bench/post_contacts.lua URL -- KEYS_FILE
-- KEYS_FILE: one secret key a line; requests rotate over them (one project's limit is 30,000 a
-- minute). Emails are unique per thread and request, so every request creates (201).

dofile((debug.getinfo(1, "S").source:sub(2):match("^(.*/)") or "./") .. "common.lua")

local keys, counter = {}, 0

function init(args)
   for _, key in ipairs(read_lines(args[1])) do keys[#keys + 1] = "Bearer " .. key end
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"email":"wrk-%d-%d@bench.example","data":{"source":"wrk","n":%d}}', tid, counter, counter)
   return wrk.format("POST", "/contacts", {
      ["Authorization"] = keys[counter % #keys + 1],
      ["Content-Type"] = "application/json",
   }, body)
end
