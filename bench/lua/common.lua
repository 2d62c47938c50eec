-- Shared by every bench script (loaded with dofile by each of them).
--
-- Environment:
--   BENCH_TOKEN    bearer token; sent as "Authorization: Bearer ..." when set and non-empty
--   BENCH_HEADERS  extra headers, "Name: value|Name2: value2" (e.g. "Prefer: count=none")
--   BENCH_THREADS  the -t given to wrk (scripts that split id ranges need it); default 2
--
-- Each thread gets a number `tid` (0-based, set in setup) and its own RNG seed, so runs are
-- repeatable and threads do not all draw the same ids. done() prints ONE machine-readable
-- line that run.sh parses:
--   BENCH_RESULT rps=... p50_ms=... p90_ms=... p99_ms=... max_ms=... requests=...
--                non2xx=... socket_errors=... timeouts=... exhausted=...
-- non2xx is wrk's count of responses with status >= 400 (wrk does not count 3xx; the API
-- sends none on these routes). exhausted = threads that ran out of ids (delete.lua).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

bench = {}

function bench.env(name, default)
   local v = os.getenv(name)
   if v == nil or v == "" then return default end
   return v
end

function bench.nthreads()
   return tonumber(bench.env("BENCH_THREADS", "2"))
end

-- Called from each script's init(): seeds the RNG and sets the default headers.
function bench.init()
   math.randomseed(4242 + 7919 * (tid or 0))
   local token = bench.env("BENCH_TOKEN", nil)
   if token then
      wrk.headers["Authorization"] = "Bearer " .. token
   end
   local extra = bench.env("BENCH_HEADERS", nil)
   if extra then
      for item in string.gmatch(extra, "[^|]+") do
         local name, value = string.match(item, "^%s*([^:]+):%s*(.-)%s*$")
         if name then wrk.headers[name] = value end
      end
   end
end

function init(args)
   bench.init()
   if bench.thread_init then bench.thread_init(args) end
end

function done(summary, latency, requests)
   local e = summary.errors
   local exhausted = 0
   for _, t in ipairs(threads) do
      if t:get("exhausted") then exhausted = exhausted + 1 end
   end
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH_RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f requests=%d non2xx=%d socket_errors=%d timeouts=%d exhausted=%d\n",
      summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000,
      summary.requests, e.status, e.connect + e.read + e.write, e.timeout, exhausted))
end
