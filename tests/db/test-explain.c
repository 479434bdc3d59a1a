/* test-explain.c — `retentiond explain` against a real PostgreSQL: a due row, an overdue row, a
 * row held by a registry hold (id, reason, who, until), by a derived hold (the evidence's date and
 * the release date, rounded by `from`), by cascade protection, a row not yet due with its future
 * date, a composite primary key (one KEY per key column; the count is checked), --json with its
 * exact fields, --subject across several tables, no such row (66), usage errors (64), and that
 * explain changes nothing. Every command runs with PGTZ=UTC so dates print in UTC. */
#include "rtest.h"

static const char *POLICY =
        "version: 1\n"
        "subjects:\n"
        "  account: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: \"operator holds\", subject: account, registry: true }\n"
        "  tax:\n"
        "    reason: \"invoices are kept 10 years\"\n"
        "    subject: account\n"
        "    table: app.invoices\n"
        "    subject_column: account_id\n"
        "    column: issued_at\n"
        "    retain: 10 years\n"
        "    from: end_of_year\n"
        "rules:\n"
        "  accounts:\n"
        "    clause: \"deleted within 10 days of the request\"\n"
        "    table: app.accounts\n"
        "    subject: account\n"
        "    column: deletion_requested_at\n"
        "    retain: 0 days\n"
        "    deadline: 10 days\n"
        "    holds: [tax]\n"
        "    action: delete\n"
        "  tickets:\n"
        "    clause: \"tickets kept 1 year\"\n"
        "    table: app.tickets\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: created_at\n"
        "    retain: 1 year\n"
        "    holds: [legal]\n"
        "    action: delete\n"
        "  sessions:\n"
        "    clause: \"sessions kept 30 days\"\n"
        "    table: app.sessions\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: started_at\n"
        "    retain: 30 days\n"
        "    action: delete\n"
        "  invoices:\n"
        "    clause: \"invoices kept 10 years from the end of the year\"\n"
        "    table: app.invoices\n"
        "    subject: account\n"
        "    subject_column: account_id\n"
        "    column: issued_at\n"
        "    retain: 10 years\n"
        "    from: end_of_year\n"
        "    holds: [legal]\n"
        "    action: delete\n";

static const char *const UTC[] = { "PGTZ=UTC", NULL };

/* Runs the binary with PGTZ=UTC; asserts the exit status. */
static char *explain(int code, char **err, const char *pol, const char *ci, ...) {
        const char *args[32] = { "-p", pol, "-d", ci, "explain" };
        size_t n = 5;
        va_list ap;
        va_start(ap, ci);
        const char *a;
        while ((a = va_arg(ap, const char *)) && n < 31)
                args[n++] = a;
        va_end(ap);
        args[n] = NULL;
        char *out = NULL, *e = NULL;
        int r = rt_runv(&out, &e, UTC, args);
        if (r != code)
                print_error("exit %d, expected %d\nstdout:\n%s\nstderr:\n%s\n", r, code, out, e);
        assert_int_equal(r, code);
        if (err)
                *err = e;
        else
                free(e);
        return out;
}

