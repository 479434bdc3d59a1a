/* report.h — turn run and audit results into text, JSON and events.
 * Counts, names from the policy and times only: never row contents. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "result.h"

void report_run(const RunResult *r, bool json, bool quiet, FILE *f);
/* One event per rule (rule-enforced / rule-failed / breaker-tripped / rows-held / overdue /
 * fk-isolated / rows-skipped) plus run-finished, through the log sink. */
void report_run_events(const RunResult *r);
void report_run_started(int64_t run_id, const char *mode, size_t n_rules);

void report_audit(const RunResult *r, bool json, bool quiet, FILE *f);
/* Events of an audit (overdue rows found, breaker would trip), for the audit timer. */
void report_audit_events(const RunResult *r);
