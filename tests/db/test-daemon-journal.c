/* test-daemon-journal.c — the daemon's events in a real journal: a private systemd-journald in its
 * own pid+mount namespace (tests/system/daemon-journal.sh), the daemon enforcing one run against a
 * real PostgreSQL, the events read back with journalctl -o json. Exits 77 (skip) only when the
 * machine cannot create the namespaces, and says why; never touches the host's journal. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "daemontest.h"
#include "pgtest.h"

static const char *const unshare_argv[] = { "unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
                                            "--mount", "--propagation", "private", NULL };

/* Runs argv (PATH lookup) with `timeout -k 5 SECONDS` in front; output to ours (or to /dev/null). */
static int run(const char *const *argv, int seconds, bool quiet) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%d", seconds);
        char *full[64] = { strdup("timeout"), strdup("-k"), strdup("5"), strdup(secs) };
        size_t n = 4;
        for (const char *const *a = argv; *a && n < 63; a++)
                full[n++] = strdup(*a);
        full[n] = NULL;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                if (quiet) {
                        int nul = open("/dev/null", O_WRONLY);
                        dup2(nul, STDOUT_FILENO);
                        dup2(nul, STDERR_FILENO);
                }
                execvp(full[0], full);
                _exit(127);
        }
        for (size_t i = 0; i < n; i++)
                free(full[i]);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_daemon_events_in_journal(void **state) {
        (void) state;
        const char *src = getenv("SOURCE_ROOT"), *bin = getenv("RETENTIOND_BIN");
        assert_non_null(src);
        assert_non_null(bin);

        PgTest *pg = pgtest_start();
        char *ci = pgtest_create_db(pg, "daemon_journal");
        dt_migrate(ci);
        PGconn *c = pgtest_connect(ci);
        dt_events_table(c, 500, 40);
        /* Two tags on every expired event go with it (ON DELETE CASCADE); 7 links to expired
         * events lose their reference (SET NULL); the event rule-enforced carries both. */
        pgtest_exec(c, "CREATE TABLE public.event_tags (event_id bigint REFERENCES events ON DELETE CASCADE, tag int)");
        pgtest_exec(c, "INSERT INTO event_tags SELECT id, k FROM events, generate_series(1, 2) k WHERE id <= 500");
        pgtest_exec(c, "CREATE TABLE public.event_links (event_id bigint REFERENCES events ON DELETE SET NULL)");
        pgtest_exec(c, "INSERT INTO event_links SELECT id FROM events WHERE id <= 7 OR id > 530");

        char out[] = "/tmp/retentiond-daemon-journal.XXXXXX";
        assert_non_null(mkdtemp(out));
        char policy[256], script[1024], ns[256] = "";
        snprintf(policy, sizeof(policy), "%s/policy.yaml", out);
        char *policy_text = dt_events_policy(100);
        dt_write_file(policy, policy_text);
        free(policy_text);
        snprintf(script, sizeof(script), "%s/tests/system/daemon-journal.sh", src);
        ssize_t l = readlink("/proc/self/ns/mnt", ns, sizeof(ns) - 1);
        assert_true(l > 0);
        ns[l] = '\0';

        const char *argv[32];
        size_t n = 0;
        for (const char *const *a = unshare_argv; *a; a++)
                argv[n++] = *a;
        const char *rest[] = { "--", "bash", script, "--inside", ns, src, bin, policy, ci, out, NULL };
        for (const char *const *a = rest; *a; a++)
                argv[n++] = *a;
        argv[n] = NULL;
        int rc = run(argv, 90, false);
        assert_int_equal(rc, 0);

        /* The run the journal reported is the one in the audit trail, and it did the work. */
        char path[512], run_id[32] = "";
        snprintf(path, sizeof(path), "%s/run_id", out);
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        assert_non_null(fgets(run_id, sizeof(run_id), f));
        fclose(f);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM events"), 40);
        char *o = pgtest_value(c, "SELECT mode || ' ' || outcome FROM retention.runs WHERE id = %s", run_id);
        assert_string_equal(o, "daemon success");
        free(o);
        assert_int_equal(pgtest_int(c, "SELECT rows_deleted FROM retention.rule_runs WHERE run_id = %s", run_id), 500);
        o = pgtest_value(c, "SELECT string_agg(table_name || '=' || rows_deleted || '/' || rows_nulled, ',' ORDER BY table_name)"
                            " FROM retention.rule_run_cascades");
        assert_string_equal(o, "public.event_links=0/7,public.event_tags=1000/0");
        free(o);
        assert_int_equal(pgtest_int(c, "SELECT count(*) FROM event_tags"), 0);

        PQfinish(c);
        free(ci);
        pgtest_stop(pg);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", out);
        if (system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", out);
}

int main(void) {
        static const char *const needed[] = { "unshare", "timeout", "journalctl", "python3", "findmnt", NULL };
        for (const char *const *p = needed; *p; p++) {
                char cmd[128];
                snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", *p);
                if (system(cmd) != 0) {
                        printf("FAIL: %s not found\n", *p);
                        return 1;
                }
        }
        if (access("/lib/systemd/systemd-journald", X_OK) < 0) {
                printf("FAIL: /lib/systemd/systemd-journald not found\n");
                return 1;
        }
        const char *probe[16];
        size_t n = 0;
        for (const char *const *a = unshare_argv; *a; a++)
                probe[n++] = *a;
        probe[n++] = "--";
        probe[n++] = "true";
        probe[n] = NULL;
        if (run(probe, 20, true) != 0) {
                printf("SKIP: cannot create a private pid+mount namespace (unshare not permitted here); "
                       "the private journald needs one\n");
                return 77;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_daemon_events_in_journal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
