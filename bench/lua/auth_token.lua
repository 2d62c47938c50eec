-- POST /auth/token (OAuth2 password form) with BENCH_USERNAME / BENCH_PASSWORD.
-- Argon2-bound: run it at low concurrency. Only failed logins are throttled per account,
-- so repeated successful logins measure the hashing path itself.
local dir = string.match(debug.getinfo(1, "S").source, "^@(.*/)") or "./"
dofile(dir .. "common.lua")

local function urlencode(s)
   return (string.gsub(s, "[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local req

function bench.thread_init(args)
   wrk.headers["Authorization"] = nil
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   local body = "grant_type=password&username=" .. urlencode(bench.env("BENCH_USERNAME", "admin")) ..
                "&password=" .. urlencode(bench.env("BENCH_PASSWORD", ""))
   req = wrk.format("POST", bench.env("BENCH_TOKEN_PATH", "/auth/token"), nil, body)
end

function request()
   return req
end
