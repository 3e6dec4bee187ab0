-- Late payments (issue 28): a payment the payments API delivered after the pipeline had fetched
-- its minute. Each run re-reads LATE_PAYMENT_LOOKBACK_MIN minutes before its interval
-- (pipeline/late.py); a payment new to that re-read is recorded here (beyond_bound false). The
-- daily reconciliation re-fetches the whole day before the morning summary: what it still finds
-- missing arrived later than the bound and is recorded with beyond_bound true. One row per
-- payment, first finding kept (ON CONFLICT DO NOTHING); the payment itself is stored once in
-- payments_scored as any other. late_s: fetched_at - trans_time, how late it was when found.
CREATE TABLE IF NOT EXISTS late_payments (
    trans_num text PRIMARY KEY,
    trans_time timestamptz NOT NULL,
    fetched_at timestamptz NOT NULL,
    late_s double precision NOT NULL,
    beyond_bound boolean NOT NULL,
    run_id text
);
CREATE INDEX IF NOT EXISTS late_payments_time_idx ON late_payments (trans_time);

-- The report's figures for a day: how many arrived late, how late, how many beyond the bound.
CREATE OR REPLACE FUNCTION fraud_late_payments(day date)
RETURNS TABLE (late bigint, beyond_bound bigint, median_late_s double precision,
               max_late_s double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT count(*), count(*) FILTER (WHERE l.beyond_bound),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY l.late_s), max(l.late_s)
    FROM late_payments l
    WHERE l.trans_time >= (day::timestamp AT TIME ZONE fraud_business_tz())
      AND l.trans_time < ((day + 1)::timestamp AT TIME ZONE fraud_business_tz())
$$;

REVOKE EXECUTE ON FUNCTION fraud_late_payments(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_late_payments(date) TO fraud_report_reader;
