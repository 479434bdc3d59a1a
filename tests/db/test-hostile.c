/* test-hostile.c — hostile and broken input: SQL injection through every string a policy or the
 * command line accepts, hostile policy files, and secrets.
 *
 *   injection  schema, table and column names, subject keys, hold reasons, --by names, clauses,
 *              redact values with quotes, double quotes, backslashes, semicolons, comment markers,
 *              dollar quotes, non-ASCII, 1 MB (in a policy; the command line is limited to 128 KiB
 *              per argument by the kernel and to 10000 bytes per value by retentiond): each works
 *              quoted and is stored verbatim, or is rejected with a clear error and the documented
 *              exit code. A canary table survives, and the server never saw a syntax error.
 *   files      symlinks in a policy directory (followed to regular files, as the loader does;
 *              a dangling one is an error, one to a device or a directory is skipped), a FIFO,
 *              /dev/zero, an unreadable file (checked as the unprivileged user nobody, since root
 *              reads anything), a 100 MB file, nesting 4 million deep, a billion-laughs bomb:
 *              clear errors in bounded time and memory (max RSS from wait4); a policy file or
 *              directory others can write, or another user owns: warnings.
 *   secrets    a password-authenticated role (scram-sha-256, pg_hba) whose password comes from a
 *              pgpass file, and a hash key: neither appears in any output, in /proc/PID/cmdline of
 *              a running retentiond (nor a password given in -d), in any table of the audit trail,
 *              in pg_stat_activity, in the server log even with every statement logged, or in any
 *              field of the journal (a private systemd-journald, tests/db/hostile-journal.sh). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "pgtest.h"
#include "rely.h"

static PgTest *pg;
static char *dir;
static unsigned nfile;
static long bad_inputs;

static const char *const EVIL[] = {
        "x'; DROP TABLE canary.t; --",
        "x\"; DROP TABLE canary.t; --",
        "back\\slash\\' E'\\x27",
        "/* c */ -- d",
        "$$; DROP TABLE canary.t; $$",
        "semi;colon",
        "Ünï—cødé 🙂",
};
#define N_EVIL (sizeof(EVIL) / sizeof(EVIL[0]))

/* ---- helpers --------------------------------------------------------------------------------------- */

static char *new_db(const char *name, PGconn **ret) {
        char *ci = pgtest_create_db(pg, name);
        const char *args[] = { "-d", ci, "migrate", NULL };
        char *out = NULL, *err = NULL;
        int rc = pgtest_run(args, NULL, &out, &err);
        if (rc != 0)
                fail_msg("migrate failed (%d): %s%s", rc, out, err);
        free(out);
        free(err);
        *ret = pgtest_connect(ci);
        rely_exec(*ret, "CREATE SCHEMA canary; CREATE TABLE canary.t (x int); INSERT INTO canary.t VALUES (42);");
        return ci;
}

static void canary_alive(PGconn *c) {
        char *v = rely_value(c, "SELECT sum(x)::text FROM canary.t");
        if (!v || strcmp(v, "42") != 0)
                fail_msg("the canary table was changed or dropped");
        free(v);
}

static char *write_file(const char *suffix, const char *text, size_t len) {
        char *p = rely_asprintf("%s/f%u%s", dir, ++nfile, suffix);
        rely_write(p, text, len);
        return p;
}

/* The server's log (a private cluster keeps it in its directory) from byte `from`. */
static char *server_log(size_t from) {
        char *path = rely_asprintf("%s/server.log", pgtest_host(pg));
        char *all = rely_slurp(path);
        free(path);
        size_t n = strlen(all);
        char *r = strdup(from < n ? all + from : "");
        free(all);
        return r;
}

static size_t server_log_size(void) {
        char *l = server_log(0);
        size_t n = strlen(l);
        free(l);
        return n;
}

static void no_syntax_errors_since(size_t from) {
        char *l = server_log(from);
        if (strstr(l, "syntax error"))
                fail_msg("the server saw a syntax error: text reached SQL unquoted:\n%s", l);
        free(l);
}

/* SQL double-quoted identifier, written in a YAML single-quoted scalar. */
static char *yaml_ident(const char *name) {
        Sb b = {};
        sb_add(&b, "'\"", 2);
        for (const char *p = name; *p; p++) {
                if (*p == '"')
                        sb_add(&b, "\"", 1);
                if (*p == '\'')
                        sb_add(&b, "'", 1);
                sb_add(&b, p, 1);
        }
        sb_add(&b, "\"'", 2);
        return sb_steal(&b);
}

/* A YAML single-quoted scalar. */
static char *yaml_str(const char *v) {
        Sb b = {};
        sb_add(&b, "'", 1);
        for (const char *p = v; *p; p++) {
                if (*p == '\'')
                        sb_add(&b, "'", 1);
                sb_add(&b, p, 1);
        }
        sb_add(&b, "'", 1);
        return sb_steal(&b);
}

static char *sql_ident(PGconn *c, const char *name) {
        char *q = PQescapeIdentifier(c, name, strlen(name));
        assert_non_null(q);
        char *r = strdup(q);
        PQfreemem(q);
        return r;
}

