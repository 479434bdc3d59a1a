/* cmd-explain.c — `retentiond explain TABLE KEY...` and `retentiond explain --subject SUBJECT KEY`:
 * the command's glue. It checks the arguments, opens one READ ONLY REPEATABLE READ transaction
 * on a read-only session, finds the rows (explain_targets()), has explain.c explain each, and
 * prints the result as text or JSON. It decides nothing itself, never writes, and prints no
 * column value but the key and the dates, escaped for the terminal. */
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "cli.h"
#include "cmdutil.h"
#include "diag.h"
#include "catalog.h"
#include "trail.h"
#include "event.h"
#include "exitcode.h"
#include "explain.h"
#include "json.h"
#include "util.h"

/* ---- output ---- */

static void json_flags(StrBuf *b, const char *k, const char *name_key, const char *flag_key, const ExplainFlag *f, size_t n) {
        strbuf_appendf(b, ",\"%s\":[", k);
        for (size_t i = 0; i < n; i++) {
                strbuf_appendf(b, "%s{\"%s\":", i ? "," : "", name_key);
                json_append_string(b, f[i].name);
                strbuf_appendf(b, ",\"%s\":%s}", flag_key, f[i].on ? "true" : "false");
        }
        strbuf_append(b, "]");
}

/* "deleted_with": [{table, key, goes_with_it}] of a rule with delete_with. */
static void json_with(StrBuf *b, const ExplainRule *ri) {
        strbuf_append(b, ",\"deleted_with\":[");
        for (size_t j = 0; j < ri->n_with; j++) {
                strbuf_append(b, j ? ",{" : "{");
                json_kv_str(b, "table", ri->with[j].table);
                json_kv_str(b, "key", ri->with[j].key);
                json_kv_bool(b, "goes_with_it", ri->with[j].key && ri->with[j].alone);
                strbuf_append(b, "}");
        }
        strbuf_append(b, "]");
}

