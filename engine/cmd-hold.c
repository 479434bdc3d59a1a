/* cmd-hold.c — `retentiond hold add|list|release`: the command's glue for the registry of
 * operator holds (holds.c runs the statements). It checks the arguments (never a control
 * character into the registry), names the operator, prints (registry values escaped) and maps to
 * an exit code. Holds are never deleted: a release is recorded next to the hold, and both placing
 * and releasing are events in retention.hold_events. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "catalog.h"
#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "holds.h"
#include "json.h"
#include "util.h"

static int error_exit(PgError *err, int k) {
        /* A data exception (class 22) here is a value from the command line that does not fit:
         * a KEY that is not of the subject's key type, an --until that is not a timestamp. */
        bool bad_input = strncmp(err->sqlstate, "22", 2) == 0;
        if (bad_input && !err->hint)
                err->hint = xstrdup("KEY must be a value of the subject's key column; --until a timestamp such as 2027-06-30.");
        cmd_print_error(err);
        int code = bad_input ? EXIT_USAGE : cmd_exit_code(k, err);
        pg_error_done(err);
        return code;
}

/* Refuses a value from the command line or the environment that holds a control character
 * (C0, DEL, C1): it would be stored in the registry and printed by hold list, explain and
 * receipt, where a newline forges a line and an escape sequence rewrites the screen. */
static bool refuse_control(const char *what, const char *v) {
        size_t off;
        if (!v || !text_find_control(v, NULL, &off))
                return false;
        _cleanup_free_ char *primary = xasprintf("%s contains a control character", what);
        _cleanup_free_ char *detail = xasprintf("Byte %zu is 0x%02x; control characters (such as a newline, a tab or "
                                                "an escape sequence) are not allowed in a KEY, --reason or --by.",
                                                off + 1, (unsigned char) v[off]);
        log_pg_style(LOG_ERR, NULL, primary, detail, "Write the value on one line, in printable characters.");
        return true;
}

static int hold_add(Cli *cli, Pg *pg, const Policy *policy) {
        PgError err = {};
        if (cli->n_args != 3) {
                log_pg_style(LOG_ERR, NULL, "hold add needs SUBJECT and KEY", NULL,
                             "Usage: retentiond hold add SUBJECT KEY --reason TEXT [--until TIMESTAMP] [--by NAME]");
                return EXIT_USAGE;
        }
        if (!policy)
                return EXIT_SOFTWARE; /* cmd_hold() loaded it; says so to the analyzers too */
        const char *subject = cli->args[1], *key = cli->args[2];
        if (!cli->reason || !*cli->reason) {
                log_pg_style(LOG_ERR, NULL, "a hold needs a reason", "Every hold records why it was placed.",
                             "Give --reason TEXT, e.g. --reason \"litigation 2026-117\".");
                return EXIT_USAGE;
        }
        const Subject *s = policy_find_subject(policy, subject);
        if (!s) {
                _cleanup_free_ char *primary = xasprintf("subject \"%s\" is not defined in the policy", subject);
                _cleanup_free_ char *hint = NULL;
                for (size_t i = 0; i < policy->n_subjects; i++)
                        if (edit_distance(subject, policy->subjects[i].name) <= 2)
                                hint = xasprintf("Did you mean \"%s\"?", policy->subjects[i].name);
                log_pg_style(LOG_ERR, NULL, primary, "Holds are placed on a subject of the policy's subjects: section.", hint);
                return EXIT_USAGE;
        }
        if (strlen(key) > 1000 || strlen(cli->reason) > 10000 || (cli->by && strlen(cli->by) > 200)) {
                log_pg_style(LOG_ERR, NULL, "value too long", "KEY is at most 1000 bytes, --reason 10000, --by 200.", NULL);
                return EXIT_USAGE;
        }
        if (!utf8_valid(key, strlen(key)) || !utf8_valid(cli->reason, strlen(cli->reason)) ||
            (cli->by && !utf8_valid(cli->by, strlen(cli->by)))) {
                log_pg_style(LOG_ERR, NULL, "invalid byte sequence", "KEY, --reason and --by must be valid UTF-8.", NULL);
                return EXIT_USAGE;
        }
        _cleanup_free_ char *by = cmd_operator_name(cli);
        if (refuse_control("KEY", key) || refuse_control("--reason", cli->reason) || refuse_control(cli->by ? "--by" : "the operator name", by))
                return EXIT_USAGE;

        /* The key as its column's type reads it (class 22, exit 64, when it cannot). */
        _cleanup_free_ char *norm = NULL;
        bool exists = false;
        int k = holds_key(pg, s, key, &norm, &exists, &err);
        if (k)
                return error_exit(&err, k);
        if (!norm) {
                _cleanup_free_ char *tn = qualified_name_display(&s->table);
                _cleanup_free_ char *kc = ident_display(s->key);
                _cleanup_free_ char *primary = xasprintf("column %s of %s does not exist", kc, tn);
                _cleanup_free_ char *detail = xasprintf("Subject \"%s\" has the key column %s.", subject, kc);
                log_pg_style(LOG_ERR, NULL, primary, detail, "Check the subject's table and key in the policy (retentiond check).");
                return EXIT_POLICY;
        }
        _cleanup_(hold_placed_done) HoldPlaced h = {};
        k = holds_place(pg, subject, norm, cli->reason, by, cli->until, &h, &err);
        if (k)
                return error_exit(&err, k);
        const char *id = h.id;
        _cleanup_free_ char *norm_e = text_escape(norm);
        if (!streq(norm, key)) {
                _cleanup_free_ char *key_e = text_escape(key);
                log_info("key \"%s\" of subject %s is \"%s\" as its key column's type reads it; hold %s is on \"%s\"",
                         key_e, subject, norm_e, id, norm_e);
        }
        bool used = false, elsewhere = false;
        holds_registry_use(policy, s, &used, &elsewhere);
        _cleanup_free_ char *tn = qualified_name_display(&s->table);
        _cleanup_free_ char *kd = ident_display(s->key);
        if (!used)
                log_warning("no rule of the policy has a registry hold on subject %s: hold %s protects no rows", subject, id);
        else if (!exists && elsewhere)
                log_warning("no row of %s has %s = %s; the hold still protects this subject's rows in other tables", tn, kd,
                            norm_e);
        else if (!exists)
                log_warning("no row of %s has %s = %s; the hold protects nothing until such a row exists", tn, kd, norm_e);
        if (h.lapsed)
                log_warning("hold %s expires in the past (%s): it is already lapsed", id, h.expires_at);

        EventFields ev = EVENT_FIELDS_INIT;
        ev.hold = id;
        event_emit(EVENT_HOLD_PLACED, log_target() == LOG_TARGET_JOURNAL ? event_priority(EVENT_HOLD_PLACED) : LOG_DEBUG, &ev,
                   "hold %s placed on subject %s by %s", id, subject, by);
        if (cli->json) {
                /* what the text says too: the key as stored and the end of the hold (null: none) */
                StrBuf b = {};
                strbuf_appendf(&b, "{\"id\":%s,\"subject\":", id);
                json_append_string(&b, subject);
                strbuf_append(&b, ",\"key\":");
                json_append_string(&b, norm);
                strbuf_append(&b, ",\"until\":");
                json_append_string(&b, h.expires_at);
                strbuf_append(&b, ",\"placed_at\":");
                json_append_string(&b, h.placed_at);
                strbuf_append(&b, "}\n");
                fputs(strbuf_str(&b), stdout);
                strbuf_done(&b);
        }
        else if (!cli->quiet)
                printf("hold %s placed on %s %s%s%s\n", id, subject, norm_e, h.expires_at ? " until " : "",
                       h.expires_at ? h.expires_at : "");
        return EXIT_OK;
}