/* Is value stored verbatim? One parameterised comparison. */
static bool stored(PGconn *c, const char *sql_with_param, const char *value) {
        const char *p[] = { value };
        PGresult *r = PQexecParams(c, sql_with_param, 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
                fail_msg("%s: %s", sql_with_param, PQresultErrorMessage(r));
        bool ok = PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        return ok;
}

static int rd(const char *ci, const char *policy, const char *const *args, char **out, char **err) {
        const char *argv[40];
        size_t n = 0;
        if (policy) {
                argv[n++] = "-p";
                argv[n++] = policy;
        }
        if (ci) {
                argv[n++] = "-d";
                argv[n++] = ci;
        }
        argv[n++] = "--log-target=console";
        for (const char *const *a = args; a && *a && n < 38; a++)
                argv[n++] = *a;
        argv[n] = NULL;
        return pgtest_run(argv, NULL, out, err);
}

/* Expect exit `want` and `needle` in the output; counts one bad input. */
static void expect_rejected(const char *what, int rc, int want, const char *out, const char *err, const char *needle) {
        bad_inputs++;
        if (rc != want || (needle && !strstr(err, needle) && !strstr(out, needle)))
                fail_msg("%s: exit %d (want %d), output lacks \"%s\":\n%.3000s\n%.3000s", what, rc, want, needle ? needle : "", out,
                         err);
}

/* Runs argv (PATH lookup), output into a file; waits with wait4 for the resources used. */
static int run_measured(const char *const *argv, char **output, long *max_rss_kb, long *ms) {
        char *outpath = rely_asprintf("%s/measured.out", dir);
        unlink(outpath);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
                fail_msg("fork: %s", strerror(errno));
        if (pid == 0) {
                int in = open("/dev/null", O_RDONLY);
                int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
                        _exit(127);
                execvp(argv[0], (char *const *) (uintptr_t) argv);
                _exit(127);
        }
        int status;
        struct rusage ru = {};
        /* at most 30 s */
        for (;;) {
                pid_t r = wait4(pid, &status, WNOHANG, &ru);
                if (r == pid)
                        break;
                if (rely_ms_since(&t0) > 30000) {
                        kill(pid, SIGKILL);
                        wait4(pid, &status, 0, &ru);
                        fail_msg("%s did not finish within 30 s", argv[0]);
                }
                usleep(2000);
        }
        *ms = rely_ms_since(&t0);
        *max_rss_kb = ru.ru_maxrss;
        *output = rely_slurp(outpath);
        free(outpath);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- injection through a policy ------------------------------------------------------------ */

static void test_injection_policy(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("h_policy", &c);
        size_t log0 = server_log_size();

        /* schema EVIL[0], table EVIL[1], key EVIL[5], age EVIL[2], anonymised EVIL[3], EVIL[4], EVIL[6];
         * evidence table "ev/(star)" with subject column EVIL[0] and age EVIL[6] */
        char *sch = sql_ident(c, EVIL[0]), *tab = sql_ident(c, EVIL[1]), *key = sql_ident(c, EVIL[5]);
        char *age = sql_ident(c, EVIL[2]), *red = sql_ident(c, EVIL[3]), *hsh = sql_ident(c, EVIL[4]);
        char *nul = sql_ident(c, EVIL[6]), *evt = sql_ident(c, "ev/* */"), *evk = sql_ident(c, EVIL[0]);
        char *ddl = rely_asprintf(
                "CREATE SCHEMA %s;"
                "CREATE TABLE %s.%s (%s text PRIMARY KEY, %s timestamptz, %s text, %s text, %s text);"
                "CREATE INDEX ON %s.%s (%s);"
                "CREATE TABLE %s.%s (id int PRIMARY KEY, %s text, %s timestamptz);"
                "CREATE INDEX ON %s.%s (%s);"
                "INSERT INTO %s.%s VALUES"
                " ('k1', now() - interval '90 days', 'r1', 'h1', 'n1'),"
                " ('k2', now() - interval '90 days', 'r2', 'h2', 'n2'),"
                " ('k3', now() - interval '40 days', 'r3', 'h3', 'n3'),"
                " ('k4', now() - interval '40 days', NULL, NULL, NULL),"
                " ('k5', now() - interval '5 days', 'r5', 'h5', 'n5'),"
                " ('k6', now() - interval '90 days', 'r6', 'h6', 'n6'),"
                " ($q$x'; DROP TABLE canary.t; --$q$, now() - interval '90 days', 'r7', 'h7', 'n7');"
                "INSERT INTO %s.%s VALUES (1, 'k2', now() - interval '10 days'), (2, 'k6', now() - interval '5 years');",
                sch, sch, tab, key, age, red, hsh, nul, sch, tab, age, sch, evt, evk, nul, sch, evt, evk, sch, tab, sch, evt);
        rely_exec(c, ddl);
        free(ddl);

        /* The policy: every name quoted as SQL writes it, every text hostile. */
        char *clause = strdup("Clause: x'; DROP TABLE canary.t; -- \\' \" /* */ $$ ; ünï 🙂");
        Sb big = {};
        while (big.len < 1024 * 1024)
                sb_printf(&big, "%s | ", EVIL[big.len / 40 % N_EVIL]);
        char *qs = yaml_ident(EVIL[0]), *qt = yaml_ident(EVIL[1]), *qk = yaml_ident(EVIL[5]), *qa = yaml_ident(EVIL[2]);
        char *qr = yaml_ident(EVIL[3]), *qh = yaml_ident(EVIL[4]), *qn = yaml_ident(EVIL[6]), *qe = yaml_ident("ev/* */");
        char *ysub = yaml_ident(EVIL[0]);
        char *yclause = yaml_str(clause), *ybig = yaml_str(big.s), *yred = yaml_str(EVIL[0]), *yreason = yaml_str(EVIL[4]);
        /* table: 'SCHEMA.TABLE' with both parts quoted: strip the YAML quotes and join */
        char *table = rely_asprintf("'%.*s.%.*s'", (int) strlen(qs) - 2, qs + 1, (int) strlen(qt) - 2, qt + 1);
        char *evtable = rely_asprintf("'%.*s.%.*s'", (int) strlen(qs) - 2, qs + 1, (int) strlen(qe) - 2, qe + 1);
        Sb y = {};
        sb_printf(&y,
                  "version: 1\n"
                  "subjects:\n"
                  "  evil: { table: %s, key: %s }\n"
                  "holds:\n"
                  "  reg: { reason: %s, subject: evil, registry: true }\n"
                  "  ev: { reason: %s, subject: evil, table: %s, subject_column: %s, column: %s, retain: 1 year }\n"
                  "rules:\n"
                  "  r-anon:\n"
                  "    clause: %s\n"
                  "    table: %s\n"
                  "    column: %s\n"
                  "    retain: 30 days\n"
                  "    action: anonymise\n"
                  "    columns: { %s: { redact: %s }, %s: hash, %s: null }\n"
                  "    subject: evil\n"
                  "    holds: [reg, ev]\n"
                  "  r-del:\n"
                  "    clause: %s\n"
                  "    table: %s\n"
                  "    column: %s\n"
                  "    retain: 60 days\n"
                  "    action: delete\n"
                  "    subject: evil\n"
                  "    holds: [reg, ev]\n"
                  "  r-long:\n"
                  "    clause: %s\n"
                  "    table: %s\n"
                  "    column: %s\n"
                  "    retain: 10 years\n"
                  "    action: delete\n",
                  table, qk, yreason, yreason, evtable, ysub, qn, yclause, table, qa, qr, yred, qh, qn, yclause, table, qa, ybig,
                  evtable, qn);
        char *policy = write_file(".yaml", y.s, y.len);
        char *keyfile = write_file(".key", "hostile-test-key-0123456789abcde", 32);
        bad_inputs += 2 * N_EVIL + 3; /* names, clause, reason, redact, 1 MB clause */

        /* A hold on the hostile key, with a hostile reason and --by, through the command line. */
        char *out = NULL, *err = NULL;
        int rc = rd(ci, policy, (const char *const[]) { "hold", "add", "evil", EVIL[0], "--reason", EVIL[2], "--by", EVIL[1], NULL },
                    &out, &err);
        if (rc != 0)
                fail_msg("hold add with a hostile key, reason and --by exited %d:\n%s%s", rc, out, err);
        bad_inputs += 3;
        free(out);
        free(err);
        assert_true(stored(c, "SELECT bool_and(subject_key = $1) FROM retention.holds", EVIL[0]));
        assert_true(stored(c, "SELECT bool_and(reason = $1) FROM retention.holds", EVIL[2]));
        assert_true(stored(c, "SELECT bool_and(placed_by = $1) FROM retention.holds", EVIL[1]));
        assert_true(stored(c, "SELECT bool_and(by = $1) FROM retention.hold_events", EVIL[1]));

        static const char *const cmds[][3] = { { "check", NULL, NULL }, { "audit", NULL, NULL }, { "audit", "--sql", NULL },
                                               { "audit", "--json", NULL }, { "run", NULL, NULL } };
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                const char *args[] = { "--hash-key-file", keyfile, cmds[i][0], cmds[i][1], NULL };
                rc = rd(ci, policy, args, &out, &err);
                if (rc != 0)
                        fail_msg("retentiond %s %s with hostile names exited %d:\n%.4000s\n%.4000s", cmds[i][0],
                                 cmds[i][1] ? cmds[i][1] : "", rc, out, err);
                free(out);
                free(err);
        }
        canary_alive(c);
        no_syntax_errors_since(log0);

        /* What happened is exactly the policy: k1, k6 (old evidence) anonymised, then deleted;
         * k2 (young evidence) and the hostile key (registry hold) untouched; k3, k4 anonymised. */
        char *q = rely_asprintf("SELECT string_agg(%s || ':' || coalesce(%s, '~') || ':' || coalesce(left(%s, 12), '~') || ':' ||"
                                " coalesce(%s, '~'), ' ' ORDER BY %s) FROM %s.%s",
                                key, red, hsh, nul, key, sch, tab);
        char *rows = rely_value(c, q);
        free(q);
        const char *want = "k2:r2:h2:n2 k3:x'; DROP TABLE canary.t; --:hmac-sha256::~ k4:~:~:~ k5:r5:h5:n5 "
                           "x'; DROP TABLE canary.t; --:r7:h7:n7";
        if (!rows || strcmp(rows, want) != 0)
                fail_msg("rows after the run:\n  %s\nexpected:\n  %s\naudit trail: %s", rows ? rows : "(none)", want,
                         rely_value(c, "SELECT string_agg(rule || ' ' || outcome || ' ' || rows_deleted || ' ' || rows_anonymised"
                                       " || ' ' || coalesce(error, ''), '; ') FROM retention.rule_runs"));
        free(rows);
        /* texts stored verbatim */
        assert_true(stored(c, "SELECT bool_and(clause = $1) FROM retention.rule_runs WHERE rule IN ('r-anon', 'r-del')", clause));
        assert_true(stored(c, "SELECT bool_and(clause = $1) FROM retention.rule_runs WHERE rule = 'r-long'", big.s));
        q = rely_asprintf("SELECT bool_and(%s = $1) FROM %s.%s WHERE %s = 'k3'", red, sch, tab, key);
        assert_true(stored(c, q, EVIL[0]));
        free(q);
        /* A release with a hostile --by. */
        char *id = rely_value(c, "SELECT max(id)::text FROM retention.holds");
        rc = rd(ci, policy, (const char *const[]) { "hold", "release", id, "--by", EVIL[4], NULL }, &out, &err);
        if (rc != 0)
                fail_msg("hold release --by hostile exited %d:\n%s%s", rc, out, err);
        bad_inputs++;
        assert_true(stored(c, "SELECT bool_and(released_by = $1) FROM retention.holds", EVIL[4]));
        free(out);
        free(err);
        free(id);
        canary_alive(c);
        no_syntax_errors_since(log0);

        free(sch), free(tab), free(key), free(age), free(red), free(hsh), free(nul), free(evt), free(evk);
        free(qs), free(qt), free(qk), free(qa), free(qr), free(qh), free(qn), free(qe), free(ysub);
        free(yclause), free(ybig), free(yred), free(yreason), free(table), free(evtable), free(clause);
        sb_done(&big);
        sb_done(&y);
        free(policy);
        free(keyfile);
        PQfinish(c);
        free(ci);
}

/* ---- what must be rejected -------------------------------------------------------------------- */

static const char *const SIMPLE_POLICY =
        "version: 1\n"
        "subjects:\n"
        "  acct: { table: app.accounts, key: id }\n"
        "holds:\n"
        "  legal: { reason: legal, subject: acct, registry: true }\n"
        "rules:\n"
        "  r:\n"
        "    clause: c\n"
        "    table: app.accounts\n"
        "    column: req_at\n"
        "    retain: 1 day\n"
        "    action: delete\n"
        "    subject: acct\n"
        "    holds: [legal]\n";

static void test_rejected(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci = new_db("h_rejected", &c);
        size_t log0 = server_log_size();
        rely_exec(c, "CREATE SCHEMA app; CREATE TABLE app.accounts (id int PRIMARY KEY, req_at timestamptz);"
                     "INSERT INTO app.accounts VALUES (1, now() - interval '5 days'), (2, NULL);");
        char *policy = write_file(".yaml", SIMPLE_POLICY, strlen(SIMPLE_POLICY));
        char *out = NULL, *err = NULL;
        int rc;

        /* the command line */
        for (size_t i = 0; i < N_EVIL; i++) {
                rc = rd(ci, policy, (const char *const[]) { "run", "--rule", EVIL[i], NULL }, &out, &err);
                expect_rejected("--rule hostile", rc, 64, out, err, "does not exist");
                free(out), free(err);
                /* a key that is not an integer, for an integer-keyed subject */
                rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", EVIL[i], "--reason", "r", NULL }, &out, &err);
                expect_rejected("hold add with a hostile integer key", rc, 64, out, err, "invalid input syntax for type integer");
                free(out), free(err);
                rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", "r", "--until", EVIL[i], NULL },
                        &out, &err);
                expect_rejected("hold add --until hostile", rc, 64, out, err, "timestamp");
                free(out), free(err);
                rc = rd(ci, NULL, (const char *const[]) { "hold", "release", EVIL[i], NULL }, &out, &err);
                expect_rejected("hold release hostile ID", rc, 64, out, err, "invalid hold ID");
                free(out), free(err);
                rc = rd(ci, policy, (const char *const[]) { "hold", "add", EVIL[i], "1", "--reason", "r", NULL }, &out, &err);
                expect_rejected("hold add on a hostile subject", rc, 64, out, err, "is not defined in the policy");
                free(out), free(err);
        }
        /* long values: the kernel allows 128 KiB per argument, retentiond 10000 bytes per reason */
        char *longv = malloc(128 * 1024);
        for (size_t i = 0; i < 128 * 1024 - 1; i++)
                longv[i] = EVIL[0][i % strlen(EVIL[0])];
        longv[128 * 1024 - 1] = 0;
        rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", longv, NULL }, &out, &err);
        expect_rejected("--reason of 128 KiB", rc, 64, out, err, "value too long");
        free(out), free(err);
        rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", "r", "--by", longv, NULL }, &out, &err);
        expect_rejected("--by of 128 KiB", rc, 64, out, err, "value too long");
        free(out), free(err);
        longv[10000] = 0;
        rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", longv, "--by", EVIL[3], NULL }, &out,
                &err);
        if (rc != 0)
                fail_msg("--reason of 10000 bytes exited %d:\n%s%s", rc, out, err);
        bad_inputs++;
        assert_true(stored(c, "SELECT bool_or(reason = $1) FROM retention.holds", longv));
        free(out), free(err);
        free(longv);
        /* non-UTF-8 */
        rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", "caf\xe9 \xff", NULL }, &out, &err);
        expect_rejected("--reason not UTF-8", rc, 64, out, err, "UTF-8");
        free(out), free(err);
        rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", "r", "--by", "\xc3\x28", NULL }, &out,
                &err);
        expect_rejected("--by not UTF-8", rc, 64, out, err, "UTF-8");
        free(out), free(err);
        rc = rd(ci, policy, (const char *const[]) { "hold", "add", "acct", "1", "--reason", "", NULL }, &out, &err);
        expect_rejected("empty --reason", rc, 64, out, err, "needs a reason");
        free(out), free(err);

        /* the policy: names of rules, holds and subjects are a-z0-9-_; identifiers at most 63
         * bytes; UTF-8 without NUL or control bytes; no key: anywhere */
        struct {
                const char *what, *text, *needle;
                size_t len;
        } bad[] = {
                { "a hostile rule name", "version: 1\nrules:\n  \"r'; DROP TABLE canary.t; --\":\n    clause: c\n    table: t\n"
                                         "    column: c\n    retain: 1 day\n    action: delete\n", "rule name", 0 },
                { "a hostile subject name", "version: 1\nsubjects:\n  \"s; --\": { table: t, key: id }\n", "subject name", 0 },
                { "a 64-byte identifier", "version: 1\nrules:\n  r:\n    clause: c\n"
                                          "    table: t0123456789012345678901234567890123456789012345678901234567890123\n"
                                          "    column: c\n    retain: 1 day\n    action: delete\n", "63 bytes", 0 },
                { "a NUL byte", "version: 1\nrules:\n  r:\n    clause: \"a\0b\"\n", "NUL", sizeof("version: 1\nrules:\n  r:\n    clause: \"a\0b\"\n") - 1 },
                { "non-UTF-8", "version: 1\nrules:\n  r:\n    clause: \"caf\xe9\"\n", "UTF-8", 0 },
                { "a control byte", "version: 1\nrules:\n  r:\n    clause: \"\x1b[2J\"\n", "control", 0 },
                { "a key in the policy", "version: 1\nkey: 0123456789abcdef0123456789abcdef\n", "key", 0 },
                { "an unknown method", "version: 1\nrules:\n  r:\n    clause: c\n    table: t\n    column: c\n    retain: 1 day\n"
                                       "    action: anonymise\n    columns: { a: \"md5(a); DROP TABLE canary.t\" }\n", "method", 0 },
                { "a hostile duration", "version: 1\nrules:\n  r:\n    clause: c\n    table: t\n    column: c\n"
                                        "    retain: \"1 day'; DROP TABLE canary.t; --\"\n    action: delete\n", "retain", 0 },
                { "a hostile batch_size", "version: 1\nrules:\n  r:\n    clause: c\n    table: t\n    column: c\n"
                                          "    retain: 1 day\n    action: delete\n    batch_size: \"1; DROP TABLE canary.t\"\n",
                  "batch_size", 0 },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char *p = write_file(".yaml", bad[i].text, bad[i].len ? bad[i].len : strlen(bad[i].text));
                rc = rd(ci, p, (const char *const[]) { "check", NULL }, &out, &err);
                expect_rejected(bad[i].what, rc, 65, out, err, bad[i].needle);
                free(out), free(err);
                free(p);
        }
        canary_alive(c);
        no_syntax_errors_since(log0);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM app.accounts"), 2);
        fprintf(stderr, "hostile: every hostile value was quoted and stored verbatim or rejected with its exit code;"
                        " the canary survived, no syntax error reached the server\n");
        free(policy);
        PQfinish(c);
        free(ci);
}