static void json_rule(StrBuf *b, const ExplainRule *ri) {
        const Rule *r = ri->rule;
        char d[DURATION_FORMAT_MAX];
        strbuf_append(b, "{\"rule\":");
        json_append_string(b, r->name);
        json_kv_str(b, "clause", r->clause);
        json_kv_str(b, "action", action_to_string(r->action));
        json_kv_str(b, "column", r->column);
        json_kv_str(b, "retain", duration_format(&r->retain, d, sizeof(d)));
        json_kv_str(b, "from", r->start.from == FROM_RECORD ? NULL : start_from_to_string(r->start.from));
        if (r->start.from == FROM_END_OF_FISCAL_YEAR)
                strbuf_appendf(b, ",\"fiscal_year_start\":%d", r->start.fiscal_year_start);
        else
                strbuf_append(b, ",\"fiscal_year_start\":null");
        if (ri->error) {
                json_kv_str(b, "state", "error");
                json_kv_str(b, "error", ri->error);
                strbuf_append(b, "}");
                return;
        }
        json_kv_str(b, "age_value", ri->age);
        json_kv_str(b, "cutoff", ri->cutoff);
        json_kv_bool(b, "due_by_age", ri->age_due);
        json_kv_str(b, "due_at", ri->due_at);
        json_kv_bool(b, "where_matches", ri->matches);
        json_kv_bool(b, "already_anonymised", ri->done);
        strbuf_append(b, ",\"holds\":[");
        for (size_t i = 0; i < ri->n_holds; i++) {
                const ExplainHold *h = &ri->holds[i];
                strbuf_append(b, i ? ",{\"hold\":" : "{\"hold\":");
                json_append_string(b, h->hold->name);
                json_kv_str(b, "kind", h->hold->registry ? "registry" : "derived");
                json_kv_str(b, "reason", h->hold->reason);
                json_kv_bool(b, "applies", h->applies);
                json_kv_str(b, "until", h->until);
                json_kv_bool(b, "indefinite", h->forever);
                if (h->hold->registry) {
                        strbuf_append(b, ",\"registry_holds\":[");
                        for (size_t j = 0; j < h->n_rows; j++) {
                                const ExplainRegistryRow *x = &h->rows[j];
                                strbuf_appendf(b, "%s{\"id\":%s", j ? "," : "", x->id);
                                json_kv_str(b, "reason", x->reason);
                                json_kv_str(b, "placed_by", x->placed_by);
                                json_kv_str(b, "placed_at", x->placed_at);
                                json_kv_str(b, "until", x->until);
                                strbuf_append(b, "}");
                        }
                        strbuf_append(b, "]");
                } else {
                        _cleanup_free_ char *et = qualified_name_display(&h->hold->table);
                        json_kv_str(b, "evidence_table", et);
                        json_kv_str(b, "youngest_evidence", h->evidence);
                        json_kv_str(b, "cutoff", h->cutoff);
                }
                strbuf_append(b, "}");
        }
        strbuf_append(b, "]");
        json_flags(b, "cascade", "table", "protected_rows", ri->cascade, ri->n_cascade);
        json_flags(b, "other_rules", "rule", "keeps", ri->others, ri->n_others);
        json_flags(b, "referenced_by", "table", "references", ri->refs, ri->n_refs);
        if (r->n_delete_with > 0) /* only for a rule with delete_with: the document is unchanged for others */
                json_with(b, ri);
        json_kv_str(b, "state", ri->state);
        json_kv_str(b, "decision", ri->decision);
        if (r->has_deadline)
                json_kv_str(b, "deadline", duration_format(&r->deadline, d, sizeof(d)));
        else
                json_kv_str(b, "deadline", NULL);
        json_kv_str(b, "overdue_cutoff", ri->overdue_cutoff);
        json_kv_str(b, "overdue_at", ri->overdue_at);
        json_kv_bool(b, "overdue", ri->overdue);
        if (r->has_while_held) {
                _cleanup_free_ char *cols = explain_columns_text(r->while_held_columns, r->n_while_held_columns);
                strbuf_append(b, ",\"while_held\":{\"columns\":");
                json_append_string(b, cols);
                json_kv_bool(b, "done", ri->while_held_done);
                strbuf_append(b, "}");
        } else
                strbuf_append(b, ",\"while_held\":null");
        json_kv_str(b, "action_at", ri->action_at);
        json_kv_bool(b, "action_at_known", ri->known);
        json_kv_str(b, "action_at_note", ri->note);
        strbuf_append(b, "}");
}

static void json_row(StrBuf *b, const ExplainRow *row) {
        _cleanup_free_ char *tn = qualified_name_display(&row->table->name);
        strbuf_append(b, "{\"table\":");
        json_append_string(b, tn);
        strbuf_append(b, ",\"key\":{");
        for (size_t i = 0; i < row->n_key; i++) {
                if (i)
                        strbuf_append(b, ",");
                json_append_string(b, row->pk[i]);
                strbuf_append(b, ":");
                json_append_string(b, row->key[i]);
        }
        strbuf_append(b, "},\"rules\":[");
        for (size_t i = 0; i < row->n_rules; i++) {
                if (i)
                        strbuf_append(b, ",");
                json_rule(b, &row->rules[i]);
        }
        strbuf_append(b, "]}");
}

/* Values from the database, the registry and the catalog are printed escaped (text_escape): a
 * reason, a key or a name with a newline or an escape sequence must not forge a line or rewrite
 * the terminal. */
