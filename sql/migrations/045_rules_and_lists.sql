-- Rules and block/allow lists beside the model (issue 30 item 3), written by leads.
-- A rule is an expression of the rules language (fraud_pipeline.rules.language), versioned: each
-- edit is a new row of fraud_rule_versions and sends the rule back to draft. Its life cycle:
-- draft -> (backtest of its current version) -> shadow (evaluated and recorded, not alerted)
-- -> enabled (alerts) -> disabled. List entries are never deleted: removing one stamps it.
CREATE TABLE IF NOT EXISTS fraud_rules (
    rule_id     bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    expression  text NOT NULL CHECK (length(expression) BETWEEN 1 AND 2000),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    mode        text NOT NULL DEFAULT 'draft'
                CHECK (mode IN ('draft', 'shadow', 'enabled', 'disabled')),
    created_by  text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 200),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fraud_rules_live ON fraud_rules (mode)
    WHERE mode IN ('shadow', 'enabled');

CREATE TABLE IF NOT EXISTS fraud_rule_versions (
    rule_id     bigint NOT NULL REFERENCES fraud_rules (rule_id),
    version     integer NOT NULL,
    expression  text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

-- Every mode change, in order (the audit trail has them too, signed by the chain).
CREATE TABLE IF NOT EXISTS fraud_rule_events (
    event_id  bigserial PRIMARY KEY,
    rule_id   bigint NOT NULL REFERENCES fraud_rules (rule_id),
    version   integer NOT NULL,
    mode      text NOT NULL,
    actor     text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);

-- A backtest's figures (fraud_pipeline.rules.backtest): what the rule would have done.
CREATE TABLE IF NOT EXISTS fraud_rule_backtests (
    backtest_id bigserial PRIMARY KEY,
    rule_id     bigint NOT NULL REFERENCES fraud_rules (rule_id),
    version     integer NOT NULL,
    days        integer NOT NULL CHECK (days BETWEEN 1 AND 366),
    since       timestamptz NOT NULL,
    until       timestamptz NOT NULL,
    figures     jsonb NOT NULL,
    run_by      text NOT NULL,
    run_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fraud_rule_backtests_rule ON fraud_rule_backtests (rule_id, version);

CREATE TABLE IF NOT EXISTS fraud_list_entries (
    entry_id    bigserial PRIMARY KEY,
    list        text NOT NULL CHECK (list IN ('block', 'allow')),
    field       text NOT NULL CHECK (field IN ('merchant', 'card_token', 'category')),
    value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 200),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),
    added_by    text NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    removed_by  text,
    removed_at  timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS fraud_list_entries_live
    ON fraud_list_entries (list, field, value) WHERE removed_at IS NULL;
-- The pipeline looks a chunk's merchants, cards and categories up by value (a few index probes
-- per payment, however long the lists grow).
CREATE INDEX IF NOT EXISTS fraud_list_entries_value
    ON fraud_list_entries (value) WHERE removed_at IS NULL;

-- What the rules and lists said about each payment: every hit (shadow ones too), and whether
-- they alert it (an enabled rule or a block list, and no allow list). The model's own decision
-- stays is_fraud_pred; the alert step sends what either flags.
ALTER TABLE payments_scored
    ADD COLUMN IF NOT EXISTS rule_hits jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN IF NOT EXISTS rule_flagged boolean NOT NULL DEFAULT false;
-- The archive keeps payments_scored's columns in order, archived_at last (tests/storage): the
-- new columns go before a re-added archived_at (one rewrite of the archive, once).
ALTER TABLE payments_scored_archive RENAME COLUMN archived_at TO archived_at_before_045;
ALTER TABLE payments_scored_archive
    ADD COLUMN rule_hits jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN rule_flagged boolean NOT NULL DEFAULT false,
    ADD COLUMN archived_at timestamptz NOT NULL DEFAULT now();
UPDATE payments_scored_archive SET archived_at = archived_at_before_045;
ALTER TABLE payments_scored_archive DROP COLUMN archived_at_before_045;
CREATE INDEX IF NOT EXISTS payments_scored_rule_pending ON payments_scored (trans_time)
    WHERE rule_flagged AND alerted_at IS NULL;

-- The leads' role: what the reviewer may, plus writing rules and lists and reading the stored
-- payments and verdicts a backtest counts. No DELETE anywhere: history is kept.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fraud_report_lead') THEN
        CREATE ROLE fraud_report_lead LOGIN;  -- password set by ops in prod
    END IF;
END
$$;
GRANT fraud_report_reviewer TO fraud_report_lead;
GRANT USAGE ON SCHEMA public TO fraud_report_lead;
GRANT SELECT, INSERT, UPDATE ON fraud_rules, fraud_list_entries TO fraud_report_lead;
GRANT SELECT, INSERT ON fraud_rule_versions, fraud_rule_events, fraud_rule_backtests
    TO fraud_report_lead;
GRANT USAGE ON SEQUENCE fraud_rules_rule_id_seq, fraud_rule_events_event_id_seq,
    fraud_rule_backtests_backtest_id_seq, fraud_list_entries_entry_id_seq TO fraud_report_lead;
GRANT SELECT ON payments_scored, alert_reviews, v_alert_verdicts TO fraud_report_lead;
GRANT fraud_report_lead TO fraud_report_admin;
