/* coverage.c — find the columns that look personal and the rules that cover them.
 * Reads the catalog, then samples at most COVERAGE_SAMPLE_ROWS rows per table; the regular
 * expressions run in PostgreSQL and only counts come back: no value ever reaches the engine. */
#include "coverage.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "ident.h"
#include "json.h"
#include "util.h"

/* ---- names --------------------------------------------------------------------------------- */

#define K_T COVKIND_TEXT
#define K_D COVKIND_DATE
#define K_N COVKIND_NUMBER
#define K_I COVKIND_NET

typedef struct Word {
        const char *word; /* words joined by "_" */
        unsigned kinds;   /* the kinds of column it can be (besides text and network types) */
} Word;

static const Word words[] = {
        /* e-mail */
        { "email", K_T }, { "e_mail", K_T }, { "mail", K_T }, { "email_address", K_T },
        /* phone */
        { "phone", K_T | K_N }, { "phone_number", K_T | K_N }, { "mobile", K_T | K_N }, { "telephone", K_T | K_N },
        { "tel", K_T | K_N }, { "fax", K_T | K_N },
        /* network */
        { "ip", K_T | K_N | K_I }, { "ip_address", K_T | K_N | K_I }, { "ip_addr", K_T | K_N | K_I },
        { "ipv4", K_T | K_N | K_I }, { "ipv6", K_T | K_N | K_I }, { "remote_addr", K_T | K_I },
        { "mac_address", K_T | K_I }, { "user_agent", K_T },
        /* names */
        { "name", K_T }, { "first_name", K_T }, { "last_name", K_T }, { "full_name", K_T }, { "surname", K_T },
        { "given_name", K_T }, { "family_name", K_T }, { "display_name", K_T }, { "username", K_T },
        { "user_name", K_T }, { "nickname", K_T },
        /* address */
        { "address", K_T }, { "street", K_T }, { "zip", K_T | K_N }, { "zipcode", K_T | K_N },
        { "zip_code", K_T | K_N }, { "postcode", K_T | K_N }, { "postal_code", K_T | K_N }, { "city", K_T },
        /* birth */
        { "birth", K_T | K_D }, { "birthday", K_T | K_D }, { "birthdate", K_T | K_D }, { "dob", K_T | K_D },
        { "date_of_birth", K_T | K_D },
        /* identifiers */
        { "iban", K_T }, { "ssn", K_T | K_N }, { "passport", K_T }, { "national_id", K_T | K_N },
        { "tax_id", K_T | K_N }, { "credit_card", K_T | K_N }, { "card_number", K_T | K_N },
};

const char *const coverage_personal_words[] = {
        "email", "e_mail", "mail", "email_address", "phone", "phone_number", "mobile", "telephone", "tel", "fax",
        "ip", "ip_address", "ip_addr", "ipv4", "ipv6", "remote_addr", "mac_address", "user_agent", "name",
        "first_name", "last_name", "full_name", "surname", "given_name", "family_name", "display_name",
        "username", "user_name", "nickname", "address", "street", "zip", "zipcode", "zip_code", "postcode",
        "postal_code", "city", "birth", "birthday", "birthdate", "dob", "date_of_birth", "iban", "ssn", "passport",
        "national_id", "tax_id", "credit_card", "card_number", NULL,
};

/* "name" after one of these words names a thing, not a person: file_name, table_name, ... */
static const char *const thing_names[] = {
        "file",    "host",   "table",     "schema",  "column",   "product", "domain",   "event",   "type",
        "class",   "key",    "method",    "app",     "service",  "queue",   "job",      "task",    "tag",
        "category", "database", "index",  "field",   "item",     "template", "feature", "plan",    "brand",
        "project", "team",   "group",     "role",    "bucket",   "country", "currency", "language", "locale",
        "region",  "status", "step",      "stage",   "device",   "browser", "model",    "object",  "resource",
        "path",    "route",  "page",      "attribute", "variable", "param", "parameter", "setting", "option",
        "metric",  "unit",   "sku",       "tenant",  "plugin",   "module",  "package",  "version", "server",
        "cluster", "topic",     "channel", "list",     "folder",  "image",    "report",  "rule",
};