static void text_row(FILE *f, const ExplainRow *row) {
        _cleanup_(esc_pool_done) EscPool ep = {};
        _cleanup_free_ char *tn_raw = qualified_name_display(&row->table->name);
        const char *tn = esc_pool(&ep, tn_raw);
        fprintf(f, "%s", tn);
        for (size_t i = 0; i < row->n_key; i++) {
                _cleanup_free_ char *c = ident_display(row->pk[i]);
                fprintf(f, " %s=%s", esc_pool(&ep, c), esc_pool(&ep, row->key[i]));
        }
        fputc('\n', f);
        if (row->n_rules == 0)
                fprintf(f, "  no rule of the policy covers %s: nothing deletes or anonymises this row\n", tn);
        for (size_t i = 0; i < row->n_rules; i++) {
                const ExplainRule *ri = &row->rules[i];
                const Rule *r = ri->rule;
                char d[DURATION_FORMAT_MAX];
                _cleanup_free_ char *summary = rule_summary(r);
                _cleanup_free_ char *agecol = ident_display(r->column);
                _cleanup_free_ char *from = period_start_describe(&r->start);
                fprintf(f, "  rule %s — \"%s\"\n", r->name, esc_pool(&ep, r->clause));
                fprintf(f, "    %s\n", summary);
                if (ri->error) {
                        fprintf(f, "    ERROR: %s\n", esc_pool(&ep, ri->error));
                        continue;
                }
                fprintf(f, "    age:       %s = %s\n", esc_pool(&ep, agecol), ri->age ? esc_pool(&ep, ri->age) : "NULL");
                fprintf(f, "    cutoff:    %s%s%s%s\n", ri->cutoff, from ? "  (counted from " : "", from ? from : "",
                        from ? ")" : "");
                if (ri->age)
                        fprintf(f, "    due:       %s, by age after %s\n", ri->age_due ? "yes" : "no", ri->due_at);
                for (size_t j = 0; j < ri->n_holds; j++) {
                        const ExplainHold *h = &ri->holds[j];
                        fprintf(f, "    hold %s (%s): ", h->hold->name, h->hold->registry ? "registry" : "derived");
                        if (h->hold->registry) {
                                if (!h->applies) {
                                        fprintf(f, "does not apply (no active operator hold on the subject)\n");
                                        continue;
                                }
                                fprintf(f, "applies\n");
                                for (size_t m = 0; m < h->n_rows; m++) {
                                        const ExplainRegistryRow *x = &h->rows[m];
                                        fprintf(f, "      hold %s: \"%s\", placed by %s at %s, until %s\n", x->id,
                                                esc_pool(&ep, x->reason), esc_pool(&ep, x->placed_by), x->placed_at, x->until ? x->until : "released (no --until)");
                                }
                                continue;
                        }
                        _cleanup_free_ char *et = qualified_name_display(&h->hold->table);
                        _cleanup_free_ char *hf = period_start_describe(&h->hold->start);
                        fprintf(f, "%s\n", h->applies ? "applies" : "does not apply");
                        fprintf(f, "      evidence in %s: youngest %s%s; hold cutoff %s (retain %s%s%s)\n", esc_pool(&ep, et),
                                h->evidence ? h->evidence : "none", h->forever ? ", and some without a date" : "",
                                h->cutoff ? h->cutoff : "-", duration_format(&h->hold->retain, d, sizeof(d)),
                                hf ? " counted from " : "", hf ? hf : "");
                        if (h->applies)
                                fprintf(f, "      lapses: %s\n", h->forever ? "never, while evidence without a date exists"
                                                                  : h->until ? h->until : "-");
                }
                for (size_t j = 0; j < ri->n_cascade; j++)
                        fprintf(f, "    cascade into %s: %s\n", esc_pool(&ep, ri->cascade[j].name),
                                ri->cascade[j].on ? "rows a hold protects" : "no protected rows");
                for (size_t j = 0; j < ri->n_others; j++)
                        fprintf(f, "    rule %s: %s\n", ri->others[j].name, ri->others[j].on ? "keeps it longer" : "does not keep it");
                for (size_t j = 0; j < ri->n_refs; j++)
                        fprintf(f, "    referenced from %s: %s\n", esc_pool(&ep, ri->refs[j].name), ri->refs[j].on ? "yes" : "no");
                for (size_t j = 0; j < ri->n_with; j++)
                        if (!ri->with[j].key)
                                fprintf(f, "    with it:   no row of %s (it refers to none)\n", esc_pool(&ep, ri->with[j].table));
                        else
                                fprintf(f, "    with it:   the row of %s it refers to (key %s): %s\n", esc_pool(&ep, ri->with[j].table),
                                        esc_pool(&ep, ri->with[j].key),
                                        ri->with[j].alone ? "goes too (no other row refers to it)" : "stays (another row refers to it)");
                fprintf(f, "    decision:  %s\n", esc_pool(&ep, ri->decision));
                if (r->has_deadline && ri->age) {
                        fprintf(f, "    deadline:  %s after the retention: overdue after %s — %s\n",
                                duration_format(&r->deadline, d, sizeof(d)), ri->overdue_at ? ri->overdue_at : "-",
                                ri->overdue ? "OVERDUE" : ri->held ? "not overdue (a held row is never overdue)" : "not overdue");
                }
                const char *verb = r->action == ACTION_ANONYMISE ? "anonymised" : "deleted";
                if (ri->known && streq(ri->state, "due"))
                        fprintf(f, "    %s: by the next run (due since %s)\n", verb, ri->action_at);
                else if (ri->known)
                        fprintf(f, "    %s: after %s, if nothing changes\n", verb, ri->action_at);
                else
                        fprintf(f, "    %s: %s\n", verb, ri->note ? esc_pool(&ep, ri->note) : "unknown");
        }
}

