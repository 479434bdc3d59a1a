-- 001-init.sql — retention schema version 1: hold registry, audit trail, schema version.
-- Applied by `retentiond migrate` inside one transaction after it has checked the version; safe to
-- run twice. Must never contain transaction control, data from the application, or personal data.

CREATE SCHEMA IF NOT EXISTS retention;
COMMENT ON SCHEMA retention IS
        'retentiond''s own schema: the hold registry and the audit trail of enforcement. '
        'Holds counts and identifiers only; no personal data and no row contents are ever stored here.';

-- Schema version ---------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS retention.schema_version (
        version int PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE retention.schema_version IS
        'One row per migration of the retention schema that has been applied; the highest version is '
        'the schema version. retentiond refuses to run against a version it does not know. No personal data.';
COMMENT ON COLUMN retention.schema_version.version IS 'Migration number (sql/retention/NNN-*.sql).';
COMMENT ON COLUMN retention.schema_version.applied_at IS 'When the migration was applied.';
COMMENT ON COLUMN retention.schema_version.applied_by IS 'Database role that applied it (a role name, not a person''s data).';

-- Audit trail: runs ------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS retention.runs (
        id bigserial PRIMARY KEY,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        host text NOT NULL,
        version text NOT NULL,
        mode text NOT NULL CHECK (mode IN ('run', 'dry-run', 'daemon')),
        outcome text NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'success', 'partial', 'failed', 'interrupted')),
        backend_pid int NOT NULL DEFAULT pg_backend_pid(),
        rules_total int NOT NULL DEFAULT 0,
        rules_failed int NOT NULL DEFAULT 0
);
COMMENT ON TABLE retention.runs IS
        'Audit trail: one row per enforcement run (start, end, host, version, mode, outcome). '
        'Counts only; no personal data, no row contents.';
COMMENT ON COLUMN retention.runs.id IS 'Run number.';
COMMENT ON COLUMN retention.runs.started_at IS 'When the run started (database clock).';
COMMENT ON COLUMN retention.runs.finished_at IS 'When the run ended; NULL while running or if the engine died.';
COMMENT ON COLUMN retention.runs.host IS 'Host name of the machine the engine ran on.';
COMMENT ON COLUMN retention.runs.version IS 'retentiond version that ran.';
COMMENT ON COLUMN retention.runs.mode IS 'run (from the terminal), dry-run (audit), daemon (scheduled by the service).';
COMMENT ON COLUMN retention.runs.outcome IS
        'running; success (every rule succeeded); partial (some rule failed or tripped the breaker); '
        'failed (nothing could be enforced); interrupted (stopped by a signal or lost connection).';
COMMENT ON COLUMN retention.runs.backend_pid IS
        'PostgreSQL backend pid of the engine''s session: tells whether a run still marked running is alive.';
COMMENT ON COLUMN retention.runs.rules_total IS 'Number of rules the run attempted.';
COMMENT ON COLUMN retention.runs.rules_failed IS 'Number of those rules that failed or tripped the breaker.';

-- Audit trail: one row per rule in a run ---------------------------------------------------------

CREATE TABLE IF NOT EXISTS retention.rule_runs (
        id bigserial PRIMARY KEY,
        run_id bigint NOT NULL REFERENCES retention.runs,
        rule text NOT NULL,
        clause text NOT NULL,
        table_name text NOT NULL,
        action text NOT NULL CHECK (action IN ('delete', 'anonymise')),
        cutoff timestamptz,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        rows_deleted bigint NOT NULL DEFAULT 0,
        rows_anonymised bigint NOT NULL DEFAULT 0,
        rows_held bigint NOT NULL DEFAULT 0,
        rows_skipped bigint NOT NULL DEFAULT 0,
        rows_skipped_locked bigint NOT NULL DEFAULT 0,
        rows_skipped_fk bigint NOT NULL DEFAULT 0,
        rows_overdue bigint NOT NULL DEFAULT 0,
        partitions_dropped int NOT NULL DEFAULT 0,
        batches int NOT NULL DEFAULT 0,
        outcome text NOT NULL DEFAULT 'running'
                CHECK (outcome IN ('running', 'success', 'failed', 'breaker', 'interrupted', 'skipped')),
        sqlstate text,
        error text
);
CREATE INDEX IF NOT EXISTS rule_runs_run_id_idx ON retention.rule_runs (run_id);
COMMENT ON TABLE retention.rule_runs IS
        'Audit trail: one row per rule enforced in a run: what was done to which table under which clause, '
        'as counts. No personal data, no row contents, no key values.';
COMMENT ON COLUMN retention.rule_runs.run_id IS 'The run (retention.runs) this rule ran in.';
COMMENT ON COLUMN retention.rule_runs.rule IS 'Rule name from the policy.';
COMMENT ON COLUMN retention.rule_runs.clause IS 'The privacy-policy clause the rule enforces, as cited in the policy.';
COMMENT ON COLUMN retention.rule_runs.table_name IS 'Quoted, schema-qualified name of the table the rule acts on.';
COMMENT ON COLUMN retention.rule_runs.action IS 'delete or anonymise.';
COMMENT ON COLUMN retention.rule_runs.cutoff IS
        'now() - retain, computed by PostgreSQL once for this rule run: rows strictly older were due.';
