-- Retention (issue 18): payments_scored keeps RETENTION_DAYS of payments; `fraud-pipeline db
-- archive` moves older ones, with their reviews, here in batches (storage/archive.py).
-- payments_scored itself stays one table keyed by trans_num: the pipeline's upsert needs
-- ON CONFLICT (trans_num), and a table partitioned by time can only have unique keys that
-- include the time. The archive has no such need: it is partitioned by month of trans_time
-- (key (trans_num, trans_time); a payment's time never changes), so a month past any legal hold
-- is dropped whole (DROP TABLE of one partition) instead of deleted row by row.
CREATE TABLE IF NOT EXISTS payments_scored_archive (
    LIKE payments_scored INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trans_num, trans_time)
) PARTITION BY RANGE (trans_time);
-- Partitions (payments_scored_archive_yYYYYmMM) are created by the archive job as it needs them.

-- The analysts' verdicts on archived payments: the audit trail is moved, never dropped.
CREATE TABLE IF NOT EXISTS alert_reviews_archive (
    LIKE alert_reviews INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (review_id)
);
CREATE INDEX IF NOT EXISTS alert_reviews_archive_trans_idx ON alert_reviews_archive (trans_num);

-- The review queue (fraud_review_queue) reads flagged payments only (~1% of rows) across the
-- whole retention window: a partial index keeps that read off a scan of every payment. On a large existing
-- table, run this CREATE INDEX CONCURRENTLY by hand before migrating (IF NOT EXISTS skips it).
CREATE INDEX IF NOT EXISTS payments_scored_flagged_idx
    ON payments_scored (trans_time) WHERE is_fraud_pred;