static PGconn *explain_db(const char *name, char **ci) {
        PGconn *c = rt_db(name, ci);
        pgtest_exec(c, "SET TimeZone = 'UTC'");
        pgtest_exec(c, "CREATE TABLE app.accounts (id int PRIMARY KEY, email text, deletion_requested_at timestamptz)");
        pgtest_exec(c, "CREATE TABLE app.invoices (id int PRIMARY KEY, account_id int, issued_at timestamptz)");
        pgtest_exec(c, "CREATE INDEX ON app.invoices (account_id)");
        pgtest_exec(c, "CREATE TABLE app.tickets (id int PRIMARY KEY, account_id int REFERENCES app.accounts ON DELETE CASCADE,"
                       " created_at timestamptz)");
        pgtest_exec(c, "CREATE TABLE app.sessions (account_id int, seq int, started_at timestamptz, PRIMARY KEY (account_id, seq))");
        /* 1: due; 2: overdue; 3: held by tax (invoice of 2020); 4: held by cascade protection (its
         * old ticket is held by legal); 5: never asked (its ticket is not yet due) */
        pgtest_exec(c, "INSERT INTO app.accounts VALUES (1, 'one@example.com', now() - interval '2 days'),"
                       " (2, 'two@example.com', now() - interval '20 days'), (3, 'three@example.com', now() - interval '2 days'),"
                       " (4, 'four@example.com', now() - interval '2 days'), (5, 'five@example.com', NULL)");
        pgtest_exec(c, "INSERT INTO app.invoices VALUES (30, 3, '2020-03-10 12:00:00+00')");
        pgtest_exec(c, "INSERT INTO app.tickets VALUES (40, 4, now() - interval '2 years'), (50, 5, now() - interval '1 month')");
        pgtest_exec(c, "INSERT INTO app.sessions VALUES (5, 1, now() - interval '40 days'), (5, 2, now() - interval '1 day')");
        return c;
}

