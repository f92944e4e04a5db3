-- wrk script for bench/run.sh: POSTs one pre-signed body over keep-alive
-- connections, counts every response status, and prints one JSON line of
-- figures at the end (run.sh parses it). A response marked
-- Webhook-Duplicate is counted under status 0, not as a success.
--
-- Environment (read once per thread, so the request is built once and wrk
-- sends the same bytes each time, as a static request costs wrk least):
--   BENCH_BODY     path of the body file
--   BENCH_HEADERS  path of a file of "Name: value" lines (signatures etc.)
--   BENCH_CTYPE    Content-Type (default application/json)
--   BENCH_DELIVERY when set, every request carries a new X-GitHub-Delivery
--                  ("<BENCH_NONCE>-<thread>-<n>"), so wrk builds each
--                  request (the dedupe scenarios of bench/run.sh)
--   BENCH_NONCE    makes the ids of this wrk run differ from earlier ones

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = read_file(os.getenv("BENCH_BODY"))
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE") or "application/json"
local hdr = os.getenv("BENCH_HEADERS")
if hdr and hdr ~= "" then
  for line in io.lines(hdr) do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then wrk.headers[name] = value end
  end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  statuses = {}
  sent = 0
end

local delivery = os.getenv("BENCH_DELIVERY")
if delivery and delivery ~= "" then
  local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
  function request()
    sent = sent + 1
    wrk.headers["X-GitHub-Delivery"] = string.format("%s-%d-%d", nonce, thread_no, sent)
    return wrk.format()
  end
end

function response(status, headers, body)
  -- A repeated delivery is answered 2xx too: counted apart, and as a
  -- failure, since every request of a trial carries a new id.
  if headers["Webhook-Duplicate"] then status = 0 end
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local ok, bad, parts = 0, 0, {}
  for code, n in pairs(counts) do
    if code >= 200 and code <= 299 then ok = ok + n else bad = bad + n end
    table.insert(parts, string.format('"%d":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"ok":%d,"non2xx":%d,"statuses":{%s},' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,' ..
    '"lat_p50_us":%d,"lat_p99_us":%d,"lat_mean_us":%.1f,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    ok, bad, table.concat(parts, ","),
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
