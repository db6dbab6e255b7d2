-- Shared by the wrk scripts of infra/scripts/bench.sh: thread numbering, per-thread status
-- counts, key/id files, and one machine-readable result line at the end.
--
-- Each wrk thread runs its own Lua state, so counts are kept per thread and summed in done().

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

-- Lines of a file, blank lines skipped.
function read_lines(path)
   local lines = {}
   for line in io.lines(path) do
      if line ~= "" then lines[#lines + 1] = line end
   end
   assert(#lines > 0, "no lines in " .. path)
   return lines
end

responses, non2xx = 0, 0

function response(status, headers, body)
   responses = responses + 1
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      if non2xx <= 3 then
         io.stderr:write(string.format("thread %d: HTTP %d %s\n", tid, status, body or ""))
      end
   end
end

function done(summary, latency, requests)
   local total_non2xx, total_responses = 0, 0
   for _, t in ipairs(threads) do
      total_non2xx = total_non2xx + t:get("non2xx")
      total_responses = total_responses + t:get("responses")
   end
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
      summary.requests,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000,
      latency:percentile(90) / 1000,
      latency:percentile(99) / 1000,
      latency.max / 1000,
      total_non2xx,
      e.connect + e.read + e.write + e.timeout))
end