/* ---- finding the rows ---- */

/* A key that PostgreSQL cannot read as the key column's type: a usage error. */
static bool is_data_error(const PgError *err) {
        return err->sqlstate[0] == '2' && err->sqlstate[1] == '2';
}

static void print_header(bool json, StrBuf *b, const char *subject, const char *key) {
        if (!json)
                return;
        strbuf_append(b, "{\"read_only\":true,\"subject\":");
        if (subject) {
                strbuf_append(b, "{\"name\":");
                json_append_string(b, subject);
                strbuf_append(b, ",\"key\":");
                json_append_string(b, key);
                strbuf_append(b, "}");
        } else
                strbuf_append(b, "null");
        strbuf_append(b, ",\"rows\":[");
}

/* Checks the arguments that need no policy. Returns 0 or EXIT_USAGE; *tname the table. */
static int check_args(const Cli *cli, QualifiedName *tname) {
        if (cli->subject ? cli->n_args != 1 : cli->n_args < 2) {
                log_pg_style(LOG_ERR, NULL, cli->subject ? "explain --subject needs SUBJECT and one KEY" : "explain needs TABLE and KEY",
                             NULL,
                             "Usage: retentiond explain TABLE KEY [KEY...] [--json] (one KEY per primary-key column, in key order),"
                             " or retentiond explain --subject SUBJECT KEY [--json]");
                return EXIT_USAGE;
        }
        if (cli->force || cli->dry_run || cli->sql || cli->n_rules > 0) {
                log_pg_style(LOG_ERR, NULL, "explain takes only --subject and --json", "It explains every rule that covers the row.",
                             NULL);
                return EXIT_USAGE;
        }
        if (cli->subject)
                return 0;
        size_t off = 0;
        IdentError e = qualified_name_parse(cli->args[0], tname, &off);
        if (e != IDENT_OK) {
                _cleanup_free_ char *primary = xasprintf("invalid table name \"%s\"", cli->args[0]);
                log_pg_style(LOG_ERR, NULL, primary, ident_error_to_string(e), "Write schema.table or table.");
                return EXIT_USAGE;
        }
        return 0;
}

/* Every target has a primary key, and without a subject one KEY is given per key column.
 * Returns 0 or EXIT_USAGE. */
