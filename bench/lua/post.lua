-- POST /employees/ with new, unique emp_ids: thread t creates
-- BENCH_ID_BASE + t * BENCH_ID_STRIDE + 0, 1, 2, ... (no collisions between threads, and
-- none with the base set as long as BENCH_ID_BASE > N). Needs an admin token.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua")

local first = { "Ana", "Bruno", "Chloé", "Dmitri", "Elif", "François", "Grace", "Hiroshi",
                "Inès", "José", "Kai", "Łukasz", "Mia", "Noah", "Olga", "Priya", "Zoë" }
local last = { "Silva", "Müller", "Nowak", "Kowalski", "Tanaka", "Okafor", "Jónsdóttir",
               "Dubois", "García", "Smith", "Nguyễn", "Öztürk", "Larsen", "O'Brien" }
local places = { { "London", "United Kingdom" }, { "São Paulo", "Brazil" }, { "Zürich", "Switzerland" },
                 { "Kraków", "Poland" }, { "Malmö", "Sweden" }, { "Reykjavík", "Iceland" },
                 { "Berlin", "Germany" }, { "Toronto", "Canada" }, { "Tokyo", "Japan" } }

local next_id

function bench.thread_init(args)
   local base = tonumber(bench.env("BENCH_ID_BASE", "2000001"))
   local stride = tonumber(bench.env("BENCH_ID_STRIDE", "10000000"))
   next_id = base + (tid or 0) * stride
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local id = next_id
   next_id = next_id + 1
   local p = places[math.random(#places)]
   local body = string.format(
      '{"emp_id":%d,"emp_name":"%s %s","city":"%s","country":"%s","emp_dob":"%04d-%02d-%02d"}',
      id, first[math.random(#first)], last[math.random(#last)], p[1], p[2],
      math.random(1950, 2006), math.random(1, 12), math.random(1, 28))
   return wrk.format("POST", "/employees/", nil, body)
end
