-- The analysts' verdicts on alerted payments: an append-only audit trail. A later verdict on the
-- same payment supersedes the earlier one (v_alert_verdicts keeps the latest); none is deleted.
CREATE TABLE IF NOT EXISTS alert_reviews (
    review_id    bigserial PRIMARY KEY,
    trans_num    text NOT NULL REFERENCES payments_scored (trans_num) ON DELETE CASCADE,
    verdict      text NOT NULL CHECK (verdict IN ('confirmed_fraud', 'false_alarm')),
    note         text CHECK (length(note) <= 2000),
    analyst      text NOT NULL CHECK (length(analyst) BETWEEN 1 AND 200),
    reviewed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_reviews_trans_idx ON alert_reviews (trans_num, reviewed_at DESC);

-- The verdict in force for each reviewed payment: its latest review.
CREATE OR REPLACE VIEW v_alert_verdicts AS
SELECT DISTINCT ON (trans_num) trans_num, verdict, note, analyst, reviewed_at
FROM alert_reviews
ORDER BY trans_num, reviewed_at DESC, review_id DESC;

-- The analysts' role: reads what the report role reads, and may add reviews; nothing else
-- (no UPDATE or DELETE, not even on its own reviews: the trail is append-only).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fraud_report_reviewer') THEN
        CREATE ROLE fraud_report_reviewer LOGIN;  -- password set by ops in prod
    END IF;
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM fraud_report_reviewer;
GRANT fraud_report_reader TO fraud_report_reviewer;
GRANT USAGE ON SCHEMA public TO fraud_report_reviewer;
GRANT INSERT ON alert_reviews TO fraud_report_reviewer;
GRANT USAGE ON SEQUENCE alert_reviews_review_id_seq TO fraud_report_reviewer;
