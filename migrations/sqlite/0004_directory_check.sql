-- When each session was last confirmed against its tenant's user directory (a CRM user still
-- active): live sessions are checked again every `directory.recheck`. 0 (sessions from before
-- this column) means "never": they are checked at their next request.
ALTER TABLE sessions ADD COLUMN checked_at INTEGER NOT NULL DEFAULT 0;
