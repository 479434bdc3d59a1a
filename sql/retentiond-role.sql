-- retentiond-role.sql — creates (or tightens) the least-privilege login role the engine runs as.
-- A psql script run once by an administrator after `retentiond migrate`; it must never grant more
-- than enforcement needs: no DELETE on the hold registry, nothing on tables that are not listed.
--
-- Usage (as the owner of the tables, or a superuser):
--
--   psql -d mydb -v role=retentiond \
--        -v tables='app.access_log, app.accounts, app.support_tickets, app.contact_messages, app.chat_transcripts, app.invoices' \
--        -v read_tables='app.invoices' \
--        -f sql/retentiond-role.sql
--
--   role         the login role to create; left as it is if it exists (then only grants change).
--   tables       comma-separated tables the policy's rules act on (delete or anonymise): they get
--                SELECT, UPDATE, DELETE, and their schemas USAGE. Names are written as in SQL:
--                unquoted names fold to lower case, quote the others: '"Sales Data"."Invoices"'.
--   read_tables  optional, same syntax: tables only read (evidence of derived holds, e.g. the
--                invoices of a tax hold, when no rule acts on them): SELECT only.
--
-- On the retention schema (version 10, as `retentiond migrate` leaves it) the role gets USAGE, SELECT on its tables, and
-- EXECUTE on the functions through which the engine and the CLI write the audit trail, the hold
-- registry and the schedule slots (begin_run, begin_rule_run, add_rule_run_counts,
-- finish_rule_run, place_hold, release_hold, ...); never INSERT, UPDATE, DELETE or TRUNCATE on a
-- table of the schema, so that code running as the role (a trigger of an application table, for
-- instance) cannot rewrite the trail or release a hold without its event. Rerunning the
-- script converges: privileges this role holds on other tables of the same schemas are revoked
-- (each revoke is reported).
-- The role gets no password: use peer/cert authentication, or ALTER ROLE ... PASSWORD afterwards.
-- Partitioned tables: list the parent. DML goes through the parent, so its privileges suffice
-- for the batches; every partition of a listed table gets SELECT (a foreign key declared on a
-- partition is checked by reading the partition): rerun the script after creating partitions
-- (`retentiond check -d` names a partition the role cannot read). Dropping whole partitions
-- needs ownership of the parent and of the partition, which this script deliberately does not
-- give: without it, the engine sees that in the catalog before it changes anything, leaves every
-- partition attached and deletes the expired rows row by row, in batches through the parent.

\set ON_ERROR_STOP on
\if :{?role}
\else
        \echo 'retentiond-role.sql: set the role name: psql -v role=NAME -v tables=... -f sql/retentiond-role.sql'
        DO $$ BEGIN RAISE EXCEPTION 'psql variable "role" is not set'; END $$;
\endif
\if :{?tables}
\else
        \echo 'retentiond-role.sql: set the tables the rules act on: -v tables=''app.access_log, app.accounts'''
        DO $$ BEGIN RAISE EXCEPTION 'psql variable "tables" is not set'; END $$;
\endif
\if :{?read_tables}
\else
        \set read_tables ''
\endif

BEGIN;

-- psql does not interpolate variables inside dollar quotes: hand them to the DO block as settings.
SELECT set_config('retentiond.role', :'role', true),
       set_config('retentiond.tables', :'tables', true),
       set_config('retentiond.read_tables', :'read_tables', true) \gset retentiond_ignored_

DO $role$
DECLARE
        r name := current_setting('retentiond.role');
        -- Split on commas outside double quotes.
        split constant text := '((?:[^,"]|"(?:[^"]|"")*")+)';
        item text;
        rel regclass;
        acts regclass[] := '{}';
        reads regclass[] := '{}';
        parts regclass[] := '{}';
        schemas oid[] := '{}';
        g record;
        f regprocedure;
        -- Every write of the engine and of the CLI (sql/retention/005-safety.sql, section C).
        writes constant text[] := ARRAY[
                'retention.begin_run(text, text, text)', 'retention.end_run(bigint, text, int, int)',
                'retention.interrupt_run(bigint)', 'retention.close_abandoned_runs()',
                'retention.begin_rule_run(bigint, text, text, text, text)',
                'retention.begin_rule_run(bigint, text, text, text, text, timestamptz, timestamptz)',
                'retention.set_rule_run_cutoff(bigint, timestamptz)',
                'retention.add_rule_run_counts(bigint, bigint, bigint, bigint, bigint)',
                'retention.add_rule_run_hold(bigint, text, bigint)', 'retention.add_rule_run_fk(bigint, text, bigint)',
                'retention.finish_rule_run(bigint, text, text, text, bigint, bigint, bigint, bigint, bigint)',
                'retention.claim_rule_slot(text, text, timestamptz)',
                'retention.place_hold(text, text, text, text, timestamptz)', 'retention.release_hold(bigint, text)',
                -- section D: a batch's cascades; a rule run's end with the reasons its rows were skipped
                'retention.add_rule_run_cascades(bigint, text[], bigint[], bigint[])',
                'retention.finish_rule_run(bigint, text, text, text, bigint, bigint, bigint, bigint, bigint, bigint, bigint)',
                -- version 10: a rule run with nothing to change, begun, finished and sealed in one call
                'retention.record_rule_run(bigint, text, text, text, text, timestamptz, timestamptz, text, text, text,'
                ' bigint, bigint, bigint, bigint, bigint, bigint, bigint)'];
