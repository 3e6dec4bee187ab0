-- The morning report's database role: it can read the report objects and nothing else.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fraud_report_reader') THEN
        CREATE ROLE fraud_report_reader LOGIN;  -- password set by ops in prod
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fraud_report_reader;
REVOKE EXECUTE ON FUNCTION fraud_report_for_day(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fraud_business_tz() FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO fraud_report_reader;
GRANT SELECT ON v_daily_fraud_report TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_report_for_day(date) TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_business_tz() TO fraud_report_reader;
