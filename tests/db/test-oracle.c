/* test-oracle.c — randomised scenarios against an independent oracle.
 *
 * Each scenario generates a random policy (up to six tables, retains from seconds to years,
 * a subject, registry and derived holds, while_held, plain and range-partitioned tables, foreign
 * keys with CASCADE / RESTRICT / NO ACTION / SET NULL, a second delete rule with a `where:`,
 * circuit breakers) and random rows around every boundary (ages exactly at a cutoff and 1 µs,
 * 1 s, 1 min, 1 day ... on either side, NULL ages, NULL subject keys, young/old/NULL evidence,
 * active/expiring/expired/released registry holds with keys written canonically, with zeros,
 * blanks or a sign (the same account) or as junk that holds nothing, holds through the CLI on
 * accounts that have no row in the subject's table, BEFORE UPDATE triggers that move the age
 * column as pagila's last_update does). The data goes into schema oa (enforced by retentiond) and
 * into two copies: oo (the original, untouched) and ox (the oracle's). Half the scenarios run
 * retentiond as the least-privilege role that sql/retentiond-role.sql makes, the others as a
 * superuser.
 *
 * The oracle is SQL written here from the README's rules, not from the engine's planner: for
 * each rule in policy order it decides which rows of ox to delete or anonymise, applies that, and
 * predicts the audit trail's counts. Hashes come from pgcrypto's hmac(), IP truncation from bit
 * masks, durations are parsed by PostgreSQL from the policy's own text. Then oa and ox are
 * compared row by row (with oo to classify a difference): every deleted row was due and unheld,
 * every anonymised row was due and is in exactly the anonymised form, every due unheld row is
 * gone unless a RESTRICT reference keeps it (reported in rule_run_fk). The trail's counts must be
 * the oracle's exactly: deleted, anonymised, held, kept by a reference, overdue, left unfinished
 * by a breaker (and nothing left "locked" or "refused": nothing else runs), and per referencing
 * table the rows a rule's deletes removed or set to NULL through ON DELETE CASCADE / SET NULL.
 *
 * The clock: most scenarios freeze now() — the test database resolves now() through a schema
 * `clockhack` placed before pg_catalog in search_path, whose now() returns a fixed instant — so
 * the engine's cutoff and the oracle's are the same instant and a row exactly at the cutoff can be
 * tested. A quarter of the scenarios use the real clock; their data keeps 10 minutes away from
 * every boundary so both sides agree although they run a moment apart. Time zones vary too.
 *
 * RETENTIOND_ORACLE_SEED (default: from the clock) and RETENTIOND_ORACLE_SCENARIOS (default 200)
 * make a run reproducible; every failure prints the line that replays exactly that scenario. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pgtest.h"
#include "rely.h"

/* ---- the model of a scenario -------------------------------------------------------------------- */

enum { T_ACCT, T_EV1, T_EV2, T_LOGS, T_MSGS, T_NOTES, N_TABLES };
typedef enum { AGE_TSTZ, AGE_TS, AGE_DATE } AgeType;
typedef enum { FK_NONE, FK_CASCADE, FK_RESTRICT, FK_NOACTION, FK_SETNULL } FkAction;
enum { H_REG, H_TAX, H_CORR, N_HOLDS };
typedef enum { M_NULL, M_REDACT, M_HASH, M_TRUNCATE_IP, M_EMAIL_DOMAIN } Method;
typedef enum { W_NONE, W_NOT_VIP, W_BOT, W_NOT_KEEP } Where;

static const struct {
        const char *name;
        const char *age;    /* the one age column */
        const char *subj;   /* column holding the subject key */
        int parent;         /* table a foreign key may reference, or -1 */
        const char *fk_col; /* its column */
} TI[N_TABLES] = {
        [T_ACCT] = { "acct", "req_at", "id", -1, NULL },
        [T_EV1] = { "ev1", "issued_at", "acct_id", T_ACCT, "acct_id" },
        [T_EV2] = { "ev2", "created_at", "acct_id", T_ACCT, "acct_id" },
        [T_LOGS] = { "logs", "at", "acct_id", -1, NULL },
        [T_MSGS] = { "msgs", "created_at", "acct_id", T_ACCT, "acct_id" },
        [T_NOTES] = { "notes", "noted_at", "acct_id", T_MSGS, "msg_id" },
};

static const struct {
        const char *name;
        int table; /* evidence table of a derived hold, -1 for the registry */
} HI[N_HOLDS] = {
        [H_REG] = { "reg", -1 },
        [H_TAX] = { "tax", T_EV1 },
        [H_CORR] = { "corr", T_EV2 },
};

typedef struct Col {
        const char *sql;  /* identifier as SQL writes it */
        const char *yaml; /* key as the policy writes it */
        Method m;
        const char *redact;
} Col;

typedef struct Table {
        bool present;
        AgeType type;
        bool partitioned, has_default, age_index;
        FkAction fk;
        int nrows;
        bool bump; /* a BEFORE UPDATE trigger of the table's owner sets the age column to now() */
} Table;

typedef struct RuleS {
        char name[24];
        int table;
        bool anonymise;
        const char *retain, *deadline;
        bool subject;
        unsigned holds; /* bit per hold */
        Col cols[3];
        int ncols;
        Col wh[3];
        int nwh;
        Where where;
        long max_rows;
        int pct; /* max_fraction in percent with breaker_min_rows 0; 0: defaults */
        int batch;
        /* the oracle's prediction */
        bool tripped;
        long long deleted, anonymised, held, fk, left, overdue;
        long long casc_deleted[N_TABLES], casc_nulled[N_TABLES]; /* rows of other tables its deletes cascaded to */
} RuleS;

typedef struct Scn {
        int idx;
        uint64_t seed;
        bool frozen;
        char T[64];     /* frozen: the instant now() returns */
        char now[96];   /* SQL for "now" while generating data: literal or now() */
        char nlit[96];  /* SQL literal of the oracle's now */
        const char *tz;
        char subject[32];
        Table t[N_TABLES];
        bool hold[N_HOLDS];
        const char *hold_retain[N_HOLDS];
        RuleS rules[10];
        int nrules;
        bool as_role; /* retentiond runs as the role sql/retentiond-role.sql makes, not as a superuser */
        int nacct;
        unsigned alias;
        char *policy;
} Scn;

static PgTest *pg;
static char *dir;
static char *keyfile;
static char keyhex[65];
static uint64_t base_seed;

/* Totals for the report. */
static long long total_rows, total_deleted, total_anonymised, total_wrong, total_lost, total_missed;
static long scenarios_run, scenarios_failed, total_tripped;

/* ---- generation ----------------------------------------------------------------------------------- */

static const char *const RETAINS[] = {
        "0 days", "30 seconds", "5 minutes", "90 minutes", "PT12H", "1 day", "7 days", "2 weeks", "P2W",
        "1 month", "3 months", "1 year", "1 year 6 months", "P1Y2M3DT4H5M6S", "6 years", "10 years",
};
static const char *const HOLD_RETAINS[] = { "1 day", "7 days", "P1M", "1 year", "6 years", "10 years", "90 minutes" };
static const char *const DEADLINES[] = { "1 hour", "1 day", "10 days", "P1M" };
static const char *const TZS[] = {
        "UTC", "Europe/Berlin", "America/St_Johns", "Pacific/Kiritimati", "Asia/Kathmandu", "Australia/Lord_Howe",
};
static const char *const REDACTS[] = { "gone", "X", "it's redacted", "gelöscht" };

static FkAction random_fk(Rng *r) {
        static const FkAction v[] = { FK_NONE, FK_CASCADE, FK_CASCADE, FK_RESTRICT, FK_NOACTION, FK_SETNULL };
        return PICK(r, v);
}

static Col col(const char *sql, const char *yaml, Method m, Rng *r) {
        return (Col) { sql, yaml, m, m == M_REDACT ? PICK(r, REDACTS) : NULL };
}

/* Random anonymisation columns for a table (1..3 distinct). */
static int random_cols(Rng *r, int table, Col *out) {
        Col c[4];
        int n = 0;
        switch (table) {
        case T_ACCT: {
                static const Method em[] = { M_HASH, M_EMAIL_DOMAIN, M_REDACT, M_NULL };
                static const Method nm[] = { M_NULL, M_REDACT };
                c[n++] = col("email", "email", PICK(r, em), r);
                c[n++] = col("name", "name", PICK(r, nm), r);
                c[n++] = col("phone", "phone", M_NULL, r);
                break;
        }
        case T_LOGS: {
                static const Method um[] = { M_REDACT, M_NULL, M_HASH };
                c[n++] = col("ip", "ip", chance(r, 85) ? M_TRUNCATE_IP : M_NULL, r);
                c[n++] = col("ua", "ua", PICK(r, um), r);
                break;
        }
        case T_MSGS: {
                static const Method bm[] = { M_REDACT, M_NULL, M_HASH };
                static const Method mm[] = { M_EMAIL_DOMAIN, M_HASH, M_NULL };
                c[n++] = col("body", "body", PICK(r, bm), r);
                c[n++] = col("\"E-Mail\"", "'\"E-Mail\"'", PICK(r, mm), r);
                break;
        }
        case T_NOTES:
                c[n++] = col("txt", "txt", chance(r, 50) ? M_REDACT : M_NULL, r);
                break;
        case T_EV2:
                c[n++] = col("topic", "topic", chance(r, 50) ? M_REDACT : M_HASH, r);
                break;
        default:
                return 0;
        }
        /* a random non-empty subset, in order */
        int k = 0;
        unsigned mask = 0;
        while (mask == 0)
                mask = rnd(r, 1u << n);
        for (int i = 0; i < n; i++)
                if (mask & (1u << i))
                        out[k++] = c[i];
        return k;
}

