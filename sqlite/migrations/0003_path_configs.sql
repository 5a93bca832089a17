-- Per-path configuration set by operators (source "manual"). config holds the
-- JSON object {cache, rateLimit, geo}; times are unix milliseconds.
CREATE TABLE path_configs (
    path          TEXT    PRIMARY KEY,
    proxy_id      TEXT    NOT NULL DEFAULT '',
    proxy_pattern TEXT    NOT NULL DEFAULT '',
    config        TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
