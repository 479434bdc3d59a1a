/* floor.c — the benchmark's floor for a run's fixed cost and peak RSS: a process linked against
 * exactly the libraries retentiond links (libpq with Debian's dependencies, libsystemd, libyaml)
 * that does nothing (no argument), or opens one connection and runs SELECT 1 (with a conninfo).
 * Whatever retentiond's `run` costs beyond this, it costs itself. Not a test; not installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <systemd/sd-daemon.h>
#include <yaml.h>

int main(int argc, char **argv) {
        /* Referenced, so that the linker keeps every library as retentiond has it (--as-needed). */
        if (argc > 2 && strcmp(argv[2], "--versions") == 0) {
                printf("libpq %d, libyaml %s, booted %d\n", PQlibVersion(), yaml_get_version_string(), sd_booted());
                return 0;
        }
        if (argc < 2)
                return 0;
        PGconn *c = PQconnectdb(argv[1]);
        if (PQstatus(c) != CONNECTION_OK) {
                fprintf(stderr, "bench-floor: %s", PQerrorMessage(c));
                PQfinish(c);
                return EXIT_FAILURE;
        }
        PGresult *r = PQexec(c, "SELECT 1");
        int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        PQfinish(c);
        return ok ? 0 : EXIT_FAILURE;
}
