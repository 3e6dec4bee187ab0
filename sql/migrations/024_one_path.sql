-- One path for every payment (issue 28): score_and_load claims the inbox rows, scores them in
-- memory and, per chunk, upserts them into payments_scored and deletes them from the inbox in
-- one transaction. The feature/score hand-over table between the old transform, score and load
-- tasks carries no guarantee any more: the inbox is the durable queue. Dropped.
-- Upgrading with a batch half-way (rows in scoring_stage): its payments are still in the inbox,
-- claimed by that batch; the first run after STALE_CLAIM (5 min) takes them over and stores
-- them. Nothing is lost. (The temporary `score_updates` table was created per transaction and
-- needs no migration.)
DROP TABLE IF EXISTS scoring_stage;

COMMENT ON COLUMN payments_inbox.batch_id IS
    'the batch (run) whose score_and_load claimed it; a back-fill chunk admits its rows claimed';
