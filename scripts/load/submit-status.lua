-- wrk script: each connection alternates a job submission and a status read.
-- Submissions use force=true with a per-request site, so each one that
-- succeeds is a new job (202) that must have its row. Status reads go to a
-- job created before the run (JOB_ID).
local token = os.getenv("TSP_TOKEN")
local job_id = os.getenv("JOB_ID")
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  c202, c200, cother, n = 0, 0, 0, 0
  -- Every accepted job id goes to a file, so the script can check each one
  -- has its row.
  ids = io.open(string.format("%s/accepted-%d.txt", os.getenv("IDS_DIR"), id), "w")
end

function request()
  n = n + 1
  if n % 2 == 1 then
    local body = string.format(
      '{"site":"load-%d-%d","points":["p1"],"start":"2025-10-01T00:00:00Z","end":"2025-10-02T00:00:00Z","force":true}',
      id, n)
    return wrk.format("POST", "/v1/jobs",
      { ["authorization"] = "Bearer " .. token, ["content-type"] = "application/json" }, body)
  end
  return wrk.format("GET", "/v1/jobs/" .. job_id, { ["authorization"] = "Bearer " .. token })
end

function response(status, headers, body)
  if status == 202 then
    c202 = c202 + 1
    local job = string.match(body, '"job_id":"(%x+)"')
    if job then ids:write(job, "\n"); ids:flush() end
  elseif status == 200 then c200 = c200 + 1
  else cother = cother + 1 end
end

function done(summary, latency, requests)
  local t202, t200, tother = 0, 0, 0
  for _, t in ipairs(threads) do
    t202 = t202 + t:get("c202"); t200 = t200 + t:get("c200"); tother = tother + t:get("cother")
  end
  io.write(string.format("RESULT requests=%d p50_ms=%.1f p99_ms=%.1f errors=%d non2xx=%d accepted_202=%d ok_200=%d\n",
    summary.requests, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status,
    tother, t202, t200))
end