#define MAX_TOKENS 32

/* Splits into lower-case words; returns their count. */
static size_t tokenize(const char *s, char tokens[MAX_TOKENS][64]) {
        size_t n = 0, len = 0;
        bool prev_lower = false;
        for (const char *p = s;; p++) {
                unsigned char c = (unsigned char) *p;
                bool boundary = !c || !isalnum(c) || c >= 0x80 || (prev_lower && isupper(c));
                if (boundary && len > 0) {
                        tokens[n][len] = 0;
                        if (++n == MAX_TOKENS)
                                return n;
                        len = 0;
                }
                if (!c)
                        return n;
                prev_lower = islower(c) || isdigit(c);
                if (!isalnum(c) || c >= 0x80)
                        continue;
                if (len < 63)
                        tokens[n][len++] = (char) tolower(c);
        }
}

const char *coverage_personal_name(const char *column, CoverageKind kind) {
        char tokens[MAX_TOKENS][64];
        if (!column)
                return NULL;
        size_t n = tokenize(column, tokens);
        const char *best = NULL;
        size_t best_len = 0;
        for (size_t w = 0; w < ELEMENTSOF(words); w++) {
                unsigned allowed = words[w].kinds | COVKIND_TEXT | COVKIND_NET;
                if (!(allowed & kind))
                        continue;
                char wt[MAX_TOKENS][64];
                size_t m = tokenize(words[w].word, wt);
                if (m == 0 || m > n || m <= best_len)
                        continue;
                for (size_t i = 0; i + m <= n; i++) {
                        bool match = true;
                        for (size_t j = 0; j < m && match; j++)
                                match = streq(tokens[i + j], wt[j]);
                        if (!match)
                                continue;
                        if (m == 1 && streq(wt[0], "name") && i > 0) {
                                bool thing = false;
                                for (size_t t = 0; t < ELEMENTSOF(thing_names); t++)
                                        if (streq(tokens[i - 1], thing_names[t]))
                                                thing = true;
                                if (thing)
                                        continue;
                        }
                        best = words[w].word;
                        best_len = m;
                        break;
                }
        }
        return best;
}

/* ---- patterns (PostgreSQL ARE, matched with ~*) ----------------------------------------------- */

const char coverage_email_regex[] = "[a-z0-9._%+-]+@[a-z0-9-]+(\\.[a-z0-9-]+)*\\.[a-z]{2,}";

#define OCTET "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#define H16 "[0-9a-f]{1,4}"
const char coverage_ip_regex[] =
        "(^|[^0-9.])" OCTET "(\\." OCTET "){3}($|[^0-9.])"
        "|(^|[^0-9a-f:])("
        "(" H16 ":){7}" H16 "|(" H16 ":){1,7}:|(" H16 ":){1,6}:" H16 "|(" H16 ":){1,5}(:" H16 "){1,2}"
        "|(" H16 ":){1,4}(:" H16 "){1,3}|(" H16 ":){1,3}(:" H16 "){1,4}|(" H16 ":){1,2}(:" H16 "){1,5}"
        "|" H16 ":(:" H16 "){1,6}|:(:" H16 "){1,7}"
        ")($|[^0-9a-f:])";

/* ---- the report ------------------------------------------------------------------------------ */

void coverage_report_free(CoverageReport *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n_columns; i++) {
                CoverageColumn *c = &r->columns[i];
                free(c->schema);
                free(c->table);
                free(c->column);
                free(c->type);
                free(c->covers);
        }
        free(r->columns);
        for (size_t i = 0; i < r->n_notes; i++)
                free(r->notes[i]);
        free(r->notes);
        free(r);
}

static void add_note(CoverageReport *r, char *note) {
        r->notes = xreallocarray(r->notes, r->n_notes + 1, sizeof(char *));
        r->notes[r->n_notes++] = note;
}

/* ---- scanning -------------------------------------------------------------------------------- */

