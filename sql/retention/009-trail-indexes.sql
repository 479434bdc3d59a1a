-- 009-trail-indexes.sql — retention schema version 9: what every run reads of the audit trail is
-- found through an index, not by reading the whole trail. The trail grows with every run (a daemon
-- every five minutes writes about 100,000 runs a year, and a rule run per rule and run) until it is
-- pruned; before this version three reads scanned all of it:
--   * the start of every run, which asks whether a run of a session that no longer exists is still
--     marked running (retention.close_abandoned_runs() and the engine's read before it): 48 ms on
--     200,000 runs, the whole of a run's fixed cost twice over;
--   * the daemon's health after every run, and `status`, which read each rule's latest rule runs:
--     2.3 s for five rules on 1,000,000 rule runs;
--   * the daemon's claim of a rule's slot, which reads the rule's latest rule run.
-- Two indexes: the runs still marked running (almost always none, so the index is a few pages),
-- and the rule runs by rule in the order they began. Neither indexed column of rule_runs changes
-- after the INSERT, so the engine's updates of a rule run's counts stay HOT updates; a run's end
-- (its outcome leaves 'running', the partial index's predicate) is not a HOT update: one per run.
-- Applied by `retentiond migrate` inside one transaction after it has checked the version; safe to
-- run twice. No transaction control, no application data and no personal data here.

CREATE INDEX IF NOT EXISTS runs_running_idx ON retention.runs (backend_pid) WHERE outcome = 'running';
COMMENT ON INDEX retention.runs_running_idx IS
        'The runs still marked running, by their session: whether one was abandoned is read at the start of every run.';

CREATE INDEX IF NOT EXISTS rule_runs_rule_idx ON retention.rule_runs (rule, id);
COMMENT ON INDEX retention.rule_runs_rule_idx IS
        'A rule''s rule runs in the order they began: its latest, its last success, its failures since (status, the '
        'daemon''s health and slot claims).';

INSERT INTO retention.schema_version (version) VALUES (9) ON CONFLICT (version) DO NOTHING;
