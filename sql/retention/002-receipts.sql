-- 002-receipts.sql — retention schema version 2: tamper-evident receipts.
-- Every finished rule run (retention.rule_runs) is sealed into a hash chain: its SHA-256 digest
-- covers its own fields, its per-hold and per-foreign-key counts, its run's identity and the
-- previous rule run's digest, so a sealed row that is edited, deleted or reordered is detected by
-- `retentiond verify`. Applied by `retentiond migrate` inside one transaction after it has
-- checked the version; safe to run twice. No transaction control, no application data and no
-- personal data here: the chain holds positions, digests and times only.

-- The chain ----------------------------------------------------------------------------------------

ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS seq bigint UNIQUE;
ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS prev_hash bytea;
ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS hash bytea;
ALTER TABLE retention.rule_runs ADD COLUMN IF NOT EXISTS sealed_at timestamptz;
ALTER TABLE retention.rule_runs DROP CONSTRAINT IF EXISTS rule_runs_sealed_check;
ALTER TABLE retention.rule_runs ADD CONSTRAINT rule_runs_sealed_check CHECK (
        (seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (sealed_at IS NULL)
        AND (seq IS NULL OR (seq > 0 AND finished_at IS NOT NULL AND (prev_hash IS NULL) = (seq = 1))));
COMMENT ON COLUMN retention.rule_runs.seq IS
        'Position of this rule run in the hash chain (1, 2, 3, ...); NULL while not sealed (still running, '
        'or the engine stopped before the rule run finished).';
COMMENT ON COLUMN retention.rule_runs.prev_hash IS 'Digest (hash) of the rule run sealed just before, at seq - 1; NULL for seq 1.';
COMMENT ON COLUMN retention.rule_runs.hash IS
        'SHA-256 of retention.rule_run_serialization(this row): its fields, hold and foreign-key counts, '
        'its run''s identity and prev_hash. A digest, not personal data.';
COMMENT ON COLUMN retention.rule_runs.sealed_at IS 'When the rule run was sealed (as it finished, or by the migration to version 2).';

CREATE TABLE IF NOT EXISTS retention.chain_head (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        seq bigint NOT NULL,
        hash bytea,
        CHECK ((seq = 0) = (hash IS NULL))
);
INSERT INTO retention.chain_head (seq, hash) VALUES (0, NULL) ON CONFLICT DO NOTHING;
COMMENT ON TABLE retention.chain_head IS
        'The end of the hash chain: the position and digest of the last sealed rule run. One row, '
        'locked FOR UPDATE by every seal, so that engines sealing at the same time append one after the '
        'other and the chain stays linear. No personal data.';
COMMENT ON COLUMN retention.chain_head.one IS 'Always true: keeps this table at one row.';
COMMENT ON COLUMN retention.chain_head.seq IS 'seq of the last sealed rule run; 0 before the first.';
COMMENT ON COLUMN retention.chain_head.hash IS 'hash of the last sealed rule run; NULL before the first.';

-- The canonical serialization ----------------------------------------------------------------------
-- One line per field, in a fixed order: NAME=VALUE\n, where VALUE is - for NULL, else the number of
-- bytes of the value in UTF-8, a colon and the value (so no value can be mistaken for another
-- field). Timestamps are UTC, YYYY-MM-DDTHH:MI:SS.ffffffZ; digests are lowercase hex; numbers are
-- decimal. The digest is sha256 of the whole text in UTF-8. Both the seal and `retentiond verify`
-- use these functions, so they can never disagree on the format; each pins its search_path, so
-- that no function of the caller's schemas can stand in for sha256(), to_char() or the others.

CREATE OR REPLACE FUNCTION retention.digest_field(name text, value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
        SELECT name || '=' || CASE WHEN value IS NULL THEN '-'
                                   ELSE octet_length(convert_to(value, 'UTF8')) || ':' || value END || E'\n'
$$;
COMMENT ON FUNCTION retention.digest_field(text, text) IS
        'One line of the canonical serialization of a rule run: NAME=- (NULL) or NAME=BYTES:VALUE.';

CREATE OR REPLACE FUNCTION retention.digest_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp AS $$
        SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
COMMENT ON FUNCTION retention.digest_time(timestamptz) IS
        'A timestamp in the canonical serialization: UTC, microseconds, whatever the session''s TimeZone and DateStyle.';

CREATE OR REPLACE FUNCTION retention.rule_run_serialization(r retention.rule_runs) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
        SELECT 'retentiond-rule-run-v1' || E'\n'
                || retention.digest_field('seq', r.seq::text)
                || retention.digest_field('prev_hash', encode(r.prev_hash, 'hex'))
                || retention.digest_field('id', r.id::text)
                || retention.digest_field('run_id', r.run_id::text)
                || retention.digest_field('run_host', (SELECT u.host FROM retention.runs u WHERE u.id = r.run_id))
                || retention.digest_field('run_version', (SELECT u.version FROM retention.runs u WHERE u.id = r.run_id))
                || retention.digest_field('run_mode', (SELECT u.mode FROM retention.runs u WHERE u.id = r.run_id))
                || retention.digest_field('run_started_at',
                                          (SELECT retention.digest_time(u.started_at) FROM retention.runs u WHERE u.id = r.run_id))
                || retention.digest_field('rule', r.rule)
                || retention.digest_field('clause', r.clause)
                || retention.digest_field('table_name', r.table_name)
                || retention.digest_field('action', r.action)
                || retention.digest_field('cutoff', retention.digest_time(r.cutoff))
                || retention.digest_field('started_at', retention.digest_time(r.started_at))
                || retention.digest_field('finished_at', retention.digest_time(r.finished_at))
                || retention.digest_field('rows_deleted', r.rows_deleted::text)
                || retention.digest_field('rows_anonymised', r.rows_anonymised::text)
                || retention.digest_field('rows_held', r.rows_held::text)
                || retention.digest_field('rows_skipped', r.rows_skipped::text)
                || retention.digest_field('rows_skipped_locked', r.rows_skipped_locked::text)
                || retention.digest_field('rows_skipped_fk', r.rows_skipped_fk::text)
                || retention.digest_field('rows_overdue', r.rows_overdue::text)
                || retention.digest_field('partitions_dropped', r.partitions_dropped::text)
                || retention.digest_field('batches', r.batches::text)
                || retention.digest_field('outcome', r.outcome)
                || retention.digest_field('sqlstate', r.sqlstate)
                || retention.digest_field('error', r.error)
                || coalesce((SELECT string_agg(retention.digest_field('hold', h.hold)
                                               || retention.digest_field('hold_rows', h.rows::text),
                                               '' ORDER BY h.hold COLLATE "C")
                             FROM retention.rule_run_holds h WHERE h.rule_run_id = r.id), '')
                || coalesce((SELECT string_agg(retention.digest_field('fk_table', f.referencing_table)
                                               || retention.digest_field('fk_rows', f.rows::text),
                                               '' ORDER BY f.referencing_table COLLATE "C")
                             FROM retention.rule_run_fk f WHERE f.rule_run_id = r.id), '')
                || retention.digest_field('sealed_at', retention.digest_time(r.sealed_at))
$$;
COMMENT ON FUNCTION retention.rule_run_serialization(retention.rule_runs) IS
        'The canonical serialization of a rule run that its chain digest covers: a header line, then seq, '
        'prev_hash, id, run_id, the run''s host, version, mode and started_at, rule, clause, table_name, '
        'action, cutoff, started_at, finished_at, every count, outcome, sqlstate, error, each hold '
        '(hold, hold_rows; by name, bytewise) and each referencing table (fk_table, fk_rows; by name, '
        'bytewise), sealed_at. Counts and names from the policy only; no personal data.';

CREATE OR REPLACE FUNCTION retention.rule_run_digest(r retention.rule_runs) RETURNS bytea
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
        SELECT sha256(convert_to(retention.rule_run_serialization(r), 'UTF8'))
$$;
COMMENT ON FUNCTION retention.rule_run_digest(retention.rule_runs) IS
        'SHA-256 of retention.rule_run_serialization(r) in UTF-8: the value of rule_runs.hash when sealed. '
        'Used by the seal and by `retentiond verify`.';

-- Sealing ------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION retention.seal_rule_run(rule_run bigint, OUT sealed_seq bigint, OUT sealed_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
        head retention.chain_head;
        r retention.rule_runs;
BEGIN
        -- The head's row lock orders concurrent seals: the second waits for the first to commit,
        -- then reads the head the first one wrote.
        SELECT * INTO STRICT head FROM retention.chain_head FOR UPDATE;
        SELECT * INTO r FROM retention.rule_runs WHERE id = rule_run FOR UPDATE;
        IF NOT FOUND THEN
                RAISE EXCEPTION 'rule run % does not exist', rule_run USING ERRCODE = 'no_data_found';
        END IF;
        IF r.seq IS NOT NULL THEN
                sealed_seq := r.seq;
                sealed_hash := r.hash;
                RETURN;
        END IF;
        IF r.finished_at IS NULL THEN
                RAISE EXCEPTION 'rule run % has not finished', rule_run
                        USING ERRCODE = 'object_not_in_prerequisite_state',
                              HINT = 'Only a finished rule run is sealed.';
        END IF;
        r.seq := head.seq + 1;
        r.prev_hash := head.hash;
        r.sealed_at := clock_timestamp();
        r.hash := retention.rule_run_digest(r);
        UPDATE retention.rule_runs SET seq = r.seq, prev_hash = r.prev_hash, hash = r.hash, sealed_at = r.sealed_at
                WHERE id = rule_run;
        UPDATE retention.chain_head SET seq = r.seq, hash = r.hash;
        sealed_seq := r.seq;
        sealed_hash := r.hash;
END;
$$;
COMMENT ON FUNCTION retention.seal_rule_run(bigint) IS
        'Appends a finished rule run to the hash chain (once; sealing it again returns its seal) and '
        'moves retention.chain_head, under the head''s row lock. SECURITY DEFINER: the engine''s role '
        'needs no privilege on chain_head, and no role can move the head but by sealing.';

-- Append-only guards -------------------------------------------------------------------------------
-- As for the hold registry: triggers, so that they hold for every role but a superuser disabling
-- them on purpose (which `retentiond verify` then detects); TRUNCATE is refused too.

CREATE OR REPLACE FUNCTION retention.rule_runs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
COMMENT ON FUNCTION retention.rule_runs_append_only() IS
        'Trigger: no DELETE or TRUNCATE of retention.rule_runs; a sealed rule run cannot be updated.';

CREATE OR REPLACE FUNCTION retention.rule_run_counts_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
        sealed bigint;
BEGIN
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
COMMENT ON FUNCTION retention.rule_run_counts_append_only() IS
        'Trigger: no DELETE or TRUNCATE of a rule run''s per-hold and per-table counts; none added or '
        'changed once the rule run is sealed.';

CREATE OR REPLACE FUNCTION retention.runs_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
COMMENT ON FUNCTION retention.runs_append_only() IS
        'Trigger: no DELETE or TRUNCATE of retention.runs; a run''s identity (host, version, mode, start) is fixed.';

CREATE OR REPLACE TRIGGER rule_runs_append_only
        BEFORE UPDATE OR DELETE ON retention.rule_runs
        FOR EACH ROW EXECUTE FUNCTION retention.rule_runs_append_only();
CREATE OR REPLACE TRIGGER rule_runs_no_truncate
        BEFORE TRUNCATE ON retention.rule_runs
        FOR EACH STATEMENT EXECUTE FUNCTION retention.rule_runs_append_only();
CREATE OR REPLACE TRIGGER rule_run_holds_append_only
        BEFORE INSERT OR UPDATE OR DELETE ON retention.rule_run_holds
        FOR EACH ROW EXECUTE FUNCTION retention.rule_run_counts_append_only();
CREATE OR REPLACE TRIGGER rule_run_holds_no_truncate
        BEFORE TRUNCATE ON retention.rule_run_holds
        FOR EACH STATEMENT EXECUTE FUNCTION retention.rule_run_counts_append_only();
CREATE OR REPLACE TRIGGER rule_run_fk_append_only
        BEFORE INSERT OR UPDATE OR DELETE ON retention.rule_run_fk
        FOR EACH ROW EXECUTE FUNCTION retention.rule_run_counts_append_only();
CREATE OR REPLACE TRIGGER rule_run_fk_no_truncate
        BEFORE TRUNCATE ON retention.rule_run_fk
        FOR EACH STATEMENT EXECUTE FUNCTION retention.rule_run_counts_append_only();
CREATE OR REPLACE TRIGGER runs_append_only
        BEFORE UPDATE OR DELETE ON retention.runs
        FOR EACH ROW EXECUTE FUNCTION retention.runs_append_only();
CREATE OR REPLACE TRIGGER runs_no_truncate
        BEFORE TRUNCATE ON retention.runs
        FOR EACH STATEMENT EXECUTE FUNCTION retention.runs_append_only();

-- Rule runs recorded before version 2 --------------------------------------------------------------
-- Every finished rule run is sealed now, in id order: from here on the chain proves that they are
-- not changed; it cannot prove anything about the time before (their sealed_at is this migration's
-- time). Unfinished ones (an engine that died) stay unsealed, like any rule run that never finished.

DO $seal$
DECLARE
        i bigint;
BEGIN
        FOR i IN SELECT id FROM retention.rule_runs WHERE seq IS NULL AND finished_at IS NOT NULL ORDER BY id LOOP
                PERFORM retention.seal_rule_run(i);
        END LOOP;
END;
$seal$;

INSERT INTO retention.schema_version (version) VALUES (2) ON CONFLICT (version) DO NOTHING;
