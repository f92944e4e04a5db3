-- wrk script for bench/run.sh: POSTs one pre-signed body over keep-alive
-- connections, counts every response status, and prints one JSON line of
-- figures at the end (run.sh parses it).
--
-- Environment (read once per thread, so the request is built once and wrk
-- sends the same bytes each time, as a static request costs wrk least):
--   BENCH_BODY     path of the body file
--   BENCH_HEADERS  path of a file of "Name: value" lines (signatures etc.)
--   BENCH_CTYPE    Content-Type (default application/json)

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
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
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