static void test_explain(void **state) {
        (void) state;
        char *ci, *err;
        PGconn *c = explain_db("explain_main", &ci);
        char *pol = rt_policy(POLICY);
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "4", "--reason", "litigation 2026-117", "--by",
                  "dpo", "--until", "2999-01-01 00:00:00+00");
        const char *tables[] = { "app.accounts", "app.invoices", "app.tickets", "app.sessions", "retention.holds" };
        char *before[5];
        for (size_t i = 0; i < 5; i++)
                before[i] = rt_checksum(c, tables[i]);

        /* a due row */
        char *out = explain(0, NULL, pol, ci, "app.accounts", "1", NULL);
        rt_assert_contains(out, "app.accounts id=1\n");
        rt_assert_contains(out, "  rule accounts — \"deleted within 10 days of the request\"\n");
        rt_assert_contains(out, "    decision:  due: will be deleted by the next run\n");
        rt_assert_contains(out, "— not overdue\n");
        rt_assert_contains(out, "    deleted: by the next run (due since ");
        rt_assert_not_contains(out, "one@example.com");
        free(out);

        /* an overdue row: past retain + deadline, nothing keeps it */
        out = explain(0, NULL, pol, ci, "app.accounts", "2", NULL);
        rt_assert_contains(out, "    decision:  due: will be deleted by the next run\n");
        rt_assert_contains(out, "— OVERDUE\n");
        char *oat = pgtest_value(c, "SELECT (deletion_requested_at + interval '10 days')::text FROM app.accounts WHERE id = 2");
        char *want = rt_asprintf("    deadline:  10 days after the retention: overdue after %s — OVERDUE\n", oat);
        rt_assert_contains(out, want);
        free(want);
        free(oat);
        free(out);

        /* held by a derived hold: the evidence's date; released at the end of 2020's year + 10 years */
        out = explain(0, NULL, pol, ci, "app.accounts", "3", NULL);
        rt_assert_contains(out, "    hold tax (derived): applies\n");
        rt_assert_contains(out, "      evidence in app.invoices: youngest 2020-03-10 12:00:00+00; hold cutoff ");
        rt_assert_contains(out, "      lapses: 2031-01-01 00:00:00+00\n");
        rt_assert_contains(out, "    decision:  kept: held by tax (evidence in app.invoices dated 2020-03-10 12:00:00+00) —"
                                " a hold always beats deletion\n");
        rt_assert_contains(out, "not overdue (a held row is never overdue)");
        rt_assert_contains(out, "    deleted: after 2031-01-01 00:00:00+00, if nothing changes\n");
        free(out);

        /* held by cascade protection: deleting account 4 would cascade into its held ticket */
        out = explain(0, NULL, pol, ci, "app.accounts", "4", NULL);
        rt_assert_contains(out, "    cascade into app.tickets: rows a hold protects\n");
        rt_assert_contains(out, "    decision:  kept: held by cascade protection (deleting it would cascade into held rows of"
                                " app.tickets) — a hold always beats deletion\n");
        rt_assert_contains(out, "    deleted: unknown: it depends on the held rows of app.tickets that a delete would cascade into\n");
        free(out);

        /* held by a registry hold: id, reason, who, until; released when the hold ends */
        out = explain(0, NULL, pol, ci, "app.tickets", "40", NULL);
        rt_assert_contains(out, "    hold legal (registry): applies\n");
        char *placed = pgtest_value(c, "SELECT placed_at::text FROM retention.holds WHERE id = 1");
        want = rt_asprintf("      hold 1: \"litigation 2026-117\", placed by dpo at %s, until 2999-01-01 00:00:00+00\n", placed);
        rt_assert_contains(out, want);
        free(want);
        want = rt_asprintf("    decision:  kept: held by legal (hold 1 placed by dpo on %.10s) — a hold always beats deletion\n", placed);
        rt_assert_contains(out, want);
        free(want);
        free(placed);
        rt_assert_contains(out, "    deleted: after 2999-01-01 00:00:00+00, if nothing changes\n");
        free(out);

        /* a row not yet due, with the date it will be */
        out = explain(0, NULL, pol, ci, "app.tickets", "50", NULL);
        char *due = pgtest_value(c, "SELECT (created_at + interval '1 year')::text FROM app.tickets WHERE id = 50");
        want = rt_asprintf("    decision:  not yet due: due after %s\n", due);
        rt_assert_contains(out, want);
        free(want);
        want = rt_asprintf("    deleted: after %s, if nothing changes\n", due);
        rt_assert_contains(out, want);
        free(want);
        free(due);
        free(out);

        /* never: a NULL age value */
        out = explain(0, NULL, pol, ci, "app.accounts", "5", NULL);
        rt_assert_contains(out, "    decision:  kept: its age value (deletion_requested_at) is NULL, which never expires\n");
        rt_assert_contains(out, "    deleted: never, while deletion_requested_at is NULL\n");
        free(out);

        /* a composite key: one KEY per key column, in key order; "05" is read as the int 5 */
        out = explain(0, NULL, pol, ci, "app.sessions", "05", "1", NULL);
        rt_assert_contains(out, "app.sessions account_id=5 seq=1\n");
        rt_assert_contains(out, "    decision:  due: will be deleted by the next run\n");
        free(out);
        out = explain(0, NULL, pol, ci, "app.sessions", "5", "2", NULL);
        rt_assert_contains(out, "    decision:  not yet due: due after ");
        free(out);
        free(explain(64, &err, pol, ci, "app.sessions", "5", NULL));
        rt_assert_contains(err, "app.sessions has a primary key of 2 columns (account_id, seq), 1 key value given");
        rt_assert_contains(err, "HINT:  Give one KEY per primary-key column, in that order: retentiond explain app.sessions account_id seq");
        free(err);
        free(explain(64, &err, pol, ci, "app.sessions", "5", "1", "7", NULL));
        free(err);
        free(explain(64, &err, pol, ci, "app.sessions", "five", "1", NULL));
        rt_assert_contains(err, "invalid key for app.sessions: invalid input syntax for type integer: \"five\"");
        free(err);

        /* no such row, no such table, no such subject, usage */
        free(explain(66, &err, pol, ci, "app.accounts", "999", NULL));
        rt_assert_contains(err, "no row of app.accounts has that key");
        free(err);
        free(explain(66, NULL, pol, ci, "app.nope", "1", NULL));
        free(explain(66, &err, pol, ci, "--subject", "account", "999", NULL));
        rt_assert_contains(err, "subject account 999 has no rows");
        free(err);
        free(explain(64, NULL, pol, ci, "--subject", "acount", "1", NULL));
        free(explain(64, NULL, pol, ci, "app.accounts", NULL));
        free(explain(64, NULL, pol, ci, NULL));

        /* explain changed nothing */
        for (size_t i = 0; i < 5; i++) {
                char *after = rt_checksum(c, tables[i]);
                assert_string_equal(before[i], after);
                free(after);
                free(before[i]);
        }
        rt_assert_sql(c, "1", "SELECT count(*) FROM retention.holds");
        rt_assert_sql(c, "0", "SELECT count(*) FROM retention.runs");
        free(pol);
        free(ci);
        PQfinish(c);
}

