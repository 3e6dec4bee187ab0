-- Scored payments: one row per payment, keyed by trans_num, upserted idempotently.
-- The full card number is never stored: card_token = HMAC-SHA256(key, number), card_last4 for display.

CREATE TABLE IF NOT EXISTS app_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE IF NOT EXISTS payments_scored (
    trans_num          text PRIMARY KEY,
    trans_time         timestamptz NOT NULL,
    card_token         char(64) NOT NULL CHECK (card_token ~ '^[0-9a-f]{64}$'),
    card_last4         char(4) NOT NULL CHECK (card_last4 ~ '^[0-9]{4}$'),
    merchant           text NOT NULL,
    category           text NOT NULL,
    amt                numeric(12, 2) NOT NULL,
    first              text,
    last               text,
    gender             text,
    street             text,
    city               text,
    state              text,
    zip                text,
    lat                double precision,
    long               double precision,
    city_pop           integer,
    job                text,
    dob                date,
    merch_lat          double precision,
    merch_long         double precision,
    is_fraud           smallint CHECK (is_fraud IN (0, 1)),  -- true label when known
    fraud_probability  double precision NOT NULL CHECK (fraud_probability BETWEEN 0 AND 1),
    is_fraud_pred      boolean NOT NULL,
    threshold          double precision NOT NULL,
    model_version      text NOT NULL,
    reasons            jsonb NOT NULL DEFAULT '[]'::jsonb,
    scored_at          timestamptz NOT NULL,
    -- Alerting: a detected fraud is pending until alerted_at is set, inside the transaction
    -- that sent its email; a set alerted_at is never cleared, so a fraud is alerted once.
    alerted_at         timestamptz,
    alert_id           text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS payments_scored_trans_time_idx ON payments_scored (trans_time);
CREATE INDEX IF NOT EXISTS payments_scored_card_time_idx ON payments_scored (card_token, trans_time);
CREATE INDEX IF NOT EXISTS payments_scored_alert_pending_idx
    ON payments_scored (trans_time) WHERE is_fraud_pred AND alerted_at IS NULL;

-- The business time zone (configurable; `fraud-pipeline db migrate` writes BUSINESS_TZ here).
INSERT INTO app_settings (key, value) VALUES ('business_tz', 'Europe/Paris')
ON CONFLICT (key) DO NOTHING;

CREATE OR REPLACE FUNCTION fraud_business_tz() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce((SELECT value FROM app_settings WHERE key = 'business_tz'), 'Europe/Paris')
$$;

-- One calendar day (in the business time zone) of payments with their scores: the one
-- definition behind the morning report, for any day.
CREATE OR REPLACE FUNCTION fraud_report_for_day(report_day date)
RETURNS TABLE (
    report_day date, trans_num text, trans_time timestamptz, trans_local_time timestamp,
    card_last4 char(4), first text, last text, gender text, merchant text, category text,
    amt numeric, city text, state text, zip text, lat double precision, long double precision,
    city_pop integer, job text, dob date, merch_lat double precision, merch_long double precision,
    is_fraud smallint, fraud_probability double precision, is_fraud_pred boolean,
    threshold double precision, model_version text, reasons jsonb, scored_at timestamptz,
    alerted_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT report_day, p.trans_num, p.trans_time, p.trans_time AT TIME ZONE fraud_business_tz(),
           p.card_last4, p.first, p.last, p.gender, p.merchant, p.category, p.amt, p.city,
           p.state, p.zip, p.lat, p.long, p.city_pop, p.job, p.dob, p.merch_lat, p.merch_long,
           p.is_fraud, p.fraud_probability, p.is_fraud_pred, p.threshold, p.model_version,
           p.reasons, p.scored_at, p.alerted_at
    FROM payments_scored p
    WHERE p.trans_time >= (report_day::timestamp AT TIME ZONE fraud_business_tz())
      AND p.trans_time < ((report_day + 1)::timestamp AT TIME ZONE fraud_business_tz())
$$;

-- Yesterday, in the business time zone: what the morning report shows by default.
CREATE OR REPLACE VIEW v_daily_fraud_report AS
SELECT * FROM fraud_report_for_day(((now() AT TIME ZONE fraud_business_tz())::date - 1));
