/* test-lpriv.c — partitioned tables under the least-privilege role of sql/retentiond-role.sql,
 * against a real PostgreSQL 15. app.payment is range-partitioned by day on paid_at, owned by a
 * separate owner role (lp_owner), and every partition carries its own foreign key to
 * app.customer, as pagila's payment partitions do. The role, made by the script exactly as the
 * README says, owns nothing: expired partitions' rows go by batches (nothing detached, no COMMENT
 * left); the owner drops them whole; `check -d` says which. A rule run after partitions were
 * dropped in the same run (CLI and daemon) plans from fresh catalog facts. A batch whose
 * audit-trail counter fails (the role lost EXECUTE on it) commits nothing. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "notify-harness.h"
#include "pgtest.h"
#include "rtest.h"

#define SEC UINT64_C(1000000)

/* The partitions of app.payment, in name order. */
#define PARTITIONS_SQL                                                                                               \
        "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid" \
        " WHERE i.inhparent = 'app.payment'::regclass"
#define ALL_PARTITIONS "payment_d0,payment_d1,payment_d10,payment_d2,payment_d3,payment_d4,payment_d5,payment_d6,payment_d7,payment_d8,payment_d9,payment_dm1"
#define KEPT_PARTITIONS "payment_d0,payment_d1,payment_d2,payment_d3,payment_dm1"
/* Tables of this database that carry the engine's COMMENT, or that are detached partitions. */
#define COMMENTS_SQL "SELECT count(*) FROM pg_description d WHERE d.description LIKE 'retentiond:%'"
#define DETACHED_SQL                                                                                      \
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"                    \
        " WHERE n.nspname = 'app' AND c.relkind = 'r' AND c.relname LIKE 'payment\\_d%' AND NOT c.relispartition"
#define RULE_RUNS_SQL                                                                                                      \
        "SELECT string_agg(rule || ' ' || outcome || ' ' || rows_deleted || ' ' || partitions_dropped, '; ' ORDER BY id)" \
        " FROM retention.rule_runs"

/* A fresh database NAME: app.customer (ids 1..20, 1..10 closed 40 days ago) and app.payment,
 * partitioned by day: payment_dK for the day K days ago (K = -1..10, dm1: tomorrow), 10 rows at
 * noon each, ids K * 100 + 1..10; every partition its own foreign key to app.customer. Payments
 * of the days 4..10 (expired: kept 3 days from the end of their day) belong to customers 1..10;
 * the kept days to customers 11..20, but for one row of day 2 that belongs to customer 1. All
 * owned by lp_owner. Then `role` made by the role script (unless NULL). Conninfo as the
 * superuser in *ci, as the role in *eci (NULL without a role). */
static PGconn *lp_db(const char *name, const char *role, char **ci, char **eci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "DO $$ BEGIN CREATE ROLE lp_owner LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        pgtest_exec(c, "ALTER SCHEMA app OWNER TO lp_owner");
        pgtest_exec(c, "SET ROLE lp_owner");
        pgtest_exec(c, "CREATE TABLE app.customer (id int PRIMARY KEY, closed_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.customer (closed_at)");
        pgtest_exec(c, "INSERT INTO app.customer SELECT g, CASE WHEN g <= 10 THEN now() - interval '40 days' END"
                       " FROM generate_series(1, 20) g");
        pgtest_exec(c, "CREATE TABLE app.payment (id int NOT NULL, customer_id int NOT NULL, paid_at timestamptz NOT NULL)"
                       " PARTITION BY RANGE (paid_at)");
        pgtest_exec(c, "%s",
                    "DO $$ DECLARE p text; BEGIN FOR k IN -1..10 LOOP"
                    " p := 'payment_d' || replace(k::text, '-', 'm');"
                    " EXECUTE format('CREATE TABLE app.%I PARTITION OF app.payment FOR VALUES FROM (%L) TO (%L)',"
                    "   p, current_date - k, current_date - k + 1);"
                    " EXECUTE format('ALTER TABLE app.%I ADD FOREIGN KEY (customer_id) REFERENCES app.customer (id)', p);"
                    " END LOOP; END $$");
        pgtest_exec(c, "CREATE INDEX ON app.payment (paid_at)");
        pgtest_exec(c, "CREATE INDEX ON app.payment (customer_id)");
        pgtest_exec(c, "INSERT INTO app.payment SELECT k * 100 + i,"
                       " CASE WHEN k >= 4 THEN i WHEN k = 2 AND i = 1 THEN 1 ELSE 10 + i END,"
                       " (current_date - k) + time '12:00' FROM generate_series(-1, 10) k, generate_series(1, 10) i");
        pgtest_exec(c, "RESET ROLE");
        pgtest_exec(c, "ANALYZE app.payment, app.customer");
        *eci = NULL;
        if (role) {
                *eci = pgtest_engine_role(*ci, role, "app.payment, app.customer", NULL);
        }
        return c;
}

