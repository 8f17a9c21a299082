-- wrk script for TechEmpower's plaintext test: each write is DEPTH
-- requests (the first script argument, 16 when absent) concatenated, and
-- wrk waits for all their responses before the next. wrk counts every
-- response as a request; it times a batch, from its write to its last
-- response.
--
--   wrk -t 2 -c 256 -d 3s --latency -s pipeline.lua http://HOST:PORT/plaintext -- 16
--
-- At the end it prints one JSON line of the run's figures (latency in
-- microseconds), which cmd/httpload reads.

init = function(args)
	local depth = tonumber(args[1]) or 16
	local r = {}
	for i = 1, depth do
		r[i] = wrk.format()
	end
	req = table.concat(r)
end

request = function()
	return req
end

-- Before it reports, wrk corrects its latency histogram for coordinated
-- omission (stats_correct): for each batch slower than twice an
-- "interval", the run's time over the responses per connection, it adds
-- samples at that latency less one interval, less two, and so on. Its
-- percentiles then walk the histogram up from the least latency it
-- recorded, but the added samples may lie below it (with batches of 16,
-- the interval is 16 times shorter than a batch's round trip): those
-- walks never see them, every percentile comes out shifted up, and the
-- top ones never reach their rank and come out 0 (wrk's own summary
-- prints "99% 0.00us"). The samples it cannot see are the lowest, so the
-- p-th percentile of all of them is its percentile at p less the share it
-- cannot see, which is found by bisection: its percentile at q is nonzero
-- exactly while q is under the share it sees.
local function seen(latency)
	if latency:percentile(99.999) > 0 then
		return 100
	end
	local lo, hi = 0, 99.999
	for _ = 1, 60 do
		local mid = (lo + hi) / 2
		if latency:percentile(mid) > 0 then
			lo = mid
		else
			hi = mid
		end
	end
	return lo
end

done = function(summary, latency, requests)
	local e = summary.errors
	local hidden = 100 - seen(latency)
	local function pct(p)
		return latency:percentile(math.max(p - hidden, 0))
	end
	io.write(string.format(
		'{"requests":%d,"duration_us":%d,"bytes":%d,' ..
		'"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
		'"p50_us":%d,"p75_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"latency_unseen_pct":%.3f}\n',
		summary.requests, summary.duration, summary.bytes,
		e.connect, e.read, e.write, e.status, e.timeout,
		pct(50), pct(75), pct(90), pct(99), latency.max, hidden))
end
