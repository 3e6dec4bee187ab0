-- Who saw and did what (PCI DSS 10.2, 10.3, 10.5): an append-only, hash-chained trail.
-- Each row's row_hash is sha256 over the previous row's hash and its own contents
-- (fraud_audit_digest), so an edited, inserted or deleted row breaks the chain at that row
-- (`fraud-pipeline audit verify` names the first one). No application role may UPDATE, DELETE
-- or even INSERT: they call fraud_audit_append (SECURITY DEFINER), which computes the chain
-- under a lock. A trigger refuses UPDATE and DELETE for everyone, the owner included, except
-- the retention purge (fraud_audit_purge, AUDIT_RETENTION_DAYS) deleting from the oldest end.
CREATE TABLE IF NOT EXISTS audit_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action text NOT NULL CHECK (length(action) BETWEEN 1 AND 60),
    target text NOT NULL DEFAULT '',
    detail jsonb NOT NULL DEFAULT '{}',
    source text NOT NULL DEFAULT '',
    prev_hash text NOT NULL,
    row_hash text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);

CREATE OR REPLACE FUNCTION fraud_audit_digest(
    prev text, id bigint, at timestamptz, actor text, action text, target text, detail jsonb,
    source text
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(concat_ws(chr(31), prev, id::text,
        to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), actor, action, target,
        detail::text, source), 'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION fraud_audit_append(
    p_actor text, p_action text, p_target text, p_detail jsonb, p_source text
) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_prev text;
    v_id bigint;
    v_at timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('fraud_audit_log'));
    SELECT row_hash INTO v_prev FROM audit_log ORDER BY id DESC LIMIT 1;
    v_prev := coalesce(v_prev, repeat('0', 64));
    v_id := nextval('audit_log_id_seq');
    INSERT INTO audit_log (id, at, actor, action, target, detail, source, prev_hash, row_hash)
    VALUES (v_id, v_at, p_actor, p_action, coalesce(p_target, ''), coalesce(p_detail, '{}'),
            coalesce(p_source, ''), v_prev,
            fraud_audit_digest(v_prev, v_id, v_at, p_actor, p_action, coalesce(p_target, ''),
                               coalesce(p_detail, '{}'), coalesce(p_source, '')));
    RETURN v_id;
END $$;

CREATE OR REPLACE FUNCTION fraud_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('fraud.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END $$;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION fraud_audit_refuse_change();

-- Retention: rows older than `days` go, oldest first; the first row kept still carries the hash
-- of the last one deleted (verify starts the chain there), and the purge is itself audited.
CREATE OR REPLACE FUNCTION fraud_audit_purge(days integer, p_actor text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_count bigint;
BEGIN
    IF days < 365 THEN
        RAISE EXCEPTION 'audit retention must be at least 365 days (PCI DSS 10.5.1), not %', days;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('fraud_audit_log'));
    PERFORM set_config('fraud.audit_purge', 'on', true);
    DELETE FROM audit_log WHERE at < now() - make_interval(days => days);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    PERFORM set_config('fraud.audit_purge', 'off', true);
    PERFORM fraud_audit_append(p_actor, 'audit.purge', '',
                               jsonb_build_object('deleted', v_count, 'days', days), 'cli');
    RETURN v_count;
END $$;

REVOKE ALL ON audit_log FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_audit_append(text, text, text, jsonb, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_audit_purge(integer, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_audit_append(text, text, text, jsonb, text)
    TO fraud_report_reader, fraud_report_reviewer;
