-- The migrations applied to this database, one row each, written by `region-server
-- migrate` in the same transaction as the migration itself. The file's SHA-256 is kept so
-- that a migration edited after it was applied is refused instead of silently skipped.
CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY CHECK (version > 0),
	name text NOT NULL,
	sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	applied_at timestamptz NOT NULL DEFAULT now()
);