/* ---- files ---------------------------------------------------------------------------------- */

static const char *const VALID =
        "version: 1\nrules:\n  %s:\n    clause: c\n    table: t\n    column: c\n    retain: 1 day\n    action: delete\n";

static void test_files(void **state) {
        (void) state;
        char *out = NULL, *err = NULL;
        int rc;
        char *pd = rely_asprintf("%s/policies", dir), *other = rely_asprintf("%s/elsewhere", dir);
        assert_int_equal(mkdir(pd, 0755), 0);
        assert_int_equal(mkdir(other, 0755), 0);
        char *text = rely_asprintf(VALID, "in-dir");
        char *p1 = rely_asprintf("%s/10-real.yaml", pd);
        rely_write(p1, text, strlen(text));
        free(text);
        text = rely_asprintf(VALID, "through-link");
        char *target = rely_asprintf("%s/target.yaml", other);
        rely_write(target, text, strlen(text));
        free(text);
        char *l1 = rely_asprintf("%s/20-link.yaml", pd), *l2 = rely_asprintf("%s/30-dev.yaml", pd);
        char *l3 = rely_asprintf("%s/40-dir.yaml", pd), *l4 = rely_asprintf("%s/50-dangling.yaml", pd);
        char *fifo = rely_asprintf("%s/60-fifo.yaml", pd);
        assert_int_equal(symlink(target, l1), 0);
        assert_int_equal(symlink("/dev/zero", l2), 0);
        assert_int_equal(symlink(other, l3), 0);
        assert_int_equal(mkfifo(fifo, 0644), 0);

        /* Symlinks are followed to regular files; devices, directories and FIFOs are not policy files. */
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = rd(NULL, pd, (const char *const[]) { "check", NULL }, &out, &err);
        if (rc != 0 || !strstr(out, "through-link") || !strstr(out, "in-dir") || rely_ms_since(&t0) > 5000)
                fail_msg("a directory with symlinks, a device, a FIFO: exit %d\n%s%s", rc, out, err);
        free(out), free(err);
        bad_inputs += 3;
        /* A dangling symlink is a missing file. */
        assert_int_equal(symlink("/nonexistent/policy.yaml", l4), 0);
        rc = rd(NULL, pd, (const char *const[]) { "check", NULL }, &out, &err);
        expect_rejected("a dangling symlink", rc, 66, out, err, "No such file");
        free(out), free(err);
        unlink(l4);
        /* Named directly: a FIFO, /dev/zero, /dev/stdin are not read (no blocking, no endless read). */
        static const char *const specials[] = { "/dev/zero", "/dev/urandom" };
        for (size_t i = 0; i < 2; i++) {
                clock_gettime(CLOCK_MONOTONIC, &t0);
                rc = rd(NULL, specials[i], (const char *const[]) { "check", NULL }, &out, &err);
                if (rely_ms_since(&t0) > 5000)
                        fail_msg("%s took %ld ms", specials[i], rely_ms_since(&t0));
                expect_rejected(specials[i], rc, 66, out, err, "not a regular file");
                free(out), free(err);
        }
        clock_gettime(CLOCK_MONOTONIC, &t0);
        rc = rd(NULL, fifo, (const char *const[]) { "check", NULL }, &out, &err);
        if (rely_ms_since(&t0) > 5000)
                fail_msg("a FIFO took %ld ms", rely_ms_since(&t0));
        expect_rejected("a FIFO", rc, 66, out, err, "not a regular file");
        free(out), free(err);

        /* Unreadable: as nobody (root reads anything). */
        char *ud = rely_asprintf("%s/unreadable", dir);
        assert_int_equal(mkdir(ud, 0755), 0);
        assert_int_equal(chmod(dir, 0755), 0);
        char *uf = rely_asprintf("%s/policy.yaml", ud);
        text = rely_asprintf(VALID, "secret");
        rely_write(uf, text, strlen(text));
        free(text);
        assert_int_equal(chmod(uf, 0), 0);
        if (access("/usr/sbin/runuser", X_OK) == 0 && getuid() == 0) {
                const char *argv[] = { "runuser", "-u", "nobody", "--", rely_bin(), "-p", uf, "check", NULL };
                long rss, ms;
                char *o = NULL;
                rc = run_measured(argv, &o, &rss, &ms);
                bad_inputs++;
                if (rc != 77 || !strstr(o, "Permission denied"))
                        fail_msg("an unreadable policy file (as nobody): exit %d, want 77 with the OS error:\n%s", rc, o);
                free(o);
                const char *argv2[] = { "runuser", "-u", "nobody", "--", rely_bin(), "-p", ud, "check", NULL };
                assert_int_equal(chmod(uf, 0644), 0);
                assert_int_equal(chmod(ud, 0), 0);
                rc = run_measured(argv2, &o, &rss, &ms);
                bad_inputs++;
                if (rc != 77 || !strstr(o, "Permission denied"))
                        fail_msg("an unreadable policy directory (as nobody): exit %d:\n%s", rc, o);
                free(o);
                assert_int_equal(chmod(ud, 0755), 0);
        } else
                fprintf(stderr, "hostile: not root or no runuser: the unreadable-file check is not run\n");

        /* Big and bombs: rejected in bounded time and memory. */
        struct {
                const char *what, *needle;
                size_t size;
                int kind; /* 0 sparse 100 MB, 1 nesting, 2 billion laughs, 3 many keys */
        } bombs[] = {
                { "a 100 MB file", "too large", (size_t) 100 * 1024 * 1024, 0 },
                { "4 million [ deep", "deep", (size_t) 4 * 1024 * 1024 - 64, 1 },
                { "a billion-laughs alias bomb", "alias", 0, 2 },
                { "4 MB of keys", "unknown key", (size_t) 4 * 1024 * 1024 - 64, 3 },
        };
        for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
                char *path = rely_asprintf("%s/bomb%zu.yaml", dir, i);
                if (bombs[i].kind == 0) {
                        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                        assert_true(fd >= 0);
                        assert_int_equal(write(fd, "version: 1\n", 11), 11);
                        assert_int_equal(ftruncate(fd, (off_t) bombs[i].size), 0);
                        close(fd);
                } else if (bombs[i].kind == 1) {
                        char *b = malloc(bombs[i].size + 1);
                        memcpy(b, "version: 1\nrules: ", 18);
                        memset(b + 18, '[', bombs[i].size - 18);
                        rely_write(path, b, bombs[i].size);
                        free(b);
                } else if (bombs[i].kind == 2) {
                        Sb b = {};
                        sb_printf(&b, "version: 1\nrules:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
                        for (char k = 'b'; k <= 'z'; k++)
                                sb_printf(&b, "  %c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", k, k, k - 1, k - 1, k - 1, k - 1, k - 1,
                                          k - 1, k - 1, k - 1, k - 1);
                        rely_write(path, b.s, b.len);
                        sb_done(&b);
                } else {
                        Sb b = {};
                        sb_printf(&b, "version: 1\n");
                        for (unsigned k = 0; b.len < bombs[i].size; k++)
                                sb_printf(&b, "k%u: [1, 2, {a: b}]\n", k);
                        rely_write(path, b.s, bombs[i].size < b.len ? b.len : bombs[i].size);
                        sb_done(&b);
                }
                const char *argv[] = { rely_bin(), "-p", path, "check", NULL };
                long rss, ms;
                char *o = NULL;
                rc = run_measured(argv, &o, &rss, &ms);
                fprintf(stderr, "hostile: %s: exit %d in %ld ms, max RSS %ld KiB\n", bombs[i].what, rc, ms, rss);
                bad_inputs++;
                if (rc != 65 || !strstr(o, bombs[i].needle))
                        fail_msg("%s: exit %d, want 65 with \"%s\":\n%.2000s", bombs[i].what, rc, bombs[i].needle, o);
                /* bounds: here 4 MB of keys take ~0.6 s and ~180 MB (the YAML tree); under ASan ~2.5 s
                 * and ~470 MB. Everything else: milliseconds and under 15 MB. */
                if (ms > 20000 || rss > 1024 * 1024)
                        fail_msg("%s: %ld ms, %ld KiB: not bounded", bombs[i].what, ms, rss);
                free(o);
                unlink(path);
                free(path);
        }

        /* Writable by others, by the group, or owned by another user: warnings. */
        struct {
                const char *what;
                mode_t mode;
                bool nobody;
                const char *needle;
        } w[] = {
                { "mode 0666", 0666, false, "writable by others" },
                { "mode 0664", 0664, false, "writable by its group" },
                { "owned by nobody", 0644, true, "owned by user \"nobody\"" },
                { "mode 0644, owned by root", 0644, false, NULL },
        };
        for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
                text = rely_asprintf(VALID, "w");
                char *p = write_file(".yaml", text, strlen(text));
                free(text);
                assert_int_equal(chmod(p, w[i].mode), 0);
                if (w[i].nobody && chown(p, 65534, 65534) != 0)
                        fail_msg("chown nobody: %s", strerror(errno));
                rc = rd(NULL, p, (const char *const[]) { "check", NULL }, &out, &err);
                bad_inputs++;
                if (rc != 0 || (w[i].needle && !strstr(err, w[i].needle)) || (!w[i].needle && strstr(err, "warning")))
                        fail_msg("a policy file %s: exit %d, want 0 %s \"%s\":\n%s%s", w[i].what, rc, w[i].needle ? "with" : "without",
                                 w[i].needle ? w[i].needle : "warning", out, err);
                free(out), free(err);
                free(p);
        }
        char *wd = rely_asprintf("%s/writable-dir", dir);
        assert_int_equal(mkdir(wd, 0755), 0);
        assert_int_equal(chmod(wd, 0777), 0);
        char *wf = rely_asprintf("%s/a.yaml", wd);
        text = rely_asprintf(VALID, "wd");
        rely_write(wf, text, strlen(text));
        free(text);
        rc = rd(NULL, wd, (const char *const[]) { "check", NULL }, &out, &err);
        bad_inputs++;
        if (rc != 0 || !strstr(err, "directory") || !strstr(err, "writable by others"))
                fail_msg("a policy directory writable by others: exit %d, no warning:\n%s%s", rc, out, err);
        free(out), free(err);
        fprintf(stderr, "hostile: policy files: symlinks followed to regular files (dangling: exit 66), devices, FIFOs and"
                        " directories never read, unreadable: 77, 100 MB and bombs: 65 in bounded time and memory,"
                        " writable or foreign-owned files and directories: warnings\n");
        free(wd), free(wf), free(ud), free(uf);
        free(pd), free(other), free(p1), free(target), free(l1), free(l2), free(l3), free(l4), free(fifo);
}

