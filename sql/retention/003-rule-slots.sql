-- 003-rule-slots.sql — retention schema version 3: schedule slots per rule, so that several
-- retentiond daemons can run against one database for availability and still enforce each rule
-- once per slot. Applied by `retentiond migrate` inside one transaction; safe to run twice. Holds
-- rule names, times, host names and backend pids: no personal data.

CREATE TABLE IF NOT EXISTS retention.rule_slots (
        rule text PRIMARY KEY,
        last_started timestamptz NOT NULL,
        host text NOT NULL,
        backend_pid int NOT NULL DEFAULT pg_backend_pid()
);
COMMENT ON TABLE retention.rule_slots IS
        'One row per rule that a daemon has started: when it last started it and where. A daemon '
        'starts a rule only if it holds the rule''s advisory lock and last_started is older than the '
        'rule''s schedule (checked and updated in one statement), so several daemons against one '
        'database enforce each rule once per schedule slot. No personal data.';
COMMENT ON COLUMN retention.rule_slots.rule IS 'Rule name from the policy.';
COMMENT ON COLUMN retention.rule_slots.last_started IS 'When a daemon last started the rule (database clock).';
COMMENT ON COLUMN retention.rule_slots.host IS 'Host name of the machine whose daemon started it.';
COMMENT ON COLUMN retention.rule_slots.backend_pid IS 'PostgreSQL backend pid of that daemon''s session.';

INSERT INTO retention.schema_version (version) VALUES (3) ON CONFLICT (version) DO NOTHING;
