-- The schema of the PostgreSQL store: the same tables and semantics as the
-- SQLite store. Paths and proxy ids use the "C" collation, so ORDER BY is
-- byte order, as Go's string comparison (ComparePathItems) is.

-- Hourly aggregates, the source of truth.
CREATE TABLE path_stats_hourly (
    hour_bucket   BIGINT NOT NULL,
    path          TEXT   COLLATE "C" NOT NULL,
    proxy_id      TEXT   COLLATE "C" NOT NULL,
    requests      BIGINT NOT NULL DEFAULT 0,
    errors        BIGINT NOT NULL DEFAULT 0,
    client_errors BIGINT NOT NULL DEFAULT 0,
    status_1xx    BIGINT NOT NULL DEFAULT 0,
    status_2xx    BIGINT NOT NULL DEFAULT 0,
    status_3xx    BIGINT NOT NULL DEFAULT 0,
    status_4xx    BIGINT NOT NULL DEFAULT 0,
    status_5xx    BIGINT NOT NULL DEFAULT 0,
    lat_00        BIGINT NOT NULL DEFAULT 0,
    lat_01        BIGINT NOT NULL DEFAULT 0,
    lat_02        BIGINT NOT NULL DEFAULT 0,
    lat_03        BIGINT NOT NULL DEFAULT 0,
    lat_04        BIGINT NOT NULL DEFAULT 0,
    lat_05        BIGINT NOT NULL DEFAULT 0,
    lat_06        BIGINT NOT NULL DEFAULT 0,
    lat_07        BIGINT NOT NULL DEFAULT 0,
    lat_08        BIGINT NOT NULL DEFAULT 0,
    lat_09        BIGINT NOT NULL DEFAULT 0,
    lat_10        BIGINT NOT NULL DEFAULT 0,
    lat_11        BIGINT NOT NULL DEFAULT 0,
    lat_12        BIGINT NOT NULL DEFAULT 0,
    lat_13        BIGINT NOT NULL DEFAULT 0,
    last_seen_ms  BIGINT NOT NULL DEFAULT 0, -- unix milliseconds of the latest event
    updated_at    BIGINT NOT NULL,           -- unix seconds of the last upsert
    PRIMARY KEY (hour_bucket, path, proxy_id)
);
-- HourlySeries reads one path across hours.
CREATE INDEX path_stats_hourly_path ON path_stats_hourly (path, hour_bucket);

-- Ids of applied batches; applied_at is in unix milliseconds.
CREATE TABLE batch_ledger (
    batch_id   TEXT   COLLATE "C" PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
CREATE INDEX batch_ledger_applied_at ON batch_ledger (applied_at);

-- Messages that could never be applied. received_at is in unix milliseconds.
CREATE TABLE dead_letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msg_id      TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    payload     BYTEA,
    received_at BIGINT NOT NULL
);

-- The rolling window: per (path, proxy_id), the sum of the hourly rows with
-- hour_bucket >= window_state.start_hour; rows only while requests > 0.
CREATE TABLE path_stats_window (
    path          TEXT   COLLATE "C" NOT NULL,
    proxy_id      TEXT   COLLATE "C" NOT NULL,
    -- strings.ToLower(path) (computed in Go) when it differs from path,
    -- else NULL: the q filter matches coalesce(path_fold, path).
    path_fold     TEXT   COLLATE "C",
    requests      BIGINT NOT NULL DEFAULT 0,
    errors        BIGINT NOT NULL DEFAULT 0,
    client_errors BIGINT NOT NULL DEFAULT 0,
    status_1xx    BIGINT NOT NULL DEFAULT 0,
    status_2xx    BIGINT NOT NULL DEFAULT 0,
    status_3xx    BIGINT NOT NULL DEFAULT 0,
    status_4xx    BIGINT NOT NULL DEFAULT 0,
    status_5xx    BIGINT NOT NULL DEFAULT 0,
    lat_00        BIGINT NOT NULL DEFAULT 0,
    lat_01        BIGINT NOT NULL DEFAULT 0,
    lat_02        BIGINT NOT NULL DEFAULT 0,
    lat_03        BIGINT NOT NULL DEFAULT 0,
    lat_04        BIGINT NOT NULL DEFAULT 0,
    lat_05        BIGINT NOT NULL DEFAULT 0,
    lat_06        BIGINT NOT NULL DEFAULT 0,
    lat_07        BIGINT NOT NULL DEFAULT 0,
    lat_08        BIGINT NOT NULL DEFAULT 0,
    lat_09        BIGINT NOT NULL DEFAULT 0,
    lat_10        BIGINT NOT NULL DEFAULT 0,
    lat_11        BIGINT NOT NULL DEFAULT 0,
    lat_12        BIGINT NOT NULL DEFAULT 0,
    lat_13        BIGINT NOT NULL DEFAULT 0,
    last_seen_ms  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (path, proxy_id)
);
CREATE INDEX path_stats_window_top ON path_stats_window (requests DESC, path, proxy_id);
CREATE INDEX path_stats_window_proxy ON path_stats_window (proxy_id, requests DESC, path);

-- The window's first hour bucket. No row: the window was never built.
CREATE TABLE window_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    start_hour BIGINT  NOT NULL
);

-- Rows of the window per proxy_id: Apply adds the rows it inserts, advancing
-- the window recounts.
CREATE TABLE window_counts (
    proxy_id TEXT   COLLATE "C" PRIMARY KEY,
    paths    BIGINT NOT NULL
);

-- Per-path configuration (source "manual"): config is the JSON object
-- {cache, rateLimit, geo}; times are unix milliseconds.
CREATE TABLE path_configs (
    path          TEXT   COLLATE "C" PRIMARY KEY,
    proxy_id      TEXT   NOT NULL DEFAULT '',
    proxy_pattern TEXT   NOT NULL DEFAULT '',
    config        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Changes of the migration (canary) config, read newest first by id.
CREATE TABLE migration_history (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms  BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    source TEXT   NOT NULL,
    reason TEXT   NOT NULL DEFAULT '',
    before TEXT   NOT NULL,
    after  TEXT   NOT NULL
);
