-- wrk script for bench/load_test.sh: POSTs the API contract's example request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"customer_id": 123, "country_code": "Peru", "last_order_ts": "2021-10-26 00:00:00", '
    .. '"first_order_ts": "2021-10-26 00:00:00", "total_orders": 14, "segment_name": "frequent_segment"}'