/* ---- secrets ---------------------------------------------------------------------------------- */

static const char *const PASSWORD = "pw-Zq8v1Rt7-UniquePassword-9f3e";
static const char *const KEY = "hk-Mx4c2Lp9-UniqueHashKey-07b1d3";

static const char *const SECRET_POLICY =
        "version: 1\n"
        "subjects:\n"
        "  sec: { table: s.people, key: id }\n"
        "holds:\n"
        "  legal: { reason: legal, subject: sec, registry: true }\n"
        "rules:\n"
        "  s-hash:\n"
        "    clause: \"secrets: people are pseudonymised after 30 days\"\n"
        "    table: s.people\n"
        "    column: seen_at\n"
        "    retain: 30 days\n"
        "    action: anonymise\n"
        "    columns: { email: hash }\n"
        "    subject: sec\n"
        "    holds: [legal]\n"
        "    batch_size: 5\n"
        "    max_fraction: 1\n";

/* Every form in which a secret could leak: itself, its hex, and for the key the HMAC pads. */
static void secret_forms(char forms[6][160]) {
        size_t n = strlen(KEY);
        snprintf(forms[0], 160, "%s", PASSWORD);
        snprintf(forms[1], 160, "%s", KEY);
        for (size_t i = 0; i < n; i++)
                snprintf(forms[2] + 2 * i, 3, "%02x", (unsigned char) KEY[i]);
        for (size_t i = 0; i < 32; i++) {
                snprintf(forms[3] + 2 * i, 3, "%02x", (unsigned char) (KEY[i] ^ 0x36));
                snprintf(forms[4] + 2 * i, 3, "%02x", (unsigned char) (KEY[i] ^ 0x5c));
        }
        for (size_t i = 0; i < strlen(PASSWORD); i++)
                snprintf(forms[5] + 2 * i, 3, "%02x", (unsigned char) PASSWORD[i]);
}

