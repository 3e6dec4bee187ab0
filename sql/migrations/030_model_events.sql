-- The model life cycle's history (issue 33): one row per event of a model version, appended and
-- never changed. model_versions holds each version's current state (its status, its last
-- promotion's reason); this table keeps every event with its own who, when, why and figures, so
-- that a rollback's note never replaces the gate's verdict. Events: 'registered' (trained or
-- registered by hand), 'gate_passed' / 'gate_failed' (the retraining's verdict, its metrics),
-- 'promoted' and 'rolled_back' (the version became the champion; `previous` is the one it
-- replaced), 'retired' (replaced as champion), 'switch_failed' (a promote, rollback or roll-out
-- whose endpoint did not take the model: the registry was left as it was).
-- `model rollback` reads it: promotions push a champion, rollbacks pop one.
CREATE TABLE IF NOT EXISTS model_events (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    version   text NOT NULL REFERENCES model_versions (version),
    event     text NOT NULL CHECK (event IN ('registered', 'gate_passed', 'gate_failed',
                                             'promoted', 'rolled_back', 'retired',
                                             'switch_failed')),
    actor     text NOT NULL,
    reason    text,
    previous  text REFERENCES model_versions (version),
    metrics   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX IF NOT EXISTS model_events_version_idx ON model_events (version, id);

-- Append-only, whatever the SQL: an UPDATE or DELETE fails (TRUNCATE, the owner's reset of a
-- whole database as the tests do, is not an edit of the history).
CREATE OR REPLACE FUNCTION model_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'model_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER IF EXISTS model_events_no_change ON model_events;
CREATE TRIGGER model_events_no_change BEFORE UPDATE OR DELETE ON model_events
    FOR EACH ROW EXECUTE FUNCTION model_events_append_only();

-- A registry that existed before this table: its versions' known events, once (an empty table).
INSERT INTO model_events (at, version, event, actor, reason, previous, metrics)
SELECT at, version, event, actor, reason, NULL, metrics FROM (
    SELECT registered_at AS at, version, 'registered' AS event,
           COALESCE(NULLIF(promoted_by, ''), 'unknown') AS actor, NULL AS reason,
           '{}'::jsonb AS metrics, 0 AS rank
    FROM model_versions
    UNION ALL
    SELECT registered_at, version,
           CASE WHEN (metrics -> 'gate' ->> 'passed')::boolean THEN 'gate_passed'
                ELSE 'gate_failed' END,
           'fraud_retrain', metrics -> 'gate' ->> 'reason', metrics -> 'gate', 1
    FROM model_versions WHERE metrics ? 'gate'
    UNION ALL
    SELECT promoted_at, version, 'promoted', COALESCE(promoted_by, 'unknown'), reason,
           '{}'::jsonb, 2
    FROM model_versions WHERE promoted_at IS NOT NULL
    UNION ALL
    SELECT retired_at, version, 'retired', 'unknown', NULL, '{}'::jsonb, 3
    FROM model_versions WHERE retired_at IS NOT NULL
) known
WHERE NOT EXISTS (SELECT 1 FROM model_events)
ORDER BY at, rank, version;

-- The report's Model health page reads the history through this function (its role reads no
-- table, tests/security/test_report_access.py).
CREATE OR REPLACE FUNCTION fraud_model_events(since timestamptz)
RETURNS TABLE (
    at timestamptz, version text, event text, actor text, reason text, previous text,
    metrics jsonb
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT e.at, e.version, e.event, e.actor, e.reason, e.previous, e.metrics
    FROM model_events e
    WHERE e.at >= since
    ORDER BY e.id DESC
$$;

REVOKE EXECUTE ON FUNCTION fraud_model_events(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_model_events(timestamptz) TO fraud_report_reader;

-- The champion and challenger the page compares: the current ones, from model_versions (the
-- challenger registered last first: the one the pipeline shadow-scores, pipeline/shadow.py).
CREATE OR REPLACE FUNCTION fraud_model_roles()
RETURNS TABLE (version text, status text, registered_at timestamptz, promoted_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT v.version, v.status, v.registered_at, v.promoted_at
    FROM model_versions v
    WHERE v.status IN ('champion', 'challenger')
    ORDER BY v.status, v.registered_at DESC, v.version DESC
$$;

REVOKE EXECUTE ON FUNCTION fraud_model_roles() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_model_roles() TO fraud_report_reader;

-- The model that scored the last stored payment: the served one (each run checks that the
-- endpoint's version is the features' version, so the rows name what is served).
CREATE OR REPLACE FUNCTION fraud_served_model()
RETURNS TABLE (model_version text, trans_time timestamptz, scored_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT p.model_version, p.trans_time, p.scored_at
    FROM payments_scored p
    ORDER BY p.trans_time DESC
    LIMIT 1
$$;

REVOKE EXECUTE ON FUNCTION fraud_served_model() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_served_model() TO fraud_report_reader;
