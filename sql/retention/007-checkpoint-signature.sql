-- 007-checkpoint-signature.sql — retention schema version 7: signed checkpoints. A checkpoint of
-- `retentiond prune` (006-prune.sql) is the only proof of what a prune removed, and the point
-- the chain kept starts from; someone who may write the database could otherwise delete the
-- start of the chain and write a checkpoint that fits. So each checkpoint now records the range
-- it folded (first_seq to upto_seq) and the chain hash it continues from (from_hash), and carries
-- an HMAC-SHA256 over all its fields, keyed by the service's hash key, which the database never
-- holds: `retentiond prune` signs in the prune's own transaction (retention.sign_checkpoint()),
-- `retentiond verify` checks every signature when it has the key.
-- The key reaches the server as the `hash` method's does: its HMAC pads, by COPY into a temporary
-- table of the session, never in a statement's text or parameters. The signature is computed in
-- the caller's own session and rights (never inside a SECURITY DEFINER function, which would read
-- a table the caller controls).
-- Applied by `retentiond migrate` inside one transaction after it has checked the version; safe to
-- run twice. No transaction control, no application data and no personal data here.

ALTER TABLE retention.checkpoints ADD COLUMN IF NOT EXISTS first_seq bigint CHECK (first_seq > 0);
ALTER TABLE retention.checkpoints ADD COLUMN IF NOT EXISTS from_hash bytea;
COMMENT ON COLUMN retention.checkpoints.first_seq IS
        'seq of the first rule run pruned: the checkpoint folded #first_seq to #upto_seq. NULL: made by schema 6.';
COMMENT ON COLUMN retention.checkpoints.from_hash IS
        'prev_hash of rule run #first_seq: the chain hash the part pruned continued from (the upto_hash of the '
        'checkpoint before; NULL when first_seq is 1).';
COMMENT ON COLUMN retention.checkpoints.signature IS
        'HMAC-SHA256 of retention.checkpoint_message(), keyed by the service''s hash key. Set once, by '
        'retention.sign_checkpoint() in the prune''s transaction; NULL: unsigned (made by schema 6), which '
        '`retentiond verify` reports as a break.';

-- The signed message: a zero byte, then the canonical serialization of the checkpoint (the lines
-- of 002-receipts.sql's retention.digest_field()). The zero byte keeps it apart from the input of
-- the `hash` anonymisation method, which HMACs a value's text in UTF-8 with the same key: text
-- never holds a zero byte, so no pseudonym in the data can ever be a checkpoint's signature.
CREATE OR REPLACE FUNCTION retention.checkpoint_message(c retention.checkpoints) RETURNS bytea
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp AS $$
        SELECT '\x00'::bytea || convert_to('retentiond-checkpoint-v1' || E'\n'
                || retention.digest_field('id', c.id::text)
                || retention.digest_field('made_at', retention.digest_time(c.made_at))
                || retention.digest_field('made_by', c.made_by)
                || retention.digest_field('older_than', c.older_than)
                || retention.digest_field('first_seq', c.first_seq::text)
                || retention.digest_field('from_hash', encode(c.from_hash, 'hex'))
                || retention.digest_field('upto_seq', c.upto_seq::text)
                || retention.digest_field('upto_hash', encode(c.upto_hash, 'hex'))
                || retention.digest_field('rule_runs_pruned', c.rule_runs_pruned::text)
                || retention.digest_field('runs_pruned', c.runs_pruned::text)
                || retention.digest_field('run_ids', array_to_string(c.run_ids, ','))
                || retention.digest_field('rows_deleted', c.rows_deleted::text)
                || retention.digest_field('rows_anonymised', c.rows_anonymised::text), 'UTF8')
$$;
COMMENT ON FUNCTION retention.checkpoint_message(retention.checkpoints) IS
        'What a checkpoint''s signature covers: a zero byte, a header line, then id, made_at, made_by, older_than, '
        'first_seq, from_hash, upto_seq, upto_hash, rule_runs_pruned, runs_pruned, run_ids, rows_deleted, '
        'rows_anonymised. Used by `retentiond prune` to sign and by `retentiond verify` to check.';

-- The guard: a checkpoint is never changed, but for its signature, set once (from NULL) by
-- retention.sign_checkpoint() in the transaction that made it.
CREATE OR REPLACE FUNCTION retention.checkpoints_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
        IF TG_OP = 'UPDATE' AND retention.pruning() AND OLD.signature IS NULL AND NEW.signature IS NOT NULL
           AND to_jsonb(NEW) - 'signature' = to_jsonb(OLD) - 'signature' THEN
                RETURN NEW;
        END IF;
        RAISE EXCEPTION 'retention.checkpoints is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'A checkpoint is what lets the pruned chain verify; it is never changed.';
END;
$$;

CREATE OR REPLACE FUNCTION retention.sign_checkpoint(checkpoint bigint, signature bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
        PERFORM retention.outside_triggers('retention.sign_checkpoint()');
        IF signature IS NULL OR octet_length(signature) <> 32 THEN
                RAISE EXCEPTION 'a checkpoint''s signature is 32 bytes (HMAC-SHA256)' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM retention.checkpoints c
                        WHERE c.id = checkpoint AND c.signature IS NULL
                          AND c.xmin = pg_current_xact_id_if_assigned()::xid) THEN
                RAISE EXCEPTION 'checkpoint % is not an unsigned checkpoint made by this transaction', checkpoint
                        USING ERRCODE = 'insufficient_privilege',
                              HINT = 'A checkpoint is signed by the prune that makes it, in the same transaction.';
        END IF;
        INSERT INTO retention.prune_marks (xid) VALUES (pg_current_xact_id());
        UPDATE retention.checkpoints c SET signature = sign_checkpoint.signature WHERE c.id = checkpoint;
        DELETE FROM retention.prune_marks m WHERE m.xid = pg_current_xact_id();
END;
$$;
REVOKE ALL ON FUNCTION retention.sign_checkpoint(bigint, bytea) FROM PUBLIC;
COMMENT ON FUNCTION retention.sign_checkpoint(bigint, bytea) IS
        'Sets the signature of a checkpoint that this transaction''s retention.prune() made and that is still '
        'unsigned; nothing else. Granted like retention.prune(): to no one but its owner.';

-- The prune of version 6, now recording first_seq and from_hash.
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
                INSERT INTO retention.checkpoints AS c (made_at, made_by, older_than, first_seq, from_hash, upto_seq, upto_hash,
                                                        rule_runs_pruned, runs_pruned, run_ids, rows_deleted, rows_anonymised)
                VALUES (now(), pruned_by, older_than::text, prune.first_seq,
                        (SELECT r.prev_hash FROM retention.rule_runs r WHERE r.seq = prune.first_seq),
                        prune.upto_seq, prune.upto_hash, prune.rule_runs_pruned,
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
COMMENT ON FUNCTION retention.prune(interval, text, boolean) IS
        'Removes the oldest sealed rule runs that finished before now() - older_than (a prefix of the chain) with '
        'their counts and the runs left empty, and records a checkpoint (the range removed, the hash it continued '
        'from, the last seq and hash removed), unsigned: `retentiond prune` signs it in the same transaction '
        '(retention.sign_checkpoint()). dry_run: reports only. Not granted to the engine''s role: pruning is an '
        'operator''s act.';

INSERT INTO retention.schema_version (version) VALUES (7) ON CONFLICT (version) DO NOTHING;
