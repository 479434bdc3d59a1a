-- 005-safety.sql — retention schema version 5: safety at the edges. The engine role writes the
-- audit trail and the hold registry only through narrow functions, every count is checked, the
-- append-only guards also refuse a forged INSERT, a hold's release always leaves its event, keys
-- are canonical, and rows removed or changed by a cascade are counted and sealed. Applied by
-- `retentiond migrate` inside one transaction after it has checked the version; safe to run twice.
-- No transaction control, no application data and no personal data here.

-- ==== Section A: hold keys (canonical keys) =========================================================
-- A hold is matched at run time by text: its subject_key against (row's key column)::text. So a
-- key is stored as the canonical text of the subject's key column type ("42", never "042" or
-- " 7"); `retentiond hold add` normalises every key through that type and `retentiond migrate -p`
-- reports the holds whose key is not canonical. As a second line of defence the engine's hold
-- predicate also matches a row by the canonical text of a non-canonical key still in force
-- (retention.hold_keys_noncanonical), so a raw "042" hold protects account 42's rows too.

-- The type a key is read as: the column's type; for string types without their length limit, so
-- that a key too long for varchar(n) is never cut to another, shorter key.
CREATE OR REPLACE FUNCTION retention.hold_key_type(p_table regclass, p_column name) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
        SELECT format_type(a.atttypid, CASE WHEN t.typcategory = 'S' THEN -1 ELSE a.atttypmod END)
        FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION retention.hold_key_type(regclass, name) IS
        'The type a hold key of a subject is read as: the type of the subject table''s key column '
        '(string types without their length limit). NULL when there is no such column.';

-- The canonical text of a hold key: (key::type)::text. Raises PostgreSQL's own error (class 22)
-- for a key the type rejects; NULL when the column does not exist.
CREATE OR REPLACE FUNCTION retention.hold_key_canonical(p_key text, p_table regclass, p_column name) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
        t text := retention.hold_key_type(p_table, p_column);
        r text;
BEGIN
        IF t IS NULL OR p_key IS NULL THEN
                RETURN NULL;
        END IF;
        EXECUTE format('SELECT ($1::%s)::text', t) INTO r USING p_key;
        RETURN r;
END;
$$;
COMMENT ON FUNCTION retention.hold_key_canonical(text, regclass, name) IS
        'Canonical text of a hold key for a subject whose key is column p_column of p_table: the key '
        'read as that column''s type and written back as text. Raises an error (class 22) for a key '
        'the type rejects.';

-- The same, but NULL for a key the type rejects: for matching one hold to one row (explain).
CREATE OR REPLACE FUNCTION retention.hold_key_as_read(p_key text, p_table regclass, p_column name) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
        RETURN retention.hold_key_canonical(p_key, p_table, p_column);
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        RETURN NULL;
END;
$$;
COMMENT ON FUNCTION retention.hold_key_as_read(text, regclass, name) IS
        'retention.hold_key_canonical, but NULL for a key the type rejects.';

-- Keys of holds in force at p_at on a subject that are not canonical, as their canonical text; keys
-- the type rejects are left out (their raw text is all they can match). Usually no rows at all: the
-- engine calls it once per statement, so the normal case is one query over the subject's holds.
-- p_at is the caller's now(): "in force" must mean the same instant as in the statement around it
-- (the function's own now() would be resolved under its pinned search_path).
CREATE OR REPLACE FUNCTION retention.hold_keys_noncanonical(p_subject text, p_table regclass, p_column name,
                                                             p_at timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql STABLE ROWS 1
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
        t text := retention.hold_key_type(p_table, p_column);
        keys text[];
        k text;
        c text;
BEGIN
        IF t IS NULL THEN
                RETURN;
        END IF;
        SELECT array_agg(DISTINCT h.subject_key) INTO keys
        FROM retention.holds h
        WHERE h.subject = p_subject AND h.released_at IS NULL AND (h.expires_at IS NULL OR h.expires_at > p_at);
        IF keys IS NULL THEN
                RETURN;
        END IF;
        BEGIN
                -- All at once; on the first key the type rejects, one by one below.
                EXECUTE format('SELECT array_agg(c) FROM (SELECT (k::%s)::text AS c, k FROM unnest($1) k) x'
                               ' WHERE c IS DISTINCT FROM k', t)
                        INTO keys USING keys;
                IF keys IS NOT NULL THEN
                        RETURN QUERY SELECT unnest(keys);
                END IF;
                RETURN;
        EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
                NULL;
        END;
        FOREACH k IN ARRAY keys LOOP
                BEGIN
                        EXECUTE format('SELECT ($1::%s)::text', t) INTO c USING k;
                        IF c IS DISTINCT FROM k THEN
                                RETURN NEXT c;
                        END IF;
                EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
                        NULL;
                END;
        END LOOP;
END;
$$;
COMMENT ON FUNCTION retention.hold_keys_noncanonical(text, regclass, name, timestamptz) IS
        'Canonical text of every key of a hold in force at p_at on subject p_subject that is not already '
        'canonical (see retention.hold_key_canonical); keys the type rejects are left out. Used by the '
        'engine''s hold predicate so that a non-canonical key still protects its subject.';

-- ==== end of section A =============================================================================

-- ==== Section C: the trust boundary (narrow write functions, CHECKs, guards) ========================

-- The engine's role writes retention.* only through the functions below (SECURITY DEFINER,
-- owned by the role that migrates, search_path pinned): one per write the engine and the CLI
-- make. sql/retentiond-role.sql grants EXECUTE on them and SELECT on the tables, and no INSERT,
-- UPDATE or DELETE on any table of the schema: code that runs as the engine's role (a trigger
-- of an application table, say) can then add to the trail only what these functions allow, and
-- can release a hold only with its event. Counts are never negative; the append-only guards
-- also refuse an INSERT that claims what only the engine's steps can make (a sealed or finished
-- rule run, a finished run, an event of a release that did not happen).

