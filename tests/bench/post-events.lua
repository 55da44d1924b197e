-- wrk script: POSTs distinct events (JSON Lines file, split between threads)
-- to /v1/events and counts replies by status.
-- Usage: wrk ... -s post-events.lua URL -- EVENTS_FILE THREADS TOKEN

local threads = {}
local next_id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
    table.insert(threads, thread)
end

function init(args)
    local path, nthreads, token = args[1], tonumber(args[2]), args[3]
    events = {}
    local i = 0
    for line in io.lines(path) do
        if i % nthreads == id then events[#events + 1] = line end
        i = i + 1
    end
    cursor = 0
    accepted, duplicate, other = 0, 0, 0
    headers = {["Content-Type"] = "application/cloudevents+json",
               ["Authorization"] = "Bearer " .. token}
end

function request()
    cursor = cursor + 1
    local body = events[((cursor - 1) % #events) + 1]
    return wrk.format("POST", "/v1/events", headers, body)
end

function response(status, headers, body)
    if status == 202 then accepted = accepted + 1
    elseif status == 200 then duplicate = duplicate + 1
    else other = other + 1 end
end

function done(summary, latency, requests)
    local a, d, o = 0, 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("accepted")
        d = d + t:get("duplicate")
        o = o + t:get("other")
    end
    io.write(string.format("RESULT accepted=%d duplicate=%d other=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f\n",
        a, d, o, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
