-- The review queue as cases (issue 30): one case per card episode, found, filtered and paged in
-- the database, claimed by one analyst at a time.
--
-- An episode is a card's run of alerts (payments flagged by the model, a rule or a block list)
-- with no gap longer than 7 days between one and the next; its case is named by its first alert's trans_num (`case_key`), so the page
-- acts on a case without ever seeing the card's token. A case is open while one of its alerts
-- has no verdict; a verdict on one alert does not hide the others.

-- Every alert with its case and its verdict in force. Internal (not SECURITY DEFINER, granted to
-- nobody): plain SQL, so the planner inlines it and pushes a card's filter into the scan.
CREATE OR REPLACE FUNCTION fraud_case_alerts(
    of_card text DEFAULT NULL, active_since timestamptz DEFAULT NULL, found_by text DEFAULT NULL
)
RETURNS TABLE (
    case_key text, trans_num text, card_token text, trans_time timestamptz, card_last4 char(4),
    first text, last text, merchant text, category text, amt numeric,
    fraud_probability double precision, model_version text, alert_kind text, verdict text
)
LANGUAGE sql STABLE AS $$
    -- The episodes are found on narrow rows (the sorts stay in memory), then the alerts' other
    -- columns are joined back.
    WITH alerts AS (
        SELECT p.trans_num, p.card_token, p.trans_time,
               CASE WHEN p.trans_time - lag(p.trans_time) OVER card <= interval '7 days'
                    THEN 0 ELSE 1 END AS starts
        FROM payments_scored p
        WHERE (p.is_fraud_pred OR p.rule_flagged) AND (of_card IS NULL OR p.card_token = of_card)
          -- only cards alerted since `active_since` can have a case whose latest alert is
          AND (active_since IS NULL OR p.card_token IN (
              SELECT r.card_token FROM payments_scored r
              WHERE (r.is_fraud_pred OR r.rule_flagged) AND r.trans_time >= active_since))
          -- and only cards with an alert that the search finds
          AND (found_by IS NULL OR p.card_token IN (
              SELECT r.card_token FROM payments_scored r
              WHERE (r.is_fraud_pred OR r.rule_flagged) AND (r.card_last4 = found_by OR r.trans_num = found_by
                  OR (r.first || ' ' || r.last) ILIKE '%' || found_by || '%'
                  OR r.merchant ILIKE '%' || found_by || '%')))
        WINDOW card AS (PARTITION BY p.card_token ORDER BY p.trans_time, p.trans_num)
    ), numbered AS (
        SELECT a.*, sum(a.starts) OVER (PARTITION BY a.card_token
                                        ORDER BY a.trans_time, a.trans_num) AS episode
        FROM alerts a
    ), keyed AS (
        SELECT first_value(n.trans_num) OVER (PARTITION BY n.card_token, n.episode
                                              ORDER BY n.trans_time, n.trans_num) AS case_key,
               n.trans_num
        FROM numbered n
    )
    SELECT k.case_key, p.trans_num, p.card_token, p.trans_time, p.card_last4, p.first, p.last,
           p.merchant, p.category, p.amt, p.fraud_probability, p.model_version, p.alert_kind,
           v.verdict
    FROM keyed k
    JOIN payments_scored p ON p.trans_num = k.trans_num
    LEFT JOIN v_alert_verdicts v ON v.trans_num = k.trans_num
$$;
REVOKE ALL ON FUNCTION fraud_case_alerts(text, timestamptz, text) FROM PUBLIC;

-- Who works a case: one analyst at a time (claimed by themselves, or assigned by a lead).
CREATE TABLE IF NOT EXISTS case_claims (
    case_key text PRIMARY KEY REFERENCES payments_scored (trans_num) ON DELETE CASCADE,
    analyst text NOT NULL CHECK (length(analyst) BETWEEN 1 AND 200),
    assigned_by text NOT NULL CHECK (length(assigned_by) BETWEEN 1 AND 200),
    claimed_at timestamptz NOT NULL DEFAULT now()
);

