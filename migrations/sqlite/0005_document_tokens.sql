-- Document tokens (OAuth access and refresh tokens for OneDrive/SharePoint and Google Drive).
-- `payload` is sealed with the key ring (AES-256-GCM) under associated data naming the
-- tenant, owner, provider and resource, so a row copied onto another owner does not open.
-- `owner` is a keyed digest of the user's issuer and subject (or `shared` for a tenant-wide
-- token), never the user's name. `generation` grows with every write: a refresh commits only
-- if the row is still the one it read.
CREATE TABLE document_tokens (
    tenant     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    resource   TEXT NOT NULL,
    payload    BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, owner, provider, resource)
);
CREATE INDEX document_tokens_expires_at ON document_tokens (expires_at);
