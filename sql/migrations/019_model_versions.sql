-- The model registry: every model version the pipeline may score with, where its verified
-- artifacts are stored and their SHA-256s (metadata.json's included), and its life cycle:
-- registered as 'challenger', promoted to 'champion' (the one the scoring endpoint serves),
-- 'retired' when another is promoted. `fraud-pipeline db migrate` registers the committed model
-- as the first champion (fraud_pipeline/registry/versions.py); the CLI's `model` commands do the
-- rest. retired_at tells `model rollback` which champion was the last one.
CREATE TABLE IF NOT EXISTS model_versions (
    version            text PRIMARY KEY,
    location           text NOT NULL,
    sha256             jsonb NOT NULL,
    training_data_from timestamptz,
    training_data_to   timestamptz,
    metrics            jsonb NOT NULL DEFAULT '{}'::jsonb,
    status             text NOT NULL DEFAULT 'challenger'
                       CHECK (status IN ('challenger', 'champion', 'retired')),
    registered_at      timestamptz NOT NULL DEFAULT now(),
    promoted_at        timestamptz,
    promoted_by        text,
    reason             text,
    retired_at         timestamptz,
    CHECK (status = 'challenger' OR promoted_at IS NOT NULL)
);
-- At most one champion, whatever the commands do.
CREATE UNIQUE INDEX IF NOT EXISTS model_versions_one_champion
    ON model_versions ((true)) WHERE status = 'champion';