COMMENT ON COLUMN retention.rule_runs.started_at IS 'When the rule started.';
COMMENT ON COLUMN retention.rule_runs.finished_at IS 'When the rule ended.';
COMMENT ON COLUMN retention.rule_runs.rows_deleted IS 'Rows deleted (including rows in dropped partitions).';
COMMENT ON COLUMN retention.rule_runs.rows_anonymised IS 'Rows anonymised (including by a while_held action).';
COMMENT ON COLUMN retention.rule_runs.rows_held IS 'Due rows kept because a hold protects them (per hold: retention.rule_run_holds).';
COMMENT ON COLUMN retention.rule_runs.rows_skipped IS 'Due rows left for a later run, for any reason (sum of the two below and others).';
COMMENT ON COLUMN retention.rule_runs.rows_skipped_locked IS 'Due rows skipped because the application held a lock on them.';
COMMENT ON COLUMN retention.rule_runs.rows_skipped_fk IS 'Due rows skipped because a RESTRICT/NO ACTION foreign key refers to them (per table: retention.rule_run_fk).';
COMMENT ON COLUMN retention.rule_runs.rows_overdue IS 'Rows past the rule''s deadline when the rule started: a compliance breach to report.';
COMMENT ON COLUMN retention.rule_runs.partitions_dropped IS 'Partitions detached and dropped whole instead of deleting their rows.';
COMMENT ON COLUMN retention.rule_runs.batches IS 'Number of batches (short transactions) the rule ran.';
COMMENT ON COLUMN retention.rule_runs.outcome IS
        'running; success; failed (error below); breaker (circuit breaker refused: too many rows due); '
        'interrupted; skipped (not run, e.g. its table is missing).';
COMMENT ON COLUMN retention.rule_runs.sqlstate IS 'SQLSTATE of the error that failed the rule, if any.';
COMMENT ON COLUMN retention.rule_runs.error IS
        'Error message that failed the rule. The engine writes messages that name tables, columns and '
        'counts, never row contents or key values.';

CREATE TABLE IF NOT EXISTS retention.rule_run_holds (
        rule_run_id bigint REFERENCES retention.rule_runs,
        hold text NOT NULL,
        rows bigint NOT NULL,
        PRIMARY KEY (rule_run_id, hold)
);
COMMENT ON TABLE retention.rule_run_holds IS
        'Audit trail: how many due rows of a rule run each hold kept. Counts only; no personal data.';
COMMENT ON COLUMN retention.rule_run_holds.rule_run_id IS 'The rule run (retention.rule_runs).';
COMMENT ON COLUMN retention.rule_run_holds.hold IS 'Hold name from the policy (e.g. tax-records, legal).';
COMMENT ON COLUMN retention.rule_run_holds.rows IS 'Due rows this hold kept (a row held by two holds counts under each).';

CREATE TABLE IF NOT EXISTS retention.rule_run_fk (
        rule_run_id bigint REFERENCES retention.rule_runs,
        referencing_table text NOT NULL,
        rows bigint NOT NULL,
        PRIMARY KEY (rule_run_id, referencing_table)
);
COMMENT ON TABLE retention.rule_run_fk IS
        'Audit trail: due rows of a rule run that a RESTRICT/NO ACTION foreign key kept, by referencing table. '
        'Counts only; no personal data.';
COMMENT ON COLUMN retention.rule_run_fk.rule_run_id IS 'The rule run (retention.rule_runs).';
COMMENT ON COLUMN retention.rule_run_fk.referencing_table IS 'Quoted, schema-qualified name of the table whose rows still refer to the due rows.';
COMMENT ON COLUMN retention.rule_run_fk.rows IS 'Due rows that could not be deleted because of it.';

-- Hold registry ----------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS retention.holds (
        id bigserial PRIMARY KEY,
        subject text NOT NULL,
        subject_key text NOT NULL,
        reason text NOT NULL CHECK (reason <> ''),
        placed_by text NOT NULL,
        placed_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz,
        released_at timestamptz,
        released_by text,
        CHECK ((released_at IS NULL) = (released_by IS NULL))
);
CREATE INDEX IF NOT EXISTS holds_active_idx ON retention.holds (subject, subject_key)
        WHERE released_at IS NULL;
COMMENT ON TABLE retention.holds IS
        'Hold registry: an operator''s hold on a subject (e.g. a legal hold on an account). A hold always '
        'beats deletion. Append-only: rows are never deleted; a release is recorded once, in place. '
        'Stores the subject''s key only, no personal data.';
COMMENT ON COLUMN retention.holds.id IS 'Hold number (retentiond hold release ID).';
COMMENT ON COLUMN retention.holds.subject IS 'Subject name from the policy (e.g. account).';
COMMENT ON COLUMN retention.holds.subject_key IS
        'Key of the held subject as text, e.g. the account id: what the operator chose to hold. '
        'A key, not personal data such as a name or an e-mail address.';
