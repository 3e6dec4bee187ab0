-- Every email that marks payments alerted (an alert, a digest), by its id: whether a send of it
-- may already have reached the SMTP server. `state` is 'sending' from just before the send
-- (committed on its own) until the commit that marks its payments alerted sets 'sent'; 'refused'
-- when the SMTP server refused it. A send that finds 'sending' follows a send whose outcome is
-- unknown (accepted, then the commit failed): it goes out marked as a possible resend (header
-- and subject) with the same Message-ID, and `resends` counts it.
CREATE TABLE IF NOT EXISTS alert_sends (
    email_id text PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('alert', 'digest')),
    state text NOT NULL CHECK (state IN ('sending', 'sent', 'refused')),
    attempts integer NOT NULL DEFAULT 1,
    resends integer NOT NULL DEFAULT 0,
    first_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_sends_resent ON alert_sends (last_attempt_at) WHERE resends > 0;
