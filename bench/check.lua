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
-- Options after EXPECTED (the archive cache rows):
--
--   header=NAME:VALUE   every response must also carry this header with
--                       exactly this value (X-Cache-Status:HIT proves each
--                       measured response came from the cache)
--   fresh=D:FIRST:K     first views: each request asks for a bill id never
--                       requested before, D (one digit), then the 9-digit
--                       sequence number n (FIRST, FIRST+1, ...), then a
--                       variant vv (2 digits, below K), appended to the
--                       URL's path. EXPECTED is then a file name pattern
--                       with %02d: the K variants the origin serves (id
--                       ending vv: variant vv). A body counts as good when
--                       it is exactly one of the K variants. wrk does not
--                       say which request a response answers, so variant
--                       v is asked for v+1 times in every K(K+1)/2
--                       requests: answering some ids with another
--                       variant than theirs (any systematic mix-up) makes
--                       some variant answered more often than it was
--                       asked for, which done() reports (wrongvariant),
--                       with the requests still in flight when wrk stopped
--                       and the next unused n:
--
--   bench-check fresh next=N inflight=I wrongvariant=W
--
-- fresh= needs BENCH_CHECK_FRESH=1 in wrk's environment (see request()).
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
want_header = nil          -- header=NAME:VALUE
want_value = nil
fresh_digit = nil          -- fresh=D:FIRST:K
fresh_next = 0
fresh_k = 0
variants = nil             -- body -> variant number
pick = nil                 -- n % #pick -> variant (v appears v+1 times)
asked = nil                -- per variant: requests sent
answered = nil             -- per variant: good responses

function init(args)
   local path = args[1]
   if path == nil then
      error("bench/check.lua: no expected file (wrk ... -- FILE)")
   end
   for i = 2, #args do
      local name, value = args[i]:match("^header=([^:]+):(.*)$")
      local d, first, k = args[i]:match("^fresh=(%d):(%d+):(%d+)$")
      if name then
         want_header, want_value = name, value
      elseif d then
         fresh_digit, fresh_next, fresh_k = d, tonumber(first), tonumber(k)
      else
         error("bench/check.lua: unknown option " .. args[i])
      end
   end
   if path == "-" then
      expected = ""
   elseif fresh_digit then
      variants, asked, answered, pick = {}, {}, {}, {}
      for v = 0, fresh_k - 1 do
         for _ = 0, v do
            table.insert(pick, v)
         end
         local f = assert(io.open(string.format(path, v), "rb"))
         variants[f:read("*a")] = v
         f:close()
         asked[v], answered[v] = 0, 0
      end
      expected = ""        -- only for describe(): no single expected body
   else
      local f = assert(io.open(path, "rb"))
      expected = f:read("*a")
      f:close()
   end
end

-- fresh=: a bill id never asked for before, for every request. wrk calls
-- a request() function for every request once the script defines one (and
-- builds the request once otherwise), which it decides when the script is
-- loaded, before init() sees the options: so only with the environment
-- variable BENCH_CHECK_FRESH=1, which bench/measure.py sets for the fresh=
-- rounds; the other rows keep wrk's prebuilt request.
if os.getenv("BENCH_CHECK_FRESH") == "1" then
   function request()
      local n = fresh_next
      fresh_next = n + 1
      local v = pick[n % #pick + 1]
      asked[v] = asked[v] + 1
      return wrk.format(nil, string.format("%s%s%09d%02d", wrk.path,
                                           fresh_digit, n, v))
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
   local ok
   if variants then
      local v = variants[body]
      ok = status == 200 and v ~= nil
      if ok then
         answered[v] = answered[v] + 1
      end
   else
      ok = status == 200 and body == expected
   end
   if ok and want_header and headers[want_header] ~= want_value then
      ok = false
      if example == nil then
         example = string.format("header %s: %q, expected %q", want_header,
                                 tostring(headers[want_header]), want_value)
      end
   end
   if ok then
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
      if t:get("fresh_digit") ~= nil then
         -- asked - answered per variant: the requests in flight at the
         -- end (never negative); a negative one is a body of a variant
         -- answered more often than it was asked for
         local a, b = t:get("asked"), t:get("answered")
         local inflight, wrong = 0, 0
         for v = 0, t:get("fresh_k") - 1 do
            local d = a[v] - b[v]
            if d < 0 then
               wrong = wrong - d
            else
               inflight = inflight + d
            end
         end
         io.write(string.format(
            "bench-check fresh next=%d inflight=%d wrongvariant=%d\n",
            t:get("fresh_next"), inflight, wrong))
      end
   end
end