static void test_explain_json(void **state) {
        (void) state;
        char *ci;
        PGconn *c = explain_db("explain_json", &ci);
        char *pol = rt_policy(POLICY);
        /* the cutoff of a rule counted from the end of the year is a year's start: exact */
        char *cut = pgtest_value(c, "SELECT date_trunc('year', now() - interval '10 years' - interval '1 microsecond')::text");
        char *out = explain(0, NULL, pol, ci, "app.invoices", "30", "--json", NULL);
        char *want = rt_asprintf(
                "{\"read_only\":true,\"subject\":null,\"rows\":[{\"table\":\"app.invoices\",\"key\":{\"id\":\"30\"},\"rules\":["
                "{\"rule\":\"invoices\",\"clause\":\"invoices kept 10 years from the end of the year\",\"action\":\"delete\","
                "\"column\":\"issued_at\",\"retain\":\"10 years\",\"from\":\"end_of_year\",\"fiscal_year_start\":null,"
                "\"age_value\":\"2020-03-10 12:00:00+00\",\"cutoff\":\"%s\",\"due_by_age\":false,"
                "\"due_at\":\"2031-01-01 00:00:00+00\",\"where_matches\":true,\"already_anonymised\":false,"
                "\"holds\":[{\"hold\":\"legal\",\"kind\":\"registry\",\"reason\":\"operator holds\",\"applies\":false,"
                "\"until\":null,\"indefinite\":false,\"registry_holds\":[]}],\"cascade\":[],\"other_rules\":[],"
                "\"referenced_by\":[],\"state\":\"not_due\",\"decision\":\"not yet due: due after 2031-01-01 00:00:00+00\","
                "\"deadline\":null,\"overdue_cutoff\":null,\"overdue_at\":null,\"overdue\":false,\"while_held\":null,"
                "\"action_at\":\"2031-01-01 00:00:00+00\",\"action_at_known\":true,\"action_at_note\":null}]}]}\n",
                cut);
        assert_string_equal(out, want);
        free(want);
        free(out);
        free(cut);

        /* a registry hold without --until: the date is unknown, and says why */
        rt_expect(0, NULL, NULL, "-p", pol, "-d", ci, "hold", "add", "account", "3", "--reason", "regulator", "--by", "dpo");
        out = explain(0, NULL, pol, ci, "app.invoices", "30", "--json", NULL);
        rt_assert_contains(out, "\"holds\":[{\"hold\":\"legal\",\"kind\":\"registry\",\"reason\":\"operator holds\",\"applies\":true,"
                                "\"until\":null,\"indefinite\":true,\"registry_holds\":[{\"id\":1,\"reason\":\"regulator\","
                                "\"placed_by\":\"dpo\",\"placed_at\":\"");
        rt_assert_contains(out, "\"action_at\":null,\"action_at_known\":false,"
                                "\"action_at_note\":\"unknown while registry hold 1 (placed without --until) is active\"}");
        free(out);

        /* --subject: every table the subject's rows are in (the subject table and every rule
         * table with subject_column), each row by its key */
        out = explain(0, NULL, pol, ci, "--subject", "account", "5", "--json", NULL);
        rt_assert_contains(out, "{\"read_only\":true,\"subject\":{\"name\":\"account\",\"key\":\"5\"},\"rows\":[");
        rt_assert_contains(out, "{\"table\":\"app.accounts\",\"key\":{\"id\":\"5\"},\"rules\":[{\"rule\":\"accounts\"");
        rt_assert_contains(out, "{\"table\":\"app.tickets\",\"key\":{\"id\":\"50\"},\"rules\":[{\"rule\":\"tickets\"");
        rt_assert_contains(out, "{\"table\":\"app.sessions\",\"key\":{\"account_id\":\"5\",\"seq\":\"1\"},\"rules\":[{\"rule\":\"sessions\"");
        rt_assert_contains(out, "{\"table\":\"app.sessions\",\"key\":{\"account_id\":\"5\",\"seq\":\"2\"},\"rules\":[{\"rule\":\"sessions\"");
        rt_assert_not_contains(out, "five@example.com");
        free(out);
        out = explain(0, NULL, pol, ci, "--subject", "account", "5", NULL);
        rt_assert_contains(out, "app.accounts id=5\n");
        rt_assert_contains(out, "\napp.tickets id=50\n");
        rt_assert_contains(out, "\napp.sessions account_id=5 seq=1\n");
        free(out);

        free(pol);
        free(ci);
        PQfinish(c);
}