static int check_keys(const Cli *cli, const ExplainTarget *targets, size_t n_targets) {
        for (size_t i = 0; i < n_targets; i++)
                if (targets[i].n_pk == 0) {
                        _cleanup_free_ char *d = qualified_name_display(&targets[i].table->name);
                        _cleanup_free_ char *primary = xasprintf("table %s has no primary key", d);
                        log_pg_style(LOG_ERR, NULL, primary, "explain identifies a row by its primary key.", NULL);
                        return EXIT_USAGE;
                }
        if (cli->subject || (size_t) (cli->n_args - 1) == targets[0].n_pk)
                return 0;
        _cleanup_free_ char *d = qualified_name_display(&targets[0].table->name);
        StrBuf cols = {}, args = {};
        for (size_t i = 0; i < targets[0].n_pk; i++) {
                _cleanup_free_ char *c = ident_display(targets[0].pk[i]);
                strbuf_appendf(&cols, "%s%s", i ? ", " : "", c);
                strbuf_appendf(&args, " %s", c);
        }
        _cleanup_free_ char *primary = xasprintf("%s has a primary key of %zu column%s (%s), %d key value%s given", d,
                                                 targets[0].n_pk, targets[0].n_pk == 1 ? "" : "s", strbuf_str(&cols),
                                                 cli->n_args - 1, cli->n_args == 2 ? "" : "s");
        _cleanup_free_ char *hint = xasprintf("Give one KEY per primary-key column, in that order: retentiond explain %s%s",
                                              cli->args[0], strbuf_str(&args));
        strbuf_done(&cols);
        strbuf_done(&args);
        log_pg_style(LOG_ERR, NULL, primary, NULL, hint);
        return EXIT_USAGE;
}

typedef struct Output {
        StrBuf json;
        size_t n_rows;
        bool attention; /* a rule could not be explained */
} Output;

/* Explains and prints the rows of one target. Returns EXIT_OK or an exit code. */
static int explain_target(Cli *cli, Pg *pg, const Policy *policy, CatCache *cache, const ExplainTarget *tg, Output *o) {
        PgError err = {};
        _cleanup_pgresult_ PGresult *kr = NULL;
        char *const *keyv = cli->subject ? cli->args : cli->args + 1;
        int k = explain_target_keys(pg, tg, keyv, EXPLAIN_SUBJECT_ROWS_MAX + 1, &kr, &err);
        if (k && is_data_error(&err)) {
                _cleanup_free_ char *d = qualified_name_display(&tg->table->name);
                _cleanup_free_ char *primary = xasprintf("invalid key for %s: %s", d, err.primary);
                log_pg_style(LOG_ERR, NULL, primary, NULL, "Give the key as PostgreSQL reads the key column's type.");
                pg_error_done(&err);
                return EXIT_USAGE;
        }
        if (k)
                return cmd_fail(&err, k);
        int n = PQntuples(kr);
        if (n > EXPLAIN_SUBJECT_ROWS_MAX) {
                _cleanup_free_ char *d = qualified_name_display(&tg->table->name);
                log_warning("the subject has more than %d rows in %s; only the first %d are explained",
                            EXPLAIN_SUBJECT_ROWS_MAX, d, EXPLAIN_SUBJECT_ROWS_MAX);
                n = EXPLAIN_SUBJECT_ROWS_MAX;
        }
        for (int j = 0; j < n; j++) {
                ExplainRow row = { .table = tg->table, .n_key = tg->n_pk };
                row.pk = xcalloc(tg->n_pk, sizeof(char *));
                row.key = xcalloc(tg->n_pk, sizeof(char *));
                for (size_t m = 0; m < tg->n_pk; m++) {
                        row.pk[m] = xstrdup(tg->pk[m]);
                        row.key[m] = xstrdup(PQgetvalue(kr, j, (int) m));
                }
                k = explain_row(pg, policy, cache, &row, &err);
                if (k) {
                        explain_row_done(&row);
                        return cmd_fail(&err, k);
                }
                for (size_t m = 0; m < row.n_rules; m++)
                        if (row.rules[m].error)
                                o->attention = true;
                if (cli->json) {
                        if (o->n_rows)
                                strbuf_append(&o->json, ",");
                        json_row(&o->json, &row);
                } else {
                        if (o->n_rows)
                                fputc('\n', stdout);
                        text_row(stdout, &row);
                }
                o->n_rows++;
                explain_row_done(&row);
        }
        return EXIT_OK;
}

