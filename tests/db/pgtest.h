/* pgtest.h — harness for the db test suite: a real, private PostgreSQL 15 cluster started by the
 * test program itself, SQL helpers that fail the current cmocka test, and a runner for the binary.
 * Never touches a cluster it did not start, except one named in RETENTIOND_TEST_PGHOST. */
#pragma once

#include <libpq-fe.h>

typedef struct PgTest PgTest;

/* Starts a throwaway cluster (initdb into a fresh temporary directory, unix socket only, fsync off;
 * as the `postgres` system user when running as root). If RETENTIOND_TEST_PGHOST is set, uses that
 * cluster instead (RETENTIOND_TEST_PGPORT, default 5432; RETENTIOND_TEST_PGUSER, default postgres).
 * Binaries: RETENTIOND_TEST_PGBIN, else `pg_config --bindir`, else /usr/lib/postgresql/15/bin.
 * On failure, prints what went wrong (with the server's log) and exits the test program.
 * The cluster is stopped and its directory removed even if the test program crashes. */
PgTest *pgtest_start(void);
/* The same, with extra_conf (lines of postgresql.conf, may be NULL) appended to the configuration
 * before the server starts (shared_preload_libraries = 'citus': tests/db/citustest.h). A cluster
 * named in RETENTIOND_TEST_PGHOST is used as it is: extra_conf is ignored. */
PgTest *pgtest_start_conf(const char *extra_conf);
void pgtest_stop(PgTest *t); /* NULL-safe */
const char *pgtest_host(const PgTest *t); /* socket directory */
int pgtest_port(const PgTest *t);

/* Stop the private cluster's server (pg_ctl stop -m fast: sessions are terminated, as in a
 * restart) and start it again on the same port and socket, for tests of database outages.
 * Not for a cluster named in RETENTIOND_TEST_PGHOST (the test fails). Fail the test on error. */
void pgtest_stop_server(PgTest *t);
void pgtest_start_server(PgTest *t);
/* Stop the server as a crash would (pg_ctl stop -m immediate: no shutdown checkpoint, WAL not
 * yet written is lost, recovery runs at the next start). Same restrictions as above. */
void pgtest_crash_server(PgTest *t);

/* DROP DATABASE IF EXISTS (WITH FORCE) + CREATE; returns a conninfo
 * "host=... port=... dbname=NAME user=postgres"; caller frees. */
char *pgtest_create_db(PgTest *t, const char *name);

/* All of these fail the running cmocka test (with the server's error) when something goes wrong. */
PGconn *pgtest_connect(const char *conninfo); /* asserts CONNECTION_OK; caller PQfinish()es */
void pgtest_exec(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* First column of the first row as text, NULL for SQL NULL; caller frees; fails when no row. */
char *pgtest_value(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long long pgtest_int(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs a .sql file as one simple-protocol query (so: one implicit transaction, no psql
 * meta-commands). A relative path that does not exist is looked up under $SOURCE_ROOT. */
void pgtest_exec_file(PGconn *c, const char *path);

/* Runs the retentiond binary ($RETENTIOND_BIN, set by meson) with args (NULL-terminated, without
 * argv0) and env additions ("K=V", NULL-terminated, may be NULL; they override the inherited
 * environment), stdin from /dev/null. Captures stdout and stderr fully into *out and *err (caller
 * frees; either pointer may be NULL to discard). Returns the exit status, or 128+signal. */
int pgtest_run(const char *const *args, const char *const *env, char **out, char **err);

/* Runs sql/retentiond-role.sql with psql against conninfo exactly as the README says
 * (psql -v role=ROLE -v tables=TABLES [-v read_tables=READ] -f sql/retentiond-role.sql): creates
 * or tightens the least-privilege role the engine runs as. Fails the test when psql fails.
 * Returns a conninfo for that role (conninfo with user=ROLE); caller frees. */
char *pgtest_engine_role(const char *conninfo, const char *role, const char *tables, const char *read_tables);
