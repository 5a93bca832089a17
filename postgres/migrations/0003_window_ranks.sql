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
