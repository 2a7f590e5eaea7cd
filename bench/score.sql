-- The campaign scoring yardstick: the same customer list joined with the voucher table on
-- country, segment type and the segment's bounds (a range join), written as Parquet like
-- `voucher-etl score` writes its output: every column of the list, then the voucher and the
-- segment. DuckDB validates nothing: a row it cannot match gets no voucher.
-- Placeholders (bench/score_bench.py fills them): {customers}, {table}, {out}, {today}.
SET TimeZone = 'UTC';
COPY (
  SELECT c.*, t.voucher_amount AS voucher, t.segment
  FROM read_parquet('{customers}') c
  LEFT JOIN read_parquet('{table}') t
    ON t.country_code = c.country_code
   AND t.segment_name = c.segment_name
   AND CASE c.segment_name
         WHEN 'frequent_segment' THEN c.total_orders
         ELSE date_diff('day', CAST(TRY_CAST(c.last_order_ts AS TIMESTAMP) AS DATE), DATE '{today}')
       END BETWEEN t.lower AND coalesce(t.upper, 9223372036854775807)
) TO '{out}' (FORMAT parquet, COMPRESSION zstd);
