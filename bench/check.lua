-- wrk script of scripts/bench: checks every response of a measured round.
--
--   wrk ... -s bench/check.lua URL -- EXPECTED
--
-- EXPECTED is the file whose exact bytes every response must carry, or "-"
-- for an empty body (the health rows). Each response counts as good only
-- when its status is 200 and its body is byte-identical to EXPECTED; done()
-- prints one line per wrk thread that bench/measure.py reads:
--
--   bench-check good=N bad=M
--   bench-check example=<the first bad response, described>
--
-- The expected bytes are read once per thread, in init(). The comparison is
-- LuaJIT's string equality: wrk hands the body over as a Lua string, which
-- LuaJIT interns, so a body equal to the expected one is found by one
-- memcmp over its length and allocates nothing. Both sides of a pair run
-- this same script, so its client-side cost is the same for both.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- per-thread state (globals: done() reads them through thread:get)
expected = nil
good = 0
bad = 0
example = nil

function init(args)
   local path = args[1]
   if path == nil then
      error("bench/check.lua: no expected file (wrk ... -- FILE)")
   end
   if path == "-" then
      expected = ""
   else
      local f = assert(io.open(path, "rb"))
      expected = f:read("*a")
      f:close()
   end
end

local function describe(status, body)
   local n = math.min(#body, #expected)
   local at = nil
   for i = 1, n do
      if body:byte(i) ~= expected:byte(i) then
         at = i - 1
         break
      end
   end
   if at == nil and #body ~= #expected then
      at = n
   end
   local s = string.format("status %d, %d bytes (expected 200, %d bytes)",
                           status, #body, #expected)
   if at ~= nil then
      s = s .. string.format(", first difference at byte %d: %q vs %q",
                             at, body:sub(at + 1, at + 24),
                             expected:sub(at + 1, at + 24))
   else
      s = s .. ", body identical"
   end
   return (s:gsub("\n", "\\n"))
end

function response(status, headers, body)
   if status == 200 and body == expected then
      good = good + 1
   else
      bad = bad + 1
      if example == nil then
         example = describe(status, body)
      end
   end
end

function done(summary, latency, requests)
   for _, t in ipairs(threads) do
      io.write(string.format("bench-check good=%d bad=%d\n",
                             t:get("good"), t:get("bad")))
      local e = t:get("example")
      if e ~= nil then
         io.write("bench-check example=", e, "\n")
      end
   end
end
