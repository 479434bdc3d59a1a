-- 006-prune.sql — retention schema version 6: pruning the audit trail. `retentiond prune
-- --older-than DURATION` removes the oldest sealed rule runs (a prefix of the hash chain, never a
-- hole in it), with their per-hold, per-table and cascade counts and the runs left without rule
-- runs, and records in retention.checkpoints the position and digest of the last one removed: the
-- first rule run kept chains to that digest, so `retentiond verify` still proves everything kept.
-- Applied by `retentiond migrate` inside one transaction after it has checked the version; safe to
-- run twice. No transaction control, no application data and no personal data here.

CREATE TABLE IF NOT EXISTS retention.checkpoints (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        made_at timestamptz NOT NULL,
        made_by text NOT NULL,
        older_than text NOT NULL,
        upto_seq bigint NOT NULL UNIQUE CHECK (upto_seq > 0),
        upto_hash bytea NOT NULL,
        rule_runs_pruned bigint NOT NULL CHECK (rule_runs_pruned > 0),
        runs_pruned bigint NOT NULL CHECK (runs_pruned >= 0),
        run_ids bigint[] NOT NULL,
        rows_deleted bigint NOT NULL CHECK (rows_deleted >= 0),
        rows_anonymised bigint NOT NULL CHECK (rows_anonymised >= 0),
        signature bytea
);
COMMENT ON TABLE retention.checkpoints IS
        'Audit trail: each prune of the hash chain. Rule runs #1 to #upto_seq are gone; the first rule run kept '
        'has prev_hash = upto_hash of the last checkpoint, so the chain still verifies from there. Append-only. '
        'Counts, names and digests only; no personal data.';
COMMENT ON COLUMN retention.checkpoints.made_at IS 'When the prune ran (its transaction''s start).';
COMMENT ON COLUMN retention.checkpoints.made_by IS 'Who pruned (--by, else the login name of the CLI''s user).';
COMMENT ON COLUMN retention.checkpoints.older_than IS 'The --older-than of the prune, as an interval.';
COMMENT ON COLUMN retention.checkpoints.upto_seq IS 'seq of the last rule run pruned: the chain kept starts at upto_seq + 1.';
COMMENT ON COLUMN retention.checkpoints.upto_hash IS 'hash of the last rule run pruned (#upto_seq).';
COMMENT ON COLUMN retention.checkpoints.rule_runs_pruned IS 'Rule runs this prune removed.';
COMMENT ON COLUMN retention.checkpoints.runs_pruned IS 'Runs this prune removed (every rule run of them was pruned).';
COMMENT ON COLUMN retention.checkpoints.run_ids IS 'The ids of those runs (so that `retentiond receipt` can say a run was pruned).';
COMMENT ON COLUMN retention.checkpoints.rows_deleted IS 'Sum of rows_deleted of the rule runs removed.';
COMMENT ON COLUMN retention.checkpoints.rows_anonymised IS 'Sum of rows_anonymised of the rule runs removed.';
COMMENT ON COLUMN retention.checkpoints.signature IS 'Reserved for a keyed signature of the checkpoint; always NULL in version 6.';

-- Marks the transaction of a running retention.prune(): the only one in which the append-only
-- guards let rule runs, their counts and runs be deleted. Only retention.prune() (SECURITY
-- DEFINER, owned by the role that migrates) writes it; no other role has INSERT on it, so a role
-- that may not prune cannot open the door (a setting would not do: any role can set one).
CREATE TABLE IF NOT EXISTS retention.prune_marks (
        xid xid8 PRIMARY KEY
);
COMMENT ON TABLE retention.prune_marks IS
        'Internal: the transaction of a running retention.prune(), written and emptied by it alone. Always empty '
        'outside one.';

CREATE OR REPLACE FUNCTION retention.pruning() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
        SELECT pg_trigger_depth() = 1
               AND EXISTS (SELECT 1 FROM retention.prune_marks m WHERE m.xid = pg_current_xact_id_if_assigned())
$$;
COMMENT ON FUNCTION retention.pruning() IS
        'Internal to the append-only guards: true only inside the transaction of retention.prune(), for a '
        'statement that is not itself run by a trigger.';