/* One column of the catalog, before we know whether it looks personal. */
typedef struct Cand {
        uint32_t oid;
        char *schema, *table, *column, *type;
        CoverageKind kind;
        bool sample;      /* a string or json column: its values are sampled */
        bool can_select;  /* the role may read it */
        char relkind;
        double reltuples;
        const char *name_word;
        bool by_type;
        bool ignored;
        int64_t sampled, email_values, ip_values;
        CoverageCover *covers;
        size_t n_covers;
} Cand;

static void cand_done(Cand *c) {
        free(c->schema);
        free(c->table);
        free(c->column);
        free(c->type);
        free(c->covers);
}

static void add_cover(Cand *c, const Rule *rule, bool whole_rows, bool while_held) {
        for (size_t i = 0; i < c->n_covers; i++)
                if (c->covers[i].rule == rule && c->covers[i].whole_rows == whole_rows &&
                    c->covers[i].while_held == while_held)
                        return;
        c->covers = xreallocarray(c->covers, c->n_covers + 1, sizeof(CoverageCover));
        c->covers[c->n_covers++] = (CoverageCover) { .rule = rule, .whole_rows = whole_rows, .while_held = while_held };
}

static CoverageKind kind_of(const char *typname, const char *category, const char *elem_category) {
        if (streq(typname, "inet") || streq(typname, "cidr") || streq(typname, "macaddr") || streq(typname, "macaddr8"))
                return COVKIND_NET;
        if (streq(category, "S") || streq(typname, "json") || streq(typname, "jsonb") || streq(typname, "bytea") ||
            (streq(category, "A") && streq_ptr(elem_category, "S")))
                return COVKIND_TEXT;
        if (streq(category, "D"))
                return COVKIND_DATE;
        if (streq(category, "N"))
                return COVKIND_NUMBER;
        return COVKIND_OTHER;
}

static const char catalog_sql[] =
        "SELECT c.oid, n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),"
        "       bt.typname, bt.typcategory, et.typcategory, c.relkind, c.reltuples,"
        "       has_column_privilege(c.oid, a.attnum, 'SELECT')"
        "  FROM pg_class c"
        "  JOIN pg_namespace n ON n.oid = c.relnamespace"
        "  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        "  JOIN pg_type t ON t.oid = a.atttypid"
        "  JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END"
        "  LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        "   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'retention')"
        "   AND n.nspname NOT LIKE 'pg\\_%'"
        "   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "                    AND d.objid = c.oid AND d.deptype = 'e')"
        " ORDER BY n.nspname, c.relname, a.attnum";

/* Which tables (by oid) the selected rules name: resolved by PostgreSQL, search_path included. */
static int rule_oids(Pg *pg, const Policy *p, const bool *selected, uint32_t *oids, PgError *err) {
        for (size_t i = 0; i < p->n_rules; i++) {
                oids[i] = 0;
                if (selected && !selected[i])
                        continue;
                _cleanup_free_ char *q = qualified_name_quote(&p->rules[i].table);
                const char *params[] = { q };
                _cleanup_free_ char *v = NULL;
                int k = pg_value(pg, &v, err, "SELECT to_regclass($1)::oid::text", 1, params);
                if (k)
                        return k;
                oids[i] = v ? (uint32_t) strtoul(v, NULL, 10) : 0;
        }
        return 0;
}

static bool lists_column(const ColumnMethod *cm, size_t n, const char *column) {
        for (size_t i = 0; i < n; i++)
                if (streq(cm[i].column, column))
                        return true;
        return false;
}