static int hold_list(Cli *cli, Pg *pg) {
        PgError err = {};
        if (cli->n_args != 1) {
                log_pg_style(LOG_ERR, NULL, "too many arguments", NULL, "Usage: retentiond hold list [--all] [--json]");
                return EXIT_USAGE;
        }
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = holds_list(pg, cli->all, &r, &err);
        if (k)
                return error_exit(&err, k);
        int n = PQntuples(r);
        if (cli->json) {
                StrBuf b = {};
                static const char *names[_HOLDS_COLUMNS] = { "id", "subject", "key", "reason", "placed_by", "placed_at",
                                                             "expires_at", "released_at", "released_by", "state" };
                strbuf_append(&b, "[");
                for (int i = 0; i < n; i++) {
                        strbuf_append(&b, i ? ",{" : "{");
                        json_kv_num(&b, names[HOLDS_ID], PQgetvalue(r, i, HOLDS_ID));
                        for (int c = HOLDS_ID + 1; c < _HOLDS_COLUMNS; c++)
                                json_kv_str(&b, names[c], PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c));
                        strbuf_append(&b, "}");
                }
                strbuf_append(&b, "]\n");
                fputs(strbuf_str(&b), stdout);
                strbuf_done(&b);
                return EXIT_OK;
        }
        if (n == 0) {
                printf(cli->all ? "no holds\n" : "no active holds\n");
                return EXIT_OK;
        }
        /* Every value from the registry is printed escaped: a newline or an escape sequence in a
         * reason, a name or a key (put there by SQL, or before retentiond refused them) must not
         * forge a line or rewrite the terminal. */
        enum { C_ID, C_SUBJECT, C_KEY, C_STATE, C_BY, C_AT, C_UNTIL, C_REASON, _C_MAX };
        static const char *const head[_C_MAX] = { "ID", "SUBJECT", "KEY", "STATE", "PLACED BY", "PLACED AT", "UNTIL", "REASON" };
        static const int src[_C_MAX] = { HOLDS_ID, HOLDS_SUBJECT, HOLDS_KEY, HOLDS_STATE, HOLDS_PLACED_BY, HOLDS_PLACED_AT,
                                          HOLDS_EXPIRES_AT, HOLDS_REASON };
        char **cell = xcalloc((size_t) (n + 1) * _C_MAX, sizeof(char *));
        size_t width[_C_MAX];
        for (int c = 0; c < _C_MAX; c++) {
                cell[c] = xstrdup(head[c]);
                width[c] = text_width(head[c]);
        }
        for (int i = 0; i < n; i++)
                for (int c = 0; c < _C_MAX; c++) {
                        char **x = &cell[(size_t) (i + 1) * _C_MAX + (size_t) c];
                        *x = PQgetisnull(r, i, src[c]) ? xstrdup("-") : text_escape(PQgetvalue(r, i, src[c]));
                        size_t w = text_width(*x);
                        if (w > width[c])
                                width[c] = w;
                }
        /* Each column as wide as its widest value (in characters), the reason last and unpadded. */
        for (int i = 0; i <= n; i++) {
                StrBuf line = {};
                for (int c = 0; c < _C_MAX; c++) {
                        const char *x = cell[(size_t) i * _C_MAX + (size_t) c];
                        strbuf_append(&line, x);
                        if (c + 1 < _C_MAX)
                                for (size_t w = text_width(x); w <= width[c]; w++)
                                        strbuf_append(&line, " ");
                }
                printf("%s\n", strbuf_str(&line));
                strbuf_done(&line);
        }
        for (size_t i = 0; i < (size_t) (n + 1) * _C_MAX; i++)
                free(cell[i]);
        free(cell);
        return EXIT_OK;
}

