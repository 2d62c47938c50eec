-- GET /employees/{emp_id}, emp_id uniform in 1..BENCH_N (default 1000000).
-- BENCH_PATH_PREFIX overrides the path prefix "/employees/".
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua")

local n = tonumber(bench.env("BENCH_N", "1000000"))
local prefix = bench.env("BENCH_PATH_PREFIX", "/employees/")

function request()
   return wrk.format("GET", prefix .. math.random(1, n))
end