/* Samples the string columns of one table (cands[from..to)) that are candidates; counts only. */
static int sample_table(Pg *pg, Cand *cands, size_t from, size_t to, CoverageReport *rep, PgError *err) {
        StrBuf inner = {}, outer = {};
        size_t n = 0;
        for (size_t i = from; i < to; i++) {
                Cand *c = &cands[i];
                if (!c->sample || c->ignored || !c->can_select || c->n_covers > 0)
                        continue;
                _cleanup_free_ char *q = ident_quote(c->column);
                strbuf_appendf(&inner, "%s%s AS c%zu", n ? ", " : "", q, n);
                strbuf_appendf(&outer, ", count(c%zu), count(*) FILTER (WHERE c%zu::text ~* $1),"
                                       " count(*) FILTER (WHERE c%zu::text ~* $2)",
                               n, n, n);
                n++;
        }
        if (n == 0) {
                strbuf_done(&inner);
                strbuf_done(&outer);
                return 0;
        }
        QualifiedName qn = { .schema = cands[from].schema, .name = cands[from].table };
        _cleanup_free_ char *table = qualified_name_quote(&qn);
        char limit[32], pct[32];
        snprintf(limit, sizeof(limit), "%d", COVERAGE_SAMPLE_ROWS);
        bool tablesample = cands[from].relkind == 'r' && cands[from].reltuples > COVERAGE_TABLESAMPLE_MIN_ROWS;
        /* about ten times the sample in random pages, then the first COVERAGE_SAMPLE_ROWS of them */
        snprintf(pct, sizeof(pct), "%.6f", tablesample ? 100.0 * COVERAGE_SAMPLE_ROWS * 10 / cands[from].reltuples : 100.0);
        _cleanup_free_ char *sql = xasprintf("SELECT count(*)%s FROM (SELECT %s FROM %s%s LIMIT %s) s", strbuf_str(&outer),
                                             strbuf_str(&inner), table,
                                             tablesample ? " TABLESAMPLE SYSTEM ($3::float4)" : "", limit);
        strbuf_done(&inner);
        strbuf_done(&outer);

        const char *params[] = { coverage_email_regex, coverage_ip_regex, pct };
        PgError ig = {};
        (void) pg_exec0(pg, NULL, &ig, "SAVEPOINT retentiond_sample");
        pg_error_done(&ig);
        _cleanup_pgresult_ PGresult *r = NULL;
        int k = pg_exec(pg, &r, err, sql, tablesample ? 3 : 2, params);
        if (k == PG_ERR_CONNECTION)
                return k;
        if (k) {
                (void) pg_exec0(pg, NULL, &ig, "ROLLBACK TO SAVEPOINT retentiond_sample");
                pg_error_done(&ig);
                _cleanup_free_ char *t = qualified_name_display(&qn);
                add_note(rep, xasprintf("%s was not sampled: %s", t, err->primary ? err->primary : "error"));
                pg_error_done(err);
                return 0;
        }
        (void) pg_exec0(pg, NULL, &ig, "RELEASE SAVEPOINT retentiond_sample");
        pg_error_done(&ig);
        rep->n_tables_sampled++;
        size_t j = 0;
        for (size_t i = from; i < to; i++) {
                Cand *c = &cands[i];
                if (!c->sample || c->ignored || !c->can_select || c->n_covers > 0)
                        continue;
                c->sampled = strtoll(PQgetvalue(r, 0, (int) (1 + 3 * j)), NULL, 10);
                c->email_values = strtoll(PQgetvalue(r, 0, (int) (2 + 3 * j)), NULL, 10);
                c->ip_values = strtoll(PQgetvalue(r, 0, (int) (3 + 3 * j)), NULL, 10);
                j++;
        }
        return 0;
}

/* Whether the policy ignores column c (marking the patterns that match in pattern_used), and
 * which rules cover it: those on its table (oids: each rule's table) that delete its rows or
 * anonymise the column, also while held. */
static void cand_match_policy(Cand *c, const Policy *p, const uint32_t *oids, bool *pattern_used) {
        for (size_t x = 0; x < p->n_coverage_ignores; x++)
                if (coverage_ignore_matches(&p->coverage_ignores[x], c->schema, c->table, c->column)) {
                        c->ignored = true;
                        pattern_used[x] = true;
                }
        for (size_t ri = 0; ri < p->n_rules; ri++) {
                const Rule *rule = &p->rules[ri];
                if (!oids[ri] || oids[ri] != c->oid)
                        continue;
                if (rule->action == ACTION_DELETE)
                        add_cover(c, rule, true, false);
                else if (lists_column(rule->columns, rule->n_columns, c->column))
                        add_cover(c, rule, false, false);
                if (rule->has_while_held && lists_column(rule->while_held_columns, rule->n_while_held_columns, c->column))
                        add_cover(c, rule, false, true);
        }
}