static void assert_no_secret(const char *where, const char *text) {
        char forms[6][160] = {};
        secret_forms(forms);
        static const char *const names[] = { "the password", "the hash key", "the hash key in hex", "the HMAC inner pad",
                                             "the HMAC outer pad", "the password in hex" };
        for (int i = 0; i < 6; i++)
                if (text && strcasestr(text, forms[i]))
                        fail_msg("%s appears in %s", names[i], where);
}

/* A file as text: the journal's export format holds binary fields (the kernel's messages), whose
 * NUL bytes would end a string search early; they become newlines. */
static char *slurp_text(const char *path) {
        Sb b = {};
        FILE *f = fopen(path, "re");
        if (f) {
                char chunk[65536];
                size_t n;
                while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
                        for (size_t i = 0; i < n; i++)
                                if (chunk[i] == '\0')
                                        chunk[i] = '\n';
                        sb_add(&b, chunk, n);
                }
                fclose(f);
        }
        return sb_steal(&b);
}

/* Server settings (ALTER SYSTEM, then a reload): every statement logged with its parameters
 * in full, whatever the session may set. value NULL: back to the default. */
static void server_logs_parameters(PGconn *c, bool on) {
        static const char *const names[] = { "log_statement", "log_parameter_max_length", "log_parameter_max_length_on_error" };
        static const char *const values[] = { "'all'", "-1", "-1" };
        for (size_t i = 0; i < 3; i++) {
                char *sql = on ? rely_asprintf("ALTER SYSTEM SET %s = %s", names[i], values[i])
                               : rely_asprintf("ALTER SYSTEM RESET %s", names[i]);
                rely_exec(c, sql);
                free(sql);
        }
        rely_exec(c, "SELECT pg_reload_conf()");
        /* the reload is asynchronous: a new session sees it once the postmaster has read the file */
        for (int i = 0; i < 500; i++) {
                char *v = rely_value(c, "SELECT setting FROM pg_file_settings WHERE name = 'log_statement' AND applied");
                bool done = on ? v && strcmp(v, "all") == 0 : !v;
                free(v);
                if (done)
                        break;
                usleep(10000);
        }
        usleep(200000);
}

