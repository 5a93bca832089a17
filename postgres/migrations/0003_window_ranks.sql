-- Rank histograms of the window, so a deep page of the unfiltered or
-- per-proxy list starts its index walk near the page instead of skipping
-- every row before it: the window rows per requests bucket, in total and
-- per proxy. Apply moves a row from its old bucket to its new one in the
-- transaction that changes it; advancing the window recounts them.

-- window_rank_bucket is the first value of the bucket holding v: v itself
-- below 1024, above that v with all but its 7 highest bits cleared (64
-- buckets per power of two, each at most 1/64 of its values wide). Go's
-- rankBucket is the same function.
CREATE FUNCTION window_rank_bucket(v bigint) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE WHEN v < 1024 THEN v
                ELSE (v >> (58 - position(B'1' IN v::bit(64)))) << (58 - position(B'1' IN v::bit(64)))
           END;

CREATE TABLE window_ranks (
    bucket BIGINT PRIMARY KEY,
    paths  BIGINT NOT NULL
);

CREATE TABLE window_proxy_ranks (
    proxy_id TEXT   COLLATE "C" NOT NULL,
    bucket   BIGINT NOT NULL,
    paths    BIGINT NOT NULL,
    PRIMARY KEY (proxy_id, bucket)
);

INSERT INTO window_ranks (bucket, paths)
    SELECT window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 1;
INSERT INTO window_proxy_ranks (proxy_id, bucket, paths)
    SELECT proxy_id, window_rank_bucket(requests), COUNT(*) FROM path_stats_window GROUP BY 1, 2;

-- The histograms' sums are the row counts of the window and of each proxy.
DROP TABLE window_counts;

-- Only a pathstats that keeps the histograms may change the window: its
-- writes set pathstats.window_writer (SET LOCAL) to 3 or more. A node of an
-- older release, still running while its neighbours are upgraded, has its
-- Apply refused (its batches stay in the queue for the upgraded nodes)
-- instead of leaving the histograms behind the window.
CREATE FUNCTION window_writer_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(nullif(current_setting('pathstats.window_writer', true), ''), '0')::int < 3 THEN
        RAISE EXCEPTION 'path_stats_window is kept with rank histograms since schema 3: this pathstats is older, upgrade it'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'to change the window by hand, SET LOCAL pathstats.window_writer = 3 and keep window_ranks and window_proxy_ranks in step';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER window_writer_check
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON path_stats_window
    FOR EACH STATEMENT EXECUTE FUNCTION window_writer_check();