COMMENT ON COLUMN retention.holds.reason IS 'Why the hold was placed (e.g. a case reference). Must not contain personal data.';
COMMENT ON COLUMN retention.holds.placed_by IS 'Operator or role that placed the hold.';
COMMENT ON COLUMN retention.holds.placed_at IS 'When the hold was placed.';
COMMENT ON COLUMN retention.holds.expires_at IS 'When the hold lapses by itself; NULL: until released.';
COMMENT ON COLUMN retention.holds.released_at IS 'When the hold was released; NULL while not released. Set once.';
COMMENT ON COLUMN retention.holds.released_by IS 'Operator or role that released it; set together with released_at.';

CREATE TABLE IF NOT EXISTS retention.hold_events (
        id bigserial PRIMARY KEY,
        hold_id bigint NOT NULL REFERENCES retention.holds,
        event text NOT NULL CHECK (event IN ('placed', 'released')),
        at timestamptz NOT NULL DEFAULT now(),
        by text NOT NULL
);
CREATE INDEX IF NOT EXISTS hold_events_hold_id_idx ON retention.hold_events (hold_id);
COMMENT ON TABLE retention.hold_events IS
        'Audit trail of the hold registry: every placing and release of a hold. Append-only. No personal data.';
COMMENT ON COLUMN retention.hold_events.hold_id IS 'The hold (retention.holds).';
COMMENT ON COLUMN retention.hold_events.event IS 'placed or released.';
COMMENT ON COLUMN retention.hold_events.at IS 'When it happened.';
COMMENT ON COLUMN retention.hold_events.by IS 'Operator or role that did it.';

-- Append-only guards -----------------------------------------------------------------------------
-- Triggers, so that they hold for every role but a superuser disabling them on purpose; TRUNCATE
-- is refused as well, since it bypasses row triggers.

CREATE OR REPLACE FUNCTION retention.holds_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
        IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
                RAISE EXCEPTION 'retention.holds is append-only: % is not allowed', TG_OP
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'Release a hold instead: retentiond hold release ID.';
        END IF;

        -- UPDATE: only recording a release, once, and nothing else.
        IF OLD.released_at IS NOT NULL THEN
                RAISE EXCEPTION 'hold % was already released at %', OLD.id, OLD.released_at
                        USING ERRCODE = 'check_violation',
                              HINT = 'A release is recorded once; place a new hold instead.';
        END IF;
        IF NEW.released_at IS NULL OR NEW.released_by IS NULL THEN
                RAISE EXCEPTION 'retention.holds is append-only: an update may only record a release'
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = format('Hold %s: released_at and released_by must both be set.', OLD.id),
                              HINT = 'Release a hold with: retentiond hold release ID.';
        END IF;
        IF (NEW.id, NEW.subject, NEW.subject_key, NEW.reason, NEW.placed_by, NEW.placed_at, NEW.expires_at)
           IS DISTINCT FROM
           (OLD.id, OLD.subject, OLD.subject_key, OLD.reason, OLD.placed_by, OLD.placed_at, OLD.expires_at) THEN
                RAISE EXCEPTION 'retention.holds is append-only: an update may only set released_at and released_by'
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = format('Hold %s: another column was changed.', OLD.id),
                              HINT = 'Release the hold and place a new one instead.';
        END IF;
        RETURN NEW;
END;
$$;
COMMENT ON FUNCTION retention.holds_append_only() IS
        'Trigger: keeps retention.holds append-only (no DELETE/TRUNCATE; UPDATE only records a release once).';

CREATE OR REPLACE FUNCTION retention.hold_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
        RAISE EXCEPTION 'retention.hold_events is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Events are only ever inserted.';
END;
$$;
COMMENT ON FUNCTION retention.hold_events_append_only() IS
        'Trigger: keeps retention.hold_events append-only (no UPDATE, DELETE or TRUNCATE).';

CREATE OR REPLACE TRIGGER holds_append_only
        BEFORE UPDATE OR DELETE ON retention.holds
        FOR EACH ROW EXECUTE FUNCTION retention.holds_append_only();
CREATE OR REPLACE TRIGGER holds_no_truncate
        BEFORE TRUNCATE ON retention.holds
        FOR EACH STATEMENT EXECUTE FUNCTION retention.holds_append_only();
CREATE OR REPLACE TRIGGER hold_events_append_only
        BEFORE UPDATE OR DELETE ON retention.hold_events
        FOR EACH ROW EXECUTE FUNCTION retention.hold_events_append_only();
CREATE OR REPLACE TRIGGER hold_events_no_truncate
        BEFORE TRUNCATE ON retention.hold_events
        FOR EACH STATEMENT EXECUTE FUNCTION retention.hold_events_append_only();

INSERT INTO retention.schema_version (version) VALUES (1) ON CONFLICT (version) DO NOTHING;
