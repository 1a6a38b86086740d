-- When the background refresher should look at a token record: the access token's expiry for
-- a usable record with a refresh token, NULL for records it has nothing to do with (the grant
-- is gone, a resource minted on demand from another record's refresh token). The status
-- itself stays sealed; this column only says "due by then".
ALTER TABLE document_tokens ADD COLUMN refresh_at INTEGER;
UPDATE document_tokens SET refresh_at = expires_at;
CREATE INDEX document_tokens_refresh_at ON document_tokens (refresh_at);
