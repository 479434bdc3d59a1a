/* test-metrics.c — the Prometheus textfile: label and HELP escaping per the text exposition
 * format, the rendered families (HELP, TYPE, samples, in that order, each family once), exact
 * sample lines from a health report, and the atomic write (mode 0644, no temporary file left,
 * an error for a missing directory). No database. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "metrics.h"

static void test_escape_label(void **state) {
        (void) state;
        StrBuf b = {};
        metrics_escape_label(&b, "a\"b\\c\nd");
        assert_string_equal(strbuf_str(&b), "a\\\"b\\\\c\\nd");
        strbuf_done(&b);
        metrics_escape_label(&b, NULL);
        assert_string_equal(strbuf_str(&b), "");
        metrics_escape_label(&b, "plain-name_1");
        assert_string_equal(strbuf_str(&b), "plain-name_1");
        strbuf_done(&b);
        /* HELP escapes backslash and newline, not quotes. */
        metrics_escape_help(&b, "say \"x\"\\\nnext");
        assert_string_equal(strbuf_str(&b), "say \"x\"\\\\\\nnext");
        strbuf_done(&b);
}

static HealthReport *report(void) {
        HealthReport *h = calloc(1, sizeof(HealthReport));
        h->n_rules = 2;
        h->rules = calloc(2, sizeof(RuleHealth));
        RuleHealth *a = &h->rules[0], *s = &h->rules[1];
        a->name = strdup("access-logs");
        a->state = HEALTH_OK;
        a->ever_run = true;
        a->last_outcome = strdup("success");
        a->last_success = 1796000000.25;
        a->last_started = 1796000000;
        a->last_finished = 1796000000.25;
        a->rows_deleted = 4400;
        a->rows_held = 26;
        a->total_runs = 12;
        a->total_deleted = 90000;
        s->name = strdup("we\"ird\\rule\n");
        s->state = HEALTH_BREAKER;
        s->ever_run = true;
        s->last_outcome = strdup("breaker");
        s->last_started = 1796000100;
        s->last_finished = 1796000102;
        s->failures = 5;
        s->total_breaker = 5;
        s->rows_overdue = 7;
        return h;
}

static size_t count(const char *hay, const char *needle) {
        size_t n = 0;
        for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

static void test_render(void **state) {
        (void) state;
        HealthReport *h = report();
        MetricsDatabase dbs[] = {
                { .name = "shop", .up = true, .health = h },
                { .name = "crm", .up = false, .health = NULL },
        };
        StrBuf b = {};
        metrics_render(dbs, 2, 1796000200, &b);
        const char *t = strbuf_str(&b);

        assert_non_null(strstr(t, "# HELP retentiond_metrics_written_timestamp_seconds "));
        assert_non_null(strstr(t, "\nretentiond_metrics_written_timestamp_seconds 1796000200\n"));
        assert_non_null(strstr(t, "\nretentiond_database_up{database=\"shop\"} 1\nretentiond_database_up{database=\"crm\"} 0\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_success_timestamp_seconds{database=\"shop\",rule=\"access-logs\"} 1796000000.250\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_success_timestamp_seconds{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\"} 0\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_run_duration_seconds{database=\"shop\",rule=\"access-logs\"} 0.250\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_run_duration_seconds{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\"} 2\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_run_rows_deleted{database=\"shop\",rule=\"access-logs\"} 4400\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_run_rows_held{database=\"shop\",rule=\"access-logs\"} 26\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_run_rows_overdue{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\"} 7\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_consecutive_failures{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\"} 5\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_breaker_trips_total{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\"} 5\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_rows_deleted_total{database=\"shop\",rule=\"access-logs\"} 90000\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_runs_total{database=\"shop\",rule=\"access-logs\"} 12\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_outcome{database=\"shop\",rule=\"access-logs\",outcome=\"success\"} 1\n"
                                  "retentiond_rule_last_outcome{database=\"shop\",rule=\"access-logs\",outcome=\"failed\"} 0\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_last_outcome{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\",outcome=\"breaker\"} 1\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_health{database=\"shop\",rule=\"we\\\"ird\\\\rule\\n\",state=\"breaker\"} 1\n"));
        assert_non_null(strstr(t, "\nretentiond_rule_health{database=\"shop\",rule=\"access-logs\",state=\"ok\"} 1\n"));
        assert_non_null(strstr(t, "# TYPE retentiond_rule_breaker_trips_total counter\n"));
        assert_non_null(strstr(t, "# TYPE retentiond_rule_last_run_rows_deleted gauge\n"));
        /* 5 outcomes and 6 states per rule; no rule samples for the database without health. */
        assert_int_equal(count(t, "\nretentiond_rule_last_outcome{"), 10);
        assert_int_equal(count(t, "\nretentiond_rule_health{"), 12);
        assert_int_equal(count(t, "database=\"crm\""), 1);

        /* Every family: HELP, then TYPE, once each, before its samples; every line ends in \n. */
        assert_int_equal(count(t, "# HELP "), count(t, "# TYPE "));
        assert_int_equal(count(t, "# TYPE "), 19);
        char *copy = strdup(t), *save = NULL;
        char family[128] = "";
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "# HELP ", 7) == 0) {
                        sscanf(line + 7, "%127s", family);
                        continue;
                }
                if (strncmp(line, "# TYPE ", 7) == 0) {
                        assert_int_equal(strncmp(line + 7, family, strlen(family)), 0);
                        continue;
                }
                assert_int_equal(strncmp(line, family, strlen(family)), 0);
                assert_true(line[strlen(family)] == '{' || line[strlen(family)] == ' ');
        }
        free(copy);
        assert_int_equal(t[strlen(t) - 1], '\n');
        strbuf_done(&b);
        health_report_free(h);
}

static void test_write_file(void **state) {
        (void) state;
        char dir[] = "/tmp/retentiond-metrics-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[128];
        snprintf(path, sizeof(path), "%s/retentiond.prom", dir);
        umask(077);
        assert_int_equal(metrics_write_file(path, "a 1\n"), 0);
        assert_int_equal(metrics_write_file(path, "b 2\n"), 0);
        FILE *f = fopen(path, "re");
        assert_non_null(f);
        char buf[64] = "";
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        assert_string_equal(buf, "b 2\n");
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        DIR *d = opendir(dir);
        size_t n = 0;
        for (struct dirent *e; (e = readdir(d));)
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(d);
        assert_int_equal(n, 1); /* no temporary file left */
        unlink(path);
        rmdir(dir);
        assert_int_equal(metrics_write_file("/nonexistent-retentiond/dir/x.prom", "a 1\n"), -ENOENT);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape_label),
                cmocka_unit_test(test_render),
                cmocka_unit_test(test_write_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