static unsigned random_holds(Rng *r, const Scn *s, unsigned allowed) {
        unsigned m = 0;
        for (int h = 0; h < N_HOLDS; h++)
                if ((allowed & (1u << h)) && s->hold[h] && chance(r, 55))
                        m |= 1u << h;
        return m;
}

static RuleS *add_rule(Scn *s, Rng *r, const char *name, int table, bool anonymise) {
        RuleS *x = &s->rules[s->nrules++];
        *x = (RuleS) {};
        snprintf(x->name, sizeof(x->name), "%s", name);
        x->table = table;
        x->anonymise = anonymise;
        x->retain = PICK(r, RETAINS);
        if (chance(r, 25))
                x->deadline = PICK(r, DEADLINES);
        static const int batches[] = { 1, 2, 3, 5, 7, 50, 5000 };
        x->batch = PICK(r, batches);
        if (chance(r, 10))
                x->max_rows = 1 + rnd(r, 8);
        else if (chance(r, 7))
                x->pct = chance(r, 50) ? 30 : 60;
        if (anonymise)
                x->ncols = random_cols(r, table, x->cols);
        return x;
}

static void gen_subject(Scn *s, Rng *r, RuleS *x, unsigned allowed, unsigned pct) {
        if (!chance(r, pct))
                return;
        x->subject = true;
        x->holds = random_holds(r, s, allowed);
        if (x->holds && chance(r, x->anonymise ? 25 : 55))
                x->nwh = random_cols(r, x->table, x->wh);
}

static void gen(Scn *s, Rng *r) {
        s->frozen = chance(r, 75);
        s->tz = PICK(r, TZS);
        snprintf(s->subject, sizeof(s->subject), "acct-%d", s->idx);
        if (s->frozen) {
                /* a random instant from 2001 to 2040, sometimes on a month end or a leap day */
                static const char *const special[] = {
                        "2031-03-31 00:00:00", "2032-02-29 23:59:59.999999", "2030-10-27 01:30:00",
                        "2029-03-25 02:00:00", "2028-12-31 23:59:59.999999", "2033-01-31 12:00:00",
                };
                if (chance(r, 25))
                        snprintf(s->T, sizeof(s->T), "%s", PICK(r, special));
                else
                        snprintf(s->T, sizeof(s->T), "%04u-%02u-%02u %02u:%02u:%02u.%06u", 2001 + rnd(r, 40), 1 + rnd(r, 12),
                                 1 + rnd(r, 28), rnd(r, 24), rnd(r, 60), rnd(r, 60), rnd(r, 1000000));
                snprintf(s->now, sizeof(s->now), "'%s'::timestamptz", s->T);
        } else
                snprintf(s->now, sizeof(s->now), "now()");

        for (int i = 0; i < N_TABLES; i++) {
                Table *t = &s->t[i];
                t->present = i == T_ACCT || chance(r, 75);
                if (i == T_NOTES && !s->t[T_MSGS].present)
                        t->present = false;
                static const AgeType types[] = { AGE_TSTZ, AGE_TSTZ, AGE_TSTZ, AGE_TS, AGE_DATE };
                t->type = PICK(r, types);
                if (!s->frozen && t->type == AGE_DATE)
                        t->type = AGE_TSTZ; /* a moving clock cannot keep a day boundary 10 minutes away */
                t->partitioned = (i == T_LOGS && chance(r, 45)) || (i == T_EV2 && chance(r, 30));
                t->has_default = t->partitioned && chance(r, 50);
                t->age_index = chance(r, 85);
                t->fk = TI[i].parent >= 0 ? random_fk(r) : FK_NONE;
                t->nrows = 8 + (int) rnd(r, i == T_LOGS ? 40 : 22);
        }
        s->nacct = s->t[T_ACCT].nrows;
        s->hold[H_REG] = true;
        s->hold[H_TAX] = s->t[T_EV1].present && chance(r, 75);
        s->hold[H_CORR] = s->t[T_EV2].present && chance(r, 60);
        for (int h = 0; h < N_HOLDS; h++)
                s->hold_retain[h] = PICK(r, HOLD_RETAINS);

        RuleS *x;
        if (chance(r, 85)) {
                x = add_rule(s, r, "r-acct", T_ACCT, chance(r, 25));
                gen_subject(s, r, x, 7, 90);
                if (chance(r, 20))
                        x->where = W_NOT_VIP;
        }
        if (s->t[T_EV1].present && chance(r, 60)) {
                x = add_rule(s, r, "r-ev1", T_EV1, false);
                gen_subject(s, r, x, 7, 70);
        }
        if (s->t[T_EV2].present && chance(r, 60)) {
                x = add_rule(s, r, "r-ev2", T_EV2, chance(r, 30));
                gen_subject(s, r, x, 1, 60);
        }
        if (s->t[T_LOGS].present) {
                if (chance(r, 80)) {
                        x = add_rule(s, r, "r-logs", T_LOGS, false);
                        gen_subject(s, r, x, 1, 30);
                }
                if (chance(r, 60))
                        add_rule(s, r, "r-logs-ip", T_LOGS, true);
                if (chance(r, 30)) {
                        x = add_rule(s, r, "r-logs-bots", T_LOGS, false);
                        x->where = W_BOT;
                        gen_subject(s, r, x, 1, 30);
                }
        }
        if (s->t[T_MSGS].present && chance(r, 80)) {
                x = add_rule(s, r, "r-msgs", T_MSGS, chance(r, 35));
                gen_subject(s, r, x, 7, 70);
                if (chance(r, 20))
                        x->where = W_NOT_KEEP;
        }
        if (s->t[T_NOTES].present && chance(r, 60)) {
                x = add_rule(s, r, "r-notes", T_NOTES, false);
                gen_subject(s, r, x, 1, 60);
        }
        /* Triggers that bump the age column when a row is updated (pagila's last_update): on a
         * table some rule anonymises, or a SET NULL reference updates. Frozen clock only, so that
         * the engine's now() and the oracle's are the same instant. */
        for (int i = 0; i < N_TABLES; i++) {
                const Table *t = &s->t[i];
                if (!t->present || t->partitioned || !s->frozen)
                        continue;
                bool updated = t->fk == FK_SETNULL;
                for (int k = 0; k < s->nrules; k++)
                        updated |= s->rules[k].table == i && (s->rules[k].anonymise || s->rules[k].nwh);
                s->t[i].bump = updated && chance(r, 35);
        }
        s->as_role = chance(r, 50);
        /* policy order is random */
        for (int i = s->nrules - 1; i > 0; i--) {
                int j = (int) rnd(r, (unsigned) i + 1);
                RuleS tmp = s->rules[i];
                s->rules[i] = s->rules[j];
                s->rules[j] = tmp;
        }
}

/* ---- SQL of the scenario -------------------------------------------------------------------------- */

static const char *type_sql(AgeType t) {
        return t == AGE_TSTZ ? "timestamptz" : t == AGE_TS ? "timestamp" : "date";
}

static const char *fk_sql(FkAction a) {
        switch (a) {
        case FK_CASCADE: return " ON DELETE CASCADE";
        case FK_RESTRICT: return " ON DELETE RESTRICT";
        case FK_NOACTION: return " ON DELETE NO ACTION";
        case FK_SETNULL: return " ON DELETE SET NULL";
        default: return "";
        }
}

typedef struct Anchor {
        const char *retain, *extra;
} Anchor;

/* A value of table i's age column: the cutoff of `a` at the scenario's now, moved by `off`. */
static char *age_value(const Scn *s, int i, Anchor a, const char *off) {
        switch (s->t[i].type) {
        case AGE_TSTZ:
                return rely_asprintf("(%s - '%s'::interval - '%s'::interval + '%s'::interval)", s->now, a.retain, a.extra, off);
        case AGE_TS:
                return rely_asprintf("((%s - '%s'::interval - '%s'::interval) AT TIME ZONE current_setting('TimeZone')"
                                     " + '%s'::interval)",
                                     s->now, a.retain, a.extra, off);
        default:
                return rely_asprintf("((%s - '%s'::interval - '%s'::interval) AT TIME ZONE current_setting('TimeZone'))::date + %s",
                                     s->now, a.retain, a.extra, off);
        }
}

/* Offsets around a boundary: frozen clock to the microsecond, real clock 10 minutes away. */
static const char *random_offset(const Scn *s, int i, Rng *r) {
        static const char *const frozen[] = { "0", "-1 microsecond", "1 microsecond", "-1 second", "1 second",
                                              "-1 minute", "1 hour", "-1 day", "1 day", "-3 years", "2 years", "0" };
        static const char *const real[] = { "-10 minutes", "10 minutes", "-1 day", "1 day", "-3 years", "2 years" };
        static const char *const days[] = { "0", "-1", "1", "-2", "2", "-400", "400", "0", "-1" };
        if (s->t[i].type == AGE_DATE)
                return PICK(r, days);
        return s->frozen ? PICK(r, frozen) : PICK(r, real);
}