-- Counts are never negative ------------------------------------------------------------------------

ALTER TABLE retention.rule_runs DROP CONSTRAINT IF EXISTS rule_runs_counts_check;
ALTER TABLE retention.rule_runs ADD CONSTRAINT rule_runs_counts_check CHECK (
        rows_deleted >= 0 AND rows_anonymised >= 0 AND rows_held >= 0 AND rows_skipped >= 0
        AND rows_skipped_locked >= 0 AND rows_skipped_fk >= 0 AND rows_overdue >= 0
        AND partitions_dropped >= 0 AND batches >= 0) NOT VALID;
ALTER TABLE retention.rule_runs VALIDATE CONSTRAINT rule_runs_counts_check;
ALTER TABLE retention.runs DROP CONSTRAINT IF EXISTS runs_counts_check;
ALTER TABLE retention.runs ADD CONSTRAINT runs_counts_check CHECK (rules_total >= 0 AND rules_failed >= 0) NOT VALID;
ALTER TABLE retention.runs VALIDATE CONSTRAINT runs_counts_check;
ALTER TABLE retention.rule_run_holds DROP CONSTRAINT IF EXISTS rule_run_holds_rows_check;
ALTER TABLE retention.rule_run_holds ADD CONSTRAINT rule_run_holds_rows_check CHECK (rows >= 0) NOT VALID;
ALTER TABLE retention.rule_run_holds VALIDATE CONSTRAINT rule_run_holds_rows_check;
ALTER TABLE retention.rule_run_fk DROP CONSTRAINT IF EXISTS rule_run_fk_rows_check;
ALTER TABLE retention.rule_run_fk ADD CONSTRAINT rule_run_fk_rows_check CHECK (rows >= 0) NOT VALID;
ALTER TABLE retention.rule_run_fk VALIDATE CONSTRAINT rule_run_fk_rows_check;

-- INSERT guards --------------------------------------------------------------------------------------
-- A run and a rule run begin empty and running: their end, counts and seal come only from the
-- engine's later steps (and the seal from retention.seal_rule_run). A row inserted as sealed would
-- never be sealed for real (the seal returns an existing seal as it is) and would stop the chain.

CREATE OR REPLACE FUNCTION retention.rule_runs_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        IF NEW.seq IS NOT NULL OR NEW.prev_hash IS NOT NULL OR NEW.hash IS NOT NULL OR NEW.sealed_at IS NOT NULL THEN
                RAISE EXCEPTION 'a rule run cannot be inserted sealed'
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = 'seq, prev_hash, hash and sealed_at are set only by retention.seal_rule_run().',
                              HINT = 'Begin a rule run with retention.begin_rule_run().';
        END IF;
        IF NEW.finished_at IS NOT NULL OR NEW.outcome IS DISTINCT FROM 'running' OR NEW.sqlstate IS NOT NULL
           OR NEW.error IS NOT NULL THEN
                RAISE EXCEPTION 'a rule run cannot be inserted finished'
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = 'A rule run begins running, with no end, outcome or error.',
                              HINT = 'Begin a rule run with retention.begin_rule_run().';
        END IF;
        IF NEW.rows_deleted <> 0 OR NEW.rows_anonymised <> 0 OR NEW.rows_held <> 0 OR NEW.rows_skipped <> 0
           OR NEW.rows_skipped_locked <> 0 OR NEW.rows_skipped_fk <> 0 OR NEW.rows_overdue <> 0
           OR NEW.partitions_dropped <> 0 OR NEW.batches <> 0 THEN
                RAISE EXCEPTION 'a rule run cannot be inserted with counts'
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = 'A rule run begins with every count 0; its batches add to them.',
                              HINT = 'Begin a rule run with retention.begin_rule_run().';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM retention.runs u WHERE u.id = NEW.run_id AND u.finished_at IS NULL) THEN
                RAISE EXCEPTION 'run % is not running', NEW.run_id
                        USING ERRCODE = 'object_not_in_prerequisite_state',
                              DETAIL = 'A rule run is added only to a run that has not ended.';
        END IF;
        RETURN NEW;
END;
$$;
COMMENT ON FUNCTION retention.rule_runs_insert_guard() IS
        'Trigger: a rule run is inserted running, unsealed, with every count 0, into a run that has not ended.';

CREATE OR REPLACE FUNCTION retention.runs_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        IF NEW.finished_at IS NOT NULL OR NEW.outcome IS DISTINCT FROM 'running' OR NEW.rules_total <> 0
           OR NEW.rules_failed <> 0 THEN
                RAISE EXCEPTION 'a run cannot be inserted finished'
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = 'A run begins running, with no end, outcome or rule counts.',
                              HINT = 'Begin a run with retention.begin_run().';
        END IF;
        RETURN NEW;
END;
$$;
COMMENT ON FUNCTION retention.runs_insert_guard() IS 'Trigger: a run is inserted running, with no end and no counts.';

-- Every release of a hold has its event: the release itself writes it (a trigger, so that it holds
-- for every role and every path), and an event that claims a release that did not happen, or a
-- second one, is refused.
CREATE OR REPLACE FUNCTION retention.holds_release_event() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        INSERT INTO retention.hold_events (hold_id, event, at, by) VALUES (NEW.id, 'released', NEW.released_at, NEW.released_by);
        RETURN NULL;
