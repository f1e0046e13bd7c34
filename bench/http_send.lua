-- wrk script for bench/http_send.py: one fixed request, authenticated.
-- Env: HTTP_METHOD (GET|POST), HTTP_PATH, HTTP_KEY (API key), HTTP_BODY_FILE (JSON body, POST only)
local method = os.getenv("HTTP_METHOD") or "GET"
local path = os.getenv("HTTP_PATH") or "/v1/ping"
local body = nil
local body_file = os.getenv("HTTP_BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  body = f:read("*a")
  f:close()
end
local headers = { ["Authorization"] = "Bearer " .. assert(os.getenv("HTTP_KEY"), "HTTP_KEY unset") }
if body then headers["Content-Type"] = "application/json" end
-- plain wrk.method/path/headers/body (wrk adds Host itself; wrk.format() at load time would not)
wrk.method = method
wrk.path = path
wrk.body = body
for k, v in pairs(headers) do wrk.headers[k] = v end

-- one line for bench/http_send.py (no response() hook: it would slow wrk down)
done = function(summary, latency, requests)
  io.write(string.format("SUMMARY requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d sockerr=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
