-- wrk script for `make bench`: a signed-in HTMX client. Configured from the environment:
--   BENCH_COOKIE   "sessionid=...; csrftoken=..."      BENCH_CSRF  the csrftoken value
--   BENCH_MODE     "change": POST a random deposit or withdrawal ($1.00-$9.99, with a fresh
--                  idempotency key) to one of
--                  BENCH_ACCOUNTS accounts starting at id BENCH_FIRST_ACCOUNT;
--                  "get": GET BENCH_PATH (with HX-Request when BENCH_HTMX=1, and
--                  If-None-Match: BENCH_IF_NONE_MATCH when set: the balance poll)
--   BENCH_EXPECT   the status every response should have (200; 304 for the poll)
--   BENCH_HX_TARGET with BENCH_HTMX=1: the HX-Target header too (the id of the element
--                  the fragment is for, e.g. history-results for the filter form)
-- done() prints one line "RESULT {json}" that loadtest/bench.py reads.
local cookie = os.getenv("BENCH_COOKIE")
local csrf = os.getenv("BENCH_CSRF")
local mode = os.getenv("BENCH_MODE") or "change"
local first = tonumber(os.getenv("BENCH_FIRST_ACCOUNT") or "0")
local count = tonumber(os.getenv("BENCH_ACCOUNTS") or "1")
local get_path = os.getenv("BENCH_PATH") or "/"
local htmx = os.getenv("BENCH_HTMX") == "1"
local if_none_match = os.getenv("BENCH_IF_NONE_MATCH")
local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")
local hx_target = os.getenv("BENCH_HX_TARGET")

local threads = {}
setup = function(thread)
  table.insert(threads, thread)
  thread:set("seed", #threads)
end

-- wrk counts 3xx as success; a redirect here means the session was refused, so count it.
not_ok = 0
response = function(status, headers, body)
  if status ~= expect then not_ok = not_ok + 1 end
end

init = function(args)
  math.randomseed(os.time() * 100 + (seed or 0))
end

request = function()
  if mode == "get" then
    local headers = { ["Cookie"] = cookie }
    if htmx then headers["HX-Request"] = "true" end
    if if_none_match then headers["If-None-Match"] = if_none_match end
    if htmx and hx_target then headers["HX-Target"] = hx_target end
    return wrk.format("GET", get_path, headers)
  end
  local account = first + math.random(0, count - 1)
  local verb = (math.random(2) == 1) and "deposit" or "withdraw"
  -- A fresh idempotency key per request, as each rendered form carries one.
  local key = string.format("%08x-%04x-4%03x-%04x-%06x%06x", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), math.random(0x8000, 0xbfff),
    math.random(0, 0xffffff), math.random(0, 0xffffff))
  local body = string.format("amount=%d.%02d&idempotency_key=%s", math.random(1, 9),
    math.random(0, 99), key)
  return wrk.format("POST", "/accounts/" .. account .. "/" .. verb .. "/", {
    ["Cookie"] = cookie,
    ["X-CSRFToken"] = csrf,
    ["HX-Request"] = "true",
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("not_ok") end
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "not_200": %d, ' ..
    '"socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, bad,
    errors.connect + errors.read + errors.write + errors.timeout))
end