static void test_secrets(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci_admin = new_db("h_secrets", &c);
        rely_exec(c, "CREATE SCHEMA s; CREATE TABLE s.people (id int PRIMARY KEY, seen_at timestamptz NOT NULL, email text);"
                     "CREATE INDEX ON s.people (seen_at);"
                     "INSERT INTO s.people SELECT g, now() - (g % 60) * interval '1 day', 'person' || g || '@example.org'"
                     "  FROM generate_series(1, 3000) g;");
        /* The engine's least-privilege role (not a superuser: it may not set log_parameter_max_length),
         * which must authenticate with its password (scram-sha-256, first line of pg_hba). */
        free(pgtest_engine_role(ci_admin, "secretrole", "s.people", NULL));
        /* The role script lets the role set log_parameter_max_length (PostgreSQL 15); a role made
         * otherwise, or any non-superuser before 15, may not: the key must stay out all the same. */
        rely_exec(c, "REVOKE SET ON PARAMETER log_parameter_max_length, log_parameter_max_length_on_error FROM secretrole");
        char *sql = rely_asprintf("SET password_encryption = 'scram-sha-256'; ALTER ROLE secretrole PASSWORD '%s';", PASSWORD);
        rely_exec(c, sql);
        free(sql);
        if (rely_int(c, "SELECT count(*) FROM pg_roles WHERE rolname = 'secretrole' AND NOT rolsuper"
                        " AND NOT has_parameter_privilege('secretrole', 'log_parameter_max_length', 'SET')") != 1)
                fail_msg("secretrole may set log_parameter_max_length: the test of the server log would prove nothing");
        char *hba = rely_value(c, "SHOW hba_file");
        char *old = rely_slurp(hba);
        char *new_hba = rely_asprintf("local all secretrole scram-sha-256\n%s", old);
        rely_write(hba, new_hba, strlen(new_hba));
        free(old), free(new_hba);
        rely_exec(c, "SELECT pg_reload_conf()");
        usleep(200000);
        char *ci = rely_asprintf("%s user=secretrole", ci_admin);
        /* without the password: refused, so the password really is what lets retentiond in */
        PGconn *probe = PQconnectdb(ci);
        assert_int_not_equal(PQstatus(probe), CONNECTION_OK);
        PQfinish(probe);
        char *passfile = rely_asprintf("%s/pgpass", dir);
        char *pass = rely_asprintf("*:*:*:secretrole:%s\n", PASSWORD);
        rely_write(passfile, pass, strlen(pass));
        free(pass);
        assert_int_equal(chmod(passfile, 0600), 0);
        char *keyfile = write_file(".key", KEY, strlen(KEY));
        char *policy = write_file(".yaml", SECRET_POLICY, strlen(SECRET_POLICY));
        char *envpass = rely_asprintf("PGPASSFILE=%s", passfile);
        const char *env[] = { envpass, NULL };
        size_t log0 = server_log_size();
        /* every statement logged with its parameters, as a DBA tracing queries would: in the server's
         * settings, which the role cannot change for its session */
        server_logs_parameters(c, true);
        rely_exec(c, "ALTER DATABASE h_secrets SET log_min_duration_statement = 0");

        static const char *const cmds[][4] = {
                { "check", NULL }, { "audit", NULL }, { "audit", "--sql", NULL }, { "audit", "--json", NULL },
                { "hold", "add", "sec", NULL }, { "hold", "list", "--all", NULL }, { "run", NULL }, { "run", "--json", NULL },
        };
        long outputs = 0;
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
                const char *argv[16];
                size_t n = 0;
                argv[n++] = "-p", argv[n++] = policy, argv[n++] = "-d", argv[n++] = ci, argv[n++] = "--hash-key-file";
                argv[n++] = keyfile;
                argv[n++] = "--log-target=console";
                for (int k = 0; k < 4 && cmds[i][k]; k++)
                        argv[n++] = cmds[i][k];
                if (cmds[i][1] && strcmp(cmds[i][1], "add") == 0) {
                        argv[n++] = "7";
                        argv[n++] = "--reason";
                        argv[n++] = "secrets test";
                }
                argv[n] = NULL;
                char *out = NULL, *err = NULL;
                int rc = pgtest_run(argv, env, &out, &err);
                if (rc != 0 && rc != 1)
                        fail_msg("retentiond %s exited %d:\n%s%s", cmds[i][0], rc, out, err);
                assert_no_secret("the output of retentiond", out);
                assert_no_secret("the errors of retentiond", err);
                outputs += 2;
                free(out), free(err);
        }
        assert_true(rely_int(c, "SELECT count(*) FROM s.people WHERE email LIKE 'hmac-sha256:%'") > 0);

        /* A wrong password: the error does not echo any password. */
        char *wrongpass = rely_asprintf("%s/wrong-pgpass", dir);
        rely_write(wrongpass, "*:*:*:secretrole:wrong-password\n", 32);
        assert_int_equal(chmod(wrongpass, 0600), 0);
        char *envwrong = rely_asprintf("PGPASSFILE=%s", wrongpass);
        const char *env2[] = { envwrong, NULL };
        char *out = NULL, *err = NULL;
        int rc = pgtest_run((const char *const[]) { "-p", policy, "-d", ci, "--hash-key-file", keyfile, "--log-target=console",
                                                    "run", NULL },
                            env2, &out, &err);
        if (rc != 77 || !strstr(err, "password authentication failed") || strstr(err, "wrong-password"))
                fail_msg("a wrong password: exit %d (want 77), and the password must not be echoed:\n%s%s", rc, out, err);
        free(out), free(err);

        /* A running retentiond: its arguments, the password given in -d (overwritten), and what
         * the server shows of its statements. */
        rely_exec(c, "UPDATE s.people SET email = 'person' || id || '@example.org'");
        char *ci_pw = rely_asprintf("%s password=%s", ci, PASSWORD);
        char *outfile = rely_asprintf("%s/secrets-run.log", dir);
        const char *args[] = { "-p", policy, "-d", ci_pw, "--hash-key-file", keyfile, "--log-target=console", "run", NULL };
        pid_t pid = rely_spawn(args, outfile);
        bool seen_active = false;
        long cmdline_checks = 0;
        int st = -2;
        for (int i = 0; i < 400 && (st = rely_wait_timeout(pid, 0)) == -2; i++) {
                char *path = rely_asprintf("/proc/%d/cmdline", (int) pid);
                /* cmdline is NUL-separated: look at every argument */
                FILE *f = fopen(path, "re");
                if (f) {
                        char buf[8192];
                        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                        fclose(f);
                        for (size_t k = 0; k < n; k++)
                                if (buf[k] == '\0')
                                        buf[k] = ' ';
                        buf[n] = 0;
                        /* once it is connected it has parsed its options (and scrubbed them) */
                        if (seen_active) {
                                assert_no_secret("/proc/PID/cmdline of a running retentiond", buf);
                                cmdline_checks++;
                        }
                }
                free(path);
                char *act = rely_value(c, "SELECT string_agg(query, E'\\n') FROM pg_stat_activity WHERE application_name = 'retentiond'");
                if (act) {
                        seen_active = true;
                        assert_no_secret("pg_stat_activity.query", act);
                        free(act);
                }
                usleep(1000);
        }
        if (st == -2)
                st = rely_wait_timeout(pid, 30000);
        char *log = rely_slurp(outfile);
        if (st != 0)
                fail_msg("the run with the password in -d exited %d:\n%s", st, log);
        assert_no_secret("the output of a run with the password in -d", log);
        free(log);
        if (cmdline_checks == 0)
                fail_msg("the run was over before its arguments could be read while it was connected");

        /* The audit trail: every column of every table of the retention schema. */
        PGresult *r = rely_query(c, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'retention'");
        for (int i = 0; i < PQntuples(r); i++) {
                char *q = rely_asprintf("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM retention.%s t", PQgetvalue(r, i, 0));
                char *all = rely_value(c, q);
                char *where = rely_asprintf("the audit trail (retention.%s)", PQgetvalue(r, i, 0));
                assert_no_secret(where, all);
                free(where), free(all), free(q);
        }
        PQclear(r);

        /* The server log, with every statement and its parameters logged. */
        rely_exec(c, "ALTER DATABASE h_secrets RESET log_min_duration_statement");
        server_logs_parameters(c, false);
        char *slog = server_log(log0);
        if (!strstr(slog, "duration:") || !strstr(slog, "DETAIL:  parameters: $1 = ") || !strstr(slog, "hmac-sha256:"))
                fail_msg("the server logged no statements, no parameters, or not the hashing statement:"
                         " the test of the server log proves nothing");
        assert_no_secret("the server log (log_statement = all, log_min_duration_statement = 0, log_parameter_max_length = -1)",
                         slog);
        free(slog);

        /* The journal: a private systemd-journald (tests/db/hostile-journal.sh). */
        const char *src = getenv("SOURCE_ROOT");
        char ns[256] = "";
        ssize_t l = readlink("/proc/self/ns/mnt", ns, sizeof(ns) - 1);
        char *jout = rely_asprintf("%s/journal", dir);
        assert_int_equal(mkdir(jout, 0755), 0);
        char *script = rely_asprintf("%s/tests/db/hostile-journal.sh", src ? src : ".");
        bool journal_checked = false;
        if (l > 0 && getuid() == 0 && access("/lib/systemd/systemd-journald", X_OK) == 0 && access(script, R_OK) == 0) {
                ns[l] = 0;
                const char *argv[] = { "timeout", "-k", "5", "90", "unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
                                       "--mount", "--propagation", "private", "--", "bash", script, "--inside", ns, rely_bin(),
                                       policy, ci, keyfile, passfile, jout, NULL };
                long rss, ms;
                char *o = NULL;
                rc = run_measured(argv, &o, &rss, &ms);
                char *exp_path = rely_asprintf("%s/journal.export", jout);
                char *exported = slurp_text(exp_path);
                if (rc == 0 && strstr(exported, "SYSLOG_IDENTIFIER=retentiond")) {
                        char *rcs_path = rely_asprintf("%s/rcs", jout);
                        char *rcs = rely_slurp(rcs_path);
                        size_t entries = rely_count(exported, "SYSLOG_IDENTIFIER=retentiond");
                        assert_no_secret("the journal (every field of every entry)", exported);
                        fprintf(stderr, "hostile: %zu journal entries of retentiond (runs, a failing run, a hold, an audit, a wrong"
                                        " password) hold neither the password nor the key; exits: %s",
                                entries, rcs);
                        if (!strstr(rcs, "run 0") || !strstr(rcs, "wrong-password 77"))
                                fail_msg("the journal runs did not go as planned: %s\n%s", rcs, o);
                        /* the key file is 0644: the warning is the event hash-key-readable, naming the file */
                        char *kf = rely_asprintf("KEY_FILE=%s\n", keyfile);
                        const char *ev = strstr(exported, "MESSAGE_ID=b00c574fca1a4b69b7f628a1de966b8e\n");
                        if (!ev || !strstr(exported, kf) || !strstr(exported, "PRIORITY=4\n"))
                                fail_msg("no hash-key-readable event (warning, KEY_FILE=%s) in the journal", keyfile);
                        free(kf);
                        journal_checked = true;
                        free(rcs), free(rcs_path);
                } else
                        fprintf(stderr, "hostile: the private journald could not be used (exit %d), the journal is not checked:\n%s\n",
                                rc, o);
                free(exported), free(exp_path), free(o);
        } else
                fprintf(stderr, "hostile: not root, or no systemd-journald: the journal is not checked\n");
        fprintf(stderr, "hostile: the password and the hash key are in none of %ld outputs, not in /proc/PID/cmdline (a password"
                        " in -d is overwritten), pg_stat_activity, any retention.* table, the server log with every statement"
                        " logged%s\n",
                outputs, journal_checked ? ", or the journal" : "");

        free(script), free(jout), free(ci_pw), free(outfile), free(envwrong), free(wrongpass);
        free(envpass), free(policy), free(keyfile), free(passfile), free(ci), free(hba), free(ci_admin);
        PQfinish(c);
}

