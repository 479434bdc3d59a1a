-- 010-record-rule-run.sql — retention schema version 10: a rule run with nothing to change recorded
-- by one function, in one INSERT and one UPDATE. Most rule runs of a daemon find no row due (a rule
-- every few minutes, its rows long gone); version 8 recorded such a rule run whole in one
-- statement, but through retention.begin_rule_run() and retention.finish_rule_run(), which wrote
-- the row three times (its INSERT, its end, its seal) and read and locked it twice more: 0.8 ms of
-- the 1.1 ms a rule with nothing due cost the database. retention.record_rule_run() checks what
-- those two check, inserts the row as begin_rule_run() does, and writes its end and its seal in one
-- UPDATE: 0.5 ms. What is stored is what begin_rule_run() then finish_rule_run() store, column for
-- column (digest_format 2, the seal of retention.seal_rule_run() over the same serialization), so
-- `retentiond verify` checks these rule runs as it checks the others, and nothing else changes.
-- Applied by `retentiond migrate` inside one transaction after it has checked the version; safe to
-- run twice. No transaction control, no application data and no personal data here.

CREATE OR REPLACE FUNCTION retention.record_rule_run(run bigint, rule_name text, rule_clause text, rule_table text,
                                                     rule_action text, rule_started timestamptz, rule_cutoff timestamptz,
                                                     rule_outcome text, error_sqlstate text, error_text text,
                                                     held bigint, skipped bigint, skipped_locked bigint, skipped_fk bigint,
                                                     overdue bigint, skipped_refused bigint, skipped_unfinished bigint,
                                                     OUT rule_run bigint, OUT sealed_seq bigint, OUT sealed_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
        r retention.rule_runs;
        head retention.chain_head;
BEGIN
        PERFORM retention.outside_triggers('retention.record_rule_run()');
        -- begin_rule_run()'s checks (the run must be running: the INSERT's guard), then finish_rule_run()'s.
        IF rule_started IS NULL THEN
                RAISE EXCEPTION 'a rule run''s start is required' USING ERRCODE = 'not_null_violation';
        END IF;
        IF rule_outcome IS NOT DISTINCT FROM 'running' THEN
                RAISE EXCEPTION 'a rule run finishes with an outcome other than running' USING ERRCODE = 'check_violation';
        END IF;
        IF skipped IS DISTINCT FROM skipped_locked + skipped_fk + skipped_refused + skipped_unfinished THEN
                RAISE EXCEPTION 'the rows skipped by a rule run of rule % are not the sum of their reasons', rule_name
                        USING ERRCODE = 'check_violation',
                              DETAIL = format('Skipped %s; locked %s, still referenced %s, refused %s, unfinished %s.',
                                              skipped, skipped_locked, skipped_fk, skipped_refused, skipped_unfinished);
        END IF;
        -- Begun as begin_rule_run() begins it (the INSERT guard and the run's foreign key apply).
        INSERT INTO retention.rule_runs AS x (run_id, rule, clause, table_name, action, started_at, cutoff, digest_format)
        VALUES (run, rule_name, rule_clause, rule_table, rule_action, rule_started, rule_cutoff, 2)
        RETURNING x.* INTO r;
        -- Finished as finish_rule_run() finishes it, then sealed as seal_rule_run() seals: the head's row
        -- lock orders concurrent seals, and the digest covers exactly the values the UPDATE stores.
        SELECT * INTO STRICT head FROM retention.chain_head FOR UPDATE;
        r.finished_at := clock_timestamp();
        r.rows_held := held;
        r.rows_skipped := skipped;
        r.rows_skipped_locked := skipped_locked;
        r.rows_skipped_fk := skipped_fk;
        r.rows_overdue := overdue;
        r.rows_skipped_refused := skipped_refused;
        r.rows_skipped_unfinished := skipped_unfinished;
        r.outcome := rule_outcome;
        r.sqlstate := error_sqlstate;
        r.error := error_text;
        r.seq := head.seq + 1;
        r.prev_hash := head.hash;
        r.sealed_at := clock_timestamp();
        r.hash := retention.rule_run_digest(r);
        UPDATE retention.rule_runs
           SET finished_at = r.finished_at, rows_held = r.rows_held, rows_skipped = r.rows_skipped,
               rows_skipped_locked = r.rows_skipped_locked, rows_skipped_fk = r.rows_skipped_fk,
               rows_overdue = r.rows_overdue, rows_skipped_refused = r.rows_skipped_refused,
               rows_skipped_unfinished = r.rows_skipped_unfinished, outcome = r.outcome, sqlstate = r.sqlstate,
               error = r.error, seq = r.seq, prev_hash = r.prev_hash, hash = r.hash, sealed_at = r.sealed_at
         WHERE id = r.id;
        UPDATE retention.chain_head SET seq = r.seq, hash = r.hash;
        rule_run := r.id;
        sealed_seq := r.seq;
        sealed_hash := r.hash;
END;
$$;
REVOKE ALL ON FUNCTION retention.record_rule_run(bigint, text, text, text, text, timestamptz, timestamptz, text, text, text,
                                                 bigint, bigint, bigint, bigint, bigint, bigint, bigint) FROM PUBLIC;
COMMENT ON FUNCTION retention.record_rule_run(bigint, text, text, text, text, timestamptz, timestamptz, text, text, text,
                                              bigint, bigint, bigint, bigint, bigint, bigint, bigint) IS
        'A rule run with no count by hold, by referencing table or by cascade, whole: begun (as begin_rule_run() with its '
        'start and cutoff), finished (as finish_rule_run(): outcome, error, final counts with the reasons rows were '
        'skipped) and sealed into the hash chain, in the caller''s transaction. Returns its id and its seal.';

-- The roles that may begin a rule run (sql/retentiond-role.sql) may record one whole.
DO $grants_10$
DECLARE
        g record;
BEGIN
        FOR g IN
                SELECT DISTINCT a.grantee::regrole AS r
                  FROM pg_proc p, aclexplode(p.proacl) a
                 WHERE p.oid = 'retention.begin_rule_run(bigint, text, text, text, text, timestamptz, timestamptz)'::regprocedure
                   AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
        LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION retention.record_rule_run(bigint, text, text, text, text, timestamptz,'
                               ' timestamptz, text, text, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint) TO %s', g.r);
        END LOOP;
END;
$grants_10$;

INSERT INTO retention.schema_version (version) VALUES (10) ON CONFLICT (version) DO NOTHING;