BEGIN
        IF r IS NULL OR r = '' THEN
                RAISE EXCEPTION 'role name is empty' USING HINT = 'psql -v role=retentiond ...';
        END IF;

        FOR item IN SELECT btrim(m[1]) FROM regexp_matches(current_setting('retentiond.tables'), split, 'g') AS m LOOP
                CONTINUE WHEN item = '';
                rel := item::regclass;   -- fails with "relation does not exist" for a typo
                acts := acts || rel;
        END LOOP;
        IF cardinality(acts) = 0 THEN
                RAISE EXCEPTION 'no tables given' USING HINT = 'psql -v tables=''app.access_log, app.accounts'' ...';
        END IF;
        FOR item IN SELECT btrim(m[1]) FROM regexp_matches(current_setting('retentiond.read_tables'), split, 'g') AS m LOOP
                CONTINUE WHEN item = '';
                rel := item::regclass;
                IF NOT rel = ANY (acts) THEN
                        reads := reads || rel;
                END IF;
        END LOOP;

        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', r);
                RAISE NOTICE 'created login role %', r;
        ELSIF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r AND (rolsuper OR rolbypassrls)) THEN
                RAISE EXCEPTION 'role % is a superuser or bypasses row level security', r
                        USING HINT = 'The engine must run as an ordinary role; choose another name.';
        END IF;

        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), r);

        -- The retention schema.
        IF to_regnamespace('retention') IS NULL THEN
                RAISE EXCEPTION 'schema retention does not exist' USING HINT = 'Run retentiond migrate first.';
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA retention TO %I', r);
        -- Schema version 5: the role reads the audit trail, the hold registry and the slots, and
        -- writes them only through the schema's functions (SECURITY DEFINER), never directly.
        IF to_regprocedure('retention.begin_run(text, text, text)') IS NULL THEN
                RAISE EXCEPTION 'schema retention is older than version 5' USING HINT = 'Run retentiond migrate first.';
        END IF;
        -- Every write granted below must exist: the schema is at the version this script is for.
        IF (SELECT coalesce(max(version), 0) FROM retention.schema_version) < 10 THEN
                RAISE EXCEPTION 'schema retention is older than version 10' USING HINT = 'Run retentiond migrate first.';
        END IF;
        EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA retention FROM %I', r);
        EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA retention FROM %I', r);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA retention TO %I', r);
        FOREACH f IN ARRAY writes::regprocedure[] LOOP
                EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', f, r);
        END LOOP;
        -- The engine sets these to 0 on its sessions, so statement parameters (hold keys) never
        -- reach the server log, even when statements are logged. (The hash key is never a
        -- parameter: it goes by COPY into a temporary table, whatever the role may set.)
        IF current_setting('server_version_num')::int >= 150000 THEN
                EXECUTE format('GRANT SET ON PARAMETER log_parameter_max_length, '
                               'log_parameter_max_length_on_error TO %I', r);
                -- And it compresses its own WAL while the application writes (pacing), so the
                -- application's commits have less of it to flush.
                EXECUTE format('GRANT SET ON PARAMETER wal_compression TO %I', r);
        END IF;

        -- The application tables: exactly the listed ones, and the partitions of listed
        -- partitioned tables (SELECT only: a foreign key declared on a partition is checked by
        -- reading that partition; rows are changed only through the parent).
        SELECT coalesce(array_agg(t.relid), '{}') INTO parts
        FROM unnest(acts || reads) AS l(rel), pg_partition_tree(l.rel) t
        WHERE t.level > 0 AND NOT t.relid = ANY (acts || reads);
        FOREACH rel IN ARRAY acts || reads || parts LOOP
                schemas := schemas || (SELECT relnamespace FROM pg_class WHERE oid = rel);
        END LOOP;
        FOR g IN
                SELECT c.oid::regclass AS rel
                FROM pg_class c, aclexplode(c.relacl) a
                WHERE c.relnamespace = ANY (schemas) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                  AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname = r)
                  AND NOT c.oid = ANY (acts || reads || parts)
                GROUP BY c.oid
        LOOP
                EXECUTE format('REVOKE ALL ON %s FROM %I', g.rel, r);
                RAISE NOTICE 'revoked privileges of % on %, which is not listed', r, g.rel;
        END LOOP;
        FOREACH rel IN ARRAY acts LOOP
                EXECUTE format('REVOKE ALL ON %s FROM %I', rel, r);
                EXECUTE format('GRANT SELECT, UPDATE, DELETE ON %s TO %I', rel, r);
                RAISE NOTICE 'granted SELECT, UPDATE, DELETE on % to %', rel, r;
        END LOOP;
        FOREACH rel IN ARRAY reads || parts LOOP
                EXECUTE format('REVOKE ALL ON %s FROM %I', rel, r);
                EXECUTE format('GRANT SELECT ON %s TO %I', rel, r);
                RAISE NOTICE 'granted SELECT on % to %', rel, r;
        END LOOP;
        FOR g IN SELECT DISTINCT nspname FROM pg_namespace WHERE oid = ANY (schemas) LOOP
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', g.nspname, r);
        END LOOP;
END;
$role$;

COMMIT;