/* Finds and explains the rows, inside the transaction. Returns an exit code. */
static int explain_rows(Cli *cli, Pg *pg, const Policy *policy, const Subject *subject, const QualifiedName *tname) {
        _cleanup_(cat_cache_done) CatCache cache = {};
        PgError err = {};
        int k = catalog_load_policy(pg, policy, &cache, &err);
        if (k)
                return cmd_fail(&err, k);
        ExplainTarget *targets = NULL;
        size_t n_targets = 0;
        k = explain_targets(pg, policy, &cache, subject, tname, &targets, &n_targets, &err);
        if (k == PG_ERR_UNDEFINED && !subject) {
                cmd_print_error(&err);
                pg_error_done(&err);
                return EXIT_NOINPUT;
        }
        if (k)
                return cmd_fail(&err, k);
        int ret = check_keys(cli, targets, n_targets);
        Output o = {};
        if (ret == EXIT_OK)
                print_header(cli->json, &o.json, subject ? subject->name : NULL, subject ? cli->args[0] : NULL);
        for (size_t i = 0; i < n_targets && ret == EXIT_OK; i++)
                ret = explain_target(cli, pg, policy, &cache, &targets[i], &o);
        explain_targets_free(targets, n_targets);
        if (ret != EXIT_OK) {
                strbuf_done(&o.json);
                return ret;
        }
        (void) pg_exec0(pg, NULL, &err, "COMMIT");
        pg_error_done(&err);
        if (o.n_rows == 0) {
                strbuf_done(&o.json);
                _cleanup_free_ char *primary = subject ? xasprintf("subject %s %s has no rows", subject->name, cli->args[0])
                                                       : xasprintf("no row of %s has that key", cli->args[0]);
                log_pg_style(LOG_ERR, NULL, primary, NULL,
                             subject ? "Its rows are looked up in the subject's table, in every rule table with subject_column,"
                                                 " and in every rule table whose rows its rows refer to (referenced_by)."
                                     : NULL);
                return EXIT_NOINPUT;
        }
        if (cli->json) {
                strbuf_append(&o.json, "]}\n");
                fputs(strbuf_str(&o.json), stdout);
        }
        strbuf_done(&o.json);
        return o.attention ? EXIT_ATTENTION : EXIT_OK;
}

int cmd_explain(Cli *cli) {
        _cleanup_policy_ Policy *policy = NULL;
        _cleanup_(pg_freep) Pg *pg = NULL;
        QualifiedName tname = {};
        int r = check_args(cli, &tname);
        if (r)
                return r;
        _cleanup_(qualified_name_done) QualifiedName tn = tname;

        r = cmd_load_policy(cli, &policy);
        if (r)
                return r;
        const Subject *subject = NULL;
        if (cli->subject) {
                subject = policy_find_subject(policy, cli->subject);
                if (!subject) {
                        _cleanup_free_ char *primary = xasprintf("subject \"%s\" is not defined in the policy", cli->subject);
                        log_pg_style(LOG_ERR, NULL, primary, "--subject names a subject of the policy's subjects: section.", NULL);
                        return EXIT_USAGE;
                }
        }
        r = cmd_connect_snapshot(cli, &pg);
        if (r)
                return r;
        return explain_rows(cli, pg, policy, subject, &tn);
}
