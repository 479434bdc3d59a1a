-- 004-fast-seal.sql — retention schema version 4: the same receipts, cheaper to make. A rule run
-- with nothing due cost about 4 ms of database time per session in version 3, mostly in the
-- serialization (about 60 calls of non-inlinable SQL functions, each parsed and planned on its
-- own) and in the append-only triggers, whose PL/pgSQL was loaded and compiled at the first
-- UPDATE of a session even for the rows they let through. Nothing changes in what is stored or checked: the serialization is
-- byte-for-byte the one of version 2, so every digest sealed before still verifies, and the
-- guards refuse exactly what they refused, with the same errors. Applied by `retentiond migrate`
-- inside one transaction after it has checked the version; safe to run twice. No transaction
-- control, no application data and no personal data here.

-- The canonical serialization, formatted in one place --------------------------------------------
-- The format is the one 002-receipts.sql describes, and the README: a header line, then one line
-- NAME=- (NULL) or NAME=BYTES:VALUE per field, timestamps in UTC with microseconds, holds and
-- referencing tables by name, bytewise. Here the fields are one list of names and values, in that
-- order (the run is read once, the holds and the referencing tables by one query each), and the
-- line is written once, by one loop over the list. PL/pgSQL, so that a session parses and plans it
-- once (with plan_cache_mode = force_generic_plan: not once per call for its first five calls); a
-- SQL function is parsed and planned again at every call from the seal and from verify's digest.
-- The search_path stays pinned, so that nothing from the caller's schemas can stand in for
-- to_char(), convert_to(), encode() or an operator. retention.digest_field() and
-- retention.digest_time() stay, as the reference of one line and of one timestamp.

CREATE OR REPLACE FUNCTION retention.rule_run_serialization(r retention.rule_runs) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
        utc constant text := 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';
        u retention.runs;
        f text[];
        s text := 'retentiond-rule-run-v1' || E'\n';
BEGIN
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
                   'rows_skipped_locked', r.rows_skipped_locked::text, 'rows_skipped_fk', r.rows_skipped_fk::text,
                   'rows_overdue', r.rows_overdue::text, 'partitions_dropped', r.partitions_dropped::text,
                   'batches', r.batches::text, 'outcome', r.outcome, 'sqlstate', r.sqlstate, 'error', r.error];
        f := f || ARRAY(SELECT v.x FROM retention.rule_run_holds h,
                                        unnest(ARRAY['hold', h.hold, 'hold_rows', h.rows::text]) WITH ORDINALITY v(x, o)
                        WHERE h.rule_run_id = r.id ORDER BY h.hold COLLATE "C", v.o)
               || ARRAY(SELECT v.x FROM retention.rule_run_fk k,
                                        unnest(ARRAY['fk_table', k.referencing_table, 'fk_rows', k.rows::text]) WITH ORDINALITY v(x, o)
                        WHERE k.rule_run_id = r.id ORDER BY k.referencing_table COLLATE "C", v.o)
               || ARRAY['sealed_at', to_char(r.sealed_at AT TIME ZONE 'UTC', utc)];
        FOR i IN 1 .. array_length(f, 1) BY 2 LOOP
                s := s || f[i] || '=' || CASE WHEN f[i + 1] IS NULL THEN '-'
                                              ELSE octet_length(convert_to(f[i + 1], 'UTF8')) || ':' || f[i + 1] END || E'\n';
        END LOOP;
        RETURN s;
END;
$$;
COMMENT ON FUNCTION retention.rule_run_serialization(retention.rule_runs) IS
        'The canonical serialization of a rule run that its chain digest covers: a header line, then seq, '
        'prev_hash, id, run_id, the run''s host, version, mode and started_at, rule, clause, table_name, '
        'action, cutoff, started_at, finished_at, every count, outcome, sqlstate, error, each hold '
        '(hold, hold_rows; by name, bytewise) and each referencing table (fk_table, fk_rows; by name, '
        'bytewise), sealed_at. Since version 4 formatted by one loop, byte for byte the text of version 2. '
        'Counts and names from the policy only; no personal data.';

-- The seal itself is unchanged (PL/pgSQL: its row locks, its errors and its snapshot after the
-- head's lock are the point). Its statements are planned once per session, not once per call for
-- the first five calls.
ALTER FUNCTION retention.seal_rule_run(bigint) SET plan_cache_mode = force_generic_plan;

-- Append-only guards, called only when they refuse ------------------------------------------------
-- A row trigger whose WHEN is false calls nothing, so PL/pgSQL is no longer loaded and compiled
-- for the UPDATEs the engine makes all the time (an unsealed rule run's counts, a run's end).
-- UPDATE and DELETE get a trigger each: every DELETE is refused, as before; an UPDATE goes to the
-- function only when it would refuse it (a sealed rule run; a run's identity changed). The
-- functions of version 2 are unchanged, so are their messages and SQLSTATEs; the TRUNCATE
-- triggers are unchanged too.

CREATE OR REPLACE TRIGGER rule_runs_append_only
        BEFORE DELETE ON retention.rule_runs
        FOR EACH ROW EXECUTE FUNCTION retention.rule_runs_append_only();
CREATE OR REPLACE TRIGGER rule_runs_sealed
        BEFORE UPDATE ON retention.rule_runs
        FOR EACH ROW WHEN (OLD.seq IS NOT NULL)
        EXECUTE FUNCTION retention.rule_runs_append_only();
CREATE OR REPLACE TRIGGER runs_append_only
        BEFORE DELETE ON retention.runs
        FOR EACH ROW EXECUTE FUNCTION retention.runs_append_only();
CREATE OR REPLACE TRIGGER runs_identity
        BEFORE UPDATE ON retention.runs
        FOR EACH ROW WHEN ((NEW.id, NEW.host, NEW.version, NEW.mode, NEW.started_at)
                           IS DISTINCT FROM (OLD.id, OLD.host, OLD.version, OLD.mode, OLD.started_at))
        EXECUTE FUNCTION retention.runs_append_only();
COMMENT ON TRIGGER rule_runs_append_only ON retention.rule_runs IS 'Refuses every DELETE: rule runs are never deleted.';
COMMENT ON TRIGGER rule_runs_sealed ON retention.rule_runs IS
        'Refuses an UPDATE of a sealed rule run (seq set); not called for an unsealed one.';
COMMENT ON TRIGGER runs_append_only ON retention.runs IS 'Refuses every DELETE: runs are never deleted.';
COMMENT ON TRIGGER runs_identity ON retention.runs IS
        'Refuses an UPDATE of a run''s id, host, version, mode or started_at (they are in every digest of its '
        'rule runs); not called when only its end, outcome or counts change.';

INSERT INTO retention.schema_version (version) VALUES (4) ON CONFLICT (version) DO NOTHING;
