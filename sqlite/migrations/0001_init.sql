-- Hourly aggregates, keyed hour first so that the writes of one flush
-- (all in the current hour) touch neighbouring pages.
CREATE TABLE path_stats_hourly (
    hour_bucket   INTEGER NOT NULL,
    path          TEXT    NOT NULL,
    proxy_id      TEXT    NOT NULL,
    requests      INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    client_errors INTEGER NOT NULL DEFAULT 0,
    status_1xx    INTEGER NOT NULL DEFAULT 0,
    status_2xx    INTEGER NOT NULL DEFAULT 0,
    status_3xx    INTEGER NOT NULL DEFAULT 0,
    status_4xx    INTEGER NOT NULL DEFAULT 0,
    status_5xx    INTEGER NOT NULL DEFAULT 0,
    lat_00        INTEGER NOT NULL DEFAULT 0,
    lat_01        INTEGER NOT NULL DEFAULT 0,
    lat_02        INTEGER NOT NULL DEFAULT 0,
    lat_03        INTEGER NOT NULL DEFAULT 0,
    lat_04        INTEGER NOT NULL DEFAULT 0,
    lat_05        INTEGER NOT NULL DEFAULT 0,
    lat_06        INTEGER NOT NULL DEFAULT 0,
    lat_07        INTEGER NOT NULL DEFAULT 0,
    lat_08        INTEGER NOT NULL DEFAULT 0,
    lat_09        INTEGER NOT NULL DEFAULT 0,
    lat_10        INTEGER NOT NULL DEFAULT 0,
    lat_11        INTEGER NOT NULL DEFAULT 0,
    lat_12        INTEGER NOT NULL DEFAULT 0,
    lat_13        INTEGER NOT NULL DEFAULT 0,
    last_seen_ms  INTEGER NOT NULL DEFAULT 0, -- unix milliseconds of the latest event
    updated_at    INTEGER NOT NULL,           -- unix seconds of the last upsert
    PRIMARY KEY (hour_bucket, path, proxy_id)
) WITHOUT ROWID;

-- Ids of applied batches; a batch whose id is here is skipped.
-- applied_at is in unix milliseconds.
CREATE TABLE batch_ledger (
    batch_id   TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
);
CREATE INDEX batch_ledger_applied_at ON batch_ledger (applied_at);

-- Messages that could never be applied. received_at is in unix milliseconds.
CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY,
    msg_id      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    payload     BLOB,
    received_at INTEGER NOT NULL
);