static int hold_release(Cli *cli, Pg *pg) {
        PgError err = {};
        int64_t id;
        if (cli->n_args != 2) {
                log_pg_style(LOG_ERR, NULL, "hold release needs the hold's ID", NULL,
                             "Usage: retentiond hold release ID [--by NAME]");
                return EXIT_USAGE;
        }
        if (!parse_int64(cli->args[1], &id) || id <= 0) {
                log_pg_style(LOG_ERR, NULL, "invalid hold ID", "A hold ID is a positive whole number, as \"hold list\" shows.",
                             NULL);
                return EXIT_USAGE;
        }
        _cleanup_free_ char *by = cmd_operator_name(cli);
        if (refuse_control(cli->by ? "--by" : "the operator name", by))
                return EXIT_USAGE;
        HoldReleased what;
        _cleanup_free_ char *text = NULL;
        int k = holds_release(pg, cli->args[1], by, &what, &text, &err);
        if (k)
                return error_exit(&err, k);
        if (what == HOLD_NO_SUCH_HOLD) {
                _cleanup_free_ char *primary = xasprintf("hold %s does not exist", cli->args[1]);
                log_pg_style(LOG_ERR, NULL, primary, NULL, "Run \"retentiond hold list --all\" to see every hold.");
                return EXIT_NOINPUT;
        }
        if (what == HOLD_ALREADY_RELEASED) {
                _cleanup_free_ char *primary = xasprintf("hold %s was already released", cli->args[1]);
                _cleanup_free_ char *when = text_escape(text);
                _cleanup_free_ char *detail = xasprintf("It was released at %s.", when);
                log_pg_style(LOG_ERR, NULL, primary, detail, NULL);
                return EXIT_ATTENTION;
        }
        EventFields ev = EVENT_FIELDS_INIT;
        ev.hold = cli->args[1];
        _cleanup_free_ char *subject = text_escape(text);
        event_emit(EVENT_HOLD_RELEASED, log_target() == LOG_TARGET_JOURNAL ? event_priority(EVENT_HOLD_RELEASED) : LOG_DEBUG,
                   &ev, "hold %s on subject %s released by %s", cli->args[1], subject, by);
        if (cli->json)
                printf("{\"id\":%s,\"released\":true}\n", cli->args[1]);
        else if (!cli->quiet)
                printf("hold %s released by %s; the next run applies the normal action to its rows\n", cli->args[1], by);
        return EXIT_OK;
}

int cmd_hold(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;
        _cleanup_(pg_freep) Pg *pg = NULL;
        PgError err = {};
        int r;

        if (cli->n_args < 1) {
                log_pg_style(LOG_ERR, NULL, "hold needs a subcommand", NULL, "Use \"hold add\", \"hold list\" or \"hold release\".");
                return EXIT_USAGE;
        }
        const char *sub = cli->args[0];
        if (!streq(sub, "add") && !streq(sub, "list") && !streq(sub, "release")) {
                _cleanup_free_ char *primary = xasprintf("unknown hold subcommand \"%s\"", sub);
                log_pg_style(LOG_ERR, NULL, primary, NULL, "Use \"hold add\", \"hold list\" or \"hold release\".");
                return EXIT_USAGE;
        }
        /* add needs the policy (its subjects); list and release read it only when -p is given,
         * for -d NAME */
        r = streq(sub, "add") ? cmd_load_policy(cli, &policy) : cmd_load_policy_if_given(cli, streq(sub, "list") ? "hold list" : "hold release", &policy);
        if (r)
                return r;
        r = cmd_connect(cli, streq(sub, "list"), &pg);
        if (r)
                return r;
        int k = trail_check_schema(pg, &err);
        if (k)
                return error_exit(&err, k);
        if (streq(sub, "add"))
                return hold_add(cli, pg, policy);
        if (streq(sub, "list"))
                return hold_list(cli, pg);
        return hold_release(cli, pg);
}
