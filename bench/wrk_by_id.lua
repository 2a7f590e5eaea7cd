-- wrk script for bench/customers.sh: POSTs requests by customer id, each for a random customer
-- of 1..CUSTOMERS (environment; default 1000000), each thread its own sequence.
local customers = tonumber(os.getenv("CUSTOMERS") or "1000000")
local threads = 0

function setup(thread)
    threads = threads + 1
    thread:set("seed", threads)
end

function init(_)
    math.randomseed(seed * 7919)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
    local body = '{"customer_id": ' .. math.random(1, customers) .. ', "segment_name": "frequent_segment"}'
    return wrk.format(nil, nil, nil, body)
end
