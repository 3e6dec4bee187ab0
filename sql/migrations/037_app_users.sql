-- One identity per person (PCI DSS 8): local accounts with Argon2id hashes (never a password),
-- each with one role. Roles, each with what the one before may do:
--   viewer  the morning report and Model health
--   analyst + To review (verdicts signed with their own name), CSV exports of cardholder data
--   lead    + rules, lists and thresholds
--   admin   + users and the Audit page
-- A person signed in through OpenID Connect has a row too (oidc_subject), with no password.
CREATE TABLE IF NOT EXISTS app_users (
    username text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9._@-]{1,100}$'),
    role text NOT NULL CHECK (role IN ('viewer', 'analyst', 'lead', 'admin')),
    password_hash text,
    must_change_password boolean NOT NULL DEFAULT true,
    oidc_subject text UNIQUE,
    disabled_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The report signs people in as fraud_report_reader: it may read one account's hash, role and
-- state through this function, never the table.
CREATE OR REPLACE FUNCTION fraud_user_for_sign_in(p_username text)
RETURNS TABLE (username text, role text, password_hash text, disabled boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT u.username, u.role, u.password_hash, u.disabled_at IS NOT NULL
    FROM app_users u WHERE u.username = p_username
$$;
-- Whether any account exists (until one does, the report still takes DASHBOARD_USER's login).
CREATE OR REPLACE FUNCTION fraud_users_exist() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM app_users)
$$;
REVOKE ALL ON FUNCTION fraud_users_exist() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_users_exist() TO fraud_report_reader;
REVOKE ALL ON app_users FROM PUBLIC;
REVOKE ALL ON FUNCTION fraud_user_for_sign_in(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fraud_user_for_sign_in(text) TO fraud_report_reader;

-- The admins' database role: what the reviewer role may, plus the accounts (no DELETE: an
-- account is disabled, never removed, so the audit trail's names keep their meaning) and
-- reading the audit trail (never changing it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fraud_report_admin') THEN
        CREATE ROLE fraud_report_admin LOGIN;  -- password set by ops in prod
    END IF;
END
$$;
GRANT fraud_report_reviewer TO fraud_report_admin;
GRANT USAGE ON SCHEMA public TO fraud_report_admin;
GRANT SELECT, INSERT, UPDATE ON app_users TO fraud_report_admin;
GRANT SELECT ON audit_log TO fraud_report_admin;
