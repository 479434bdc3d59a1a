/* policy.c — the policy model's helpers: freeing, lookups, names of actions and methods,
 * one-line summaries. Never parses YAML (policy-load.c) and never talks to PostgreSQL. */
#include "policy.h"

#include "util.h"

static void column_methods_free(ColumnMethod *c, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(c[i].column);
                free(c[i].redact_value);
        }
        free(c);
}

void policy_free(Policy *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_subjects; i++) {
                Subject *s = &p->subjects[i];
                free(s->name);
                qualified_name_done(&s->table);
                free(s->key);
        }
        free(p->subjects);
        for (size_t i = 0; i < p->n_holds; i++) {
                Hold *h = &p->holds[i];
                free(h->name);
                free(h->reason);
                free(h->subject_name);
                qualified_name_done(&h->table);
                free(h->subject_column);
                free(h->column);
        }
        free(p->holds);
        for (size_t i = 0; i < p->n_rules; i++) {
                Rule *r = &p->rules[i];
                free(r->name);
                free(r->clause);
                qualified_name_done(&r->table);
                free(r->column);
                column_methods_free(r->columns, r->n_columns);
                free(r->subject_name);
                free(r->subject_column);
                qualified_name_done(&r->referrer.table);
                free(r->referrer.column);
                free(r->referrer.subject_column);
                for (size_t j = 0; j < r->n_delete_with; j++) {
                        qualified_name_done(&r->delete_with[j].table);
                        free(r->delete_with[j].through);
                }
                free(r->delete_with);
                for (size_t j = 0; j < r->n_holds; j++)
                        free(r->hold_names[j]);
                free(r->hold_names);
                free(r->holds);
                column_methods_free(r->while_held_columns, r->n_while_held_columns);
                free(r->window);
                free(r->where);
                free(r->database_name);
        }
        free(p->rules);
        for (size_t i = 0; i < p->n_coverage_ignores; i++)
                coverage_ignore_done(&p->coverage_ignores[i]);
        free(p->coverage_ignores);
        for (size_t i = 0; i < p->n_databases; i++) {
                free(p->databases[i].name);
                free(p->databases[i].conninfo);
                free(p->databases[i].service);
        }
        free(p->databases);
        for (size_t i = 0; i < p->n_files; i++)
                free(p->files[i]);
        free(p->files);
        free(p);
}

const Rule *policy_find_rule(const Policy *p, const char *name) {
        for (size_t i = 0; p && name && i < p->n_rules; i++)
                if (streq(p->rules[i].name, name))
                        return &p->rules[i];
        return NULL;
}

const Hold *policy_find_hold(const Policy *p, const char *name) {
        for (size_t i = 0; p && name && i < p->n_holds; i++)
                if (streq(p->holds[i].name, name))
                        return &p->holds[i];
        return NULL;
}

const Subject *policy_find_subject(const Policy *p, const char *name) {
        for (size_t i = 0; p && name && i < p->n_subjects; i++)
                if (streq(p->subjects[i].name, name))
                        return &p->subjects[i];
        return NULL;
}

const Database *policy_find_database(const Policy *p, const char *name) {
        for (size_t i = 0; p && name && i < p->n_databases; i++)
                if (streq(p->databases[i].name, name))
                        return &p->databases[i];
        return NULL;
}

bool rule_in_database(const Rule *r, const Database *db) {
        return !db || !r->database || r->database == db;
}

bool rule_hold_of_own_subject(const Rule *r, const Hold *h) {
        return !h->subject || !r->subject || h->subject == r->subject;
}

const char *action_to_string(Action a) {
        switch (a) {
        case ACTION_DELETE: return "delete";
        case ACTION_ANONYMISE: return "anonymise";
        }
        return "unknown";
}

const char *start_from_to_string(StartFrom f) {
        switch (f) {
        case FROM_RECORD: return "record";
        case FROM_END_OF_DAY: return "end_of_day";
        case FROM_END_OF_MONTH: return "end_of_month";
        case FROM_END_OF_YEAR: return "end_of_year";
        case FROM_END_OF_FISCAL_YEAR: return "end_of_fiscal_year";
        }
        return "unknown";
}