/* The key file: a FIFO is refused at once (exit 78), a key others may read is warned about, and a
 * role without the TEMPORARY privilege cannot run a hash rule (the key never goes as a parameter). */
static void test_hash_key_file(void **state) {
        (void) state;
        PGconn *c = NULL;
        char *ci_admin = new_db("h_keyfile", &c);
        rely_exec(c, "CREATE SCHEMA s; CREATE TABLE s.people (id int PRIMARY KEY, seen_at timestamptz NOT NULL, email text);"
                     "INSERT INTO s.people SELECT g, now() - (g % 60) * interval '1 day', 'person' || g || '@example.org'"
                     "  FROM generate_series(1, 300) g;");
        char *policy = write_file(".yaml", SECRET_POLICY, strlen(SECRET_POLICY));
        char *ci = pgtest_engine_role(ci_admin, "keyrole", "s.people", NULL);

        /* A FIFO: refused without reading (no writer ever comes), within a bounded time. */
        char *fifo = rely_asprintf("%s/key-fifo", dir);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        char *outfile = rely_asprintf("%s/key-fifo.out", dir);
        const char *args[] = { "-p", policy, "-d", ci, "--hash-key-file", fifo, "--log-target=console", "run", NULL };
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        pid_t pid = rely_spawn(args, outfile);
        int rc = rely_wait_timeout(pid, 20000);
        if (rc == -2) {
                kill(-pid, SIGKILL);
                (void) rely_wait(pid);
                fail_msg("retentiond run with a FIFO as its hash key file was still running after 20 s");
        }
        long ms = rely_ms_since(&t0);
        char *o = rely_slurp(outfile);
        char *want = rely_asprintf("retentiond: error: hash key file \"%s\" is not a regular file\n"
                                   "DETAIL:  It is a FIFO; the key is read from a regular file only.\n", fifo);
        if (rc != 78 || !strstr(o, want))
                fail_msg("a FIFO as the hash key file: exit %d (want 78), want\n%s\ngot:\n%s", rc, want, o);
        free(o), free(want);
        bad_inputs++;
        /* a directory too */
        char *out = NULL, *err = NULL;
        rc = pgtest_run((const char *const[]) { "-p", policy, "-d", ci, "--hash-key-file", dir, "run", NULL }, NULL, &out, &err);
        expect_rejected("a directory as the hash key file", rc, 78, out, err, "It is a directory; the key is read from a regular file only.");
        free(out), free(err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM s.people WHERE email LIKE 'hmac-sha256:%'"), 0);

        /* Modes: readable by others or the group: a warning (the run goes on); 0600 and 0400: none. */
        static const struct {
                mode_t mode;
                const char *who;
        } modes[] = {
                { 0644, "0644: every user" },
                { 0640, "0640: its group" },
                { 0600, NULL },
                { 0400, NULL },
        };
        char *keyfile = write_file(".key", KEY, strlen(KEY));
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                assert_int_equal(chmod(keyfile, modes[i].mode), 0);
                rc = pgtest_run((const char *const[]) { "-p", policy, "-d", ci, "--hash-key-file", keyfile, "--log-target=console",
                                                        "run", NULL },
                                NULL, &out, &err);
                char *warn = modes[i].who ? rely_asprintf("retentiond: warning: hash key file \"%s\" is readable by other users\n"
                                                          "DETAIL:  Its mode is %s may read the key that pseudonymises the data.\n"
                                                          "HINT:  chmod go-rwx %s\n",
                                                          keyfile, modes[i].who, keyfile)
                                          : NULL;
                if (rc != 0 || (warn && !strstr(err, warn)) || (!warn && strstr(err, "readable by other users")))
                        fail_msg("a hash key file of mode %04o: exit %d (want 0), %s warning expected:\n%s%s", (unsigned) modes[i].mode,
                                 rc, warn ? "a" : "no", out, err);
                free(warn), free(out), free(err);
        }
        assert_int_equal(rely_int(c, "SELECT count(*) FROM s.people WHERE email LIKE 'hmac-sha256:%'"), 150);

        /* No TEMPORARY privilege: the hash rule is refused, nothing is hashed, the trail says why. */
        rely_exec(c, "UPDATE s.people SET email = 'person' || id || '@example.org'");
        rely_exec(c, "REVOKE TEMPORARY ON DATABASE h_keyfile FROM PUBLIC");
        assert_int_equal(rely_int(c, "SELECT count(*) FROM pg_roles WHERE rolname = 'keyrole'"
                                     " AND NOT has_database_privilege('keyrole', 'h_keyfile', 'TEMPORARY')"),
                         1);
        rc = pgtest_run((const char *const[]) { "-p", policy, "-d", ci, "--hash-key-file", keyfile, "--log-target=console", "run",
                                                NULL },
                        NULL, &out, &err);
        if (rc != 1 || !strstr(err, "retentiond: error: rule \"s-hash\" uses the hash method, and the role may not create"
                                    " temporary tables\n"
                                    "DETAIL:  permission denied to create temporary tables in database \"h_keyfile\". The hash"
                                    " key reaches the database only through a temporary table of retentiond's session, never"
                                    " as a statement parameter, which the server may log.\n"))
                fail_msg("a hash rule without the TEMPORARY privilege: exit %d (want 1):\n%s%s", rc, out, err);
        free(out), free(err);
        assert_int_equal(rely_int(c, "SELECT count(*) FROM s.people WHERE email LIKE 'hmac-sha256:%'"), 0);
        char *v = rely_value(c, "SELECT outcome || ' ' || sqlstate || ' ' || rows_anonymised FROM retention.rule_runs"
                                " ORDER BY id DESC LIMIT 1");
        assert_string_equal(v, "failed 42501 0");
        free(v);
        rely_exec(c, "GRANT TEMPORARY ON DATABASE h_keyfile TO PUBLIC");
        fprintf(stderr, "hostile: hash key files: a FIFO refused in %ld ms (exit 78), a directory 78, modes 0644/0640 warned,"
                        " a role without TEMPORARY refused (exit 1, nothing hashed)\n",
                ms);
        free(keyfile), free(outfile), free(fifo), free(ci), free(policy), free(ci_admin);
        PQfinish(c);
}

