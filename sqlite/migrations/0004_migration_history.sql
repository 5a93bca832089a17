-- Changes of the migration (canary) config: when (unix ms), who, how
-- (manual | rollout | auto-rollback), why, and the config before and after
-- as JSON. Read newest first by id.
CREATE TABLE IF NOT EXISTS migration_history (
    id     INTEGER PRIMARY KEY,
    at_ms  INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    source TEXT    NOT NULL,
    reason TEXT    NOT NULL DEFAULT '',
    before TEXT    NOT NULL,
    after  TEXT    NOT NULL
);
