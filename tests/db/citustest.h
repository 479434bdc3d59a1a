/* citustest.h — a private Citus cluster for the db tests: a coordinator and two workers, three
 * PostgreSQL 15 clusters started with tests/db/pgtest.[ch] (initdb into temporary directories, unix
 * sockets only, shared_preload_libraries = 'citus'), each stopped and removed by pgtest's watchdog
 * even if the test program crashes. Citus itself is built and installed by .ci/citus. */
#pragma once

#include "pgtest.h"

typedef struct CitusTest CitusTest;

#define CITUSTEST_WORKERS 2

/* Starts the coordinator and the workers. On failure (Citus not installed: run `bash .ci/citus`)
 * prints what went wrong and exits the test program. RETENTIOND_TEST_PGHOST is ignored: a Citus
 * cluster is always private. */
CitusTest *citustest_start(void);
void citustest_stop(CitusTest *ct); /* NULL-safe */
PgTest *citustest_coordinator(const CitusTest *ct);
PgTest *citustest_worker(const CitusTest *ct, int i); /* 0 .. CITUSTEST_WORKERS - 1 */

/* A fresh database NAME on every node (dropped first if it exists), with the citus extension, the
 * coordinator registered (citus_set_coordinator_host) and both workers added (citus_add_node).
 * Returns the coordinator's conninfo for it (caller frees). Fails the running test on error. */
char *citustest_create_db(CitusTest *ct, const char *name);
/* conninfo of worker i for database NAME (caller frees). */
char *citustest_worker_db(const CitusTest *ct, int i, const char *name);
