/* citustest.c — a coordinator and two workers for the Citus tests (citustest.h). Every node is a
 * private pgtest cluster, so the watchdog of each stops and removes it when the test program goes
 * away, however it goes. Never touches a cluster it did not start. */
#include "citustest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

struct CitusTest {
        PgTest *coordinator;
        PgTest *workers[CITUSTEST_WORKERS];
};

/* Two-phase commit carries every multi-shard write: max_prepared_transactions must not be 0. Each
 * database has its own Citus maintenance daemon, a background worker: max_worker_processes.
 * 8 shards (the default is 32) keep a small test cluster quick. */
static const char citus_conf[] =
        "shared_preload_libraries = 'citus'\n"
        "max_prepared_transactions = 60\n"
        "citus.shard_count = 8\n"
        "citus.shard_replication_factor = 1\n"
        "max_worker_processes = 32\n";

static char *xasprintf_c(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf_c(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0)
                abort();
        va_end(ap);
        return s;
}

static char *pkglibdir(void) {
        FILE *p = popen("pg_config --pkglibdir 2>/dev/null", "r");
        char line[4096] = "";
        if (p) {
                if (!fgets(line, sizeof(line), p))
                        line[0] = '\0';
                pclose(p);
        }
        line[strcspn(line, "\n")] = '\0';
        return strdup(*line ? line : "/usr/lib/postgresql/15/lib");
}

CitusTest *citustest_start(void) {
        char *lib = pkglibdir();
        char *so = xasprintf_c("%s/citus.so", lib);
        if (!lib || access(so, R_OK) != 0) {
                fprintf(stderr, "citustest: Citus is not installed (%s is missing).\n"
                                "citustest: hint: run `bash .ci/citus` (it builds Citus 13.2.2 from ../shared/citus).\n",
                        so);
                exit(EXIT_FAILURE);
        }
        free(so);
        free(lib);
        /* Three private clusters, whatever RETENTIOND_TEST_PGHOST says. */
        unsetenv("RETENTIOND_TEST_PGHOST");
        CitusTest *ct = calloc(1, sizeof(CitusTest));
        if (!ct)
                abort();
        ct->coordinator = pgtest_start_conf(citus_conf);
        for (int i = 0; i < CITUSTEST_WORKERS; i++)
                ct->workers[i] = pgtest_start_conf(citus_conf);
        /* A node reaches itself (intermediate results of a statement that joins a table of the
         * coordinator) at citus.local_hostname, 'localhost' by default: TCP, which the clusters do
         * not listen on. Their own socket directory instead, known once they exist. */
        for (int i = 0; i <= CITUSTEST_WORKERS; i++) {
                PgTest *n = i == 0 ? ct->coordinator : ct->workers[i - 1];
                char *ci = xasprintf_c("host='%s' port=%d dbname=postgres user=postgres", pgtest_host(n), pgtest_port(n));
                PGconn *c = PQconnectdb(ci);
                char *sql = xasprintf_c("ALTER SYSTEM SET citus.local_hostname = '%s'", pgtest_host(n));
                PGresult *r1 = PQstatus(c) == CONNECTION_OK ? PQexec(c, sql) : NULL;
                PGresult *r2 = r1 && PQresultStatus(r1) == PGRES_COMMAND_OK ? PQexec(c, "SELECT pg_reload_conf()") : NULL;
                if (!r2 || PQresultStatus(r2) != PGRES_TUPLES_OK) {
                        fprintf(stderr, "citustest: cannot set citus.local_hostname on %s: %s", ci, PQerrorMessage(c));
                        exit(EXIT_FAILURE);
                }
                PQclear(r1);
                PQclear(r2);
                PQfinish(c);
                free(sql);
                free(ci);
        }
        return ct;
}

void citustest_stop(CitusTest *ct) {
        if (!ct)
                return;
        for (int i = 0; i < CITUSTEST_WORKERS; i++)
                pgtest_stop(ct->workers[i]);
        pgtest_stop(ct->coordinator);
        free(ct);
}

PgTest *citustest_coordinator(const CitusTest *ct) {
        return ct->coordinator;
}

PgTest *citustest_worker(const CitusTest *ct, int i) {
        assert_true(i >= 0 && i < CITUSTEST_WORKERS);
        return ct->workers[i];
}

static void add_extension(const char *conninfo) {
        PGconn *c = pgtest_connect(conninfo);
        pgtest_exec(c, "CREATE EXTENSION citus");
        PQfinish(c);
}

char *citustest_worker_db(const CitusTest *ct, int i, const char *name) {
        PgTest *w = citustest_worker(ct, i);
        return xasprintf_c("host='%s' port=%d dbname='%s' user=postgres", pgtest_host(w), pgtest_port(w), name);
}

char *citustest_create_db(CitusTest *ct, const char *name) {
        for (int i = 0; i < CITUSTEST_WORKERS; i++) {
                char *ci = pgtest_create_db(ct->workers[i], name);
                add_extension(ci);
                free(ci);
        }
        char *ci = pgtest_create_db(ct->coordinator, name);
        add_extension(ci);
        PGconn *c = pgtest_connect(ci);
        /* The nodes reach each other over their unix sockets: a node's name is its socket directory. */
        pgtest_exec(c, "SELECT citus_set_coordinator_host('%s', %d)", pgtest_host(ct->coordinator),
                    pgtest_port(ct->coordinator));
        for (int i = 0; i < CITUSTEST_WORKERS; i++)
                pgtest_exec(c, "SELECT citus_add_node('%s', %d)", pgtest_host(ct->workers[i]), pgtest_port(ct->workers[i]));
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM pg_dist_node WHERE noderole = 'primary' AND isactive"),
                         CITUSTEST_WORKERS + 1);
        PQfinish(c);
        return ci;
}
