-- Finding sessions by who they belong to, for identity-provider sign-out (OpenID Connect
-- Back-Channel Logout names a subject or a provider session id). The columns hold keyed
-- digests (HMAC under a key derived from the key ring), never the values themselves.
ALTER TABLE sessions ADD COLUMN subject_digest TEXT;
ALTER TABLE sessions ADD COLUMN sid_digest TEXT;
CREATE INDEX sessions_subject_digest ON sessions (subject_digest);
CREATE INDEX sessions_sid_digest ON sessions (sid_digest);