CREATE OR REPLACE FUNCTION retention.rule_runs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
        IF TG_OP = 'DELETE' AND retention.pruning() THEN
                RETURN OLD;
        END IF;
        IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
                RAISE EXCEPTION 'retention.rule_runs is append-only: % is not allowed', TG_OP
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'The audit trail is kept; rule runs are never deleted.';
        END IF;
        IF OLD.seq IS NOT NULL THEN
                RAISE EXCEPTION 'rule run % was sealed at % and can no longer be changed', OLD.id, OLD.sealed_at
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = format('It is #%s of the hash chain.', OLD.seq),
                              HINT = 'A sealed rule run is part of the tamper-evident audit trail.';
        END IF;
        RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION retention.rule_run_counts_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
        sealed bigint;
BEGIN
        IF TG_OP = 'DELETE' AND retention.pruning() THEN
                RETURN OLD;
        END IF;
        IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
                RAISE EXCEPTION 'retention.% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'The audit trail is kept; its counts are never deleted.';
        END IF;
        FOREACH sealed IN ARRAY CASE WHEN TG_OP = 'UPDATE' THEN ARRAY[OLD.rule_run_id, NEW.rule_run_id]
                                 ELSE ARRAY[NEW.rule_run_id] END LOOP
                IF EXISTS (SELECT 1 FROM retention.rule_runs rr WHERE rr.id = sealed AND rr.seq IS NOT NULL) THEN
                        RAISE EXCEPTION 'rule run % is sealed: its counts in retention.% can no longer change', sealed, TG_TABLE_NAME
                                USING ERRCODE = 'insufficient_privilege';
                END IF;
        END LOOP;
        RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION retention.runs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
        IF TG_OP = 'DELETE' AND retention.pruning() THEN
                RETURN OLD;
        END IF;
        IF TG_OP = 'DELETE' OR TG_OP = 'TRUNCATE' THEN
                RAISE EXCEPTION 'retention.runs is append-only: % is not allowed', TG_OP
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'The audit trail is kept; runs are never deleted.';
        END IF;
        IF (NEW.id, NEW.host, NEW.version, NEW.mode, NEW.started_at)
           IS DISTINCT FROM (OLD.id, OLD.host, OLD.version, OLD.mode, OLD.started_at) THEN
                RAISE EXCEPTION 'run %: id, host, version, mode and started_at can no longer be changed', OLD.id
                        USING ERRCODE = 'insufficient_privilege',
                              DETAIL = 'They are part of the digest of every sealed rule run of the run.';
        END IF;
        RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION retention.checkpoints_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
        RAISE EXCEPTION 'retention.checkpoints is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A checkpoint is what lets the pruned chain verify; it is never changed.';
END;
$$;
CREATE OR REPLACE TRIGGER checkpoints_append_only
        BEFORE UPDATE OR DELETE ON retention.checkpoints
        FOR EACH ROW EXECUTE FUNCTION retention.checkpoints_append_only();
CREATE OR REPLACE TRIGGER checkpoints_no_truncate
        BEFORE TRUNCATE ON retention.checkpoints
        FOR EACH STATEMENT EXECUTE FUNCTION retention.checkpoints_append_only();

-- The prune -----------------------------------------------------------------------------------------
-- Under the chain head's row lock (the seal's): no rule run is sealed while it runs. It removes the
-- longest prefix of the chain kept so far whose every rule run finished before now() - older_than;
-- a rule run of that prefix whose run is still running stops it there. dry_run: counts only.

