-- DELETE /employees/{emp_id}, each id of BENCH_ID_LO..BENCH_ID_HI exactly once: the block
-- is split into BENCH_THREADS contiguous slices, one per thread, walked in order. A thread
-- that runs out stops (and is counted in done()'s `exhausted`; the req/s of such a run is
-- a lower bound, since wrk still divides by the whole duration). Needs an admin token;
-- the rows must exist (run.sh loads the block first), so every request is a real delete.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua")

local next_id, last_id

function bench.thread_init(args)
   local lo = tonumber(bench.env("BENCH_ID_LO", "1"))
   local hi = tonumber(bench.env("BENCH_ID_HI", "1"))
   local t = bench.nthreads()
   local size = math.floor((hi - lo + 1) / t)
   next_id = lo + (tid or 0) * size
   last_id = next_id + size - 1
   if (tid or 0) == t - 1 then last_id = hi end
end

function request()
   if next_id > last_id then
      exhausted = true
      wrk.thread:stop()
      return wrk.format("GET", "/healthz")
   end
   local id = next_id
   next_id = next_id + 1
   return wrk.format("DELETE", "/employees/" .. id)
end
