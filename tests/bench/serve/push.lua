-- push.lua - wrk script for `tidemark serve`: every request carries new
-- events (wrk would otherwise send one body again and again, which after
-- the first request measures only the duplicate check).
--
--   wrk -s push.lua URL -- events|loki EVENTS_PER_REQUEST
--
-- Events follow SPEC §7's shape: 1 ms apart, a 100-byte printable payload,
-- no labels for /v1/events ({"job":"bench"} as the Loki stream). They have
-- no id: the server derives it from the content, as for any Loki line.
-- Each wrk thread writes its own time range, so threads never collide.

local thread_count = 0

function setup(thread)
	thread:set("tid", thread_count)
	thread_count = thread_count + 1
end

function init(args)
	mode = args[1] or "events"
	per = tonumber(args[2] or "1000")
	-- ms since the epoch; doubles hold these exactly (< 2^53).
	next_ms = 1700000000000 + tid * 10000000000
	sent = 0
	if mode == "loki" then
		path = "/loki/api/v1/push"
		headers = {["Content-Type"] = "application/json"}
	else
		path = "/v1/events"
		headers = {["Content-Type"] = "application/x-ndjson"}
	end
end

local function payload(n)
	local s = string.format("GET /api/v1/orders/%012.0f?user=%d HTTP/1.1 200 ", n, n % 9973)
	return s .. string.rep("x", 100 - #s)
end

function request()
	local parts = {}
	for i = 1, per do
		local ts = string.format("%.0f000000", next_ms)
		if mode == "loki" then
			parts[i] = '["' .. ts .. '","' .. payload(next_ms) .. '"]'
		else
			parts[i] = '{"ts":' .. ts .. ',"payload":"' .. payload(next_ms) .. '"}\n'
		end
		next_ms = next_ms + 1
	end
	local body
	if mode == "loki" then
		body = '{"streams":[{"stream":{"job":"bench"},"values":[' ..
		       table.concat(parts, ",") .. ']}]}'
	else
		body = table.concat(parts)
	end
	return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
	io.write(string.format("WRK requests=%d errors_status=%d errors_other=%d p50_us=%d p99_us=%d\n",
		summary.requests, summary.errors.status,
		summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
		latency:percentile(50), latency:percentile(99)))
end
