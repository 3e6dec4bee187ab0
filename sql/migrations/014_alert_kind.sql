-- How a fraud was alerted: 'alert' (its own line in a live alert email) or 'digest' (counted in
-- a catch-up digest: found by a back-fill or a catch-up, older than ALERT_MAX_AGE_MIN).
-- Either way alerted_at is set and the fraud is never mailed again. NULL while pending, and for
-- frauds alerted before this column existed (they were all alerts).
ALTER TABLE payments_scored
    ADD COLUMN IF NOT EXISTS alert_kind text CHECK (alert_kind IN ('alert', 'digest'));