int coverage_scan(Pg *pg, const Policy *p, const bool *selected, CoverageReport **ret, PgError *err) {
        _cleanup_(coverage_report_freep) CoverageReport *rep = xcalloc(1, sizeof(CoverageReport));
        _cleanup_pgresult_ PGresult *r = NULL;
        Cand *cands = NULL;
        size_t n = 0;
        uint32_t *oids = xcalloc(p->n_rules + 1, sizeof(uint32_t));
        bool *pattern_used = xcalloc(p->n_coverage_ignores + 1, sizeof(bool));
        uint32_t prev_oid = 0;
        int k;

        k = pg_exec0(pg, NULL, err, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        if (k)
                goto out;
        k = rule_oids(pg, p, selected, oids, err);
        if (k)
                goto out;
        k = pg_exec0(pg, &r, err, catalog_sql);
        if (k)
                goto out;

        n = (size_t) PQntuples(r);
        cands = xcalloc(n + 1, sizeof(Cand));
        for (size_t i = 0; i < n; i++) {
                Cand *c = &cands[i];
                int row = (int) i;
                c->oid = (uint32_t) strtoul(PQgetvalue(r, row, 0), NULL, 10);
                c->schema = xstrdup(PQgetvalue(r, row, 1));
                c->table = xstrdup(PQgetvalue(r, row, 2));
                c->column = xstrdup(PQgetvalue(r, row, 3));
                c->type = xstrdup(PQgetvalue(r, row, 4));
                c->kind = kind_of(PQgetvalue(r, row, 5), PQgetvalue(r, row, 6),
                                  PQgetisnull(r, row, 7) ? NULL : PQgetvalue(r, row, 7));
                c->relkind = PQgetvalue(r, row, 8)[0];
                c->reltuples = strtod(PQgetvalue(r, row, 9), NULL);
                c->can_select = streq(PQgetvalue(r, row, 10), "t");
                c->sample = c->kind == COVKIND_TEXT && !streq(PQgetvalue(r, row, 5), "bytea");
                c->sampled = -1;
                c->name_word = coverage_personal_name(c->column, c->kind);
                c->by_type = c->kind == COVKIND_NET;
                if (c->oid != prev_oid)
                        rep->n_tables++;
                prev_oid = c->oid;
                rep->n_columns_scanned++;
                cand_match_policy(c, p, oids, pattern_used);
        }

        for (size_t i = 0; i < n;) {
                size_t j = i;
                while (j < n && cands[j].oid == cands[i].oid)
                        j++;
                k = sample_table(pg, cands, i, j, rep, err);
                if (k)
                        goto out;
                i = j;
        }

        for (size_t i = 0; i < n; i++) {
                Cand *c = &cands[i];
                bool personal = c->name_word || c->by_type || c->email_values > 0 || c->ip_values > 0;
                if (!personal)
                        continue;
                if (c->ignored) {
                        rep->n_ignored++;
                        continue;
                }
                rep->columns = xreallocarray(rep->columns, rep->n_columns + 1, sizeof(CoverageColumn));
                rep->columns[rep->n_columns++] = (CoverageColumn) {
                        .schema = TAKE_PTR(c->schema),
                        .table = TAKE_PTR(c->table),
                        .column = TAKE_PTR(c->column),
                        .type = TAKE_PTR(c->type),
                        .name_word = c->name_word,
                        .by_type = c->by_type,
                        .sampled = c->sampled,
                        .email_values = c->email_values,
                        .ip_values = c->ip_values,
                        .covers = TAKE_PTR(c->covers),
                        .n_covers = c->n_covers,
                };
                if (c->n_covers == 0)
                        rep->n_uncovered++;
        }
        for (size_t x = 0; x < p->n_coverage_ignores; x++)
                if (!pattern_used[x])
                        add_note(rep, xasprintf("ignore pattern \"%s\" (%s:%u) matches no column of this database",
                                                p->coverage_ignores[x].pattern, p->coverage_ignores[x].loc.file,
                                                p->coverage_ignores[x].loc.line));
        for (size_t i = 0; i < p->n_rules; i++)
                if ((!selected || selected[i]) && !oids[i]) {
                        _cleanup_free_ char *t = qualified_name_display(&p->rules[i].table);
                        add_note(rep, xasprintf("rule \"%s\" names table %s, which does not exist: it covers nothing",
                                                p->rules[i].name, t));
                }
        k = pg_exec0(pg, NULL, err, "COMMIT");
out:
        if (k && pg_connection_ok(pg)) {
                PgError ig = {};
                (void) pg_exec0(pg, NULL, &ig, "ROLLBACK");
                pg_error_done(&ig);
        }
        for (size_t i = 0; i < n; i++)
                cand_done(&cands[i]);
        free(cands);
        free(oids);
        free(pattern_used);
        if (k == 0)
                *ret = TAKE_PTR(rep);
        return k;
}

/* ---- output ---------------------------------------------------------------------------------- */

static char *column_display(const CoverageColumn *c) {
        QualifiedName qn = { .schema = c->schema, .name = c->table };
        _cleanup_free_ char *t = qualified_name_display(&qn);
        _cleanup_free_ char *col = ident_display(c->column);
        return xasprintf("%s.%s", t, col);
}

static char *table_display(const CoverageColumn *c) {
        QualifiedName qn = { .schema = c->schema, .name = c->table };
        return qualified_name_display(&qn);
}

static void append_reasons(StrBuf *b, const CoverageColumn *c) {
        const char *sep = "";
        if (c->name_word) {
                strbuf_appendf(b, "its name contains \"%s\"", c->name_word);
                sep = "; ";
        }
        if (c->by_type) {
                strbuf_appendf(b, "%sits type is a network address", sep);
                sep = "; ";
        }
        if (c->email_values > 0) {
                strbuf_appendf(b, "%s%" PRId64 " of %" PRId64 " sampled values look like e-mail addresses", sep,
                               c->email_values, c->sampled);
                sep = "; ";
        }
        if (c->ip_values > 0)
                strbuf_appendf(b, "%s%" PRId64 " of %" PRId64 " sampled values look like IP addresses", sep, c->ip_values,
                               c->sampled);
}

static void append_covers(StrBuf *b, const CoverageColumn *c) {
        for (size_t i = 0; i < c->n_covers; i++) {
                const CoverageCover *v = &c->covers[i];
                strbuf_appendf(b, "%s", i ? ", " : "");
                if (v->whole_rows)
                        strbuf_appendf(b, "delete rule \"%s\" (only for expired rows)", v->rule->name);
                else if (v->while_held)
                        strbuf_appendf(b, "while_held of rule \"%s\" (only rows a hold keeps)", v->rule->name);
                else
                        strbuf_appendf(b, "anonymise rule \"%s\" (only for expired rows)", v->rule->name);
        }
}

static char *hint_for(const CoverageColumn *c) {
        _cleanup_free_ char *t = table_display(c);
        _cleanup_free_ char *col = ident_display(c->column);
        return xasprintf("add an anonymise rule for %s (columns: { %s: ... }) or a delete rule for %s", t, col, t);
}

void coverage_print(const CoverageReport *r, const char *database, bool quiet, FILE *f) {
        if (database && !quiet)
                fprintf(f, "database %s:\n", database);
        for (int pass = 0; pass < (quiet ? 1 : 2); pass++)
                for (size_t i = 0; i < r->n_columns; i++) {
                        const CoverageColumn *c = &r->columns[i];
                        if ((pass == 0) != (c->n_covers == 0))
                                continue;
                        StrBuf b = {};
                        _cleanup_free_ char *name = column_display(c);
                        strbuf_appendf(&b, "%s %s (%s): ", pass == 0 ? "uncovered" : "covered  ", name, c->type);
                        append_reasons(&b, c);
                        if (pass == 0) {
                                _cleanup_free_ char *h = hint_for(c);
                                strbuf_appendf(&b, "\n  HINT: %s", h);
                        } else {
                                strbuf_append(&b, "\n  by ");
                                append_covers(&b, c);
                        }
                        fprintf(f, "%s\n", strbuf_str(&b));
                        strbuf_done(&b);
                }
        if (quiet) /* -q: the uncovered columns only */
                return;
        for (size_t i = 0; i < r->n_notes; i++)
                fprintf(f, "note: %s\n", r->notes[i]);
        fprintf(f,
                "%zu of %zu columns that look personal %s not covered by any rule (%zu columns in %zu tables scanned,"
                " %zu tables sampled at most %d rows each, %zu personal-looking columns ignored by the policy)\n",
                r->n_uncovered, r->n_columns, r->n_uncovered == 1 ? "is" : "are", r->n_columns_scanned, r->n_tables,
                r->n_tables_sampled, COVERAGE_SAMPLE_ROWS, r->n_ignored);
}

void coverage_to_json(const CoverageReport *r, const char *database, StrBuf *b) {
        strbuf_append(b, "{\"database\":");
        if (database)
                json_append_string(b, database);
        else
                strbuf_append(b, "null");
        strbuf_appendf(b, ",\"uncovered\":%zu,\"looks_personal\":%zu,\"columns_scanned\":%zu,\"tables_scanned\":%zu,"
                          "\"tables_sampled\":%zu,\"sample_rows\":%d,\"ignored\":%zu,\"columns\":[",
                       r->n_uncovered, r->n_columns, r->n_columns_scanned, r->n_tables, r->n_tables_sampled,
                       COVERAGE_SAMPLE_ROWS, r->n_ignored);
        for (size_t i = 0; i < r->n_columns; i++) {
                const CoverageColumn *c = &r->columns[i];
                _cleanup_free_ char *t = table_display(c);
                strbuf_append(b, i ? ",{\"table\":" : "{\"table\":");
                json_append_string(b, t);
                strbuf_append(b, ",\"column\":");
                json_append_string(b, c->column);
                strbuf_append(b, ",\"type\":");
                json_append_string(b, c->type);
                strbuf_appendf(b, ",\"covered\":%s,\"why\":", c->n_covers ? "true" : "false");
                StrBuf w = {};
                append_reasons(&w, c);
                json_append_string(b, strbuf_str(&w));
                strbuf_done(&w);
                strbuf_append(b, ",\"name_word\":");
                if (c->name_word)
                        json_append_string(b, c->name_word);
                else
                        strbuf_append(b, "null");
                strbuf_appendf(b, ",\"network_type\":%s,\"sampled\":%" PRId64 ",\"email_values\":%" PRId64
                                  ",\"ip_values\":%" PRId64 ",\"covered_by\":[",
                               c->by_type ? "true" : "false", c->sampled, c->email_values, c->ip_values);
                for (size_t j = 0; j < c->n_covers; j++) {
                        const CoverageCover *v = &c->covers[j];
                        strbuf_append(b, j ? ",{\"rule\":" : "{\"rule\":");
                        json_append_string(b, v->rule->name);
                        strbuf_appendf(b, ",\"how\":\"%s\",\"rows\":\"%s\"}",
                                       v->whole_rows ? "delete" : v->while_held ? "while_held" : "anonymise",
                                       v->while_held ? "held" : "expired");
                }
                strbuf_append(b, "],\"hint\":");
                if (c->n_covers == 0) {
                        _cleanup_free_ char *h = hint_for(c);
                        json_append_string(b, h);
                } else
                        strbuf_append(b, "null");
                strbuf_append(b, "}");
        }
        strbuf_append(b, "],\"notes\":[");
        for (size_t i = 0; i < r->n_notes; i++) {
                if (i)
                        strbuf_append(b, ",");
                json_append_string(b, r->notes[i]);
        }
        strbuf_append(b, "]}");
}