static const char POLICY[] = "version: 1\n"
                             "rules:\n"
                             "  payments:\n"
                             "    clause: \"payments are kept 3 days from the end of their day\"\n"
                             "    table: app.payment\n"
                             "    column: paid_at\n"
                             "    retain: 3 days\n"
                             "    from: end_of_day\n"
                             "    action: delete\n"
                             "    max_fraction: 100%\n"
                             "  customers:\n"
                             "    clause: \"closed accounts are deleted after 30 days\"\n"
                             "    table: app.customer\n"
                             "    column: closed_at\n"
                             "    retain: 30 days\n"
                             "    action: delete\n"
                             "    max_fraction: 100%\n";

/* After a run of POLICY: 70 payments of the days 4..10 and the customers 2..10 are gone;
 * customer 1 is kept by the payment of day 2 that references it. */
static void assert_enforced(PGconn *c) {
        rt_assert_sql(c, "50", "SELECT count(*) FROM app.payment");
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.payment WHERE paid_at < current_date - 3");
        rt_assert_sql(c, "1,11,12,13,14,15,16,17,18,19,20", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.customer");
        rt_assert_sql(c, "app.payment_d2 1",
                      "SELECT string_agg(f.referencing_table || ' ' || f.rows, ',') FROM retention.rule_run_fk f"
                      " WHERE f.rule_run_id = (SELECT max(id) FROM retention.rule_runs WHERE rule = 'customers')");
        rt_assert_sql(c, "0", "%s", COMMENTS_SQL);
        rt_assert_sql(c, "0", "%s", DETACHED_SQL);
}

/* The role owns nothing: every partition stays attached, the expired ones' rows are deleted by
 * batches through the parent, and the rule succeeds. It failed with "must be owner of table
 * payment" as soon as a whole partition had expired. */
static void test_role_deletes_partitions_by_batches(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_batches", "lp_role_b", &ci, &eci);
        char *pol = rt_policy(POLICY);
        char *out = NULL, *err = NULL;
        rt_expect(0, &out, &err, "-p", pol, "-d", eci, "run");
        rt_assert_not_contains(err, "must be owner");
        free(out);
        free(err);
        rt_assert_sql(c, "payments success 70 0; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, ALL_PARTITIONS, "%s", PARTITIONS_SQL);
        assert_enforced(c);
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.payment_d4");

        /* A second run finds nothing to do and changes nothing. */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "payments success 70 0; customers success 9 0; payments success 0 0; customers success 0 0",
                      "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, ALL_PARTITIONS, "%s", PARTITIONS_SQL);
        assert_enforced(c);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* A batch whose audit-trail counter fails never commits: the role may no longer move the counters
 * (EXECUTE on retention.add_rule_run_counts() revoked), so the first batch's counter fails, and
 * the COMMIT that travels with it (the same pipeline) must not run. Every row stays; the trail
 * says each rule failed with the permission error and changed nothing. */
static void test_failed_counter_commits_nothing(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_counter", "lp_role_c", &ci, &eci);
        pgtest_exec(c, "REVOKE EXECUTE ON FUNCTION retention.add_rule_run_counts(bigint, bigint, bigint, bigint, bigint)"
                       " FROM lp_role_c");
        char *pol = rt_policy(POLICY);
        char *err = NULL;
        rt_expect(1, NULL, &err, "-p", pol, "-d", eci, "run");
        rt_assert_contains(err, "permission denied for function add_rule_run_counts");
        free(err);
        rt_assert_sql(c, "120", "SELECT count(*) FROM app.payment");
        rt_assert_sql(c, "20", "SELECT count(*) FROM app.customer");
        rt_assert_sql(c, "payments failed 0 0 42501; customers failed 0 0 42501",
                      "SELECT string_agg(rule || ' ' || outcome || ' ' || rows_deleted || ' ' || batches || ' ' || sqlstate,"
                      " '; ' ORDER BY id) FROM retention.rule_runs");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* `check -d` as the role says what it can and cannot do: a note for the partitioned rule, and
 * errors, located at the rule, for a privilege it lacks. As the owner: no note. */
static void test_check_as_role(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_check", "lp_role_c", &ci, &eci);
        char *pol = rt_policy(POLICY);
        char *out = NULL, *err = NULL;
        rt_expect(0, &out, &err, "-p", pol, "-d", eci, "check");
        char *note = rt_asprintf("%s:3:3: note: partitions of app.payment will be deleted row by row: role lp_role_c does not"
                                 " own them (dropping whole partitions needs ownership)\n"
                                 "    3 |   payments:\n"
                                 "      |   ^\n"
                                 "DETAIL:  In rule \"payments\", checked against the database. Expired partitions are"
                                 " detached and dropped whole only by a role that owns the partitioned table and the"
                                 " partition (or is a member of their owner); otherwise the engine deletes their rows in"
                                 " batches through app.payment, which SELECT and DELETE on it allow.\n",
                                 pol);
        rt_assert_contains(err, note);
        assert_int_equal(count_substr(err, "note:"), 1);
        assert_int_equal(count_substr(err, "error:"), 0);
        /* 12 partitions that reference customers, and app.payment without a primary key */
        assert_int_equal(count_substr(err, "warning: rows of app.customer referenced from app.payment_d"), 12);
        assert_int_equal(count_substr(err, "warning: table app.payment has no primary key: explain cannot name its rows\n"), 1);
        rt_assert_contains(out, "database OK: 2 rules checked against the catalog: 0 errors, 13 warnings, 1 note\n");
        free(out);
        free(err);

        /* A member of the owner may drop them: no note. */
        pgtest_exec(c, "GRANT lp_owner TO lp_role_c");
        rt_expect(0, NULL, &err, "-p", pol, "-d", eci, "check");
        assert_int_equal(count_substr(err, "note:"), 0);
        free(err);

        /* ... but not a partition owned by another role: a note naming it. */
        pgtest_exec(c, "DO $$ BEGIN CREATE ROLE lp_other; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        pgtest_exec(c, "GRANT USAGE ON SCHEMA app TO lp_other"); /* foreign-key checks run as the table's owner */
        pgtest_exec(c, "ALTER TABLE app.payment_d5 OWNER TO lp_other");
        rt_expect(0, NULL, &err, "-p", pol, "-d", eci, "check");
        char *note1 = rt_asprintf("%s:3:3: note: partition app.payment_d5 of app.payment will be deleted row by row:"
                                  " role lp_role_c does not own it (dropping whole partitions needs ownership)\n",
                                  pol);
        rt_assert_contains(err, note1);
        assert_int_equal(count_substr(err, "note:"), 1);
        free(err);
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_c");

        /* Privileges the role lacks: errors at the rule, exit 77. */
        pgtest_exec(c, "REVOKE SELECT ON app.payment_d2 FROM lp_role_c");
        pgtest_exec(c, "REVOKE DELETE ON app.payment FROM lp_role_c");
        rt_expect(77, &out, &err, "-p", pol, "-d", eci, "check");
        char *e1 = rt_asprintf("%s:3:3: error: permission denied: the role cannot DELETE from app.payment\n", pol);
        char *e2 = rt_asprintf("%s:11:3: error: permission denied: the role cannot SELECT from app.payment_d2, which"
                               " references app.customer (constraint payment_d2_customer_id_fkey); every delete checks it\n"
                               "   11 |   customers:\n"
                               "      |   ^\n"
                               "DETAIL:  In rule \"customers\", checked against the database.\n"
                               "HINT:  List it in read_tables of sql/retentiond-role.sql and run the script again; for a"
                               " partition, list its partitioned table: the script grants SELECT on every partition that"
                               " exists when it runs.\n",
                               pol);
        rt_assert_contains(err, e1);
        rt_assert_contains(err, e2);
        assert_int_equal(count_substr(err, "error:"), 2);
        rt_assert_not_contains(out, "database OK");
        free(out);
        free(err);
        /* A run that meets them anyway fails each rule with the server's words and a hint that
         * points to check -d; nothing is deleted. */
        rt_assert_sql(c, "120 20", "SELECT (SELECT count(*) FROM app.payment) || ' ' || (SELECT count(*) FROM app.customer)");
        rt_expect(1, NULL, &err, "-p", pol, "-d", eci, "run");
        rt_assert_contains(err, "retentiond: error: rule \"customers\": permission denied for table payment_d2\n"
                                "HINT:  Run \"retentiond check --database\" as this role: it names every privilege the"
                                " policy needs that the role lacks, which sql/retentiond-role.sql grants (tables only read,"
                                " such as a foreign key's referencing table, in read_tables). Code the rule runs, a trigger"
                                " for instance, may need privileges of its own.\n");
        free(err);
        rt_assert_sql(c, "120 20", "SELECT (SELECT count(*) FROM app.payment) || ' ' || (SELECT count(*) FROM app.customer)");
        rt_assert_sql(c, "customers failed 42501 0",
                      "SELECT rule || ' ' || outcome || ' ' || sqlstate || ' ' || rows_deleted FROM retention.rule_runs"
                      " WHERE rule = 'customers' ORDER BY id DESC LIMIT 1");

        /* The script, run again, grants them back; UPDATE for anonymisation too. */
        free(pgtest_engine_role(ci, "lp_role_c", "app.payment, app.customer", NULL));
        rt_expect(0, NULL, &err, "-p", pol, "-d", eci, "check");
        assert_int_equal(count_substr(err, "error:"), 0);
        free(err);
        rt_assert_sql(c, "t", "SELECT has_table_privilege('lp_role_c', 'app.payment', 'SELECT, UPDATE, DELETE')"
                              " AND has_table_privilege('lp_role_c', 'app.payment_d2', 'SELECT')"
                              " AND NOT has_table_privilege('lp_role_c', 'app.payment_d2', 'DELETE')"
                              " AND NOT has_table_privilege('lp_role_c', 'app.payment_d2', 'UPDATE')");

        /* A hold's evidence the role may not read: an error at the rule; read_tables grants it. */
        pgtest_exec(c, "SET ROLE lp_owner");
        pgtest_exec(c, "CREATE TABLE app.invoice (id int PRIMARY KEY, customer_id int NOT NULL, issued_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.invoice (customer_id)");
        pgtest_exec(c, "RESET ROLE");
        char *hpol = rt_policy("version: 1\n"
                               "subjects:\n"
                               "  customer: { table: app.customer, key: id }\n"
                               "holds:\n"
                               "  tax:\n"
                               "    reason: \"invoices are kept 10 years\"\n"
                               "    subject: customer\n"
                               "    table: app.invoice\n"
                               "    subject_column: customer_id\n"
                               "    column: issued_at\n"
                               "    retain: 10 years\n"
                               "rules:\n"
                               "  customers:\n"
                               "    clause: \"closed accounts are deleted after 30 days\"\n"
                               "    table: app.customer\n"
                               "    subject: customer\n"
                               "    column: closed_at\n"
                               "    retain: 30 days\n"
                               "    holds: [tax]\n"
                               "    action: delete\n");
        rt_expect(77, NULL, &err, "-p", hpol, "-d", eci, "check");
        char *e3 = rt_asprintf("%s:13:3: error: permission denied: the role cannot SELECT from app.invoice, the evidence of"
                               " hold \"tax\"\n"
                               "   13 |   customers:\n"
                               "      |   ^\n"
                               "DETAIL:  In rule \"customers\", checked against the database.\n"
                               "HINT:  List it in read_tables of sql/retentiond-role.sql and run the script again.\n",
                               hpol);
        rt_assert_contains(err, e3);
        assert_int_equal(count_substr(err, "error:"), 1);
        free(err);
        free(pgtest_engine_role(ci, "lp_role_c", "app.payment, app.customer", "app.invoice"));
        rt_expect(0, NULL, &err, "-p", hpol, "-d", eci, "check");
        assert_int_equal(count_substr(err, "error:"), 0);
        free(err);
        free(e3);
        free(hpol);
        free(e1);
        free(e2);
        free(note);
        free(note1);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* As the owner, the expired partitions are dropped whole; one partition owned by another role
 * is not touched: it stays attached, its rows go by batches, and no COMMENT stays on it. (It
 * was detached, its DROP refused, and it could not be attached again: left detached.) */
static void test_owner_drops_partitions(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_owner", "lp_role_o", &ci, &eci);
        pgtest_exec(c, "GRANT lp_owner TO lp_role_o"); /* the owner's privileges: it may drop */
        pgtest_exec(c, "DO $$ BEGIN CREATE ROLE lp_other; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        pgtest_exec(c, "GRANT USAGE ON SCHEMA app TO lp_other"); /* foreign-key checks run as the table's owner */
        pgtest_exec(c, "ALTER TABLE app.payment_d5 OWNER TO lp_other");
        char *pol = rt_policy(POLICY);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "payments success 70 6; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, "payment_d0,payment_d1,payment_d2,payment_d3,payment_d5,payment_dm1", "%s", PARTITIONS_SQL);
        rt_assert_sql(c, "0", "SELECT count(*) FROM app.payment_d5");
        rt_assert_sql(c, "1", "SELECT count(*) FROM pg_class WHERE relname LIKE 'payment\\_d%%' AND relnamespace = 'app'::regnamespace"
                              " AND relname IN ('payment_d4', 'payment_d5', 'payment_d6', 'payment_d7', 'payment_d8',"
                              " 'payment_d9', 'payment_d10')");
        assert_enforced(c);
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_o");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* A partition another table's foreign key references is never dropped (the DROP failed the rule
 * on every run: "cannot drop table app.payment_d6 because other objects depend on it"): it stays
 * attached, its rows go by batches, and the one still referenced is kept and reported. `check -d`
 * says so. */
static void test_referenced_partition_stays(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_referenced", "lp_role_f", &ci, &eci);
        pgtest_exec(c, "GRANT lp_owner TO lp_role_f");
        pgtest_exec(c, "SET ROLE lp_owner");
        pgtest_exec(c, "ALTER TABLE app.payment_d6 ADD UNIQUE (id)");
        pgtest_exec(c, "CREATE TABLE app.refund (id int PRIMARY KEY, payment_id int REFERENCES app.payment_d6 (id))");
        pgtest_exec(c, "INSERT INTO app.refund VALUES (1, 601)");
        pgtest_exec(c, "RESET ROLE");
        char *pol = rt_policy(POLICY);
        char *err = NULL;
        rt_expect(0, NULL, &err, "-p", pol, "-d", eci, "check");
        char *note = rt_asprintf("%s:3:3: note: partition app.payment_d6 of app.payment will be deleted row by row:"
                                 " app.refund references it (constraint refund_payment_id_fkey)\n"
                                 "    3 |   payments:\n"
                                 "      |   ^\n"
                                 "DETAIL:  In rule \"payments\", checked against the database. A referenced partition"
                                 " cannot be dropped; its rows that are still referenced are kept and reported.\n",
                                 pol);
        rt_assert_contains(err, note);
        assert_int_equal(count_substr(err, "note:"), 1);
        free(err);

        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "payments success 69 6; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, "payment_d0,payment_d1,payment_d2,payment_d3,payment_d6,payment_dm1", "%s", PARTITIONS_SQL);
        rt_assert_sql(c, "601", "SELECT string_agg(id::text, ',') FROM app.payment_d6");
        rt_assert_sql(c, "app.refund 1",
                      "SELECT string_agg(f.referencing_table || ' ' || f.rows, ',') FROM retention.rule_run_fk f"
                      " WHERE f.rule_run_id = (SELECT max(id) FROM retention.rule_runs WHERE rule = 'payments')");
        rt_assert_sql(c, "51", "SELECT count(*) FROM app.payment");
        rt_assert_sql(c, "1,11,12,13,14,15,16,17,18,19,20", "SELECT string_agg(id::text, ',' ORDER BY id) FROM app.customer");
        rt_assert_sql(c, "0", "%s", COMMENTS_SQL);
        rt_assert_sql(c, "0", "%s", DETACHED_SQL);
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_f");
        free(note);
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* A DETACH that PostgreSQL refuses with 42501 although the catalog said the role may (here an
 * event trigger; in life: ownership changed meanwhile): no COMMENT and no detached partition
 * is left, and the rows go by batches. It failed the rule and left the COMMENT. */
static void test_detach_refused_falls_back(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_refused", "lp_role_r", &ci, &eci);
        pgtest_exec(c, "GRANT lp_owner TO lp_role_r"); /* the catalog says: may drop */
        pgtest_exec(c, "CREATE FUNCTION public.no_detach() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " IF current_query() ILIKE '%%DETACH PARTITION%%' THEN"
                       "  RAISE EXCEPTION 'test: must be owner of table payment' USING ERRCODE = '42501'; END IF; END $$");
        pgtest_exec(c, "CREATE EVENT TRIGGER no_detach ON ddl_command_start WHEN TAG IN ('ALTER TABLE')"
                       " EXECUTE FUNCTION public.no_detach()");
        char *pol = rt_policy(POLICY);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "payments success 70 0; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, ALL_PARTITIONS, "%s", PARTITIONS_SQL);
        assert_enforced(c);
        pgtest_exec(c, "DROP EVENT TRIGGER no_detach");
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_r");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* The same refusal of the plain DETACH that a default partition forces (DETACH ... CONCURRENTLY
 * is impossible then): the transaction rolls back, the COMMENT goes, the batches take the rows. */
static void test_plain_detach_refused_falls_back(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_refused_plain", "lp_role_p", &ci, &eci);
        pgtest_exec(c, "GRANT lp_owner TO lp_role_p");
        pgtest_exec(c, "SET ROLE lp_owner");
        pgtest_exec(c, "CREATE TABLE app.payment_default PARTITION OF app.payment DEFAULT");
        pgtest_exec(c, "RESET ROLE");
        pgtest_exec(c, "CREATE FUNCTION public.no_plain_detach() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN"
                       " IF current_query() ILIKE '%%DETACH PARTITION%%' AND current_query() NOT ILIKE '%%CONCURRENTLY%%' THEN"
                       "  RAISE EXCEPTION 'test: must be owner of table payment' USING ERRCODE = '42501'; END IF; END $$");
        pgtest_exec(c, "CREATE EVENT TRIGGER no_plain_detach ON ddl_command_start WHEN TAG IN ('ALTER TABLE')"
                       " EXECUTE FUNCTION public.no_plain_detach()");
        char *pol = rt_policy(POLICY);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", eci, "run");
        rt_assert_sql(c, "payments success 70 0; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, "payment_d0,payment_d1,payment_d10,payment_d2,payment_d3,payment_d4,payment_d5,payment_d6,"
                         "payment_d7,payment_d8,payment_d9,payment_default,payment_dm1",
                      "%s", PARTITIONS_SQL);
        assert_enforced(c);
        pgtest_exec(c, "DROP EVENT TRIGGER no_plain_detach");
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_p");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* Issue 12, point 9: the first rule drops partitions that carried a foreign key to the second
 * rule's table; the second rule must plan from fresh catalog facts. It failed with 'relation
 * "app.payment_d10" does not exist'. The role from the script, a member of the owner. */
static void test_second_rule_after_drop(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_two_rules", "lp_role_t", &ci, &eci);
        pgtest_exec(c, "GRANT lp_owner TO lp_role_t");
        char *pol = rt_policy(POLICY);
        char *out = NULL, *err = NULL;
        rt_expect(0, &out, &err, "-p", pol, "-d", eci, "run");
        rt_assert_not_contains(err, "does not exist");
        free(out);
        free(err);
        rt_assert_sql(c, "payments success 70 7; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, KEPT_PARTITIONS, "%s", PARTITIONS_SQL);
        assert_enforced(c);
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_t");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

/* The same under `retentiond daemon`: two runs, each dropping a partition before the rule on
 * the table it referenced. */
static void test_daemon_second_rule_after_drop(void **state) {
        (void) state;
        char *ci, *eci;
        PGconn *c = lp_db("lp_daemon", "lp_role_d", &ci, &eci);
        pgtest_exec(c, "GRANT lp_owner TO lp_role_d");
        char *pol = rt_policy(POLICY);
        const char *args[] = { "daemon", "-p", pol, "-d", eci, "--log-target=console", NULL };
        Daemon *d = daemon_start(args, 0);
        long st = daemon_wait_msg(d, "STATUS=last run ", 0, 30 * SEC);
        if (st < 0) {
                char *s = daemon_stderr(d);
                print_message("daemon stderr:\n%s", s);
                free(s);
        }
        assert_true(st >= 0);
        NotifyMsg m = daemon_msg(d, (size_t) st);
        rt_assert_contains(m.text, "79 deleted, 0 anonymised, 0 held, 0 failed; next run ");
        free(m.text);
        rt_assert_sql(c, "payments success 70 7; customers success 9 0", "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, KEPT_PARTITIONS, "%s", PARTITIONS_SQL);
        assert_enforced(c);

        /* An older partition with payments of ten more closed customers: the next run drops it,
         * then deletes them. */
        pgtest_exec(c, "SET ROLE lp_owner");
        pgtest_exec(c, "INSERT INTO app.customer SELECT g, now() - interval '40 days' FROM generate_series(21, 30) g");
        pgtest_exec(c, "CREATE TABLE app.payment_d11 PARTITION OF app.payment FOR VALUES FROM ('%s') TO ('%s')", "-infinity",
                     "epoch");
        pgtest_exec(c, "ALTER TABLE app.payment_d11 ADD FOREIGN KEY (customer_id) REFERENCES app.customer (id)");
        pgtest_exec(c, "INSERT INTO app.payment SELECT 1100 + i, 20 + i, timestamptz '1969-12-31 12:00+00'"
                       " FROM generate_series(1, 10) i");
        pgtest_exec(c, "RESET ROLE");
        size_t from = daemon_n_msgs(d);
        daemon_kill(d, SIGUSR1);
        st = daemon_wait_msg(d, "STATUS=last run ", from, 30 * SEC);
        assert_true(st >= 0);
        m = daemon_msg(d, (size_t) st);
        rt_assert_contains(m.text, "20 deleted, 0 anonymised, 0 held, 0 failed; next run ");
        free(m.text);
        rt_assert_sql(c, "payments success 70 7; customers success 9 0; payments success 10 1; customers success 10 0",
                      "%s", RULE_RUNS_SQL);
        rt_assert_sql(c, KEPT_PARTITIONS, "%s", PARTITIONS_SQL);
        rt_assert_sql(c, "11", "SELECT count(*) FROM app.customer");
        rt_assert_sql(c, "0", "%s", COMMENTS_SQL);
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.runs WHERE mode = 'daemon' AND outcome <> 'success'");
        daemon_kill(d, SIGTERM);
        assert_int_equal(daemon_wait_exit(d, 15 * SEC), 0);
        daemon_free(d);
        pgtest_exec(c, "REVOKE lp_owner FROM lp_role_d");
        free(pol);
        free(eci);
        PQfinish(c);
        free(ci);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_role_deletes_partitions_by_batches),
                cmocka_unit_test(test_failed_counter_commits_nothing),
                cmocka_unit_test(test_check_as_role),
                cmocka_unit_test(test_owner_drops_partitions),
                cmocka_unit_test(test_referenced_partition_stays),
                cmocka_unit_test(test_detach_refused_falls_back),
                cmocka_unit_test(test_plain_detach_refused_falls_back),
                cmocka_unit_test(test_second_rule_after_drop),
                cmocka_unit_test(test_daemon_second_rule_after_drop),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
