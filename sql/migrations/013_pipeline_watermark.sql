-- The pipeline's high-water mark (issue #13): the end of the newest payments window landed
-- without a gap before it. Each DAG run fetches from here up to its own interval end (at most
-- DAG_CATCHUP_MAX_SPAN_MIN minutes per run), so minutes missed while the stack, the payments
-- API or the scheduler was down are fetched by the next runs, oldest first.
CREATE TABLE IF NOT EXISTS pipeline_watermark (
    name          text PRIMARY KEY,
    loaded_until  timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
