-- The daily model health (fraud_model_monitor DAG): one row per day, model and figure, upserted
-- so that a re-run of a day replaces its figures. value is NULL when the day cannot tell (no
-- payments, no reviews); threshold is NULL when the figure has none yet (no 30-day history).
CREATE TABLE IF NOT EXISTS model_health (
    day            date NOT NULL,
    model_version  text NOT NULL,
    metric         text NOT NULL,
    value          double precision,
    threshold      double precision,
    breached       boolean NOT NULL DEFAULT false,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, model_version, metric)
);
CREATE INDEX IF NOT EXISTS model_health_metric_day_idx ON model_health (metric, day);

-- The warning email of a day and model: the row is written in the transaction that sent it,
-- so a re-run of the same day finds it and sends nothing.
CREATE TABLE IF NOT EXISTS model_health_warnings (
    day            date NOT NULL,
    model_version  text NOT NULL,
    metrics        text[] NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, model_version)
);

-- The report's Model health page reads the figures of a span of days through this function:
-- like the rest of the report, its role reads no table (tests/security/test_report_access.py).
CREATE OR REPLACE FUNCTION fraud_model_health(since date, until date)
RETURNS TABLE (
    day date, model_version text, metric text, value double precision,
    threshold double precision, breached boolean, computed_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT h.day, h.model_version, h.metric, h.value, h.threshold, h.breached, h.computed_at
    FROM model_health h
    WHERE h.day > since AND h.day <= until
    ORDER BY h.day, h.metric
$$;

REVOKE EXECUTE ON FUNCTION fraud_model_health(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_model_health(date, date) TO fraud_report_reader;