/* ---- row values in the server's errors ------------------------------------------------------------ */

/* PostgreSQL's errors can quote a row: an integrity violation's detail ("Key (email)=(...)
 * already exists", "Failing row contains (...)"), a data exception's message ("invalid input
 * syntax for type integer: \"...\""), and whatever a table owner's code raises. None of that may
 * reach the terminal, the JSON, the audit trail or the journal: the engine says what happened,
 * names the function that raised it, and withholds the words. */
#define ROW_VALUE "rowvalue-7Hq2-alice@example.com"

static void assert_no_row_value(const char *where, const char *text) {
        if (text && strstr(text, "rowvalue-7Hq2"))
                fail_msg("%s holds a row value:\n%.3000s", where, text);
}

/* Runs args with exit `want`; neither output holds a row value, and `said` (when given) is in the
 * errors or, failing that, the output. */
static void expect_screened(const char *ci, const char *pol, const char *const *args, int want, const char *said) {
        char *out = NULL, *err = NULL;
        int rc = rd(ci, pol, args, &out, &err);
        if (rc != want)
                fail_msg("%s: exit %d, want %d:\n%s%s", args[0], rc, want, out, err);
        assert_no_row_value(args[0], out);
        assert_no_row_value(args[0], err);
        if (said && !strstr(err, said) && !strstr(out, said))
                fail_msg("%s said:\n%s%s\nexpected:\n%s", args[0], out, err, said);
        free(out);
        free(err);
}

static void test_row_values_withheld(void **state) {
        (void) state;
        PGconn *c;
        char *ci = new_db("hostile_rowvalues", &c);
        rely_exec(c, "CREATE SCHEMA app;"
                     " CREATE TABLE app.people (id int PRIMARY KEY, email text NOT NULL, at timestamptz NOT NULL);"
                     " INSERT INTO app.people VALUES (1, '" ROW_VALUE "', now() - interval '60 days'),"
                     " (2, 'young', now());"
                     " CREATE TABLE app.archive (email text UNIQUE);"
                     " INSERT INTO app.archive VALUES ('" ROW_VALUE "');"
                     " CREATE FUNCTION app.archive_row() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$BEGIN INSERT INTO app.archive VALUES (OLD.email); RETURN OLD; END$$;"
                     " CREATE TRIGGER archive_row BEFORE DELETE ON app.people FOR EACH ROW EXECUTE FUNCTION app.archive_row();");
        const char *y1 = "version: 1\nrules:\n  people:\n    clause: \"c\"\n    table: app.people\n    column: at\n"
                         "    retain: 30 days\n    action: delete\n    trust_triggers: true\n";
        char *pol = write_file(".yaml", y1, strlen(y1));
        const char *runj[] = { "run", "--json", NULL }, *run[] = { "run", NULL }, *status[] = { "status", NULL };
        const char *audit[] = { "audit", NULL };
        size_t log0 = server_log_size();

        /* 1. a unique violation in the trigger's INSERT: PostgreSQL's message kept, its detail not */
        expect_screened(ci, pol, run, 1,
                        "retentiond: error: rule \"people\": duplicate key value violates unique constraint "
                        "\"archive_email_key\"\nDETAIL:  Raised in function app.archive_row(), which the statement ran. The "
                        "server's detail is not shown, as it may hold row values.\nHINT:  The database server's log has the "
                        "whole message.\n");
        expect_screened(ci, pol, runj, 1,
                        "\"message\":\"duplicate key value violates unique constraint \\\"archive_email_key\\\"\"");

        /* 2. the trigger RAISEs with the row in its message, detail and hint: none of it repeated */
        rely_exec(c, "CREATE OR REPLACE FUNCTION app.archive_row() RETURNS trigger LANGUAGE plpgsql AS"
                     " $$BEGIN RAISE EXCEPTION 'refused %', OLD.email USING DETAIL = OLD.email, HINT = OLD.email,"
                     " ERRCODE = 'check_violation'; END$$");
        expect_screened(ci, pol, run, 1,
                        "retentiond: error: rule \"people\": function app.archive_row() of the database raised an error "
                        "(SQLSTATE 23514); its message is not shown, as it may hold row values\n");

        /* 3. a data exception on a row's value (a where: that casts it) */
        rely_exec(c, "DROP TRIGGER archive_row ON app.people");
        const char *y2 = "version: 1\nrules:\n  people:\n    clause: \"c\"\n    table: app.people\n    column: at\n"
                         "    retain: 30 days\n    action: delete\n    where: \"email::int > 0\"\n";
        char *pol2 = write_file(".yaml", y2, strlen(y2));
        const char *data = "the database could not convert, compute or check a value (SQLSTATE 22P02); its message is not"
                           " shown, as it may hold row values";
        char *line = rely_asprintf("retentiond: error: rule \"people\": %s\n", data);
        expect_screened(ci, pol2, run, 1, line);
        expect_screened(ci, pol2, audit, 1, data);
        expect_screened(ci, pol2, status, 1, data);
        free(line);

        /* the trail has the screened words; the server's own log has the whole message */
        char *errors = rely_value(c, "SELECT string_agg(coalesce(error, '-'), E'\\n' ORDER BY id) FROM retention.rule_runs");
        assert_no_row_value("retention.rule_runs.error", errors);
        free(errors);
        char *log = server_log(log0);
        if (!strstr(log, "Key (email)=(" ROW_VALUE ") already exists"))
                fail_msg("the server's log lacks the whole message");
        free(log);
        char *left = rely_value(c, "SELECT count(*)::text FROM app.people");
        assert_string_equal(left, "2");
        free(left);
        fprintf(stderr, "hostile: a unique violation's key, a trigger's RAISE and a data exception's value in none of run,"
                        " run --json, audit, status or the trail; the server's log has them\n");
        free(pol), free(pol2), free(ci);
        PQfinish(c);
}

static int group_setup(void **state) {
        (void) state;
        pg = pgtest_start();
        dir = rely_tmpdir();
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        fprintf(stderr, "hostile: %ld bad inputs tried\n", bad_inputs);
        pgtest_stop(pg);
        rely_rm_rf(dir);
        free(dir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_injection_policy),
                cmocka_unit_test(test_rejected),
                cmocka_unit_test(test_files),
                cmocka_unit_test(test_secrets),
                cmocka_unit_test(test_hash_key_file),
                cmocka_unit_test(test_row_values_withheld),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
