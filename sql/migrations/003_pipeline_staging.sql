-- The pipeline's durable hand-offs between tasks: a payment is never lost between them.
-- landing (extract, card already tokenised) -> inbox (validated, waiting to be scored)
-- -> scoring_stage (features and scores of a claimed batch) -> payments_scored (load).

CREATE TABLE IF NOT EXISTS payments_landing (
    run_id       text NOT NULL,
    trans_num    text NOT NULL,
    payload      jsonb NOT NULL,          -- the record as received, card number tokenised/masked
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, trans_num)
);

CREATE TABLE IF NOT EXISTS payments_inbox (LIKE payments_scored INCLUDING DEFAULTS);
ALTER TABLE payments_inbox
    DROP COLUMN IF EXISTS fraud_probability, DROP COLUMN IF EXISTS is_fraud_pred,
    DROP COLUMN IF EXISTS threshold, DROP COLUMN IF EXISTS model_version,
    DROP COLUMN IF EXISTS reasons, DROP COLUMN IF EXISTS scored_at,
    DROP COLUMN IF EXISTS alerted_at, DROP COLUMN IF EXISTS alert_id,
    DROP COLUMN IF EXISTS updated_at,
    ADD COLUMN IF NOT EXISTS batch_id text,          -- the run whose transform claimed it
    ADD COLUMN IF NOT EXISTS claimed_at timestamptz,
    ADD PRIMARY KEY (trans_num);
CREATE INDEX IF NOT EXISTS payments_inbox_batch_idx ON payments_inbox (batch_id);

CREATE TABLE IF NOT EXISTS scoring_stage (
    batch_id           text NOT NULL,
    trans_num          text NOT NULL,
    features           real[] NOT NULL,
    fraud_probability  double precision,
    model_version      text,
    PRIMARY KEY (batch_id, trans_num)
);

CREATE TABLE IF NOT EXISTS payments_quarantine (
    id            bigserial PRIMARY KEY,
    trans_num     text,
    reason        text NOT NULL,
    payload       jsonb NOT NULL,         -- card number masked: never stored in full
    payload_hash  text NOT NULL UNIQUE,   -- a re-run quarantines a bad row once
    run_id        text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);