END;
$$;
COMMENT ON FUNCTION retention.holds_release_event() IS
        'Trigger: records a hold''s release in retention.hold_events, in the statement that releases it.';

CREATE OR REPLACE FUNCTION retention.hold_events_insert_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        h retention.holds;
BEGIN
        SELECT * INTO h FROM retention.holds WHERE id = NEW.hold_id;
        IF NOT FOUND THEN
                RAISE EXCEPTION 'hold % does not exist', NEW.hold_id
                        USING ERRCODE = 'foreign_key_violation',
                              DETAIL = 'An event of the hold registry belongs to a hold of retention.holds.';
        END IF;
        IF EXISTS (SELECT 1 FROM retention.hold_events e WHERE e.hold_id = NEW.hold_id AND e.event = NEW.event) THEN
                RAISE EXCEPTION 'hold % already has its % event', NEW.hold_id, NEW.event
                        USING ERRCODE = 'unique_violation',
                              DETAIL = 'A hold is placed once and released once; each has one event.';
        END IF;
        IF NEW.event = 'released' AND h.released_at IS NULL THEN
                RAISE EXCEPTION 'hold % was not released', NEW.hold_id
                        USING ERRCODE = 'check_violation',
                              DETAIL = 'A release event records a release of retention.holds.',
                              HINT = 'Release a hold with: retentiond hold release ID.';
        END IF;
        RETURN NEW;
END;
$$;
COMMENT ON FUNCTION retention.hold_events_insert_guard() IS
        'Trigger: an event of retention.hold_events belongs to an existing hold, is its only event of that kind, '
        'and a release event records a release that happened.';

CREATE OR REPLACE TRIGGER rule_runs_insert_guard
        BEFORE INSERT ON retention.rule_runs
        FOR EACH ROW EXECUTE FUNCTION retention.rule_runs_insert_guard();
CREATE OR REPLACE TRIGGER runs_insert_guard
        BEFORE INSERT ON retention.runs
        FOR EACH ROW EXECUTE FUNCTION retention.runs_insert_guard();
CREATE OR REPLACE TRIGGER holds_release_event
        AFTER UPDATE ON retention.holds
        FOR EACH ROW WHEN (OLD.released_at IS NULL AND NEW.released_at IS NOT NULL)
        EXECUTE FUNCTION retention.holds_release_event();
CREATE OR REPLACE TRIGGER hold_events_insert_guard
        BEFORE INSERT ON retention.hold_events
        FOR EACH ROW EXECUTE FUNCTION retention.hold_events_insert_guard();

-- The writes of the engine and of the CLI ---------------------------------------------------------
-- Each checks what it may change: a run or rule run that has not ended, a rule run that is not
-- sealed, counts that only grow. They are the only writes the role of sql/retentiond-role.sql has.
-- None may be called from a trigger: a trigger of an application table runs its owner's code with
-- the engine's role (when a rule says trust_triggers: true), and that code must not reach the
-- trail or the holds through the engine's own doors either.

