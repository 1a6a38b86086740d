-- The last federation metadata document each WS-Federation provider served, verified when it
-- was fetched: at start, while the provider's metadata endpoint does not answer, the gateway
-- trusts the certificates of this copy (up to `metadata_max_stale` old) instead of none.
-- Shared by every instance.
CREATE TABLE provider_metadata (
    provider   TEXT NOT NULL,
    source     TEXT NOT NULL,
    document   TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    PRIMARY KEY (provider, source)
);