char *period_start_describe(const PeriodStart *s) {
        static const char *const months[] = { "January", "February", "March",     "April",   "May",      "June",
                                              "July",    "August",   "September", "October", "November", "December" };
        switch (s->from) {
        case FROM_END_OF_DAY: return xstrdup("the end of the day");
        case FROM_END_OF_MONTH: return xstrdup("the end of the calendar month");
        case FROM_END_OF_YEAR: return xstrdup("the end of the calendar year");
        case FROM_END_OF_FISCAL_YEAR:
                return xasprintf("the end of the fiscal year starting in %s",
                                 s->fiscal_year_start >= 1 && s->fiscal_year_start <= 12 ? months[s->fiscal_year_start - 1] : "?");
        default: return NULL;
        }
}

static const char *const method_names[_METHOD_MAX] = {
        [METHOD_NULL] = "null",
        [METHOD_REDACT] = "redact",
        [METHOD_HASH] = "hash",
        [METHOD_TRUNCATE_IP] = "truncate_ip",
        [METHOD_EMAIL_DOMAIN] = "email_domain",
        [METHOD_TRUNCATE_DATE] = "truncate_date",
};

const char *method_to_string(Method m) {
        if ((unsigned) m >= _METHOD_MAX)
                return "unknown";
        return method_names[m];
}

int method_from_string(const char *s) {
        if (!s)
                return -1;
        for (int i = 0; i < _METHOD_MAX; i++)
                if (streq(method_names[i], s))
                        return i;
        return -1;
}

static bool columns_need_hash(const ColumnMethod *c, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (c[i].method == METHOD_HASH)
                        return true;
        return false;
}

bool rule_needs_hash_key(const Rule *rule) {
        if (!rule)
                return false;
        if (rule->action == ACTION_ANONYMISE && columns_need_hash(rule->columns, rule->n_columns))
                return true;
        return rule->has_while_held && columns_need_hash(rule->while_held_columns, rule->n_while_held_columns);
}

bool policy_needs_hash_key(const Policy *p) {
        for (size_t i = 0; p && i < p->n_rules; i++)
                if (rule_needs_hash_key(&p->rules[i]))
                        return true;
        return false;
}

static void append_columns(StrBuf *b, const ColumnMethod *c, size_t n) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *col = ident_display(c[i].column);
                strbuf_appendf(b, "%s%s %s", i ? ", " : "", col, method_to_string(c[i].method));
                if (c[i].method == METHOD_REDACT)
                        strbuf_appendf(b, " \"%s\"", c[i].redact_value ? c[i].redact_value : "");
                else if (c[i].method == METHOD_TRUNCATE_DATE)
                        strbuf_appendf(b, " to %s", c[i].precision == PRECISION_YEAR ? "year" : "month");
        }
}

char *rule_summary(const Rule *rule) {
        StrBuf b = {};
        char d[DURATION_FORMAT_MAX];
        _cleanup_free_ char *table = qualified_name_display(&rule->table);
        _cleanup_free_ char *column = ident_display(rule->column);

        strbuf_appendf(&b, "%s %s rows whose %s is older than %s", action_to_string(rule->action), table, column,
                       duration_format(&rule->retain, d, sizeof(d)));
        _cleanup_free_ char *from = period_start_describe(&rule->start);
        if (from)
                strbuf_appendf(&b, " counted from %s", from);
        if (rule->where)
                strbuf_append(&b, " and that match its where filter");
        if (rule->action == ACTION_ANONYMISE) {
                strbuf_append(&b, ": ");
                append_columns(&b, rule->columns, rule->n_columns);
        }
        if (rule->n_holds > 0) {
                strbuf_append(&b, "; unless held by ");
                for (size_t i = 0; i < rule->n_holds; i++)
                        strbuf_appendf(&b, "%s%s", i == 0 ? "" : i + 1 == rule->n_holds ? " or " : ", ",
                                       rule->hold_names[i]);
                strbuf_appendf(&b, " (subject %s", rule->subject_name ? rule->subject_name : "?");
                for (size_t i = 0; i < rule->n_holds; i++) {
                        const Hold *h = rule->holds ? rule->holds[i] : NULL;
                        bool seen = !h || rule_hold_of_own_subject(rule, h);
                        for (size_t j = 0; j < i && !seen; j++)
                                seen = rule->holds[j] && rule->holds[j]->subject == h->subject;
                        if (!seen)
                                strbuf_appendf(&b, ", and subject %s for %s", h->subject->name, h->name);
                }
                if (rule->has_referrer) {
                        _cleanup_free_ char *rt = qualified_name_display(&rule->referrer.table);
                        _cleanup_free_ char *rc = ident_display(rule->referrer.column);
                        strbuf_appendf(&b, " of the rows of %s whose %s refers to the row", rt, rc);
                }
                strbuf_append(&b, ")");
        }
        for (size_t i = 0; i < rule->n_delete_with; i++) {
                _cleanup_free_ char *wt = qualified_name_display(&rule->delete_with[i].table);
                _cleanup_free_ char *wc = ident_display(rule->delete_with[i].through);
                strbuf_appendf(&b, "%s the row of %s that its %s refers to, unless a row that stays refers to it",
                               i ? ", and" : "; with each row,", wt, wc);
        }
        if (rule->has_while_held) {
                strbuf_appendf(&b, "; while held: %s ", action_to_string(rule->while_held_action));
                append_columns(&b, rule->while_held_columns, rule->n_while_held_columns);
        }
        if (rule->has_deadline)
                strbuf_appendf(&b, "; overdue %s after that", duration_format(&rule->deadline, d, sizeof(d)));
        return strbuf_steal(&b);
}