CREATE OR REPLACE FUNCTION retention.outside_triggers(what text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        IF pg_trigger_depth() > 0 THEN
                RAISE EXCEPTION '% cannot be called from a trigger', what
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = 'Only retentiond''s own statements write the audit trail, the hold registry and the '
                                       'schedule slots; a trigger runs the code of a table''s owner.';
        END IF;
END;
$$;
REVOKE ALL ON FUNCTION retention.outside_triggers(text) FROM PUBLIC;
COMMENT ON FUNCTION retention.outside_triggers(text) IS
        'Internal to the write functions: raises when called, directly or not, from a trigger.';

CREATE OR REPLACE FUNCTION retention.begin_run(run_host text, run_version text, run_mode text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        SELECT retention.outside_triggers('retention.begin_run()');
        INSERT INTO retention.runs (host, version, mode) VALUES (run_host, run_version, run_mode) RETURNING id
$$;
COMMENT ON FUNCTION retention.begin_run(text, text, text) IS
        'The start of an enforcement run: a retention.runs row (host, version, mode), running; returns its id.';

CREATE OR REPLACE FUNCTION retention.end_run(run bigint, run_outcome text, total int, failed int) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.outside_triggers('retention.end_run()');
        UPDATE retention.runs SET finished_at = clock_timestamp(), outcome = run_outcome, rules_total = total,
               rules_failed = failed
         WHERE id = run AND finished_at IS NULL;
        IF NOT FOUND THEN
                RAISE EXCEPTION 'run % is not running', run
                        USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'A run ends once.';
        END IF;
END;
$$;
COMMENT ON FUNCTION retention.end_run(bigint, text, int, int) IS
        'The end of a run that has not ended: its end time, outcome and rule counts.';

CREATE OR REPLACE FUNCTION retention.interrupt_run(run bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        SELECT retention.outside_triggers('retention.interrupt_run()');
        UPDATE retention.rule_runs SET outcome = 'interrupted', finished_at = clock_timestamp(),
               error = 'the connection to the database was lost'
         WHERE run_id = run AND outcome = 'running' AND finished_at IS NULL AND seq IS NULL;
        UPDATE retention.runs SET outcome = 'interrupted', finished_at = clock_timestamp()
         WHERE id = run AND outcome = 'running' AND finished_at IS NULL;
$$;
COMMENT ON FUNCTION retention.interrupt_run(bigint) IS
        'Marks a run whose connection was lost, and its rule runs still running, interrupted (the daemon, after it reconnects).';

-- Runs left running by a session that no longer exists (a crash, an abandoned worker), and their
-- rule runs still running: interrupted. A run of a live session is never touched. Returns their
-- ids ("3, 7"), NULL for none.
CREATE OR REPLACE FUNCTION retention.close_abandoned_runs() RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        SELECT retention.outside_triggers('retention.close_abandoned_runs()');
        WITH dead AS (
                UPDATE retention.runs SET outcome = 'interrupted', finished_at = clock_timestamp()
                 WHERE outcome = 'running'
                   AND backend_pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
                RETURNING id),
             rr AS (
                UPDATE retention.rule_runs SET outcome = 'interrupted', finished_at = clock_timestamp(),
                       error = 'the engine''s database session ended during the rule run'
                 WHERE outcome = 'running' AND seq IS NULL AND run_id IN (SELECT id FROM dead) RETURNING 1)
        SELECT string_agg(id::text, ', ' ORDER BY id) FROM dead
$$;
COMMENT ON FUNCTION retention.close_abandoned_runs() IS
        'Records the runs of sessions that no longer exist, and their rule runs still running, as interrupted; '
        'returns their ids.';

CREATE OR REPLACE FUNCTION retention.begin_rule_run(run bigint, rule_name text, rule_clause text, rule_table text,
                                                    rule_action text) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        SELECT retention.outside_triggers('retention.begin_rule_run()');
        INSERT INTO retention.rule_runs (run_id, rule, clause, table_name, action)
        VALUES (run, rule_name, rule_clause, rule_table, rule_action) RETURNING id
$$;
COMMENT ON FUNCTION retention.begin_rule_run(bigint, text, text, text, text) IS
        'The start of a rule run in a run that has not ended: running, every count 0; returns its id.';

-- The rule run, locked, when it may still change: it exists, has not finished and is not sealed.
CREATE OR REPLACE FUNCTION retention.open_rule_run(rule_run bigint) RETURNS retention.rule_runs
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        r retention.rule_runs;
BEGIN
        PERFORM retention.outside_triggers('a write of the audit trail');
        SELECT * INTO r FROM retention.rule_runs WHERE id = rule_run FOR NO KEY UPDATE;
        IF NOT FOUND THEN
                RAISE EXCEPTION 'the audit trail''s rule run % does not exist', rule_run USING ERRCODE = 'no_data_found';
        END IF;
        IF r.seq IS NOT NULL OR r.finished_at IS NOT NULL THEN
                RAISE EXCEPTION 'rule run % has finished and can no longer change', rule_run
                        USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        RETURN r;
END;
$$;
REVOKE ALL ON FUNCTION retention.open_rule_run(bigint) FROM PUBLIC;
COMMENT ON FUNCTION retention.open_rule_run(bigint) IS
        'Internal to the write functions: locks a rule run that has neither finished nor been sealed, or raises.';

CREATE OR REPLACE FUNCTION retention.set_rule_run_cutoff(rule_run bigint, rule_cutoff timestamptz) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        r retention.rule_runs := retention.open_rule_run(rule_run);
BEGIN
        IF r.cutoff IS NOT NULL THEN
                RAISE EXCEPTION 'rule run % already has its cutoff', rule_run
                        USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = 'PostgreSQL computes a rule run''s cutoff once.';
        END IF;
        UPDATE retention.rule_runs SET cutoff = rule_cutoff WHERE id = rule_run;
END;
$$;
COMMENT ON FUNCTION retention.set_rule_run_cutoff(bigint, timestamptz) IS 'Records a running rule run''s cutoff, once.';

CREATE OR REPLACE FUNCTION retention.add_rule_run_counts(rule_run bigint, deleted bigint, anonymised bigint, added_batches bigint,
                                                         partitions bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        r retention.rule_runs := retention.open_rule_run(rule_run);
BEGIN
        IF deleted < 0 OR anonymised < 0 OR added_batches < 0 OR partitions < 0 THEN
                RAISE EXCEPTION 'the counts of rule run % only grow', rule_run
                        USING ERRCODE = 'check_violation',
                              DETAIL = format('Deleted %s, anonymised %s, batches %s, partitions %s were to be added.',
                                              deleted, anonymised, added_batches, partitions);
        END IF;
        UPDATE retention.rule_runs SET rows_deleted = rows_deleted + deleted, rows_anonymised = rows_anonymised + anonymised,
               batches = batches + added_batches, partitions_dropped = partitions_dropped + partitions
         WHERE id = r.id;
        RETURN rule_run;
END;
$$;
COMMENT ON FUNCTION retention.add_rule_run_counts(bigint, bigint, bigint, bigint, bigint) IS
        'Adds a batch''s (or a partition drop''s) rows deleted and anonymised, batches and partitions to a running rule '
        'run, in the transaction that changed them; never less than 0. Returns the rule run''s id.';

CREATE OR REPLACE FUNCTION retention.add_rule_run_hold(rule_run bigint, hold_name text, hold_rows bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.open_rule_run(rule_run);
        INSERT INTO retention.rule_run_holds (rule_run_id, hold, rows) VALUES (rule_run, hold_name, hold_rows);
END;
$$;
COMMENT ON FUNCTION retention.add_rule_run_hold(bigint, text, bigint) IS
        'Records the due rows one hold kept in a running rule run (before it finishes and is sealed).';

CREATE OR REPLACE FUNCTION retention.add_rule_run_fk(rule_run bigint, fk_table text, fk_rows bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.open_rule_run(rule_run);
        INSERT INTO retention.rule_run_fk (rule_run_id, referencing_table, rows) VALUES (rule_run, fk_table, fk_rows);
END;
$$;
COMMENT ON FUNCTION retention.add_rule_run_fk(bigint, text, bigint) IS
        'Records the due rows a referencing table kept in a running rule run (before it finishes and is sealed).';

CREATE OR REPLACE FUNCTION retention.finish_rule_run(rule_run bigint, rule_outcome text, error_sqlstate text, error_text text,
                                                     held bigint, skipped bigint, skipped_locked bigint, skipped_fk bigint,
                                                     overdue bigint, OUT sealed_seq bigint, OUT sealed_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.open_rule_run(rule_run);
        IF rule_outcome IS NOT DISTINCT FROM 'running' THEN
                RAISE EXCEPTION 'a rule run finishes with an outcome other than running' USING ERRCODE = 'check_violation';
        END IF;
        UPDATE retention.rule_runs SET finished_at = clock_timestamp(), rows_held = held, rows_skipped = skipped,
               rows_skipped_locked = skipped_locked, rows_skipped_fk = skipped_fk, rows_overdue = overdue,
               outcome = rule_outcome, sqlstate = error_sqlstate, error = error_text
         WHERE id = rule_run;
        SELECT s.sealed_seq, s.sealed_hash INTO sealed_seq, sealed_hash FROM retention.seal_rule_run(rule_run) s;
END;
$$;
COMMENT ON FUNCTION retention.finish_rule_run(bigint, text, text, text, bigint, bigint, bigint, bigint, bigint) IS
        'The end of a running rule run: its outcome, error and final counts, and its seal into the hash chain, in the '
        'caller''s transaction (its per-hold and per-table counts are recorded before). Returns the seal.';

-- The engine decides whether a slot is free from what it reads (its last start, the rule's last
-- rule run); the claim succeeds only if the last start is still the one it judged (NULL: no row),
-- so that of two daemons trying at the same moment one claims and the other sees it taken.
CREATE OR REPLACE FUNCTION retention.claim_rule_slot(rule_name text, claim_host text, seen timestamptz)
RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        SELECT retention.outside_triggers('retention.claim_rule_slot()');
        INSERT INTO retention.rule_slots AS s (rule, last_started, host) VALUES (rule_name, now(), claim_host)
        ON CONFLICT (rule) DO UPDATE SET last_started = now(), host = claim_host, backend_pid = pg_backend_pid()
        WHERE s.last_started IS NOT DISTINCT FROM seen
        RETURNING true
$$;
COMMENT ON FUNCTION retention.claim_rule_slot(text, text, timestamptz) IS
        'Claims a rule''s schedule slot (several daemons) for this session: true when its last start is still `seen` '
        '(NULL: the rule had no slot yet); NULL when another daemon claimed it meanwhile.';

CREATE OR REPLACE FUNCTION retention.place_hold(hold_subject text, hold_key text, hold_reason text, hold_by text,
                                                hold_until timestamptz) RETURNS retention.holds
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        h retention.holds;
BEGIN
        PERFORM retention.outside_triggers('retention.place_hold()');
        INSERT INTO retention.holds (subject, subject_key, reason, placed_by, expires_at)
        VALUES (hold_subject, hold_key, hold_reason, hold_by, hold_until) RETURNING * INTO h;
        INSERT INTO retention.hold_events (hold_id, event, at, by) VALUES (h.id, 'placed', h.placed_at, hold_by);
        RETURN h;
END;
$$;
COMMENT ON FUNCTION retention.place_hold(text, text, text, text, timestamptz) IS
        'Places an operator''s hold (retentiond hold add) and records its placed event; returns the hold.';

CREATE OR REPLACE FUNCTION retention.release_hold(hold_id bigint, releaser text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.outside_triggers('retention.release_hold()');
        -- The release event is written by the trigger holds_release_event, in this UPDATE.
        UPDATE retention.holds h SET released_at = now(), released_by = releaser
         WHERE h.id = hold_id AND h.released_at IS NULL;
        IF FOUND THEN
                RETURN true;
        END IF;
        RETURN CASE WHEN EXISTS (SELECT 1 FROM retention.holds h WHERE h.id = hold_id) THEN false END;
END;
$$;
COMMENT ON FUNCTION retention.release_hold(bigint, text) IS
        'Releases a hold (retentiond hold release) with its released event: true; false when it was released '
        'already; NULL when there is no such hold.';

-- Only the roles given EXECUTE (sql/retentiond-role.sql) may call them, and the seal.
DO $grants$
DECLARE
        f regprocedure;
        g record;
        writes constant regprocedure[] := ARRAY[
                'retention.begin_run(text, text, text)', 'retention.end_run(bigint, text, int, int)',
                'retention.interrupt_run(bigint)', 'retention.close_abandoned_runs()',
                'retention.begin_rule_run(bigint, text, text, text, text)',
                'retention.set_rule_run_cutoff(bigint, timestamptz)',
                'retention.add_rule_run_counts(bigint, bigint, bigint, bigint, bigint)',
                'retention.add_rule_run_hold(bigint, text, bigint)', 'retention.add_rule_run_fk(bigint, text, bigint)',
                'retention.finish_rule_run(bigint, text, text, text, bigint, bigint, bigint, bigint, bigint)',
                'retention.claim_rule_slot(text, text, timestamptz)',
                'retention.place_hold(text, text, text, text, timestamptz)', 'retention.release_hold(bigint, text)',
                'retention.seal_rule_run(bigint)']::regprocedure[];
BEGIN
        FOREACH f IN ARRAY writes LOOP
                EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        END LOOP;
        -- Roles that wrote the trail directly before version 5 (the grants of sql/retentiond-role.sql
        -- then: INSERT on retention.rule_runs) now write it through the functions, and only so.
        FOR g IN
                SELECT DISTINCT a.grantee::regrole AS r
                  FROM pg_class c, aclexplode(c.relacl) a
                 WHERE c.oid = 'retention.rule_runs'::regclass AND a.privilege_type = 'INSERT'
                   AND a.grantee <> 0 AND a.grantee <> c.relowner
                   AND NOT EXISTS (SELECT 1 FROM pg_roles o WHERE o.oid = a.grantee AND o.rolsuper)
        LOOP
                FOREACH f IN ARRAY writes LOOP
                        CONTINUE WHEN f = 'retention.seal_rule_run(bigint)'::regprocedure;
                        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %s', f, g.r);
                END LOOP;
                EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA retention FROM %s', g.r);
                EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA retention TO %s', g.r);
                EXECUTE format('REVOKE USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA retention FROM %s', g.r);
                RAISE NOTICE 'role % now writes the retention schema only through its functions', g.r;
        END LOOP;
END;
$grants$;

-- ==== end of section C =============================================================================

-- ==== Section D: the whole truth (cascaded rows, held counts) =======================================

-- Rows a rule's DELETE removed or changed in other tables through ON DELETE CASCADE, SET NULL or
-- SET DEFAULT, per referencing table (multi-level cascades included), counted by the engine in the
-- transaction of each batch (the table's rows deleted and updated in that transaction, read from
-- PostgreSQL's statistics for the transaction before and after the batch's statement) and written
-- in that same transaction: the trail never claims more than happened, and a killed run loses none.
CREATE TABLE IF NOT EXISTS retention.rule_run_cascades (
        rule_run_id bigint NOT NULL REFERENCES retention.rule_runs,
        table_name text NOT NULL,
        rows_deleted bigint NOT NULL DEFAULT 0 CHECK (rows_deleted >= 0),
        rows_nulled bigint NOT NULL DEFAULT 0 CHECK (rows_nulled >= 0),
        PRIMARY KEY (rule_run_id, table_name)
);
COMMENT ON TABLE retention.rule_run_cascades IS
        'Audit trail: rows of other tables that a rule run''s deletions removed (ON DELETE CASCADE) or set to '
        'NULL or their default (ON DELETE SET NULL / SET DEFAULT), per referencing table, cascades of cascades '
        'included. Sealed with the rule run (serialization v2). Counts only; no personal data.';
COMMENT ON COLUMN retention.rule_run_cascades.rule_run_id IS 'The rule run (retention.rule_runs) whose deletions cascaded.';
COMMENT ON COLUMN retention.rule_run_cascades.table_name IS
        'Schema-qualified name of the referencing table (a partitioned table counts its partitions), as the '
        'engine displays it (quoted where SQL needs quotes).';
COMMENT ON COLUMN retention.rule_run_cascades.rows_deleted IS 'Rows of it deleted by ON DELETE CASCADE.';
COMMENT ON COLUMN retention.rule_run_cascades.rows_nulled IS 'Rows of it whose reference was set to NULL or its default (ON DELETE SET NULL / SET DEFAULT).';
CREATE OR REPLACE TRIGGER rule_run_cascades_append_only
        BEFORE INSERT OR UPDATE OR DELETE ON retention.rule_run_cascades
        FOR EACH ROW EXECUTE FUNCTION retention.rule_run_counts_append_only();
CREATE OR REPLACE TRIGGER rule_run_cascades_no_truncate
        BEFORE TRUNCATE ON retention.rule_run_cascades
        FOR EACH STATEMENT EXECUTE FUNCTION retention.rule_run_counts_append_only();

-- The engine adds a batch's cascades through this function, in the batch's transaction: to a rule
-- run that is still running and not sealed (retention.open_rule_run(), which also refuses a call
-- from a trigger), counts that are not negative, one row per table added to. SECURITY DEFINER with its search_path pinned, so that the engine's role needs no privilege
-- on the table itself (sql/retentiond-role.sql grants EXECUTE).
CREATE OR REPLACE FUNCTION retention.add_rule_run_cascades(rule_run bigint, tables text[], deleted bigint[], nulled bigint[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        -- a rule run that has neither finished nor been sealed, and not from a trigger (section C)
        PERFORM retention.open_rule_run(rule_run);
        IF cardinality(tables) IS DISTINCT FROM cardinality(deleted) OR cardinality(tables) IS DISTINCT FROM cardinality(nulled) THEN
                RAISE EXCEPTION 'tables, deleted and nulled must have one element per table' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        INSERT INTO retention.rule_run_cascades AS c (rule_run_id, table_name, rows_deleted, rows_nulled)
        SELECT rule_run, x.t, x.d, x.n FROM unnest(tables, deleted, nulled) x(t, d, n) WHERE x.d <> 0 OR x.n <> 0
        ON CONFLICT (rule_run_id, table_name) DO UPDATE SET rows_deleted = c.rows_deleted + excluded.rows_deleted,
                rows_nulled = c.rows_nulled + excluded.rows_nulled;
END;
$$;
REVOKE ALL ON FUNCTION retention.add_rule_run_cascades(bigint, text[], bigint[], bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION retention.add_rule_run_cascades(bigint, text[], bigint[], bigint[]) IS
        'Adds one batch''s cascades (per referencing table: rows deleted, rows set to NULL or their default) to '
        'a running, unsealed rule run. SECURITY DEFINER: the engine''s role needs EXECUTE only.';

-- Why due rows were left, each reason its own count (rows_skipped is their sum with rows_skipped_fk):
-- rows_skipped_locked only for rows another session's transaction held when the rule run ended.
ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS rows_skipped_refused bigint NOT NULL DEFAULT 0;
ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS rows_skipped_unfinished bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN retention.rule_runs.rows_skipped_locked IS
        'Due rows left because another session''s open transaction held them (a row lock, or a change not yet '
        'committed) when the rule run ended. Before schema version 5: every due row left for a later run that no '
        'foreign key kept, whatever the reason.';
COMMENT ON COLUMN retention.rule_runs.rows_skipped_refused IS
        'Due rows left by a rule run that ran to its end although no other session held them when it ended: the '
        'database did not let the engine''s DELETE/UPDATE change them (a trigger returned NULL, a row security '
        'policy or a rule kept them from it), or they changed, or were locked only for a while, during the run. '
        'Schema version 5 on.';
COMMENT ON COLUMN retention.rule_runs.rows_skipped_unfinished IS
        'Due rows left because the rule run did not run to its end (circuit breaker, error, lock timeout, '
        'interruption): nothing was tried on them. Schema version 5 on.';

-- The end of a running rule run from schema version 5 on, as retention.finish_rule_run() of section C
-- with the reasons its due rows were left: they must add up, with the rows still referenced, to
-- the rows skipped. It marks the rule run for serialization v2 (digest_format 2) and seals it.
CREATE OR REPLACE FUNCTION retention.finish_rule_run(rule_run bigint, rule_outcome text, error_sqlstate text, error_text text,
                                                     held bigint, skipped bigint, skipped_locked bigint, skipped_fk bigint,
                                                     overdue bigint, skipped_refused bigint, skipped_unfinished bigint,
                                                     OUT sealed_seq bigint, OUT sealed_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.open_rule_run(rule_run);
        IF rule_outcome IS NOT DISTINCT FROM 'running' THEN
                RAISE EXCEPTION 'a rule run finishes with an outcome other than running' USING ERRCODE = 'check_violation';
        END IF;
        IF skipped IS DISTINCT FROM skipped_locked + skipped_fk + skipped_refused + skipped_unfinished THEN
                RAISE EXCEPTION 'the rows skipped by rule run % are not the sum of their reasons', rule_run
                        USING ERRCODE = 'check_violation',
                              DETAIL = format('Skipped %s; locked %s, still referenced %s, refused %s, unfinished %s.',
                                              skipped, skipped_locked, skipped_fk, skipped_refused, skipped_unfinished);
        END IF;
        UPDATE retention.rule_runs SET finished_at = clock_timestamp(), rows_held = held, rows_skipped = skipped,
               rows_skipped_locked = skipped_locked, rows_skipped_fk = skipped_fk, rows_overdue = overdue,
               rows_skipped_refused = skipped_refused, rows_skipped_unfinished = skipped_unfinished, digest_format = 2,
               outcome = rule_outcome, sqlstate = error_sqlstate, error = error_text
         WHERE id = rule_run;
        SELECT s.sealed_seq, s.sealed_hash INTO sealed_seq, sealed_hash FROM retention.seal_rule_run(rule_run) s;
END;
$$;
REVOKE ALL ON FUNCTION retention.finish_rule_run(bigint, text, text, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint)
        FROM PUBLIC;
COMMENT ON FUNCTION retention.finish_rule_run(bigint, text, text, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint) IS
        'The end of a running rule run (schema version 5 on): its outcome, error and final counts with the reasons its '
        'due rows were left (locked, still referenced, refused, unfinished: their sum is skipped), marked for '
        'serialization v2 and sealed into the hash chain in the caller''s transaction. Returns the seal.';

ALTER TABLE retention.rule_runs DROP CONSTRAINT IF EXISTS rule_runs_skip_reasons_check;
ALTER TABLE retention.rule_runs ADD CONSTRAINT rule_runs_skip_reasons_check
        CHECK (rows_skipped_refused >= 0 AND rows_skipped_unfinished >= 0);

-- The serialization a rule run's digest covers. NULL: retentiond-rule-run-v1, the text of version 2 (every
-- rule run sealed before version 5). 2: retentiond-rule-run-v2, which adds rows_skipped_refused and
-- rows_skipped_unfinished after rows_skipped_fk and the cascades (cascade_table, cascade_deleted,
-- cascade_nulled; by table name, bytewise) after the referencing tables. The engine sets 2 on every rule
-- run it starts from version 5 on; a rule run with a cascade row or a count of the new columns is
-- serialized as v2 whatever this says, so that no count the digest does not cover can be recorded.
ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS digest_format smallint;
ALTER TABLE retention.rule_runs DROP CONSTRAINT IF EXISTS rule_runs_digest_format_check;
ALTER TABLE retention.rule_runs ADD CONSTRAINT rule_runs_digest_format_check CHECK (digest_format IN (2));
COMMENT ON COLUMN retention.rule_runs.digest_format IS
        'The serialization its chain digest covers: NULL retentiond-rule-run-v1 (rule runs sealed before schema '
        'version 5), 2 retentiond-rule-run-v2 (with the skip reasons of version 5 and the cascades).';

CREATE OR REPLACE FUNCTION retention.rule_run_serialization(r retention.rule_runs) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
        utc constant text := 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';
        u retention.runs;
        f text[];
        v2 boolean;
        s text;
BEGIN
        v2 := r.digest_format IS NOT NULL OR coalesce(r.rows_skipped_refused, 0) <> 0
              OR coalesce(r.rows_skipped_unfinished, 0) <> 0
              OR EXISTS (SELECT 1 FROM retention.rule_run_cascades c WHERE c.rule_run_id = r.id);
        s := CASE WHEN v2 THEN 'retentiond-rule-run-v2' ELSE 'retentiond-rule-run-v1' END || E'\n';
        SELECT * INTO u FROM retention.runs WHERE id = r.run_id;
        -- name, value, name, value, ...
        f := ARRAY['seq', r.seq::text, 'prev_hash', encode(r.prev_hash, 'hex'), 'id', r.id::text,
                   'run_id', r.run_id::text, 'run_host', u.host, 'run_version', u.version, 'run_mode', u.mode,
                   'run_started_at', to_char(u.started_at AT TIME ZONE 'UTC', utc),
                   'rule', r.rule, 'clause', r.clause, 'table_name', r.table_name, 'action', r.action,
                   'cutoff', to_char(r.cutoff AT TIME ZONE 'UTC', utc),
                   'started_at', to_char(r.started_at AT TIME ZONE 'UTC', utc),
                   'finished_at', to_char(r.finished_at AT TIME ZONE 'UTC', utc),
                   'rows_deleted', r.rows_deleted::text, 'rows_anonymised', r.rows_anonymised::text,
                   'rows_held', r.rows_held::text, 'rows_skipped', r.rows_skipped::text,
                   'rows_skipped_locked', r.rows_skipped_locked::text, 'rows_skipped_fk', r.rows_skipped_fk::text];
        IF v2 THEN
                f := f || ARRAY['rows_skipped_refused', r.rows_skipped_refused::text,
                                'rows_skipped_unfinished', r.rows_skipped_unfinished::text];
        END IF;
        f := f || ARRAY['rows_overdue', r.rows_overdue::text, 'partitions_dropped', r.partitions_dropped::text,
                        'batches', r.batches::text, 'outcome', r.outcome, 'sqlstate', r.sqlstate, 'error', r.error];
        f := f || ARRAY(SELECT v.x FROM retention.rule_run_holds h,
                                        unnest(ARRAY['hold', h.hold, 'hold_rows', h.rows::text]) WITH ORDINALITY v(x, o)
                        WHERE h.rule_run_id = r.id ORDER BY h.hold COLLATE "C", v.o)
               || ARRAY(SELECT v.x FROM retention.rule_run_fk k,
                                        unnest(ARRAY['fk_table', k.referencing_table, 'fk_rows', k.rows::text]) WITH ORDINALITY v(x, o)
                        WHERE k.rule_run_id = r.id ORDER BY k.referencing_table COLLATE "C", v.o);
        IF v2 THEN
                f := f || ARRAY(SELECT v.x FROM retention.rule_run_cascades c,
                                                unnest(ARRAY['cascade_table', c.table_name, 'cascade_deleted', c.rows_deleted::text,
                                                             'cascade_nulled', c.rows_nulled::text]) WITH ORDINALITY v(x, o)
                                WHERE c.rule_run_id = r.id ORDER BY c.table_name COLLATE "C", v.o);
        END IF;
        f := f || ARRAY['sealed_at', to_char(r.sealed_at AT TIME ZONE 'UTC', utc)];
        FOR i IN 1 .. array_length(f, 1) BY 2 LOOP
                s := s || f[i] || '=' || CASE WHEN f[i + 1] IS NULL THEN '-'
                                              ELSE octet_length(convert_to(f[i + 1], 'UTF8')) || ':' || f[i + 1] END || E'\n';
        END LOOP;
        RETURN s;
END;
$$;
COMMENT ON FUNCTION retention.rule_run_serialization(retention.rule_runs) IS
        'The canonical serialization of a rule run that its chain digest covers. v1 (digest_format NULL, no '
        'cascade and no count of the version-5 skip reasons: every rule run sealed before version 5), byte for '
        'byte the text of version 2: a header line, then seq, prev_hash, id, run_id, the run''s host, version, '
        'mode and started_at, rule, clause, table_name, action, cutoff, started_at, finished_at, every count, '
        'outcome, sqlstate, error, each hold (hold, hold_rows; by name, bytewise) and each referencing table '
        '(fk_table, fk_rows; by name, bytewise), sealed_at. v2: the header retentiond-rule-run-v2, '
        'rows_skipped_refused and rows_skipped_unfinished after rows_skipped_fk, and each cascade '
        '(cascade_table, cascade_deleted, cascade_nulled; by table name, bytewise) before sealed_at. '
        'Counts and names only; no personal data.';

-- The roles that may write the trail through section C's functions (sql/retentiond-role.sql, or
-- moved there by this migration) may also use the two writes of this section.
DO $grants_d$
DECLARE
        g record;
BEGIN
        FOR g IN
                SELECT DISTINCT a.grantee::regrole AS r
                  FROM pg_proc p, aclexplode(p.proacl) a
                 WHERE p.oid = 'retention.begin_rule_run(bigint, text, text, text, text)'::regprocedure
                   AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
        LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION retention.add_rule_run_cascades(bigint, text[], bigint[], bigint[]) TO %s',
                               g.r);
                EXECUTE format('GRANT EXECUTE ON FUNCTION retention.finish_rule_run(bigint, text, text, text, bigint, bigint,'
                               ' bigint, bigint, bigint, bigint, bigint) TO %s', g.r);
        END LOOP;
END;
$grants_d$;

-- ==== end of section D =============================================================================

-- ==== Section E: least privilege on partitioned tables ==============================================



-- ==== end of section E =============================================================================

INSERT INTO retention.schema_version (version) VALUES (5) ON CONFLICT (version) DO NOTHING;
