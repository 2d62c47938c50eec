-- PATCH /employees/{emp_id}, emp_id uniform in BENCH_ID_LO..BENCH_ID_HI (run.sh points
-- this at a block of rows loaded for the write scenarios, so the base set 1..N never
-- changes). The body rotates through: name only; city + country (re-indexes the substring
-- filter); date of birth; all four. Needs an admin token.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua")

local names = { "Ana Silva", "Bruno Müller", "Chloé Dubois", "José García", "Łukasz Nowak",
                "Zoë Larsen", "Hiroshi Tanaka", "Priya Sharma", "Grace O'Brien" }
local places = { { "London", "United Kingdom" }, { "São Paulo", "Brazil" }, { "Zürich", "Switzerland" },
                 { "Kraków", "Poland" }, { "Malmö", "Sweden" }, { "Berlin", "Germany" },
                 { "Paris", "France" }, { "Mumbai", "India" } }

local lo, hi
local k = 0

function bench.thread_init(args)
   lo = tonumber(bench.env("BENCH_ID_LO", "1"))
   hi = tonumber(bench.env("BENCH_ID_HI", bench.env("BENCH_N", "1000000")))
   wrk.headers["Content-Type"] = "application/json"
   k = tid or 0
end

local function dob()
   return string.format("%04d-%02d-%02d", math.random(1950, 2006), math.random(1, 12), math.random(1, 28))
end

function request()
   k = k + 1
   local body
   local v = k % 4
   local p = places[math.random(#places)]
   if v == 0 then
      body = string.format('{"emp_name":"%s"}', names[math.random(#names)])
   elseif v == 1 then
      body = string.format('{"city":"%s","country":"%s"}', p[1], p[2])
   elseif v == 2 then
      body = string.format('{"emp_dob":"%s"}', dob())
   else
      body = string.format('{"emp_name":"%s","city":"%s","country":"%s","emp_dob":"%s"}',
                           names[math.random(#names)], p[1], p[2], dob())
   end
   return wrk.format("PATCH", "/employees/" .. math.random(lo, hi), nil, body)
end