/* The boundaries that matter for table i: a retain, and a deadline added to it (or "0"). */
static Anchor random_anchor(const Scn *s, int i, Rng *r) {
        Anchor c[16];
        int n = 0;
        for (int k = 0; k < s->nrules; k++)
                if (s->rules[k].table == i) {
                        c[n++] = (Anchor) { s->rules[k].retain, "0" };
                        if (s->rules[k].deadline)
                                c[n++] = (Anchor) { s->rules[k].retain, s->rules[k].deadline };
                }
        for (int h = 0; h < N_HOLDS; h++)
                if (s->hold[h] && HI[h].table == i)
                        c[n++] = (Anchor) { s->hold_retain[h], "0" };
        if (n == 0 || chance(r, 10))
                return (Anchor) { PICK(r, RETAINS), "0" };
        return c[rnd(r, (unsigned) n)];
}

static void ddl_table(Sb *b, const Scn *s, const char *sch, int i, const char *bounds) {
        const Table *t = &s->t[i];
        const char *ty = type_sql(t->type);
        char fk[200] = "";
        if (t->fk != FK_NONE)
                snprintf(fk, sizeof(fk), " REFERENCES %s.%s%s", sch, TI[TI[i].parent].name, fk_sql(t->fk));
        const char *idcol = t->partitioned ? "id int NOT NULL" : "id int PRIMARY KEY";
        const char *with = t->partitioned ? "" : " WITH (autovacuum_enabled = off)";
        const char *part = "";
        char partby[96] = "";
        if (t->partitioned) {
                snprintf(partby, sizeof(partby), " PARTITION BY RANGE (%s)", TI[i].age);
                part = partby;
        }
        switch (i) {
        case T_ACCT:
                sb_printf(b, "CREATE TABLE %s.acct (%s, req_at %s, email text, name text, phone text, kind text)%s;\n", sch, idcol,
                          ty, with);
                break;
        case T_EV1:
                sb_printf(b, "CREATE TABLE %s.ev1 (%s, acct_id int%s, issued_at %s, amount int)%s;\n", sch, idcol, fk, ty, with);
                break;
        case T_EV2:
                sb_printf(b, "CREATE TABLE %s.ev2 (%s, acct_id int%s, created_at %s, topic text)%s%s;\n", sch, idcol, fk, ty, part,
                          with);
                break;
        case T_LOGS:
                sb_printf(b, "CREATE TABLE %s.logs (%s, at %s, ip inet, ua text, acct_id int)%s%s;\n", sch, idcol, ty, part, with);
                break;
        case T_MSGS:
                sb_printf(b, "CREATE TABLE %s.msgs (%s, acct_id int%s, created_at %s, body text, \"E-Mail\" text, kind text)%s;\n",
                          sch, idcol, fk, ty, with);
                break;
        case T_NOTES:
                sb_printf(b, "CREATE TABLE %s.notes (%s, msg_id int%s, acct_id int, noted_at %s, txt text)%s;\n", sch, idcol, fk,
                          ty, with);
                break;
        }
        if (t->partitioned) {
                /* bounds: "v1|v2|..." sorted; partitions MINVALUE..v1, v1..v2, ..., vk..MAXVALUE */
                char *copy = strdup(bounds);
                char *prev = NULL;
                int n = 0;
                for (char *tok = strtok(copy, "|");; tok = strtok(NULL, "|")) {
                        sb_printf(b, "CREATE TABLE %s.%s_p%d PARTITION OF %s.%s FOR VALUES FROM (", sch, TI[i].name, n++, sch,
                                  TI[i].name);
                        if (prev)
                                sb_printf(b, "'%s'", prev);
                        else
                                sb_printf(b, "MINVALUE");
                        sb_printf(b, ") TO (");
                        if (tok)
                                sb_printf(b, "'%s'", tok);
                        else
                                sb_printf(b, "MAXVALUE");
                        sb_printf(b, ") WITH (autovacuum_enabled = off);\n");
                        if (!tok)
                                break;
                        prev = tok;
                }
                if (t->has_default)
                        sb_printf(b, "CREATE TABLE %s.%s_def PARTITION OF %s.%s DEFAULT WITH (autovacuum_enabled = off);\n", sch,
                                  TI[i].name, sch, TI[i].name);
                free(copy);
        }
        if (t->age_index)
                sb_printf(b, "CREATE INDEX ON %s.%s (%s);\n", sch, TI[i].name, TI[i].age);
        if (t->bump) {
                /* clockhack.now(): the frozen instant, whatever search_path the session has */
                sb_printf(b,
                          "CREATE FUNCTION %s.bump_%s() RETURNS trigger LANGUAGE plpgsql AS"
                          " $$ BEGIN NEW.%s := clockhack.now(); RETURN NEW; END $$;\n"
                          "CREATE TRIGGER bump BEFORE UPDATE ON %s.%s FOR EACH ROW EXECUTE FUNCTION %s.bump_%s();\n",
                          sch, TI[i].name, TI[i].age, sch, TI[i].name, sch, TI[i].name);
        }
        if (i != T_ACCT && i != T_LOGS)
                sb_printf(b, "CREATE INDEX ON %s.%s (%s);\n", sch, TI[i].name, TI[i].fk_col ? TI[i].fk_col : "acct_id");
}

static const char *sql_str(Sb *tmp, const char *v) {
        /* a SQL literal of v, or NULL */
        tmp->len = 0;
        if (tmp->s)
                tmp->s[0] = 0;
        if (!v) {
                sb_printf(tmp, "NULL");
                return tmp->s;
        }
        sb_add(tmp, "'", 1);
        for (const char *p = v; *p; p++) {
                if (*p == '\'')
                        sb_add(tmp, "'", 1);
                sb_add(tmp, p, 1);
        }
        sb_add(tmp, "'", 1);
        return tmp->s;
}

