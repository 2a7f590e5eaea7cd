-- wrk script for bench/customers.sh: POSTs requests by customer id, each for a random customer
-- of 1..CUSTOMERS (environment; default 1000000), each thread its own sequence. The requests
-- are formatted once, in init (a rotation of 65,536 per thread): formatting each one in Lua
-- as it is sent cost wrk about 1.3 us of CPU per request more than the full route's static
-- request, on the cores the API shares with it.
local customers = tonumber(os.getenv("CUSTOMERS") or "1000000")
local rotation = 65536
local threads = 0
local requests = {}
local next_request = 0

function setup(thread)
    threads = threads + 1
    thread:set("seed", threads)
end

function init(_)
    math.randomseed(seed * 7919)
    for i = 1, rotation do
        local body = '{"customer_id": ' .. math.random(1, customers) .. ', "segment_name": "frequent_segment"}'
        requests[i] = wrk.format(nil, nil, nil, body)
    end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
    next_request = next_request % rotation + 1
    return requests[next_request]
end
