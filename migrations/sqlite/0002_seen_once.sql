-- Values that may be used once: assertion ids (replay protection) and login-state ids
-- (single-use wctx/state). Kept until they would have expired anyway.
CREATE TABLE seen_once (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX seen_once_expires_at ON seen_once (expires_at);
