-- A case's alerts say what flagged each (issue 30): the model's decision and the rules' and lists'
-- hits, as the alert email does. A function's result columns cannot change in place: dropped and
-- created again, with the same grants as 046.
DROP FUNCTION IF EXISTS fraud_review_case(text);
CREATE FUNCTION fraud_review_case(of_trans_num text)
RETURNS TABLE (
    case_key text, trans_num text, trans_time timestamptz, trans_local_time timestamp,
    card_last4 char(4), first text, last text, merchant text, category text, amt numeric,
    city text, state text, fraud_probability double precision, model_version text,
    alert_kind text, reasons jsonb, verdict text, claimed_by text,
    is_fraud_pred boolean, rule_hits jsonb
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH card_alerts AS (
        SELECT a.* FROM fraud_case_alerts(
            (SELECT p.card_token FROM payments_scored p WHERE p.trans_num = of_trans_num)) a
    ), the_case AS (
        SELECT ca.case_key FROM card_alerts ca WHERE ca.trans_num = of_trans_num
    )
    SELECT a.case_key, a.trans_num, a.trans_time, a.trans_time AT TIME ZONE fraud_business_tz(),
           a.card_last4, a.first, a.last, a.merchant, a.category, a.amt, p.city, p.state,
           a.fraud_probability, a.model_version, a.alert_kind, p.reasons, a.verdict, cl.analyst,
           p.is_fraud_pred, p.rule_hits
    FROM card_alerts a
    JOIN the_case t ON t.case_key = a.case_key
    JOIN payments_scored p ON p.trans_num = a.trans_num
    LEFT JOIN case_claims cl ON cl.case_key = a.case_key
    ORDER BY a.trans_time, a.trans_num
$$;

REVOKE ALL ON FUNCTION fraud_review_case(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_review_case(text) TO fraud_report_reader;
