-- The hourly walk of the comparison (EachPathHourly) reads every hour of the
-- window in path order, one primary-key range per hour, and needs only the
-- path, requests and errors. Carrying requests and errors in the primary
-- key's index makes that an index-only scan: the heap, in insertion order,
-- would otherwise be visited at random. (Rebuilds the index under an
-- exclusive lock: seconds per million rows.)
ALTER TABLE path_stats_hourly
    DROP CONSTRAINT path_stats_hourly_pkey,
    ADD CONSTRAINT path_stats_hourly_pkey PRIMARY KEY (hour_bucket, path, proxy_id) INCLUDE (requests, errors);
