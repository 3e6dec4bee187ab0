-- Shadow scores: while a challenger is registered (model_versions, 019), the pipeline also scores
-- each run's payments with it, off the hot path (the DAG's shadow_score task, after load), and
-- keeps its probability here, beside the champion's in payments_scored, for the same payment.
-- A table of its own rather than columns on payments_scored: the hot path's upsert and every
-- report function stay as they are, a payment can be shadowed by successive challengers (one
-- row each: the key), and a shadow row goes with its payment (ON DELETE CASCADE). Upserted, so
-- that a re-run replaces a score instead of doubling it.
CREATE TABLE IF NOT EXISTS shadow_scores (
    trans_num          text NOT NULL REFERENCES payments_scored (trans_num) ON DELETE CASCADE,
    model_version      text NOT NULL REFERENCES model_versions (version),
    fraud_probability  double precision NOT NULL CHECK (fraud_probability BETWEEN 0 AND 1),
    is_fraud_pred      boolean NOT NULL,
    threshold          double precision NOT NULL,
    scored_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trans_num, model_version)
);
CREATE INDEX IF NOT EXISTS shadow_scores_version_idx ON shadow_scores (model_version);

-- Champion and challenger on the same payments, per business day: how many payments were
-- shadow-scored, how many each flagged, how many they agreed on, and, on the payments whose
-- truth is known (an analyst's verdict, else the is_fraud label), the counts behind each
-- one's precision and recall. The report's Model health page reads it as the report role,
-- which reads no table (tests/security/test_report_access.py).
CREATE OR REPLACE FUNCTION fraud_shadow_comparison(since date, until date)
RETURNS TABLE (
    day date, champion_version text, challenger_version text, shadowed bigint,
    champion_flagged bigint, challenger_flagged bigint, agreed bigint, labelled bigint,
    frauds bigint, champion_flagged_labelled bigint, champion_caught bigint,
    challenger_flagged_labelled bigint, challenger_caught bigint
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH pairs AS (
        SELECT (p.trans_time AT TIME ZONE fraud_business_tz())::date AS day,
               p.model_version AS champion_version, s.model_version AS challenger_version,
               p.is_fraud_pred AS champion, s.is_fraud_pred AS challenger,
               CASE WHEN v.verdict IS NOT NULL THEN v.verdict = 'confirmed_fraud'
                    WHEN p.is_fraud IS NOT NULL THEN p.is_fraud = 1 END AS truth
        FROM shadow_scores s
        JOIN payments_scored p ON p.trans_num = s.trans_num
        LEFT JOIN v_alert_verdicts v ON v.trans_num = s.trans_num
        WHERE p.trans_time >= ((since + 1)::timestamp AT TIME ZONE fraud_business_tz())
          AND p.trans_time < ((until + 1)::timestamp AT TIME ZONE fraud_business_tz())
    )
    SELECT day, champion_version, challenger_version, count(*),
           count(*) FILTER (WHERE champion), count(*) FILTER (WHERE challenger),
           count(*) FILTER (WHERE champion = challenger),
           count(truth), count(*) FILTER (WHERE truth),
           count(truth) FILTER (WHERE champion), count(*) FILTER (WHERE truth AND champion),
           count(truth) FILTER (WHERE challenger), count(*) FILTER (WHERE truth AND challenger)
    FROM pairs
    GROUP BY day, champion_version, challenger_version
    ORDER BY day, champion_version, challenger_version
$$;

REVOKE EXECUTE ON FUNCTION fraud_shadow_comparison(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_shadow_comparison(date, date) TO fraud_report_reader;
