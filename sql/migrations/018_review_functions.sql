-- What the "To review" page and the measured-quality figures read, as functions the report role
-- may call without reading any table (the reviewer role inherits them: it is a member).
-- An alert is a flagged payment (is_fraud_pred): its email is sent, or due on the next run.

-- Flagged payments with no verdict yet, for the `max_cards` riskiest cards (each card ranked
-- by its riskiest unreviewed alert), with every unreviewed alert of those cards. `episode`
-- names one card's unreviewed alerts (the trans_num of its riskiest): the page can act on a
-- whole episode without ever seeing the card's token. `queued_alerts` and `queued_cards`
-- count the whole queue, beyond `max_cards`.
CREATE OR REPLACE FUNCTION fraud_review_queue(max_cards integer DEFAULT 10)
RETURNS TABLE (
    episode text, card_rank bigint, queued_alerts bigint, queued_cards bigint, trans_num text,
    trans_time timestamptz, trans_local_time timestamp, card_last4 char(4), first text,
    last text, merchant text, category text, amt numeric, city text, state text,
    fraud_probability double precision, model_version text, reasons jsonb,
    alerted_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH open_alerts AS (
        SELECT p.*,
               first_value(p.trans_num) OVER card AS episode,
               first_value(p.fraud_probability) OVER card AS lead_probability,
               first_value(p.trans_time) OVER card AS lead_time
        FROM payments_scored p
        WHERE p.is_fraud_pred
          AND NOT EXISTS (SELECT 1 FROM alert_reviews r WHERE r.trans_num = p.trans_num)
        WINDOW card AS (PARTITION BY p.card_token
                        ORDER BY p.fraud_probability DESC, p.trans_time, p.trans_num)
    ), ranked AS (
        SELECT o.*,
               dense_rank() OVER (ORDER BY lead_probability DESC, lead_time, episode) AS card_rank,
               count(*) OVER () AS queued_alerts
        FROM open_alerts o
    ), counted AS (
        SELECT r.*, max(r.card_rank) OVER () AS queued_cards FROM ranked r
    )
    SELECT episode, card_rank, queued_alerts, queued_cards, trans_num, trans_time,
           trans_time AT TIME ZONE fraud_business_tz(), card_last4, first, last, merchant,
           category, amt, city, state, fraud_probability, model_version, reasons, alerted_at
    FROM counted
    WHERE card_rank <= max_cards
    ORDER BY card_rank, fraud_probability DESC, trans_time, trans_num
$$;

-- The card of one payment: its payments from `window_days` before that payment on, with each one's
-- verdict in force. Only the last four digits leave the database.
CREATE OR REPLACE FUNCTION fraud_review_card_payments(of_trans_num text, window_days integer DEFAULT 7)
RETURNS TABLE (
    trans_num text, trans_time timestamptz, trans_local_time timestamp, card_last4 char(4),
    first text, last text, merchant text, category text, amt numeric, city text, state text,
    fraud_probability double precision, is_fraud_pred boolean, is_fraud smallint,
    model_version text, verdict text
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.trans_num, p.trans_time, p.trans_time AT TIME ZONE fraud_business_tz(),
           p.card_last4, p.first, p.last, p.merchant, p.category, p.amt, p.city, p.state,
           p.fraud_probability, p.is_fraud_pred, p.is_fraud, p.model_version, v.verdict
    FROM payments_scored anchor
    JOIN payments_scored p
      ON p.card_token = anchor.card_token
     AND p.trans_time >= anchor.trans_time - make_interval(days => window_days)
    LEFT JOIN v_alert_verdicts v ON v.trans_num = p.trans_num
    WHERE anchor.trans_num = of_trans_num
    ORDER BY p.trans_time DESC, p.trans_num
$$;

-- Measured quality over business days first_day..last_day (inclusive), per model version:
-- alerts, the analysts' verdicts in force, and the source's true labels where present.
CREATE OR REPLACE FUNCTION fraud_review_quality(first_day date, last_day date)
RETURNS TABLE (
    model_version text, alerts bigint, reviewed bigint, confirmed bigint,
    labelled bigint, caught bigint, false_alarms bigint, missed bigint
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.model_version,
           count(*) FILTER (WHERE p.is_fraud_pred),
           count(v.verdict) FILTER (WHERE p.is_fraud_pred),
           count(*) FILTER (WHERE p.is_fraud_pred AND v.verdict = 'confirmed_fraud'),
           count(p.is_fraud),
           count(*) FILTER (WHERE p.is_fraud = 1 AND p.is_fraud_pred),
           count(*) FILTER (WHERE p.is_fraud = 0 AND p.is_fraud_pred),
           count(*) FILTER (WHERE p.is_fraud = 1 AND NOT p.is_fraud_pred)
    FROM payments_scored p
    LEFT JOIN v_alert_verdicts v ON v.trans_num = p.trans_num
    WHERE p.trans_time >= (first_day::timestamp AT TIME ZONE fraud_business_tz())
      AND p.trans_time < ((last_day + 1)::timestamp AT TIME ZONE fraud_business_tz())
    GROUP BY p.model_version
    ORDER BY p.model_version
$$;

REVOKE EXECUTE ON FUNCTION fraud_review_queue(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fraud_review_card_payments(text, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION fraud_review_quality(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_review_queue(integer) TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_review_card_payments(text, integer) TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_review_quality(date, date) TO fraud_report_reader;
