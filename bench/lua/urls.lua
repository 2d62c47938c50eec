-- GET a fixed list of paths, round robin (each thread starts at a different place).
-- BENCH_PATHS: space-separated paths with their query strings, already URL-encoded,
-- e.g. "/employees/?sort_by=city&order=asc". One path is fine (a single-URL scenario).
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua")

local reqs = {}
local i = 0

function bench.thread_init(args)
   for path in string.gmatch(bench.env("BENCH_PATHS", "/"), "%S+") do
      table.insert(reqs, wrk.format("GET", path))
   end
   i = tid or 0
end

function request()
   i = i + 1
   return reqs[(i % #reqs) + 1]
end
