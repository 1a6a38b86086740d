-- wrk script for benches/load/run soak: every request presents the next Vestibule session
-- cookie from a file (one cookie value a line), cycling through the file.
--
--   wrk -t1 -c32 -d600s -H 'Host: crm.contoso.example' -s cookies.lua URL -- \
--       COOKIE_FILE COOKIE_NAME STOP_AFTER REPORT_FILE
--
-- STOP_AFTER > 0: exit as soon as that many responses have arrived (one pass over the
-- cookies), after writing "responses=N ok=N other=N" to REPORT_FILE. wrk's own summary is
-- not printed then. STOP_AFTER = 0: run for the whole -d duration; done() appends the same
-- counts to REPORT_FILE. Use with one wrk thread (-t1): each thread has its own counters.

local cookies = {}
local count = 0
local next_index = 0
local name = "vestibule"
local stop_after = 0
report_path = nil

responses = 0
ok = 0
other = 0

local function write_report_to(path, n, good, bad)
   if path then
      local f = io.open(path, "w")
      f:write(string.format("responses=%d ok=%d other=%d\n", n, good, bad))
      f:close()
   end
end

local function write_report()
   write_report_to(report_path, responses, ok, other)
end

function setup(thread)
   thread_handle = thread
end

function init(args)
   local file = args[1]
   name = args[2] or name
   stop_after = tonumber(args[3] or "0")
   report_path = args[4]
   for line in io.lines(file) do
      if #line > 0 then
         count = count + 1
         cookies[count] = line
      end
   end
   if count == 0 then
      io.stderr:write("cookies.lua: no cookies in " .. file .. "\n")
      os.exit(2)
   end
end

function request()
   next_index = next_index % count + 1
   return wrk.format(nil, nil, { ["Cookie"] = name .. "=" .. cookies[next_index] })
end

function response(status, headers, body)
   responses = responses + 1
   if status == 200 then
      ok = ok + 1
   else
      other = other + 1
   end
   if stop_after > 0 and responses >= stop_after then
      write_report()
      os.exit(0)
   end
end

-- done() runs in wrk's main Lua state: read the worker thread's counters through setup()'s
-- thread handle.
function done(summary, latency, requests)
   local t = thread_handle
   if t then
      write_report_to(t:get("report_path"), t:get("responses"), t:get("ok"), t:get("other"))
   end
end
