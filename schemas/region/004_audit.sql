-- Who looked at what (DESIGN section 7: every read of school-level incident data at the
-- region is recorded; issue 5: every inspection call). Append-only: rows can be added and
-- read, never changed or removed, whoever asks (a trigger refuses UPDATE, DELETE and
-- TRUNCATE even to the table's owner; the privileges say so too).
CREATE TABLE audit_log (
	county_id text COLLATE "C",		-- the county whose data was read; NULL: all
	audit_id bigint GENERATED ALWAYS AS IDENTITY,
	at timestamptz NOT NULL DEFAULT now(),
	who text NOT NULL,			-- the token's name (or the database user)
	role text,
	query text NOT NULL,			-- the inspection's name
	parameters jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
	rows_returned bigint CHECK (rows_returned >= 0),
	PRIMARY KEY (audit_id)
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_who ON audit_log (who, at);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_append_only
	BEFORE UPDATE OR DELETE ON audit_log
	FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate
	BEFORE TRUNCATE ON audit_log
	FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
