-- What the counties forward (PROTOCOL.md "County hub -> region"): the schools' signed
-- returns with the hubs' receipts, the counties' signed roll-ups, and what the region
-- found wrong with them. Plus the campaign calendar, copied here from
-- schemas/campaigns/ by `region-server migrate` so that SQL can tell who was expected
-- and who was late.

-- The forms of the calendar and their period type (DESIGN section 6).
CREATE TABLE forms (
	form text COLLATE "C" PRIMARY KEY CHECK (form ~ '^[a-z][a-z0-9_]*$'),
	period_type text NOT NULL CHECK (period_type IN ('phase', 'monthly', 'event')),
	event_field text,			-- event forms: the member that gives the period
	CHECK ((period_type = 'event') = (event_field IS NOT NULL))
);

-- Every period of every form. Deadlines are instants: a return the hub received before
-- deadline is on time. Event periods have no due date (FORMS.md: never expected).
CREATE TABLE periods (
	form text COLLATE "C" NOT NULL REFERENCES forms ON DELETE CASCADE,
	period text COLLATE "C" NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2]|P[1-9][0-9]?)$'),
	required boolean NOT NULL,		-- every school open during it must file
	start_date date NOT NULL,
	end_date date NOT NULL,
	due_date date,
	deadline timestamptz,
	expires_at timestamptz NOT NULL,	-- locked from this instant on
	PRIMARY KEY (form, period),
	CHECK (end_date >= start_date),
	CHECK ((due_date IS NULL) = (deadline IS NULL)),
	CHECK (NOT required OR deadline IS NOT NULL)
);

-- Helpers for the generated columns below: each reads one member of a return and gives
-- NULL, never an error, when it is not what the form says, so that a stored value can
-- never make an insert fail. They are cheap on purpose (they run for every stored
-- return): dates stay "YYYY-MM-DD" text, which orders like the dates themselves.

-- An integer member (a JSON number that is a 32-bit integer), or NULL.
CREATE FUNCTION json_int(j jsonb) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(j) = 'number' THEN
		CASE WHEN j::numeric BETWEEN -2147483648 AND 2147483647
			AND j::numeric = trunc(j::numeric) THEN j::numeric::integer END
	END;
$$;

