-- Vestibule's shared state on PostgreSQL (several gateway instances, one database). The same
-- tables as the embedded SQLite store (migrations/sqlite), in one step: times are Unix
-- seconds (BIGINT), sealed payloads BYTEA. Nothing here names a user in clear: payloads are
-- sealed with the key ring (AES-256-GCM), lookup columns hold keyed digests.

-- Server-side sessions.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    payload        BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    -- Keyed digests of issuer + subject and issuer + provider session id (identity-provider
    -- sign-out finds sessions by them; document tokens are owned by the subject digest).
    subject_digest TEXT,
    sid_digest     TEXT,
    -- When the tenant's user directory last confirmed the session's user (0: never).
    checked_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at ON sessions (last_seen_at);
CREATE INDEX sessions_subject_digest ON sessions (subject_digest);
CREATE INDEX sessions_sid_digest ON sessions (sid_digest);

-- Values that may be used once: assertion ids (replay protection), login-state ids
-- (single-use wctx/state), logout-token ids. Kept until they would have expired anyway.
CREATE TABLE seen_once (
    kind       TEXT NOT NULL,
    key        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX seen_once_expires_at ON seen_once (expires_at);

-- Document tokens, sealed under associated data naming tenant, owner, provider and resource.
-- `generation` grows with every write (compare-and-set); `refresh_at` is when the background
-- refresher should look at the record (NULL: nothing to refresh).
CREATE TABLE document_tokens (
    tenant     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    resource   TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    refresh_at BIGINT,
    PRIMARY KEY (tenant, owner, provider, resource)
);
CREATE INDEX document_tokens_refresh_at ON document_tokens (refresh_at);
