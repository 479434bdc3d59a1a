-- 008-rule-start.sql — retention schema version 8: a rule run begun with its start and cutoff.
-- The engine now writes nothing for a rule before it knows the rule has rows to change: it
-- computes the cutoffs first (PostgreSQL's now() at that moment is the rule's start), asks
-- whether any row is due, and only then begins the rule run; a rule with no row due is recorded
-- whole, begun and finished in one transaction, when it ends. This overload of
-- retention.begin_rule_run() records that start and the cutoff in the row's INSERT (the five-
-- argument form and retention.set_rule_run_cutoff() stay, for older engines).
-- Applied by `retentiond migrate` inside one transaction after it has checked the version; safe to
-- run twice. No transaction control, no application data and no personal data here.

CREATE OR REPLACE FUNCTION retention.begin_rule_run(run bigint, rule_name text, rule_clause text, rule_table text,
                                                    rule_action text, rule_started timestamptz,
                                                    rule_cutoff timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        id bigint;
BEGIN
        PERFORM retention.outside_triggers('retention.begin_rule_run()');
        -- The start is now() as the engine's statement that computed the cutoffs saw it: the same
        -- clock as the cutoff, so that cutoff = started_at - retain can be checked. It is not
        -- compared with this function's own clock: a session's now() may resolve elsewhere (a
        -- test's frozen clock), and the cutoff then follows it too.
        IF rule_started IS NULL THEN
                RAISE EXCEPTION 'a rule run''s start is required' USING ERRCODE = 'not_null_violation';
        END IF;
        INSERT INTO retention.rule_runs AS r (run_id, rule, clause, table_name, action, started_at, cutoff)
        VALUES (run, rule_name, rule_clause, rule_table, rule_action, rule_started, rule_cutoff)
        RETURNING r.id INTO id;
        RETURN id;
END;
$$;
REVOKE ALL ON FUNCTION retention.begin_rule_run(bigint, text, text, text, text, timestamptz, timestamptz) FROM PUBLIC;
COMMENT ON FUNCTION retention.begin_rule_run(bigint, text, text, text, text, timestamptz, timestamptz) IS
        'The start of a rule run in a run that has not ended, with its start (the database clock when its cutoffs '
        'were computed) and its cutoff (NULL: none was computed): running, every count 0; returns its id.';

-- The roles that may begin a rule run (sql/retentiond-role.sql) may use this form too.
DO $grants_8$
DECLARE
        g record;
BEGIN
        FOR g IN
                SELECT DISTINCT a.grantee::regrole AS r
                  FROM pg_proc p, aclexplode(p.proacl) a
                 WHERE p.oid = 'retention.begin_rule_run(bigint, text, text, text, text)'::regprocedure
                   AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
        LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION retention.begin_rule_run(bigint, text, text, text, text,'
                               ' timestamptz, timestamptz) TO %s', g.r);
        END LOOP;
END;
$grants_8$;

INSERT INTO retention.schema_version (version) VALUES (8) ON CONFLICT (version) DO NOTHING;