static const char *random_email(Rng *r, char *buf, size_t n, int i) {
        static const char *const fixed[] = { "a@b@c.org", "noatsign", "*@example.com",
                                             "hmac-sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "" };
        unsigned k = rnd(r, 10);
        if (k < 5) {
                snprintf(buf, n, "user%d@example%u.com", i, rnd(r, 3));
                return buf;
        }
        if (k == 5)
                return NULL;
        return fixed[rnd(r, 5)];
}

static const char *random_ip(Rng *r, char *buf, size_t n) {
        switch (rnd(r, 8)) {
        case 0: return NULL;
        case 1: return "10.1.2.0/24";
        case 2: return "172.16.0.0/16";
        case 3: snprintf(buf, n, "192.168.%u.%u/20", rnd(r, 256), rnd(r, 256)); return buf;
        case 4: snprintf(buf, n, "2001:db8:%x:%x::%x", rnd(r, 65536), rnd(r, 65536), 1 + rnd(r, 65535)); return buf;
        case 5: return "2001:db8:1::/48";
        default: snprintf(buf, n, "10.%u.%u.%u", rnd(r, 256), rnd(r, 256), rnd(r, 256)); return buf;
        }
}

/* INSERTs for schema oa; ids are 1..nrows in every table. */
static void data_sql(Sb *b, const Scn *s, Rng *r) {
        Sb t1 = {}, t2 = {}, t3 = {}, t4 = {};
        char e1[96], e2[96];
        for (int i = 0; i < N_TABLES; i++) {
                const Table *t = &s->t[i];
                if (!t->present)
                        continue;
                sb_printf(b, "INSERT INTO oa.%s VALUES\n", TI[i].name);
                for (int row = 1; row <= t->nrows; row++) {
                        bool null_age = (!t->partitioned || t->has_default) && chance(r, i == T_ACCT ? 30 : 10);
                        char *age = null_age ? strdup("NULL")
                                             : age_value(s, i, random_anchor(s, i, r), random_offset(s, i, r));
                        int acct = chance(r, 15) ? 0 : 1 + (int) rnd(r, (unsigned) s->nacct + (i == T_LOGS ? 5 : 0));
                        char acct_s[16];
                        if (acct)
                                snprintf(acct_s, sizeof(acct_s), "%d", acct);
                        else
                                snprintf(acct_s, sizeof(acct_s), "NULL");
                        sb_printf(b, "%s(%d, ", row > 1 ? ",\n" : "", row);
                        switch (i) {
                        case T_ACCT: {
                                static const char *const kinds[] = { "vip", "std", "std", NULL };
                                sb_printf(b, "%s, %s, ", age, sql_str(&t1, random_email(r, e1, sizeof(e1), row)));
                                snprintf(e2, sizeof(e2), "Name %d", row);
                                sb_printf(b, "%s, %s, %s)", sql_str(&t2, chance(r, 80) ? e2 : NULL),
                                          sql_str(&t3, chance(r, 70) ? "+49 30 1234567" : NULL), sql_str(&t4, PICK(r, kinds)));
                                break;
                        }
                        case T_EV1:
                                sb_printf(b, "%s, %s, %d)", acct_s, age, (int) rnd(r, 1000));
                                break;
                        case T_EV2: {
                                static const char *const topics[] = { "billing", "gone", NULL, "X" };
                                sb_printf(b, "%s, %s, %s)", acct_s, age, sql_str(&t1, PICK(r, topics)));
                                break;
                        }
                        case T_LOGS: {
                                static const char *const uas[] = { "bot", "bot", "Mozilla/5.0", NULL, "X", "gone" };
                                sb_printf(b, "%s, %s, %s, %s)", age, sql_str(&t1, random_ip(r, e1, sizeof(e1))),
                                          sql_str(&t2, PICK(r, uas)), acct_s);
                                break;
                        }
                        case T_MSGS: {
                                static const char *const bodies[] = { "hello", "it's me", "gone", NULL, "X" };
                                static const char *const kinds[] = { "keep", "x", NULL };
                                sb_printf(b, "%s, %s, %s, %s, %s)", acct_s, age, sql_str(&t1, PICK(r, bodies)),
                                          sql_str(&t2, random_email(r, e1, sizeof(e1), row)), sql_str(&t3, PICK(r, kinds)));
                                break;
                        }
                        case T_NOTES: {
                                int msg = chance(r, 15) ? 0 : 1 + (int) rnd(r, (unsigned) s->t[T_MSGS].nrows);
                                char msg_s[16];
                                if (msg)
                                        snprintf(msg_s, sizeof(msg_s), "%d", msg);
                                else
                                        snprintf(msg_s, sizeof(msg_s), "NULL");
                                sb_printf(b, "%s, %s, %s, %s)", msg_s, acct_s, age, sql_str(&t1, chance(r, 80) ? "note" : NULL));
                                break;
                        }
                        }
                        free(age);
                }
                sb_printf(b, ";\n");
        }
        sb_done(&t1);
        sb_done(&t2);
        sb_done(&t3);
        sb_done(&t4);
}

/* Registry holds: on random accounts, active, expiring, expired or released; and noise for
 * another subject on the same keys, which must never count. */
static void holds_sql(Sb *b, const Scn *s, Rng *r) {
        const char *soon = s->frozen ? "1 microsecond" : "10 minutes";
        const char *past = s->frozen ? "-1 microsecond" : "-10 minutes";
        for (int id = 1; id <= s->nacct + 2; id++) {
                if (!chance(r, 30))
                        continue;
                const char *exp = "NULL", *rel = "NULL", *by = "NULL";
                char expbuf[160];
                switch (rnd(r, 6)) {
                case 0:
                case 1: break; /* active */
                case 2:
                        snprintf(expbuf, sizeof(expbuf), "%s + '%s'::interval", s->now, chance(r, 50) ? soon : "1 day");
                        exp = expbuf;
                        break;
                case 3:
                        snprintf(expbuf, sizeof(expbuf), "%s + '%s'::interval", s->now,
                                 s->frozen && chance(r, 50) ? "0" : chance(r, 50) ? past : "-1 day");
                        exp = expbuf;
                        break;
                default:
                        rel = "now()";
                        by = "'oracle'";
                }
                /* The key as an operator or an older version may have written it: canonical, with
                 * zeros, blanks or a sign before it (the same account), or junk that holds nothing. */
                static const char *const before[] = { "", "", "", "0", "00", " ", "", "+", "x", "1." };
                static const char *const after[] = { "", "", "", "", "", "", " ", "", "", "5" };
                unsigned form = rnd(r, sizeof(before) / sizeof(before[0]));
                sb_printf(b,
                          "INSERT INTO retention.holds (subject, subject_key, reason, placed_by, expires_at, released_at, released_by)"
                          " VALUES ('%s', '%s%d%s', 'oracle', 'oracle', %s, %s, %s);\n",
                          s->subject, before[form], id, after[form], exp, rel, by);
        }
        sb_printf(b,
                  "INSERT INTO retention.holds (subject, subject_key, reason, placed_by) VALUES ('other-%d', '%d', 'noise', 'oracle'),"
                  " ('other-%d', '%d', 'noise', 'oracle'), ('other-%d', '0%d', 'noise', 'oracle');\n",
                  s->idx, 1 + (int) rnd(r, (unsigned) s->nacct), s->idx, 1 + (int) rnd(r, (unsigned) s->nacct), s->idx,
                  1 + (int) rnd(r, (unsigned) s->nacct));
}

/* ---- the policy ---------------------------------------------------------------------------------- */

static const char *where_yaml(Where w) {
        switch (w) {
        case W_NOT_VIP: return "kind IS DISTINCT FROM 'vip'";
        case W_BOT: return "ua = 'bot'";
        case W_NOT_KEEP: return "kind <> 'keep'";
        default: return NULL;
        }
}

static void yaml_cols(Sb *b, const Col *c, int n) {
        sb_printf(b, "{ ");
        for (int i = 0; i < n; i++) {
                sb_printf(b, "%s%s: ", i ? ", " : "", c[i].yaml);
                switch (c[i].m) {
                case M_NULL: sb_printf(b, "null"); break;
                case M_REDACT: sb_printf(b, "{ redact: \"%s\" }", c[i].redact); break;
                case M_HASH: sb_printf(b, "hash"); break;
                case M_TRUNCATE_IP: sb_printf(b, "truncate_ip"); break;
                case M_EMAIL_DOMAIN: sb_printf(b, "email_domain"); break;
                }
        }
        sb_printf(b, " }");
}

static char *policy_yaml(const Scn *s) {
        Sb b = {};
        sb_printf(&b, "# oracle scenario %d (seed %llu)\nversion: 1\nsubjects:\n  %s: { table: oa.acct, key: id }\nholds:\n", s->idx,
                  (unsigned long long) s->seed, s->subject);
        sb_printf(&b, "  reg: { reason: \"registry\", subject: %s, registry: true }\n", s->subject);
        for (int h = 1; h < N_HOLDS; h++)
                if (s->hold[h])
                        sb_printf(&b,
                                  "  %s: { reason: \"derived\", subject: %s, table: oa.%s, subject_column: acct_id, column: %s,"
                                  " retain: \"%s\" }\n",
                                  HI[h].name, s->subject, TI[HI[h].table].name, TI[HI[h].table].age, s->hold_retain[h]);
        sb_printf(&b, "rules:\n");
        if (s->nrules == 0)
                sb_printf(&b, "  {}\n");
        for (int k = 0; k < s->nrules; k++) {
                const RuleS *x = &s->rules[k];
                sb_printf(&b, "  %s:\n    clause: \"oracle %s\"\n    table: oa.%s\n    column: %s\n    retain: \"%s\"\n", x->name,
                          x->name, TI[x->table].name, TI[x->table].age, x->retain);
                sb_printf(&b, "    action: %s\n", x->anonymise ? (k % 2 ? "anonymize" : "anonymise") : "delete");
                if (x->anonymise) {
                        sb_printf(&b, "    columns: ");
                        yaml_cols(&b, x->cols, x->ncols);
                        sb_printf(&b, "\n");
                }
                if (x->subject) {
                        sb_printf(&b, "    subject: %s\n", s->subject);
                        if (x->table != T_ACCT)
                                sb_printf(&b, "    subject_column: acct_id\n");
                        if (x->holds) {
                                sb_printf(&b, "    holds: [");
                                bool first = true;
                                for (int h = 0; h < N_HOLDS; h++)
                                        if (x->holds & (1u << h)) {
                                                sb_printf(&b, "%s%s", first ? "" : ", ", HI[h].name);
                                                first = false;
                                        }
                                sb_printf(&b, "]\n");
                        }
                        if (x->nwh) {
                                sb_printf(&b, "    while_held: { %scolumns: ", k % 2 ? "action: anonymise, " : "");
                                yaml_cols(&b, x->wh, x->nwh);
                                sb_printf(&b, " }\n");
                        }
                }
                if (x->where)
                        sb_printf(&b, "    where: \"%s\"\n", where_yaml(x->where));
                if (x->deadline)
                        sb_printf(&b, "    deadline: \"%s\"\n", x->deadline);
                sb_printf(&b, "    batch_size: %d\n", x->batch);
                if (x->max_rows)
                        sb_printf(&b, "    max_rows: %ld\n", x->max_rows);
                if (x->pct)
                        sb_printf(&b, "    max_fraction: \"%d%%\"\n    breaker_min_rows: 0\n", x->pct);
        }
        return sb_steal(&b);
}

/* ---- the oracle: SQL from the README's rules --------------------------------------------------- */

/* Is alias.col of table i strictly older than now - retain [- deadline]? (README: "A row is due
 * when its age column is strictly older than the cutoff; NULL never expires. For a date column ...
 * a date is due only when the whole day is.") */
static char *o_older(const Scn *s, int i, const char *alias, const char *retain, const char *deadline) {
        char cut[300];
        snprintf(cut, sizeof(cut), "(%s - '%s'::interval - '%s'::interval)", s->nlit, retain, deadline ? deadline : "0");
        switch (s->t[i].type) {
        case AGE_TSTZ: return rely_asprintf("(%s.%s < %s)", alias, TI[i].age, cut);
        case AGE_TS: return rely_asprintf("(%s.%s < (%s AT TIME ZONE current_setting('TimeZone')))", alias, TI[i].age, cut);
        default: return rely_asprintf("((%s.%s + 1)::timestamptz <= %s)", alias, TI[i].age, cut);
        }
}

/* Evidence is young unless provably older than the hold's cutoff: NULL is young. */
static char *o_young(const Scn *s, int h, const char *alias) {
        int i = HI[h].table;
        char *older = o_older(s, i, alias, s->hold_retain[h], NULL);
        char *r = rely_asprintf("(%s.%s IS NULL OR NOT %s)", alias, TI[i].age, older);
        free(older);
        return r;
}

static char *o_hold(Scn *s, int h, const char *key) {
        unsigned a = ++s->alias;
        if (h == H_REG)
                return rely_asprintf("EXISTS (SELECT 1 FROM retention.holds q%u WHERE q%u.subject = '%s'"
                                     " AND (q%u.subject_key = (%s)::text OR oracle_int(q%u.subject_key) = %s)"
                                     " AND q%u.released_at IS NULL AND (q%u.expires_at IS NULL OR q%u.expires_at > %s))",
                                     a, a, s->subject, a, key, a, key, a, a, a, s->nlit);
        char al[16];
        snprintf(al, sizeof(al), "q%u", a);
        char *y = o_young(s, h, al);
        char *r = rely_asprintf("EXISTS (SELECT 1 FROM ox.%s %s WHERE %s.acct_id = %s AND %s)", TI[HI[h].table].name, al, al, key, y);
        free(y);
        return r;
}

/* Any of rule x's holds applies to row `alias`. */
static char *o_rule_holds(Scn *s, const RuleS *x, const char *alias) {
        if (!x->subject || !x->holds)
                return strdup("false");
        Sb b = {};
        char key[64];
        snprintf(key, sizeof(key), "%s.%s", alias, TI[x->table].subj);
        sb_printf(&b, "(false");
        for (int h = 0; h < N_HOLDS; h++)
                if (x->holds & (1u << h)) {
                        char *e = o_hold(s, h, key);
                        sb_printf(&b, " OR %s", e);
                        free(e);
                }
        sb_printf(&b, ")");
        return sb_steal(&b);
}

/* Rows of table i that a hold protects: held rows of any rule with holds on i, and young
 * evidence rows of a derived hold on i. */
static char *o_protected(Scn *s, int i, const char *alias) {
        Sb b = {};
        sb_printf(&b, "(false");
        for (int k = 0; k < s->nrules; k++)
                if (s->rules[k].table == i && s->rules[k].subject && s->rules[k].holds) {
                        char *e = o_rule_holds(s, &s->rules[k], alias);
                        sb_printf(&b, " OR %s", e);
                        free(e);
                }
        for (int h = 1; h < N_HOLDS; h++)
                if (s->hold[h] && HI[h].table == i) {
                        char *e = o_young(s, h, alias);
                        sb_printf(&b, " OR %s", e);
                        free(e);
                }
        sb_printf(&b, ")");
        return sb_steal(&b);
}

/* Deleting row `alias` of table i would cascade into (or set NULL in) a protected row. */
static char *o_cascade(Scn *s, int i, const char *alias) {
        Sb b = {};
        sb_printf(&b, "(false");
        for (int c = 0; c < N_TABLES; c++) {
                if (!s->t[c].present || TI[c].parent != i || !TI[c].fk_col || (s->t[c].fk != FK_CASCADE && s->t[c].fk != FK_SETNULL))
                        continue;
                char al[16];
                snprintf(al, sizeof(al), "q%u", ++s->alias);
                char *p = o_protected(s, c, al);
                char *deeper = s->t[c].fk == FK_CASCADE ? o_cascade(s, c, al) : strdup("false");
                sb_printf(&b, " OR EXISTS (SELECT 1 FROM ox.%s %s WHERE %s.%s = %s.id AND (%s OR %s))", TI[c].name, al, al, TI[c].fk_col,
                          alias, p, deeper);
                free(p);
                free(deeper);
        }
        sb_printf(&b, ")");
        return sb_steal(&b);
}

/* A RESTRICT / NO ACTION reference to row `alias` of table i exists. */
static char *o_restricted(Scn *s, int i, const char *alias) {
        Sb b = {};
        sb_printf(&b, "(false");
        for (int c = 0; c < N_TABLES; c++) {
                if (!s->t[c].present || TI[c].parent != i || !TI[c].fk_col || (s->t[c].fk != FK_RESTRICT && s->t[c].fk != FK_NOACTION))
                        continue;
                unsigned a = ++s->alias;
                sb_printf(&b, " OR EXISTS (SELECT 1 FROM ox.%s q%u WHERE q%u.%s = %s.id)", TI[c].name, a, a, TI[c].fk_col, alias);
        }
        sb_printf(&b, ")");
        return sb_steal(&b);
}

static char *o_where(const RuleS *x, const char *alias) {
        switch (x->where) {
        case W_NOT_VIP: return rely_asprintf("coalesce(%s.kind IS DISTINCT FROM 'vip', false)", alias);
        case W_BOT: return rely_asprintf("coalesce(%s.ua = 'bot', false)", alias);
        case W_NOT_KEEP: return rely_asprintf("coalesce(%s.kind <> 'keep', false)", alias);
        default: return strdup("true");
        }
}

static char *sql_lit(const char *v) {
        Sb b = {};
        sb_add(&b, "'", 1);
        for (const char *p = v; *p; p++) {
                if (*p == '\'')
                        sb_add(&b, "'", 1);
                sb_add(&b, p, 1);
        }
        sb_add(&b, "'", 1);
        return sb_steal(&b);
}

/* The anonymised form of value x (an expression), per README's method table. */
static char *o_new(const Col *c, const char *x) {
        switch (c->m) {
        case M_NULL: return strdup("NULL");
        case M_REDACT: {
                char *l = sql_lit(c->redact);
                char *r = rely_asprintf("CASE WHEN %s IS NULL THEN NULL ELSE %s END", x, l);
                free(l);
                return r;
        }
        case M_HASH:
                return rely_asprintf("CASE WHEN %s IS NULL THEN NULL WHEN %s ~ '^hmac-sha256:[0-9a-f]{64}$' THEN %s"
                                     " ELSE 'hmac-sha256:' || encode(hmac(convert_to(%s, 'UTF8'), '\\x%s'::bytea, 'sha256'), 'hex') END",
                                     x, x, x, x, keyhex);
        case M_TRUNCATE_IP:
                /* keep the first 24 (IPv4) or 48 (IPv6) bits, never widen a shorter prefix */
                return rely_asprintf("CASE WHEN %s IS NULL THEN NULL ELSE set_masklen(%s & netmask(set_masklen(%s,"
                                     " least(masklen(%s), CASE WHEN family(%s) = 4 THEN 24 ELSE 48 END))),"
                                     " least(masklen(%s), CASE WHEN family(%s) = 4 THEN 24 ELSE 48 END)) END",
                                     x, x, x, x, x, x, x);
        case M_EMAIL_DOMAIN:
                return rely_asprintf("CASE WHEN %s IS NULL OR position('@' IN %s) = 0 THEN NULL"
                                     " ELSE '*@' || substring(%s FROM '@([^@]*)$') END",
                                     x, x, x);
        }
        return strdup("NULL");
}

/* Every column is already in its anonymised form (NULL always is). */
static char *o_done(const Col *c, int n, const char *alias) {
        Sb b = {};
        sb_printf(&b, "(true");
        for (int i = 0; i < n; i++) {
                char x[64];
                snprintf(x, sizeof(x), "%s.%s", alias, c[i].sql);
                if (c[i].m == M_NULL)
                        sb_printf(&b, " AND %s IS NULL", x);
                else if (c[i].m == M_HASH)
                        sb_printf(&b, " AND (%s IS NULL OR %s ~ '^hmac-sha256:[0-9a-f]{64}$')", x, x);
                else {
                        char *nv = o_new(&c[i], x);
                        sb_printf(&b, " AND (%s IS NULL OR coalesce(%s = (%s), false))", x, x, nv);
                        free(nv);
                }
        }
        sb_printf(&b, ")");
        return sb_steal(&b);
}

static char *o_set(const Col *c, int n, const char *alias) {
        Sb b = {};
        for (int i = 0; i < n; i++) {
                char x[64];
                snprintf(x, sizeof(x), "%s.%s", alias, c[i].sql);
                char *nv = o_new(&c[i], x);
                sb_printf(&b, "%s%s = %s", i ? ", " : "", c[i].sql, nv);
                free(nv);
        }
        return sb_steal(&b);
}

/* Another delete rule on the same table keeps the row: its where covers the row and the row is
 * not expired under it (or NULL), or one of its holds applies. Longest retention wins. */
static char *o_others_keep(Scn *s, const RuleS *x, const char *alias) {
        Sb b = {};
        sb_printf(&b, "(false");
        for (int k = 0; k < s->nrules; k++) {
                const RuleS *o = &s->rules[k];
                if (o == x || o->anonymise || o->table != x->table)
                        continue;
                char *w = o_where(o, alias);
                char *older = o_older(s, o->table, alias, o->retain, NULL);
                char *h = o_rule_holds(s, o, alias);
                sb_printf(&b, " OR (%s AND (%s.%s IS NULL OR NOT %s OR %s))", w, alias, TI[o->table].age, older, h);
                free(w);
                free(older);
                free(h);
        }
        sb_printf(&b, ")");
        return sb_steal(&b);
}

static char *o_due(Scn *s, const RuleS *x, const char *alias) {
        char *older = o_older(s, x->table, alias, x->retain, NULL);
        char *w = o_where(x, alias);
        char *r;
        if (x->anonymise) {
                char *d = o_done(x->cols, x->ncols, alias);
                r = rely_asprintf("(%s AND %s AND NOT %s)", older, w, d);
                free(d);
        } else
                r = rely_asprintf("(%s AND %s)", older, w);
        free(older);
        free(w);
        return r;
}

/* Held: a hold applies, or (delete) the delete would cascade into protected rows. */
static char *o_held(Scn *s, const RuleS *x, const char *alias) {
        char *h = o_rule_holds(s, x, alias);
        if (x->anonymise)
                return h;
        char *c = o_cascade(s, x->table, alias);
        char *r = rely_asprintf("(%s OR %s)", h, c);
        free(h);
        free(c);
        return r;
}

static char *o_kept(Scn *s, const RuleS *x, const char *alias) {
        char *h = o_held(s, x, alias);
        if (x->anonymise)
                return h;
        char *o = o_others_keep(s, x, alias);
        char *r = rely_asprintf("(%s OR %s)", h, o);
        free(h);
        free(o);
        return r;
}

static long long q_int(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long q_int(PGconn *c, const char *fmt, ...) {
        va_list ap;
        char *sql = NULL;
        va_start(ap, fmt);
        if (vasprintf(&sql, fmt, ap) < 0)
                abort();
        va_end(ap);
        long long v = rely_int(c, sql);
        free(sql);
        return v;
}

static long long q_exec(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long q_exec(PGconn *c, const char *fmt, ...) {
        va_list ap;
        char *sql = NULL;
        va_start(ap, fmt);
        if (vasprintf(&sql, fmt, ap) < 0)
                abort();
        va_end(ap);
        PGresult *r = rely_query(c, sql);
        long long n = strtoll(PQcmdTuples(r), NULL, 10);
        PQclear(r);
        free(sql);
        return n;
}

/* Rows, and rows whose reference is NULL, of every table but `self` in ox: what a delete's cascades
 * (ON DELETE CASCADE, SET NULL) changed is the difference of two snapshots. */
static void cascade_snapshot(const Scn *s, PGconn *c, int self, long long *rows, long long *nulls) {
        for (int i = 0; i < N_TABLES; i++) {
                rows[i] = nulls[i] = 0;
                if (i == self || !s->t[i].present || !TI[i].fk_col)
                        continue;
                rows[i] = q_int(c, "SELECT count(*) FROM ox.%s", TI[i].name);
                nulls[i] = q_int(c, "SELECT count(*) FROM ox.%s WHERE %s IS NULL", TI[i].name, TI[i].fk_col);
        }
}

/* Applies rule x to ox the way the README says retentiond does, and predicts its audit trail. */
static void oracle_rule(Scn *s, PGconn *c, RuleS *x) {
        const char *tn = TI[x->table].name;
        char *due = o_due(s, x, "x");
        char *kept = o_kept(s, x, "x");
        char *restr = x->anonymise ? strdup("false") : o_restricted(s, x->table, "x");
        char *act = rely_asprintf("%s AND NOT %s AND NOT %s", due, kept, restr);

        long long n_act = q_int(c, "SELECT count(*) FROM ox.%s x WHERE %s", tn, act);
        long long n_rows = q_int(c, "SELECT count(*) FROM ox.%s", tn);
        long long refused = 0;
        x->tripped = (x->max_rows && n_act > x->max_rows) || (x->pct && n_act * 100 > n_rows * x->pct);
        if (!x->tripped) {
                if (x->anonymise) {
                        char *set = o_set(x->cols, x->ncols, "x");
                        x->anonymised += q_exec(c, "UPDATE ox.%s x SET %s WHERE %s", tn, set, act);
                        free(set);
                } else {
                        /* one row at a time: a row whose cascade the database refuses stays */
                        char *q = rely_asprintf("SELECT * FROM oracle_delete('ox.%s'::regclass, ARRAY(SELECT x.id FROM ox.%s x"
                                                " WHERE %s ORDER BY x.id))",
                                                tn, tn, act);
                        long long before_rows[N_TABLES], before_nulls[N_TABLES];
                        cascade_snapshot(s, c, x->table, before_rows, before_nulls);
                        PGresult *res = rely_query(c, q);
                        free(q);
                        long long after_rows[N_TABLES], after_nulls[N_TABLES];
                        cascade_snapshot(s, c, x->table, after_rows, after_nulls);
                        for (int i = 0; i < N_TABLES; i++) {
                                x->casc_deleted[i] = before_rows[i] - after_rows[i];
                                x->casc_nulled[i] = after_nulls[i] - before_nulls[i];
                        }
                        x->deleted += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                        refused = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
                        PQclear(res);
                }
                /* held: counted before the rows are anonymised while held (README, Tally), which may
                 * make them not due any more (their columns done, or a trigger moving their age) */
                x->held = q_int(c, "SELECT count(*) FROM ox.%s x WHERE %s AND %s", tn, due, kept);
                if (x->nwh) {
                        char *held = o_held(s, x, "x");
                        char *done = o_done(x->wh, x->nwh, "x");
                        char *set = o_set(x->wh, x->nwh, "x");
                        x->anonymised += q_exec(c, "UPDATE ox.%s x SET %s WHERE %s AND %s AND NOT %s", tn, set, due, held, done);
                        free(held);
                        free(done);
                        free(set);
                }
        }
        /* the tally after the rule (held: above, unless the breaker stopped it) */
        if (x->tripped)
                x->held = q_int(c, "SELECT count(*) FROM ox.%s x WHERE %s AND %s", tn, due, kept);
        x->fk = q_int(c, "SELECT count(*) FROM ox.%s x WHERE %s AND NOT %s AND %s", tn, due, kept, restr);
        /* Rows the database refused for a reference further down a cascade are reported as kept by
         * a foreign key (README: "the others are counted"), not as locked. */
        x->left = q_int(c, "SELECT count(*) FROM ox.%s x WHERE %s", tn, act) - refused;
        x->fk += refused;
        x->overdue = 0;
        if (x->deadline) {
                char *od = o_older(s, x->table, "x", x->retain, x->deadline);
                x->overdue = q_int(c, "SELECT count(*) FROM ox.%s x WHERE %s AND NOT %s AND %s", tn, due, kept, od);
                free(od);
        }
        free(due);
        free(kept);
        free(restr);
        free(act);
}

/* ---- one scenario ------------------------------------------------------------------------------- */

static char *conninfo;

static void scenario_report(const Scn *s, const char *what) {
        if (scenarios_failed <= 3)
                fprintf(stderr, "---- policy of the failing scenario:\n%s----\n", s->policy ? s->policy : "");
        fprintf(stderr,
                "oracle: scenario %d FAILED: %s\n"
                "oracle: replay it with RETENTIOND_ORACLE_SEED=%llu RETENTIOND_ORACLE_SCENARIOS=1 (whole run: RETENTIOND_ORACLE_SEED=%llu)\n",
                s->idx, what, (unsigned long long) s->seed, (unsigned long long) base_seed);
}

static bool run_scenario(PGconn *c, int idx, uint64_t seed) {
        Scn s = { .idx = idx, .seed = seed };
        Rng r = { seed };
        bool ok = true;
        char msg[8192];
        gen(&s, &r);

        /* clock and time zone */
        Sb b = {};
        sb_printf(&b, "DROP SCHEMA IF EXISTS oa, ox, oo CASCADE; CREATE SCHEMA oa; CREATE SCHEMA ox; CREATE SCHEMA oo;\n");
        if (s.frozen)
                sb_printf(&b, "CREATE OR REPLACE FUNCTION clockhack.now() RETURNS timestamptz LANGUAGE sql STABLE"
                              " AS $$ SELECT '%s'::timestamptz $$;\n", s.T);
        else
                sb_printf(&b, "CREATE OR REPLACE FUNCTION clockhack.now() RETURNS timestamptz LANGUAGE sql STABLE"
                              " AS $$ SELECT pg_catalog.now() $$;\n");
        sb_printf(&b, "ALTER DATABASE oracle SET timezone = '%s'; SET timezone = '%s';\n", s.tz, s.tz);
        rely_exec(c, b.s);
        sb_done(&b);

        /* partition bounds around a boundary that matters for the table */
        char *bounds[N_TABLES] = {};
        for (int i = 0; i < N_TABLES; i++) {
                if (!s.t[i].present || !s.t[i].partitioned)
                        continue;
                Anchor anchor = random_anchor(&s, i, &r);
                Sb q = {};
                static const char *const offs[] = { "-1 year", "-1 day", "-1 microsecond", "0", "1 microsecond", "1 day" };
                static const char *const doffs[] = { "-400", "-1", "0", "1" };
                sb_printf(&q, "SELECT string_agg(v::text, '|' ORDER BY v) FROM (SELECT DISTINCT v FROM (VALUES ");
                int n = 1 + (int) rnd(&r, 3);
                for (int k = 0; k < n; k++) {
                        char *v = age_value(&s, i, anchor, s.t[i].type == AGE_DATE ? PICK(&r, doffs) : PICK(&r, offs));
                        sb_printf(&q, "%s(%s)", k ? ", " : "", v);
                        free(v);
                }
                sb_printf(&q, ") t(v)) s");
                bounds[i] = rely_value(c, q.s);
                sb_done(&q);
        }

        /* schemas: oa (enforced), ox (the oracle's copy), oo (the original) */
        sb_printf(&b, "BEGIN;\n");
        for (int i = 0; i < N_TABLES; i++)
                if (s.t[i].present) {
                        ddl_table(&b, &s, "oa", i, bounds[i]);
                        ddl_table(&b, &s, "ox", i, bounds[i]);
                }
        data_sql(&b, &s, &r);
        for (int i = 0; i < N_TABLES; i++)
                if (s.t[i].present) {
                        sb_printf(&b, "INSERT INTO ox.%s SELECT * FROM oa.%s;\n", TI[i].name, TI[i].name);
                        sb_printf(&b, "CREATE TABLE oo.%s AS SELECT * FROM oa.%s;\n", TI[i].name, TI[i].name);
                }
        holds_sql(&b, &s, &r);
        sb_printf(&b, "COMMIT;\n");
        rely_exec(c, b.s);
        sb_done(&b);
        for (int i = 0; i < N_TABLES; i++)
                free(bounds[i]);

        /* The engine's role: a superuser, or the least-privilege role of sql/retentiond-role.sql
         * with the tables the rules act on, and the others (evidence, references) to read. */
        char *engine_ci = NULL;
        if (s.as_role) {
                Sb acts = {}, reads = {};
                for (int i = 0; i < N_TABLES; i++) {
                        if (!s.t[i].present)
                                continue;
                        bool acted = false;
                        for (int k = 0; k < s.nrules; k++)
                                acted |= s.rules[k].table == i;
                        Sb *l = acted ? &acts : &reads;
                        sb_printf(l, "%soa.%s", l->len ? ", " : "", TI[i].name);
                }
                if (!acts.len) /* the script wants at least one table */
                        sb_printf(&acts, "oa.acct");
                engine_ci = pgtest_engine_role(conninfo, "oracle_engine", acts.s, reads.len ? reads.s : "");
                sb_done(&acts);
                sb_done(&reads);
        } else
                engine_ci = strdup(conninfo);

        s.policy = policy_yaml(&s);
        char *pfile = rely_asprintf("%s/policy-%d.yaml", dir, idx);
        rely_write(pfile, s.policy, strlen(s.policy));

        /* Now and then a hold through the CLI, with a key written the way an operator might, on an
         * account that may have no row in the subject's table (its rows in other tables still count). */
        if (chance(&r, 25)) {
                int id = 1 + (int) rnd(&r, (unsigned) s.nacct + 5);
                static const char *const before[] = { "00", " ", "", "+", "", "0" }, *const after[] = { "", "", " ", "", "", "" };
                unsigned form = rnd(&r, sizeof(before) / sizeof(before[0]));
                char key[32];
                snprintf(key, sizeof(key), "%s%d%s", before[form], id, after[form]);
                const char *args[] = { "-p", pfile, "-d", engine_ci, "--log-target=console", "hold", "add", s.subject, key,
                                       "--reason", "oracle via cli", "--by", "oracle", NULL };
                char *out = NULL, *err = NULL;
                int rc = pgtest_run(args, NULL, &out, &err);
                char *stored = rely_value(c, "SELECT subject_key FROM retention.holds ORDER BY id DESC LIMIT 1");
                char want[32];
                snprintf(want, sizeof(want), "%d", id);
                if (rc != 0 || !stored || strcmp(stored, want) != 0) {
                        snprintf(msg, sizeof(msg), "hold add %s %s: exit %d, stored key \"%s\" (want \"%s\")\n%s%s", s.subject, key, rc,
                                 stored ? stored : "(none)", want, out, err);
                        scenarios_failed++;
                        scenario_report(&s, msg);
                        ok = false;
                }
                free(stored);
                free(out);
                free(err);
        }

        /* retentiond */
        const char *args[] = { "-p", pfile, "-d", engine_ci, "--hash-key-file", keyfile, "--log-target=console", "--max-clock-skew", "0", "run", NULL };
        char *out = NULL, *err = NULL;
        int rc = pgtest_run(args, NULL, &out, &err);
        free(pfile);

        /* the oracle's now: the frozen instant, or the real clock right after the run */
        if (s.frozen)
                snprintf(s.nlit, sizeof(s.nlit), "'%s'::timestamptz", s.T);
        else {
                char *n = rely_value(c, "SELECT pg_catalog.now()::text");
                snprintf(s.nlit, sizeof(s.nlit), "'%s'::timestamptz", n);
                free(n);
        }
        bool any_tripped = false;
        for (int k = 0; k < s.nrules; k++) {
                oracle_rule(&s, c, &s.rules[k]);
                any_tripped |= s.rules[k].tripped;
                total_tripped += s.rules[k].tripped;
        }

        int want_rc = any_tripped ? 1 : 0;
        if (rc != want_rc) {
                snprintf(msg, sizeof(msg), "retentiond run exited %d, expected %d\nstdout:\n%.3000s\nstderr:\n%.3000s", rc, want_rc, out,
                         err);
                if (ok)
                        scenarios_failed++;
                ok = false;
                scenario_report(&s, msg);
        }

        /* row by row: oa (engine) against ox (oracle), oo tells what each row was */
        for (int i = 0; i < N_TABLES && ok; i++) {
                if (!s.t[i].present)
                        continue;
                const char *t = TI[i].name;
                char *q = rely_asprintf(
                        "SELECT count(*) FILTER (WHERE x.id IS NOT NULL AND a.id IS NULL),"              /* wrongly deleted */
                        " count(*) FILTER (WHERE x.id IS NULL AND a.id IS NOT NULL),"                    /* missed deletion */
                        " count(*) FILTER (WHERE x.id IS NOT NULL AND a.id IS NOT NULL AND row(a.*) IS DISTINCT FROM row(x.*)"
                        "   AND row(x.*) IS NOT DISTINCT FROM row(o.*))," /* altered, oracle kept it */
                        " count(*) FILTER (WHERE x.id IS NOT NULL AND a.id IS NOT NULL AND row(a.*) IS DISTINCT FROM row(x.*)"
                        "   AND row(a.*) IS NOT DISTINCT FROM row(o.*))," /* anonymisation missed */
                        " count(*) FILTER (WHERE x.id IS NOT NULL AND a.id IS NOT NULL AND row(a.*) IS DISTINCT FROM row(x.*)"
                        "   AND row(a.*) IS DISTINCT FROM row(o.*) AND row(x.*) IS DISTINCT FROM row(o.*))," /* wrong form */
                        " count(o.id), count(o.id) FILTER (WHERE x.id IS NULL),"
                        " count(*) FILTER (WHERE x.id IS NOT NULL AND row(x.*) IS DISTINCT FROM row(o.*))"
                        " FROM oo.%s o LEFT JOIN oa.%s a ON a.id = o.id LEFT JOIN ox.%s x ON x.id = o.id",
                        t, t, t);
                PGresult *res = rely_query(c, q);
                free(q);
                long long wrong_del = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
                long long missed = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
                long long wrong_alt = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
                long long missed_anon = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
                long long wrong_form = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
                total_rows += strtoll(PQgetvalue(res, 0, 5), NULL, 10);
                total_deleted += strtoll(PQgetvalue(res, 0, 6), NULL, 10);
                total_anonymised += strtoll(PQgetvalue(res, 0, 7), NULL, 10);
                PQclear(res);
                total_wrong += wrong_del + wrong_alt;
                total_lost += wrong_form;
                total_missed += missed + missed_anon;
                if (wrong_del || missed || wrong_alt || missed_anon || wrong_form) {
                        Sb d = {};
                        sb_printf(&d,
                                  "table %s: %lld wrongly deleted, %lld due rows not deleted, %lld wrongly altered,"
                                  " %lld not anonymised, %lld in a wrong form\n",
                                  t, wrong_del, missed, wrong_alt, missed_anon, wrong_form);
                        char *dq = rely_asprintf(
                                "SELECT o.id, row(o.*)::text, coalesce(row(a.*)::text, '(gone)'), coalesce(row(x.*)::text, '(gone)')"
                                " FROM oo.%s o LEFT JOIN oa.%s a ON a.id = o.id LEFT JOIN ox.%s x ON x.id = o.id"
                                " WHERE row(a.*) IS DISTINCT FROM row(x.*) ORDER BY o.id LIMIT 12",
                                t, t, t);
                        PGresult *dr = rely_query(c, dq);
                        free(dq);
                        sb_printf(&d, "  id | original | retentiond | oracle\n");
                        for (int k = 0; k < PQntuples(dr); k++)
                                sb_printf(&d, "  %s | %s | %s | %s\n", PQgetvalue(dr, k, 0), PQgetvalue(dr, k, 1), PQgetvalue(dr, k, 2),
                                          PQgetvalue(dr, k, 3));
                        PQclear(dr);
                        char *hq = rely_asprintf("SELECT coalesce(string_agg(format('%%s:%%L%%s', id, subject_key,"
                                                 " CASE WHEN released_at IS NOT NULL THEN ' released' WHEN expires_at IS NOT NULL"
                                                 " THEN ' until ' || expires_at ELSE '' END), ', ' ORDER BY id), '')"
                                                 " FROM retention.holds WHERE subject = '%s'",
                                                 s.subject);
                        char *hl = rely_value(c, hq);
                        free(hq);
                        sb_printf(&d, "registry holds of %s (id:key): %s\n", s.subject, hl ? hl : "");
                        free(hl);
                        sb_printf(&d, "retentiond stdout:\n%.4000s\nstderr:\n%.4000s", out, err);
                        if (ok)
                                scenarios_failed++;
                        ok = false;
                        scenario_report(&s, d.s);
                        sb_done(&d);
                }
        }

        /* the audit trail: each rule's counts and outcome equal the oracle's */
        for (int k = 0; k < s.nrules && ok; k++) {
                const RuleS *x = &s.rules[k];
                /* frozen clock: the cutoff is exactly now - retain, computed by PostgreSQL */
                char *cutq = s.frozen ? rely_asprintf("cutoff = %s - '%s'::interval", s.nlit, x->retain) : strdup("true");
                char *q = rely_asprintf(
                        "SELECT outcome, rows_deleted, rows_anonymised, rows_held, rows_skipped_fk, rows_overdue, rows_skipped_unfinished,"
                        " rows_skipped_locked + rows_skipped_refused = 0 AND rows_skipped = rows_skipped_fk + rows_skipped_unfinished,"
                        " %s, coalesce(error, ''), id FROM retention.rule_runs WHERE run_id = (SELECT max(id) FROM retention.runs)"
                        " AND rule = '%s'",
                        cutq, x->name);
                free(cutq);
                PGresult *res = rely_query(c, q);
                free(q);
                if (PQntuples(res) != 1) {
                        snprintf(msg, sizeof(msg), "rule %s: %d rows in retention.rule_runs for the run", x->name, PQntuples(res));
                        PQclear(res);
                        if (ok)
                                scenarios_failed++;
                        ok = false;
                        scenario_report(&s, msg);
                        break;
                }
                const char *outcome = PQgetvalue(res, 0, 0);
                long long del = strtoll(PQgetvalue(res, 0, 1), NULL, 10), anon = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
                long long held = strtoll(PQgetvalue(res, 0, 3), NULL, 10), fk = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
                long long od = strtoll(PQgetvalue(res, 0, 5), NULL, 10), locked = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
                /* nothing else runs here: no row is left locked or refused, only unfinished (breaker) */
                bool reasons_ok = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
                bool cut_ok = strcmp(PQgetvalue(res, 0, 8), "t") == 0;
                /* rows of other tables its deletes removed or set to NULL, per table, as the oracle saw them */
                Sb want_casc = {};
                for (int i = 0; i < N_TABLES; i++)
                        if (x->casc_deleted[i] || x->casc_nulled[i])
                                sb_printf(&want_casc, "oa.%s %lld %lld;", TI[i].name, x->casc_deleted[i], x->casc_nulled[i]);
                char *cq = rely_asprintf("SELECT coalesce(string_agg(format('%%s %%s %%s;', table_name, rows_deleted, rows_nulled), ''"
                                         " ORDER BY table_name), '') FROM retention.rule_run_cascades"
                                         " WHERE rule_run_id = %s AND (rows_deleted > 0 OR rows_nulled > 0)",
                                         PQgetvalue(res, 0, 10));
                char *casc = rely_value(c, cq);
                free(cq);
                bool casc_ok = strcmp(casc ? casc : "", want_casc.s ? want_casc.s : "") == 0;
                const char *want = x->tripped ? "breaker" : "success";
                if (strcmp(outcome, want) != 0 || del != x->deleted || anon != x->anonymised || held != x->held || fk != x->fk ||
                    od != x->overdue || locked != x->left || !cut_ok || !reasons_ok || !casc_ok) {
                        snprintf(msg, sizeof(msg),
                                 "rule %s: audit trail says outcome %s, deleted %lld, anonymised %lld, held %lld, skipped_fk %lld,"
                                 " overdue %lld, skipped_unfinished %lld, cutoff %s, other skip reasons %s, cascades [%s];"
                                 " oracle: %s, %lld, %lld, %lld, %lld, %lld, %lld, cascades [%s]\n%s",
                                 x->name, outcome, del, anon, held, fk, od, locked, cut_ok ? "ok" : "WRONG", reasons_ok ? "0" : "WRONG",
                                 casc ? casc : "", want, x->deleted, x->anonymised, x->held, x->fk, x->overdue, x->left,
                                 want_casc.s ? want_casc.s : "", PQgetvalue(res, 0, 9));
                        if (ok)
                                scenarios_failed++;
                        ok = false;
                        scenario_report(&s, msg);
                }
                free(casc);
                sb_done(&want_casc);
                PQclear(res);
        }
        free(out);
        free(err);
        free(s.policy);
        free(engine_ci);
        scenarios_run++;
        return ok;
}

static void test_oracle(void **state) {
        (void) state;
        conninfo = pgtest_create_db(pg, "oracle");
        PGconn *c = pgtest_connect(conninfo);
        const char *margs[] = { "-d", conninfo, "migrate", NULL };
        char *mout = NULL, *merr = NULL;
        int rc = pgtest_run(margs, NULL, &mout, &merr);
        if (rc != 0)
                fail_msg("migrate failed (%d): %s%s", rc, mout, merr);
        free(mout);
        free(merr);
        /* The test clock: now() resolves to clockhack.now() for every session of this database
         * (pg_catalog must be named after clockhack, or it is searched first). */
        rely_exec(c, "CREATE EXTENSION pgcrypto;"
                     "CREATE SCHEMA clockhack;"
                     "CREATE FUNCTION clockhack.now() RETURNS timestamptz LANGUAGE sql STABLE AS $$ SELECT pg_catalog.now() $$;"
                     "GRANT USAGE ON SCHEMA clockhack TO PUBLIC;"
                     "ALTER DATABASE oracle SET search_path = clockhack, pg_catalog, public;"
                     "SET search_path = clockhack, pg_catalog, public;"
                     /* a hold key as the integer PostgreSQL reads it, NULL when it is none */
                     "CREATE FUNCTION public.oracle_int(k text) RETURNS int LANGUAGE plpgsql IMMUTABLE AS"
                     " $$ BEGIN RETURN k::int; EXCEPTION WHEN others THEN RETURN NULL; END $$;"
                     "CREATE FUNCTION public.oracle_delete(tbl regclass, ids int[], OUT deleted int, OUT refused int)"
                     " LANGUAGE plpgsql AS $$ DECLARE i int; n int; BEGIN deleted := 0; refused := 0;"
                     " FOREACH i IN ARRAY ids LOOP BEGIN EXECUTE format('DELETE FROM %s WHERE id = $1', tbl) USING i;"
                     " GET DIAGNOSTICS n = ROW_COUNT; deleted := deleted + n;"
                     " EXCEPTION WHEN foreign_key_violation THEN refused := refused + 1; END; END LOOP; END $$;");

        dir = rely_tmpdir();
        Rng kr = { base_seed ^ UINT64_C(0x5eed) };
        for (int i = 0; i < 64; i++)
                keyhex[i] = "0123456789abcdef"[rnd(&kr, 16)];
        keyhex[64] = 0;
        /* the key file holds 32 ASCII bytes; the oracle passes the same bytes to hmac() */
        char keybytes[33];
        for (int i = 0; i < 32; i++)
                keybytes[i] = keyhex[i];
        keybytes[32] = 0;
        for (int i = 0; i < 32; i++)
                snprintf(keyhex + 2 * i, 3, "%02x", (unsigned char) keybytes[i]);
        keyfile = rely_asprintf("%s/hash-key", dir);
        rely_write(keyfile, keybytes, 32);

        long n = rely_env_long("RETENTIOND_ORACLE_SCENARIOS", 200);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        fprintf(stderr, "oracle: %ld scenarios, RETENTIOND_ORACLE_SEED=%llu\n", n, (unsigned long long) base_seed);
        for (long i = 0; i < n; i++)
                (void) run_scenario(c, (int) i, base_seed + (uint64_t) i);
        long ms = rely_ms_since(&t0);
        fprintf(stderr,
                "oracle: %ld scenarios (%ld failed) in %ld.%03ld s, seed %llu: %lld rows checked, %lld deleted, %lld anonymised,"
                " %ld rules stopped by the breaker; %lld wrongly deleted or altered, %lld lost (wrong form), %lld missed\n",
                scenarios_run, scenarios_failed, ms / 1000, ms % 1000, (unsigned long long) base_seed, total_rows, total_deleted,
                total_anonymised, total_tripped, total_wrong, total_lost, total_missed);
        PQfinish(c);
        rely_rm_rf(dir);
        free(dir);
        free(keyfile);
        free(conninfo);
        assert_int_equal(scenarios_failed, 0);
        assert_int_equal(total_wrong, 0);
        assert_int_equal(total_lost, 0);
        assert_int_equal(total_missed, 0);
}

static int group_setup(void **state) {
        (void) state;
        base_seed = rely_seed("RETENTIOND_ORACLE_SEED");
        pg = pgtest_start();
        return 0;
}

static int group_teardown(void **state) {
        (void) state;
        pgtest_stop(pg);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_oracle),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