/* A row anonymised before it is due (by hand, or by another rule) is already anonymised: explain
 * --json says so whatever its age (issue 17 item 4), and the decision says nothing is left to do. */
static void test_anonymised_before_due(void **state) {
        (void) state;
        char *ci;
        PGconn *c = rt_db("explain_anon_early", &ci);
        pgtest_exec(c, "CREATE TABLE app.visits (id int PRIMARY KEY, ip inet, email text, seen_at timestamptz)");
        /* 1: anonymised, not yet due; 2: not anonymised, not yet due; 3: anonymised and due */
        pgtest_exec(c, "INSERT INTO app.visits VALUES (1, '192.0.2.0/24', '*@example.com', '2999-01-01 00:00:00+00'),"
                       " (2, '192.0.2.7', 'ann@example.com', '2999-01-01 00:00:00+00'),"
                       " (3, '198.51.100.0/24', '*@example.org', '2000-01-01 00:00:00+00')");
        char *pol = rt_policy("version: 1\n"
                              "rules:\n"
                              "  visits:\n"
                              "    clause: \"addresses are shortened after 30 days\"\n"
                              "    table: app.visits\n"
                              "    column: seen_at\n"
                              "    retain: 30 days\n"
                              "    action: anonymise\n"
                              "    columns: { ip: truncate_ip, email: email_domain }\n");
        const char *fixed = "\"age_value\":\"2999-01-01 00:00:00+00\",\"cutoff\":\"";
        char *out = explain(0, NULL, pol, ci, "app.visits", "1", "--json", NULL);
        rt_assert_contains(out, fixed);
        rt_assert_contains(out, "\"due_by_age\":false,\"due_at\":\"2999-01-31 00:00:00+00\",\"where_matches\":true,"
                                "\"already_anonymised\":true,\"holds\":[]");
        rt_assert_contains(out, "\"state\":\"anonymised\",\"decision\":\"already anonymised (ip truncate_ip, email"
                                " email_domain): nothing left to do\"");
        rt_assert_contains(out, "\"action_at\":null,\"action_at_known\":false,\"action_at_note\":\"already anonymised\"}");
        free(out);
        out = explain(0, NULL, pol, ci, "app.visits", "2", "--json", NULL);
        rt_assert_contains(out, "\"due_by_age\":false,\"due_at\":\"2999-01-31 00:00:00+00\",\"where_matches\":true,"
                                "\"already_anonymised\":false,\"holds\":[]");
        rt_assert_contains(out, "\"state\":\"not_due\"");
        free(out);
        out = explain(0, NULL, pol, ci, "app.visits", "3", "--json", NULL);
        rt_assert_contains(out, "\"due_by_age\":true,\"due_at\":\"2000-01-31 00:00:00+00\",\"where_matches\":true,"
                                "\"already_anonymised\":true,\"holds\":[]");
        rt_assert_contains(out, "\"state\":\"anonymised\"");
        free(out);
        out = explain(0, NULL, pol, ci, "app.visits", "1", NULL);
        rt_assert_contains(out, "already anonymised (ip truncate_ip, email email_domain): nothing left to do");
        free(out);
        free(pol);
        free(ci);
        PQfinish(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_explain),
                cmocka_unit_test(test_explain_json),
                cmocka_unit_test(test_anonymised_before_due),
        };
        return cmocka_run_group_tests(tests, rt_group_setup, rt_group_teardown);
}