CREATE OR REPLACE FUNCTION retention.prune(older_than interval, pruned_by text, dry_run boolean DEFAULT false)
RETURNS TABLE (checkpoint_id bigint, first_seq bigint, upto_seq bigint, upto_hash bytea, rule_runs_pruned bigint, runs_pruned bigint,
               rows_deleted bigint, rows_anonymised bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        head retention.chain_head;
        last_seq bigint;
        cut timestamptz;
        ids bigint[];
        run_ids bigint[];
        n_runs bigint;
BEGIN
        PERFORM retention.outside_triggers('retention.prune()');
        IF older_than IS NULL OR older_than < interval '0' THEN
                RAISE EXCEPTION 'older_than must be a duration of 0 or more' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF pruned_by IS NULL OR pruned_by = '' THEN
                RAISE EXCEPTION 'pruned_by must name who prunes' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT * INTO STRICT head FROM retention.chain_head FOR UPDATE;
        cut := now() - older_than;
        prune.first_seq := coalesce((SELECT max(c.upto_seq) FROM retention.checkpoints c), 0) + 1;
        -- The prefix: from first_seq on, consecutive seqs, each finished before the cut, with its
        -- run ended; it stops at the first that is not.
        SELECT coalesce(max(x.seq), 0) INTO last_seq FROM (
                SELECT r.seq, row_number() OVER (ORDER BY r.seq) AS n,
                       bool_and(r.finished_at < cut AND u.finished_at IS NOT NULL) OVER (ORDER BY r.seq) AS ok
                  FROM retention.rule_runs r JOIN retention.runs u ON u.id = r.run_id
                 WHERE r.seq >= first_seq) x
         WHERE x.ok AND x.seq = first_seq + x.n - 1;
        IF last_seq < first_seq THEN
                RETURN;
        END IF;
        ids := ARRAY(SELECT r.id FROM retention.rule_runs r WHERE r.seq BETWEEN first_seq AND last_seq);
        -- Runs all of whose rule runs go (a run with a rule run kept, or an unsealed one, stays).
        run_ids := ARRAY(SELECT DISTINCT r.run_id FROM retention.rule_runs r WHERE r.id = ANY (ids)
                         EXCEPT SELECT r.run_id FROM retention.rule_runs r WHERE NOT (r.id = ANY (ids)));
        n_runs := cardinality(run_ids);
        SELECT NULL::bigint, prune.first_seq, last_seq, (SELECT r.hash FROM retention.rule_runs r WHERE r.seq = last_seq),
               count(*), n_runs, sum(r.rows_deleted), sum(r.rows_anonymised)
          INTO checkpoint_id, first_seq, upto_seq, upto_hash, rule_runs_pruned, runs_pruned, rows_deleted, rows_anonymised
          FROM retention.rule_runs r WHERE r.id = ANY (ids);
        IF NOT dry_run THEN
                INSERT INTO retention.checkpoints AS c (made_at, made_by, older_than, upto_seq, upto_hash, rule_runs_pruned,
                                                        runs_pruned, run_ids, rows_deleted, rows_anonymised)
                VALUES (now(), pruned_by, older_than::text, prune.upto_seq, prune.upto_hash, prune.rule_runs_pruned,
                        prune.runs_pruned, (SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM unnest(run_ids) x),
                        prune.rows_deleted, prune.rows_anonymised)
                RETURNING c.id INTO checkpoint_id;
                INSERT INTO retention.prune_marks (xid) VALUES (pg_current_xact_id());
                DELETE FROM retention.rule_run_holds h WHERE h.rule_run_id = ANY (ids);
                DELETE FROM retention.rule_run_fk f WHERE f.rule_run_id = ANY (ids);
                DELETE FROM retention.rule_run_cascades c WHERE c.rule_run_id = ANY (ids);
                DELETE FROM retention.rule_runs r WHERE r.id = ANY (ids);
                DELETE FROM retention.runs u WHERE u.id = ANY (run_ids);
                DELETE FROM retention.prune_marks m WHERE m.xid = pg_current_xact_id();
        END IF;
        RETURN NEXT;
END;
$$;
REVOKE ALL ON FUNCTION retention.prune(interval, text, boolean) FROM PUBLIC;
REVOKE ALL ON TABLE retention.prune_marks FROM PUBLIC;
COMMENT ON FUNCTION retention.prune(interval, text, boolean) IS
        'Removes the oldest sealed rule runs that finished before now() - older_than (a prefix of the chain) with '
        'their counts and the runs left empty, and records a checkpoint (last seq and hash removed). dry_run: '
        'reports only. Not granted to the engine''s role: pruning is an operator''s act.';

-- The roles that write the trail through the functions of version 5 (sql/retentiond-role.sql) read
-- it all, the checkpoints too (`retentiond verify` and `receipt` as the service's role).
DO $grants_6$
DECLARE
        g record;
BEGIN
        FOR g IN
                SELECT DISTINCT a.grantee::regrole AS r
                  FROM pg_proc p, aclexplode(p.proacl) a
                 WHERE p.oid = 'retention.begin_rule_run(bigint, text, text, text, text)'::regprocedure
                   AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
        LOOP
                EXECUTE format('GRANT SELECT ON retention.checkpoints TO %s', g.r);
        END LOOP;
END;
$grants_6$;

INSERT INTO retention.schema_version (version) VALUES (6) ON CONFLICT (version) DO NOTHING;