-- A boolean member, or NULL.
CREATE FUNCTION json_bool(j jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(j) = 'boolean' THEN j::boolean END;
$$;

-- The strings of an array member (other elements skipped), or NULL.
CREATE FUNCTION json_strings(j jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(j) = 'array' THEN
		ARRAY(SELECT e #>> '{}' FROM jsonb_array_elements(j) AS e
		      WHERE jsonb_typeof(e) = 'string')
	END;
$$;

-- A string member, or NULL.
CREATE FUNCTION json_string(j jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(j) = 'string' THEN j #>> '{}' END;
$$;

-- The earliest deadline ("YYYY-MM-DD") among the items of a rectification ledger that are
-- not done or verified (FORMS.md): the ledger has an item overdue as of D only if this is
-- before D.
CREATE FUNCTION ledger_open_deadline(items jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT min(json_string(it -> 'deadline'))
	FROM jsonb_array_elements(CASE WHEN jsonb_typeof(items) = 'array' THEN items
				       ELSE '[]'::jsonb END) AS it
	WHERE (it ->> 'status') IS NULL OR (it ->> 'status') NOT IN ('done', 'verified');
$$;

-- "YYYY-MM-DD" as a date, NULL when it is not a valid one (for displaying the text dates).
CREATE FUNCTION iso_date(t text) RETURNS date
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
	IF t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
		RETURN NULL;
	END IF;
	RETURN make_date(substr(t, 1, 4)::integer, substr(t, 6, 2)::integer,
			 substr(t, 9, 2)::integer);
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
	RETURN NULL;
END;
$$;

-- One school return (DESIGN section 4), stored once (idempotent on submission_id). jws is
-- the school's JWS text byte for byte, so anyone can verify it again with any JOSE
-- library; payload is its parsed payload. Under Citus the primary key would become
-- (county_id, submission_id): a return names its county inside the signed payload.
-- The generated columns copy out of the payload what the inspections count and filter
-- on (FORMS.md fixes these names; NULL for other forms and for values that are not what
-- the form says), so that no inspection has to read payloads to choose or count rows.
CREATE TABLE submissions (
	submission_id uuid PRIMARY KEY,
	county_id text COLLATE "C" NOT NULL REFERENCES counties,
	school_id text COLLATE "C" NOT NULL CHECK (school_id ~ '^[0-9]{10}$'),
	form text COLLATE "C" NOT NULL,
	form_version integer NOT NULL CHECK (form_version > 0),
	period text COLLATE "C" NOT NULL,
	payload jsonb NOT NULL CHECK (jsonb_typeof(payload -> 'data') = 'object'),
	jws text NOT NULL,
	payload_sha256 text NOT NULL CHECK (payload_sha256 ~ '^[0-9a-f]{64}$'),
	receipt_jws text NOT NULL,		-- the hub's receipt, as forwarded
	receipt_verified boolean,		-- NULL: not checked
	created_at timestamptz NOT NULL,	-- the school's time, from the payload
	hub_received_at timestamptz NOT NULL,	-- from the receipt
	region_received_at timestamptz NOT NULL DEFAULT now(),
	on_time boolean,			-- the receipt's verdict; NULL: no deadline
	supersedes uuid CHECK (supersedes <> submission_id),
	signature_verified boolean NOT NULL,
	roster_version bigint,			-- the roster whose key verified the signature
	batch_id uuid,
	incident_on text COLLATE "C" GENERATED ALWAYS AS (CASE WHEN form = 'incident'
		THEN json_string(payload #> '{data,occurred_on}') END) STORED,
	incident_level smallint GENERATED ALWAYS AS (CASE WHEN form = 'incident'
		THEN least(greatest(json_int(payload #> '{data,level}'), -1), 99) END) STORED,
	incident_types text[] GENERATED ALWAYS AS (CASE WHEN form = 'incident'
		THEN json_strings(payload #> '{data,types}') END) STORED,
	incident_victims integer GENERATED ALWAYS AS (CASE WHEN form = 'incident'
		THEN json_int(payload #> '{data,victims,female}')
			+ json_int(payload #> '{data,victims,male}') END) STORED,
	incident_perpetrators integer GENERATED ALWAYS AS (CASE WHEN form = 'incident'
		THEN json_int(payload #> '{data,perpetrators,female}')
			+ json_int(payload #> '{data,perpetrators,male}') END) STORED,
	ledger_as_of text COLLATE "C" GENERATED ALWAYS AS (CASE WHEN form = 'rectification'
		THEN json_string(payload #> '{data,as_of}') END) STORED,
	ledger_open_deadline text COLLATE "C" GENERATED ALWAYS AS (CASE WHEN form = 'rectification'
		THEN ledger_open_deadline(payload #> '{data,items}') END) STORED,
	screening_enrolled integer GENERATED ALWAYS AS (CASE WHEN form = 'screening'
		THEN json_int(payload #> '{data,students_enrolled}') END) STORED,
	screening_screened integer GENERATED ALWAYS AS (CASE WHEN form = 'screening'
		THEN json_int(payload #> '{data,students_screened}') END) STORED,
	screening_committee boolean GENERATED ALWAYS AS (CASE WHEN form = 'screening'
		THEN json_bool(payload #> '{data,committee_established}') END) STORED,
	screening_channel boolean GENERATED ALWAYS AS (CASE WHEN form = 'screening'
		THEN json_bool(payload #> '{data,reporting_channel_published}') END) STORED
);
CREATE INDEX submissions_key ON submissions (form, period, county_id, school_id)
	INCLUDE (hub_received_at) WHERE signature_verified;
CREATE INDEX submissions_supersedes ON submissions (supersedes) WHERE supersedes IS NOT NULL;
CREATE INDEX submissions_school ON submissions (school_id, form);

-- The returns that count, kept up to date by the triggers below in the transaction that
-- stores a return, so an inspection sees a return as soon as it is committed (no
-- nightly rebuild). For each school and (form, period) of a phase or monthly form: the
-- latest verified return that no verified return of the same school supersedes ("latest"
-- by the hub's receive time, as the county hub's roll-up takes it, then the school's
-- created_at, then the UUIDv7), with the
-- first time the hub received any verified return for it (timeliness: a correction after
-- the deadline does not make a school late). For event forms (incident): every verified
-- return that none supersedes. ref_date orders a school's returns of one form across
-- periods: the incident's day, the ledger's as-of day. The other columns are copies of
-- the return's generated columns, so that the inspections read this narrow table only.
CREATE TABLE submission_current (
	submission_id uuid PRIMARY KEY,
	county_id text COLLATE "C" NOT NULL,
	form text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	school_id text COLLATE "C" NOT NULL,
	is_event boolean NOT NULL,
	created_at timestamptz NOT NULL,
	hub_received_at timestamptz NOT NULL,
	first_received_at timestamptz NOT NULL,
	payload_sha256 text NOT NULL,
	on_time boolean,
	ref_date text COLLATE "C",		-- "YYYY-MM-DD"
	level smallint,
	types text[],
	victims integer,
	perpetrators integer,
	open_deadline text COLLATE "C",
	enrolled integer,
	screened integer,
	committee boolean,
	channel boolean
);
-- one head per (county, form, period, school) for phase and monthly forms
CREATE UNIQUE INDEX submission_current_key ON submission_current (form, period, county_id, school_id,
	(CASE WHEN is_event THEN submission_id ELSE '00000000-0000-0000-0000-000000000000' END))
	INCLUDE (first_received_at);
CREATE INDEX submission_current_events ON submission_current (form, ref_date, county_id)
	WHERE is_event;
CREATE INDEX submission_current_by_date ON submission_current
	(form, county_id, school_id, ref_date DESC, period DESC)
	INCLUDE (open_deadline, submission_id) WHERE NOT is_event;
-- the planner would otherwise take form, is_event and period for independent
CREATE STATISTICS submission_current_deps (dependencies, mcv) ON form, period, is_event
	FROM submission_current;

-- Recomputes the heads of the given (county, school, form, period) keys from submissions.
-- Writers of one county take turns (a transaction-level advisory lock per county), and
-- each statement here sees what the previous writer committed: run it, as the triggers
-- do, in READ COMMITTED transactions.
CREATE FUNCTION submission_current_refresh(p_county text[], p_school text[], p_form text[],
					   p_period text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1919248229, hashtext(c))
	FROM (SELECT DISTINCT c FROM unnest(p_county) AS c ORDER BY c) l;
	DELETE FROM submission_current h
	USING unnest(p_county, p_school, p_form, p_period) AS k(county_id, school_id, form, period)
	WHERE h.form = k.form AND h.period = k.period AND h.county_id = k.county_id
		AND h.school_id = k.school_id;
	INSERT INTO submission_current
	SELECT DISTINCT ON (c.form, c.period, c.county_id, c.school_id,
			    CASE WHEN c.is_event THEN c.submission_id END)
		c.submission_id, c.county_id, c.form, c.period, c.school_id, c.is_event,
		c.created_at, c.hub_received_at,
		CASE WHEN c.is_event THEN c.hub_received_at ELSE c.first_received_at END,
		c.payload_sha256, c.on_time, coalesce(c.incident_on, c.ledger_as_of), c.incident_level,
		c.incident_types, c.incident_victims, c.incident_perpetrators,
		c.ledger_open_deadline, c.screening_enrolled, c.screening_screened,
		c.screening_committee, c.screening_channel
	FROM (
		SELECT s.*, coalesce(f.period_type = 'event', false) AS is_event,
			min(s.hub_received_at) OVER (PARTITION BY s.form, s.period, s.county_id,
							      s.school_id) AS first_received_at
		FROM (SELECT DISTINCT * FROM unnest(p_county, p_school, p_form, p_period)
			AS k(county_id, school_id, form, period)) k
		JOIN submissions s ON s.form = k.form AND s.period = k.period
			AND s.county_id = k.county_id AND s.school_id = k.school_id
			AND s.signature_verified
		LEFT JOIN forms f ON f.form = s.form
	) c
	WHERE NOT EXISTS (SELECT 1 FROM submissions x
			  WHERE x.supersedes = c.submission_id AND x.school_id = c.school_id
				AND x.signature_verified)
	ORDER BY c.form, c.period, c.county_id, c.school_id,
		CASE WHEN c.is_event THEN c.submission_id END, c.hub_received_at DESC,
		c.created_at DESC, c.submission_id DESC;
END;
$$;

-- Rebuilds every head (after a form changed its period type; see region-server migrate).
CREATE FUNCTION submission_current_rebuild(p_form text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	k record;
BEGIN
	SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
		array_agg(period) AS p INTO k
	FROM (SELECT DISTINCT county_id, school_id, form, period FROM submissions
	      WHERE p_form IS NULL OR form = p_form) d;
	IF p_form IS NULL THEN
		DELETE FROM submission_current;
	END IF;
	IF k.c IS NOT NULL THEN
		PERFORM submission_current_refresh(k.c, k.s, k.f, k.p);
	END IF;
END;
$$;

-- The keys a statement touched: those of the rows it wrote or removed, and of the returns
-- those rows supersede (a correction may move a return to another period).
CREATE FUNCTION submissions_touched() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	k record;
BEGIN
	IF TG_OP = 'INSERT' THEN
		SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
			array_agg(period) AS p INTO k
		FROM (SELECT n.county_id, n.school_id, n.form, n.period FROM new_rows n
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period
		      FROM new_rows n JOIN submissions o ON o.submission_id = n.supersedes) d;
	ELSIF TG_OP = 'UPDATE' THEN
		SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
			array_agg(period) AS p INTO k
		FROM (SELECT n.county_id, n.school_id, n.form, n.period FROM new_rows n
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period FROM old_rows o
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period
		      FROM (SELECT supersedes FROM new_rows UNION SELECT supersedes FROM old_rows) n
		      JOIN submissions o ON o.submission_id = n.supersedes) d;
	ELSE
		SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
			array_agg(period) AS p INTO k
		FROM (SELECT o.county_id, o.school_id, o.form, o.period FROM old_rows o
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period
		      FROM old_rows n JOIN submissions o ON o.submission_id = n.supersedes) d;
	END IF;
	IF k.c IS NOT NULL THEN
		PERFORM submission_current_refresh(k.c, k.s, k.f, k.p);
	END IF;
	RETURN NULL;
END;
$$;

CREATE TRIGGER submissions_current_insert AFTER INSERT ON submissions
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submissions_touched();
CREATE TRIGGER submissions_current_update AFTER UPDATE ON submissions
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submissions_touched();
CREATE TRIGGER submissions_current_delete AFTER DELETE ON submissions
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submissions_touched();

-- A county-signed roll-up of one (form, period); idempotent on (county, form, period,
-- computed_at). submissions lists the returns it covers, with their hashes.
CREATE TABLE rollups (
	county_id text COLLATE "C" NOT NULL REFERENCES counties,
	rollup_id bigint GENERATED ALWAYS AS IDENTITY,
	form text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	status text NOT NULL CHECK (status IN ('provisional', 'final')),
	computed_at timestamptz NOT NULL,
	expected integer CHECK (expected >= 0),
	received integer CHECK (received >= 0),
	on_time integer CHECK (on_time >= 0),
	rollup jsonb NOT NULL,			-- the roll-up object (x-rollup of the form)
	missing text[] NOT NULL DEFAULT '{}',
	payload jsonb NOT NULL,
	jws text NOT NULL,
	signature_verified boolean NOT NULL,
	region_received_at timestamptz NOT NULL DEFAULT now(),
	batch_id uuid,
	PRIMARY KEY (county_id, rollup_id),
	UNIQUE (county_id, form, period, computed_at)
);
CREATE INDEX rollups_form_period ON rollups (form, period, county_id, computed_at DESC);

CREATE TABLE rollup_submissions (
	county_id text COLLATE "C" NOT NULL,
	rollup_id bigint NOT NULL,
	submission_id uuid NOT NULL,
	sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
	PRIMARY KEY (county_id, rollup_id, submission_id),
	FOREIGN KEY (county_id, rollup_id) REFERENCES rollups ON DELETE CASCADE
);
CREATE INDEX rollup_submissions_submission ON rollup_submissions (submission_id);
CREATE INDEX rollup_submissions_rollup ON rollup_submissions (rollup_id);

-- What the region refused or found wrong (DESIGN section 9): a school signature that
-- does not verify, a roll-up that does not match its returns, ... Never a silent
-- overwrite: the evidence is kept.
CREATE TABLE integrity_findings (
	county_id text COLLATE "C" NOT NULL,
	finding_id bigint GENERATED ALWAYS AS IDENTITY,
	found_at timestamptz NOT NULL DEFAULT now(),
	kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
	form text COLLATE "C",
	period text COLLATE "C",
	school_id text COLLATE "C",
	submission_id uuid,
	batch_id uuid,
	detail text NOT NULL,
	evidence text,				-- the offending item's text, when there is one
	PRIMARY KEY (county_id, finding_id)
);
CREATE INDEX integrity_findings_form_period ON integrity_findings (form, period, county_id);
CREATE INDEX integrity_findings_submission ON integrity_findings (submission_id)
	WHERE submission_id IS NOT NULL;

-- The returns that count, with all their columns: phase and monthly forms, event forms,
-- and both. Filter on form, period, county_id and school_id: they come from
-- submission_current and its indexes.
CREATE VIEW current_submissions AS
SELECT h.submission_id, h.county_id, h.school_id, h.form, h.period, h.is_event,
	h.first_received_at, h.ref_date, s.form_version, s.payload, s.jws, s.payload_sha256,
	s.receipt_jws, s.receipt_verified, s.created_at, s.hub_received_at,
	s.region_received_at, s.on_time, s.supersedes, s.signature_verified, s.roster_version,
	s.batch_id, s.incident_on, s.incident_level, s.ledger_as_of, s.ledger_open_deadline
FROM submission_current h
JOIN submissions s ON s.submission_id = h.submission_id;

CREATE VIEW current_returns AS
SELECT * FROM current_submissions WHERE NOT is_event;

CREATE VIEW current_events AS
SELECT * FROM current_submissions WHERE is_event;
