/* rule-where.h — a rule's `where:` checked by PostgreSQL on its own, wherever a database is at
 * hand (check -d, audit, run, the daemon, explain), before any statement that pastes it touches a
 * row. The loader has already checked it lexically (sqlfrag.h); here PostgreSQL parses it against
 * the rule's table: the statement of plan_where_check_sql() is prepared (as the unnamed statement)
 * and described, never executed. It must have no parameter and exactly one result column, of type
 * boolean; anything but the row t (another alias, an aggregate, a set-returning function, a syntax
 * error, a missing column) is PostgreSQL's error. */
#pragma once

#include <stdbool.h>

#include "pg.h"
#include "plan.h"
#include "policy.h"

/* Checks the where of rule `of` against table t (a rule without where passes). Inside a
 * transaction it works under a savepoint of its own, so a refused where leaves the transaction
 * usable. Returns 0, or a PgErrorClass with *err: for a refused where (rule_where_refused())
 * PostgreSQL's message, DETAIL and HINT, the primary naming the rule; otherwise the error as it
 * came (a lost connection, lock_timeout while the table is locked, ...). Never a PgOutcome: a
 * where PostgreSQL cannot take is an error (PG_ERR_OTHER, SQLSTATE 42804, when only its type is
 * wrong). */
int rule_where_check_one(Pg *pg, const Rule *of, const CatTable *t, PgError *err);
/* Does this PgErrorClass of rule_where_check_one() mean the where itself was refused? */
bool rule_where_refused(int k);

/* Every where that rule r's statements paste: its own and, for a delete rule, that of every other
 * delete rule on the same table (they keep rows r must not delete). Tables the cache lacks are
 * skipped (plan_build() reports them). Returns as rule_where_check_one(). */
int rule_where_check(Pg *pg, const Policy *p, const Rule *r, const CatCache *cache, PgError *err);
