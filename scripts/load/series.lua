-- wrk script: /v1/series of a year of 10 points. With UNCACHED=1 each
-- request asks a width of its own (990..1009, one cache entry each, every
-- one missed first), else one fixed URL (cached after the first answer).
local token = os.getenv("TSP_TOKEN")
local path = os.getenv("SERIES_PATH")
local uncached = os.getenv("UNCACHED") == "1"
local n = 0

function init(args)
  n = 0
end

function request()
  n = n + 1
  local p = path
  if uncached then
    p = string.gsub(path, "width=1000", "width=" .. tostring(990 + (n * 7 + id_seed()) % 20))
  end
  return wrk.format("GET", p, { ["authorization"] = "Bearer " .. token, ["accept"] = "application/msgpack" })
end

function id_seed()
  return math.random(0, 19)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d p50_ms=%.1f p95_ms=%.1f p99_ms=%.1f errors=%d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