-- One page of cases, filtered; `matching` counts every case the filters keep, beyond the page.
-- Filters: since (the case's latest alert at or after), status ('open', 'reviewed', 'all'),
-- kind ('live': a case with an alert mailed on its own; 'digest': one counted in a catch-up
-- digest only), model version, category, amount and score bounds (some alert of the case
-- within them), search (the card's last 4, the cardholder, a merchant, a transaction id).
-- Order: live cases first, then the riskiest, then the latest.
CREATE OR REPLACE FUNCTION fraud_review_cases(
    since timestamptz DEFAULT NULL, status text DEFAULT 'open', kind text DEFAULT NULL,
    model text DEFAULT NULL, of_category text DEFAULT NULL, amount_min numeric DEFAULT NULL,
    amount_max numeric DEFAULT NULL, score_min double precision DEFAULT NULL,
    search text DEFAULT NULL, page_size integer DEFAULT 25, page_offset integer DEFAULT 0
)
RETURNS TABLE (
    case_key text, matching bigint, card_last4 char(4), first text, last text, alerts bigint,
    open_alerts bigint, live boolean, top_probability double precision,
    first_time timestamptz, last_time timestamptz, last_local_time timestamp,
    merchants text, claimed_by text, claimed_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET work_mem = '64MB'
AS $$
    WITH cases AS (
        SELECT a.case_key, min(a.card_last4) AS card_last4, min(a.first) AS first,
               min(a.last) AS last, count(*) AS alerts,
               count(*) FILTER (WHERE a.verdict IS NULL) AS open_alerts,
               bool_or(coalesce(a.alert_kind, 'alert') = 'alert') AS live,
               max(a.fraud_probability) AS top_probability,
               min(a.trans_time) AS first_time, max(a.trans_time) AS last_time,
               array_agg(a.trans_num) AS trans_nums,
               bool_or((model IS NULL OR a.model_version = model)
                   AND (of_category IS NULL OR a.category = of_category)
                   AND (amount_min IS NULL OR a.amt >= amount_min)
                   AND (amount_max IS NULL OR a.amt <= amount_max)
                   AND (score_min IS NULL OR a.fraud_probability >= score_min)) AS alert_matches,
               bool_or(search IS NULL
                   OR a.card_last4 = search
                   OR a.trans_num = search
                   OR (a.first || ' ' || a.last) ILIKE '%' || search || '%'
                   OR a.merchant ILIKE '%' || search || '%') AS search_matches
        FROM fraud_case_alerts(NULL, since, search) a
        GROUP BY a.case_key
    ), kept AS (
        SELECT c.*, count(*) OVER () AS matching
        FROM cases c
        WHERE c.alert_matches AND c.search_matches
          AND (since IS NULL OR c.last_time >= since)
          AND (status = 'all' OR (status = 'open') = (c.open_alerts > 0))
          AND (kind IS NULL OR (kind = 'live' AND c.live) OR (kind = 'digest' AND NOT c.live))
    )
    SELECT k.case_key, k.matching, k.card_last4, k.first, k.last, k.alerts, k.open_alerts,
           k.live, k.top_probability, k.first_time, k.last_time,
           k.last_time AT TIME ZONE fraud_business_tz(),
           (SELECT string_agg(DISTINCT p.merchant, ' · ') FROM payments_scored p
            WHERE p.trans_num = ANY (k.trans_nums)),
           cl.analyst, cl.claimed_at
    FROM (SELECT * FROM kept
          ORDER BY live DESC, top_probability DESC, last_time DESC, case_key
          LIMIT page_size OFFSET page_offset) k
    LEFT JOIN case_claims cl ON cl.case_key = k.case_key
    ORDER BY k.live DESC, k.top_probability DESC, k.last_time DESC, k.case_key
$$;

-- What the queue's filters offer: the alerts' model versions and categories, the largest amount.
CREATE OR REPLACE FUNCTION fraud_review_case_options()
RETURNS TABLE (models text[], categories text[], max_amount numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT p.model_version ORDER BY p.model_version), '{}'),
           coalesce(array_agg(DISTINCT p.category ORDER BY p.category), '{}'),
           coalesce(max(p.amt), 0)
    FROM payments_scored p
    WHERE (p.is_fraud_pred OR p.rule_flagged)
$$;

-- The case of one alert (any of its trans_nums): its alerts, oldest first, with their verdicts.
CREATE OR REPLACE FUNCTION fraud_review_case(of_trans_num text)
RETURNS TABLE (
    case_key text, trans_num text, trans_time timestamptz, trans_local_time timestamp,
    card_last4 char(4), first text, last text, merchant text, category text, amt numeric,
    city text, state text, fraud_probability double precision, model_version text,
    alert_kind text, reasons jsonb, verdict text, claimed_by text
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
           a.fraud_probability, a.model_version, a.alert_kind, p.reasons, a.verdict, cl.analyst
    FROM card_alerts a
    JOIN the_case t ON t.case_key = a.case_key
    JOIN payments_scored p ON p.trans_num = a.trans_num
    LEFT JOIN case_claims cl ON cl.case_key = a.case_key
    ORDER BY a.trans_time, a.trans_num
$$;

-- Every review of a case's alerts, superseded ones included (notes are kept), newest first.
CREATE OR REPLACE FUNCTION fraud_review_case_notes(of_case text)
RETURNS TABLE (
    trans_num text, verdict text, note text, analyst text, reviewed_at timestamptz
)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT r.trans_num, r.verdict, r.note, r.analyst, r.reviewed_at
    FROM fraud_review_case(of_case) c
    JOIN alert_reviews r ON r.trans_num = c.trans_num
    ORDER BY r.reviewed_at DESC, r.review_id DESC
$$;

-- Claim a case: `analyst` takes it unless someone else holds it; `force` (a lead assigning it,
-- `by` naming the lead) gives it to `analyst` whoever holds it. Returns who holds it after.
CREATE OR REPLACE FUNCTION fraud_claim_case(of_case text, analyst text, by_whom text, force boolean)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    holder text;
BEGIN
    IF force THEN
        INSERT INTO case_claims AS c (case_key, analyst, assigned_by)
        VALUES (of_case, fraud_claim_case.analyst, by_whom)
        ON CONFLICT (case_key) DO UPDATE
            SET analyst = excluded.analyst, assigned_by = excluded.assigned_by,
                claimed_at = now();
    ELSE
        INSERT INTO case_claims (case_key, analyst, assigned_by)
        VALUES (of_case, fraud_claim_case.analyst, by_whom)
        ON CONFLICT (case_key) DO NOTHING;
    END IF;
    SELECT c.analyst INTO holder FROM case_claims c WHERE c.case_key = of_case;
    RETURN holder;
END $$;

-- Release a case: only its holder (or, with `force`, a lead) may. Returns whether it was released.
CREATE OR REPLACE FUNCTION fraud_release_case(of_case text, analyst text, force boolean)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    released integer;
BEGIN
    DELETE FROM case_claims c
    WHERE c.case_key = of_case AND (force OR c.analyst = fraud_release_case.analyst);
    GET DIAGNOSTICS released = ROW_COUNT;
    RETURN released > 0;
END $$;

REVOKE ALL ON case_claims FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_review_cases(timestamptz, text, text, text, text, numeric, numeric,
    double precision, text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_review_case(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_review_case_options() FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_review_case_notes(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_claim_case(text, text, text, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_release_case(text, text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_review_cases(timestamptz, text, text, text, text, numeric, numeric,
    double precision, text, integer, integer) TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_review_case(text) TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_review_case_options() TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_review_case_notes(text) TO fraud_report_reader;
GRANT EXECUTE ON FUNCTION fraud_claim_case(text, text, text, boolean) TO fraud_report_reviewer;
GRANT EXECUTE ON FUNCTION fraud_release_case(text, text, boolean) TO fraud_report_reviewer;
