-- The rolling window: per (path, proxy_id), the sum of the hourly rows with
-- hour_bucket >= window_state.start_hour. Apply adds to it in the same
-- transaction as the hourly rows; advancing the window subtracts the hours
-- that leave it. Rows only exist while requests > 0. The hourly rows stay the
-- source of truth: the window can always be rebuilt from them.
CREATE TABLE path_stats_window (
    path          TEXT    NOT NULL,
    proxy_id      TEXT    NOT NULL,
    -- strings.ToLower(path) when it differs from path, else NULL: the q filter
    -- matches ifnull(path_fold, path), and lowercase paths cost nothing.
    path_fold     TEXT,
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
    PRIMARY KEY (path, proxy_id)
) WITHOUT ROWID;

-- Pages in read order, overall and per proxy. Both also carry path_fold, so
-- the q filter and its count run on the index alone.
CREATE INDEX path_stats_window_top ON path_stats_window (requests DESC, path, proxy_id, path_fold);
CREATE INDEX path_stats_window_proxy ON path_stats_window (proxy_id, requests DESC, path, path_fold);

-- The window's first hour bucket. No row: the window was never built.
CREATE TABLE window_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    start_hour INTEGER NOT NULL
);

-- Rows of the window per proxy_id, kept by triggers, so the total of an
-- unfiltered or proxyId page is one lookup instead of an index count.
-- (An upsert that updates an existing row fires no INSERT trigger.)
CREATE TABLE window_counts (
    proxy_id TEXT    PRIMARY KEY,
    paths    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER path_stats_window_counted AFTER INSERT ON path_stats_window BEGIN
    INSERT INTO window_counts (proxy_id, paths) VALUES (NEW.proxy_id, 1)
    ON CONFLICT (proxy_id) DO UPDATE SET paths = paths + 1;
END;

CREATE TRIGGER path_stats_window_uncounted AFTER DELETE ON path_stats_window BEGIN
    UPDATE window_counts SET paths = paths - 1 WHERE proxy_id = OLD.proxy_id;
END;
