-- Data freshness for the morning report: when the newest payment happened and when the
-- pipeline last scored one. The report role may call this, still without reading the table.
-- Only the last day of payments (by trans_time, indexed) is scanned, however large the table.
CREATE OR REPLACE FUNCTION fraud_report_freshness()
RETURNS TABLE (last_trans_time timestamptz, last_scored_at timestamptz, checked_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH newest AS (SELECT max(trans_time) AS at FROM payments_scored)
    SELECT newest.at,
           (SELECT max(p.scored_at) FROM payments_scored p
             WHERE p.trans_time >= newest.at - interval '1 day'),
           now()
    FROM newest
$$;

REVOKE EXECUTE ON FUNCTION fraud_report_freshness() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_report_freshness() TO fraud_report_reader;