/* ---- coverage: ignore patterns ---- */

void coverage_ignore_done(CoverageIgnore *c) {
        if (!c)
                return;
        free(c->pattern);
        free(c->schema);
        free(c->table);
        free(c->column);
        *c = (CoverageIgnore) {};
}

bool coverage_ignore_parse(const char *s, CoverageIgnore *ret, size_t *err_offset, const char **err) {
        /* Split at dots outside double quotes; each part is "*" or an identifier as SQL reads it. */
        size_t starts[4], ends[4], n = 0, len = strlen(s);
        bool quoted = false;
        starts[0] = 0;
        for (size_t i = 0; i <= len; i++) {
                if (i < len && s[i] == '"')
                        quoted = !quoted;
                else if (i == len || (s[i] == '.' && !quoted)) {
                        if (n == 3) {
                                *err_offset = ends[2];
                                *err = "A pattern has at most three parts: schema.table.column.";
                                return false;
                        }
                        ends[n++] = i;
                        if (i < len)
                                starts[n] = i + 1;
                }
        }
        if (n < 2) {
                *err_offset = 0;
                *err = "A pattern names at least a schema and a table: schema.table, schema.* or schema.table.column.";
                return false;
        }
        char *parts[3] = {};
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *part = xstrndup(s + starts[i], ends[i] - starts[i]);
                if (streq(part, "*")) {
                        if (i == 0) {
                                *err_offset = starts[i];
                                *err = "The schema must be named; \"*\" is only allowed for the table or the column.";
                                goto fail;
                        }
                        continue; /* NULL: every name */
                }
                size_t off = 0;
                IdentError e = ident_parse(part, &parts[i], &off);
                if (e != IDENT_OK) {
                        *err_offset = starts[i] + off;
                        *err = e == IDENT_EMPTY ? "A part of the pattern is empty."
                               : e == IDENT_BAD_CHARACTER || e == IDENT_TRAILING_GARBAGE
                                       ? "Each part is \"*\" or a name as SQL writes it; double-quote names with capitals, spaces or dots."
                                       : ident_error_to_string(e);
                        goto fail;
                }
        }
        *ret = (CoverageIgnore) { .pattern = xstrdup(s), .schema = parts[0], .table = parts[1], .column = parts[2], .loc = ret->loc };
        return true;
fail:
        for (size_t i = 0; i < 3; i++)
                free(parts[i]);
        return false;
}

bool coverage_ignore_matches(const CoverageIgnore *c, const char *schema, const char *table, const char *column) {
        if (!c->schema || !streq(c->schema, schema))
                return false;
        if (c->table && !streq(c->table, table))
                return false;
        if (!c->column)
                return true;
        return column && streq(c->column, column);
}

const CoverageIgnore *policy_coverage_ignored(const Policy *p, const char *schema, const char *table, const char *column) {
        for (size_t i = 0; p && i < p->n_coverage_ignores; i++)
                if (coverage_ignore_matches(&p->coverage_ignores[i], schema, table, column))
                        return &p->coverage_ignores[i];
        return NULL;
}
