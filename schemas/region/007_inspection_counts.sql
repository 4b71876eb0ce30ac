-- Inspections within 100 ms on a province's data (issue 5 "Benchmark": each query p95 <=
-- 100 ms on bench/region's 30,000 schools and 405,000 returns), still counted from what
-- the ingest commits (no nightly rebuild), with the same figures as before.
--
-- 1. roster_current_schools: the schools of each county's current roster as a table keyed
--    (county_id, school_id): a name or "is it expected" is one index probe.
-- 2. period_counts: per (form, period, county), what late-returns and screening-coverage
--    add up over every school; screening_schools: the rows of screening-coverage's school
--    list. Both are kept by submission_current_refresh() for the keys it touches, and by
--    triggers when a county's current roster changes or a period's dates change; each
--    recounts whole keys, so that the figures cannot drift. The late and missing schools
--    are listed only in the counties period_counts says have some.
-- 3. iso_date() that the planner inlines (the old one cost 15 us a call, and the lists call
--    it for every row), and the lists read each jsonb member once.
-- 4. incidents: counted once per (county, level, list of types) and then split by type,
--    from an index that holds every figure (no table access).
-- 5. overdue-rectification and follow-up: each ledger head keeps its open items
--    (open_items), so that no payload is read.

-- 3. "YYYY-MM-DD" as a date, NULL when it is not a valid one, as in 006_inspection_speed.sql.
-- Not STRICT, and only immutable calls inside, so that it is inlined; the common case (a
-- day 01 to 28 of a month 01 to 12) is told apart by comparing text.
CREATE OR REPLACE FUNCTION iso_date(t text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE
		WHEN t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN NULL
		WHEN substr(t, 9, 2) COLLATE "C" BETWEEN '01' AND '28'
			AND substr(t, 6, 2) COLLATE "C" BETWEEN '01' AND '12'
			AND left(t, 4) <> '0000'
			THEN make_date(left(t, 4)::integer, substr(t, 6, 2)::integer,
				       substr(t, 9, 2)::integer)
		WHEN substr(t, 1, 4)::integer < 1 OR substr(t, 6, 2)::integer NOT BETWEEN 1 AND 12
			THEN NULL
		WHEN substr(t, 9, 2)::integer BETWEEN 1 AND
			extract(day FROM make_date(substr(t, 1, 4)::integer, substr(t, 6, 2)::integer, 1)
				+ interval '1 month - 1 day')::integer
			THEN make_date(substr(t, 1, 4)::integer, substr(t, 6, 2)::integer,
				       substr(t, 9, 2)::integer)
	END;
$$;

-- 1. What roster_current shows, for the inspections.
CREATE TABLE roster_current_schools (
	county_id text COLLATE "C" NOT NULL,
	school_id text COLLATE "C" NOT NULL,
	name text NOT NULL,
	opened date,
	closed date,
	PRIMARY KEY (county_id, school_id)
);
COMMENT ON TABLE roster_current_schools IS
	'the schools of each county''s current roster (roster_current), kept by triggers on '
	'counties and roster_schools';

-- 2. The figures of each (form, period, county), as period_schools() and the heads of
-- phase and monthly forms (submission_current) give them.
CREATE TABLE period_counts (
	form text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	county_id text COLLATE "C" NOT NULL,
	expected integer NOT NULL,	-- schools of the current roster open during the period
	heads integer NOT NULL,		-- schools with a return that counts
	received integer NOT NULL,	-- of those, the expected ones
	on_time integer NOT NULL,	-- of those, first received before the deadline
	enrolled bigint,		-- sums over the heads, as sum() gives them (NULL: no value)
	screened bigint,
	no_committee integer NOT NULL,	-- heads that said false
	no_channel integer NOT NULL,
	PRIMARY KEY (form, period, county_id)
);
COMMENT ON TABLE period_counts IS
	'per (form, period, county): expected, received, on time and the screening sums, kept '
	'by submission_current_refresh() and by triggers on counties, roster_schools and periods';

-- The dates of each period that period_counts was counted with: region-server migrate
-- deletes and inserts every period at each run, and only a real change is recounted.
CREATE TABLE period_counts_basis (
	form text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	start_date date NOT NULL,
	end_date date NOT NULL,
	deadline timestamptz,
	PRIMARY KEY (form, period)
);

-- Recounts the (form, period, county) keys given (parallel arrays; repeats are fine): one
-- index scan of the county's roster and one of its heads each. The caller holds the
-- counties' advisory locks (as submission_current_refresh() takes them), so that no other
-- writer of their heads or rosters runs meanwhile. A key whose period is not in the
-- calendar (any more) is counted without expected schools, and its period loses its
-- basis, so that the whole period is recounted if it comes back.
CREATE FUNCTION period_counts_recount(p_form text[], p_period text[], p_county text[])
RETURNS void
LANGUAGE sql AS $$
	DELETE FROM period_counts_basis b
	USING unnest(p_form, p_period) AS k(form, period)
	WHERE b.form = k.form AND b.period = k.period
		AND NOT EXISTS (SELECT 1 FROM periods p WHERE p.form = k.form AND p.period = k.period);
	DELETE FROM period_counts n
	USING unnest(p_form, p_period, p_county) AS k(form, period, county_id)
	WHERE n.form = k.form AND n.period = k.period AND n.county_id = k.county_id;
	INSERT INTO period_counts
	SELECT k.form, k.period, k.county_id, e.n, h.heads, h.received, h.on_time, h.enrolled,
		h.screened, h.no_committee, h.no_channel
	FROM (SELECT DISTINCT * FROM unnest(p_form, p_period, p_county)
	      AS k(form, period, county_id)) k
	LEFT JOIN periods p ON p.form = k.form AND p.period = k.period
	CROSS JOIN LATERAL (
		SELECT count(*) AS n
		FROM roster_current_schools r
		WHERE r.county_id = k.county_id AND p.period IS NOT NULL
			AND (r.opened IS NULL OR r.opened <= p.end_date)
			AND (r.closed IS NULL OR r.closed >= p.start_date)
	) e
	CROSS JOIN LATERAL (
		SELECT count(*) AS heads, count(r.school_id) AS received,
			count(r.school_id) FILTER (WHERE h.first_received_at < p.deadline) AS on_time,
			sum(h.enrolled) AS enrolled, sum(h.screened) AS screened,
			count(*) FILTER (WHERE NOT h.committee) AS no_committee,
			count(*) FILTER (WHERE NOT h.channel) AS no_channel
		FROM submission_current h
		LEFT JOIN roster_current_schools r ON r.county_id = h.county_id
			AND r.school_id = h.school_id AND p.period IS NOT NULL
			AND (r.opened IS NULL OR r.opened <= p.end_date)
			AND (r.closed IS NULL OR r.closed >= p.start_date)
		WHERE h.form = k.form AND h.period = k.period AND h.county_id = k.county_id
			AND NOT h.is_event
	) h;
$$;

-- The school list of screening-coverage: for each screening period, every school expected
-- (period_schools()) and every school with a return that counts, with that return's
-- figures.
CREATE TABLE screening_schools (
	period text COLLATE "C" NOT NULL,
	county_id text COLLATE "C" NOT NULL,
	school_id text COLLATE "C" NOT NULL,
	name text,			-- in the county's current roster; NULL: not in it
	submission_id uuid,		-- the return that counts; NULL: none
	enrolled integer,
	screened integer,
	coverage numeric,		-- screened / enrolled, 4 decimals
	committee boolean,
	channel boolean,
	-- every column in the index: a period's list is one index-only scan, in its order (a
	-- sort of 30,000 rows on two text keys would cost more than everything else)
	PRIMARY KEY (period, county_id, school_id)
		INCLUDE (name, submission_id, enrolled, screened, coverage, committee, channel)
);
COMMENT ON TABLE screening_schools IS
	'the rows of screening_coverage_schools(), kept by submission_current_refresh() and by '
	'triggers on counties, roster_schools and periods';

-- Recomputes the rows of the given (period, county, school) keys of screening.
CREATE FUNCTION screening_schools_recount(p_period text[], p_county text[], p_school text[])
RETURNS void
LANGUAGE sql AS $$
	DELETE FROM screening_schools s
	USING unnest(p_period, p_county, p_school) AS k(period, county_id, school_id)
	WHERE s.period = k.period AND s.county_id = k.county_id AND s.school_id = k.school_id;
	INSERT INTO screening_schools
	SELECT k.period, k.county_id, k.school_id, r.name, h.submission_id, h.enrolled, h.screened,
		round(h.screened::numeric / nullif(h.enrolled, 0), 4), h.committee, h.channel
	FROM (SELECT DISTINCT * FROM unnest(p_period, p_county, p_school)
	      AS k(period, county_id, school_id)) k
	LEFT JOIN periods p ON p.form = 'screening' AND p.period = k.period
	LEFT JOIN roster_current_schools r ON r.county_id = k.county_id
		AND r.school_id = k.school_id
	LEFT JOIN submission_current h ON h.form = 'screening' AND h.period = k.period
		AND h.county_id = k.county_id AND h.school_id = k.school_id AND NOT h.is_event
	WHERE h.submission_id IS NOT NULL
		OR (p.period IS NOT NULL AND r.school_id IS NOT NULL
		    AND (r.opened IS NULL OR r.opened <= p.end_date)
		    AND (r.closed IS NULL OR r.closed >= p.start_date));
$$;

-- Recomputes the screening rows of the given periods and counties (NULL: all).
CREATE FUNCTION screening_schools_rebuild(p_period text[], p_county text[]) RETURNS void
LANGUAGE sql AS $$
	SELECT screening_schools_recount(array_agg(period), array_agg(county_id),
					 array_agg(school_id))
	FROM (SELECT p.period, r.county_id, r.school_id
	      FROM periods p CROSS JOIN roster_current_schools r
	      WHERE p.form = 'screening' AND (p_period IS NULL OR p.period = ANY (p_period))
		AND (p_county IS NULL OR r.county_id = ANY (p_county))
	      UNION
	      SELECT h.period, h.county_id, h.school_id
	      FROM submission_current h
	      WHERE h.form = 'screening' AND NOT h.is_event
		AND (p_period IS NULL OR h.period = ANY (p_period))
		AND (p_county IS NULL OR h.county_id = ANY (p_county))
	      UNION
	      SELECT s.period, s.county_id, s.school_id
	      FROM screening_schools s
	      WHERE (p_period IS NULL OR s.period = ANY (p_period))
		AND (p_county IS NULL OR s.county_id = ANY (p_county))) k;
$$;

-- The current roster of the given counties changed: copies it, and recounts every period
-- of those counties and their screening lists.
CREATE FUNCTION roster_current_changed(p_county text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	k record;
BEGIN
	PERFORM pg_advisory_xact_lock(1919248229, hashtext(c))
	FROM (SELECT DISTINCT c FROM unnest(p_county) AS c ORDER BY c) l;
	DELETE FROM roster_current_schools WHERE county_id = ANY (p_county);
	INSERT INTO roster_current_schools
	SELECT r.county_id, r.school_id, r.name, r.opened, r.closed
	FROM roster_current r
	WHERE r.county_id = ANY (p_county);
	SELECT array_agg(f) AS f, array_agg(p) AS p, array_agg(c) AS c INTO k
	FROM (SELECT p.form AS f, p.period AS p, c.c
	      FROM periods p CROSS JOIN (SELECT DISTINCT c FROM unnest(p_county) AS c) c
	      UNION
	      SELECT n.form, n.period, n.county_id FROM period_counts n
	      WHERE n.county_id = ANY (p_county)) d;
	IF k.c IS NOT NULL THEN
		PERFORM period_counts_recount(k.f, k.p, k.c);
	END IF;
	PERFORM screening_schools_rebuild(NULL, p_county);
END;
$$;

-- Recounts, in every county, the given (form, period) keys whose dates or deadline differ
-- from those they were counted with (and the screening lists of those periods), and
-- records the new dates.
CREATE FUNCTION period_counts_recount_periods(p_form text[], p_period text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	k record;
	screening text[];
BEGIN
	SELECT array_agg(p.form) AS f, array_agg(p.period) AS p INTO k
	FROM (SELECT DISTINCT * FROM unnest(p_form, p_period) AS x(form, period)) x
	JOIN periods p ON p.form = x.form AND p.period = x.period
	LEFT JOIN period_counts_basis b ON b.form = p.form AND b.period = p.period
	WHERE (b.start_date, b.end_date, b.deadline) IS DISTINCT FROM
		(p.start_date, p.end_date, p.deadline);
	IF k.f IS NULL THEN
		RETURN;
	END IF;
	PERFORM pg_advisory_xact_lock(1919248229, hashtext(c.county_id))
	FROM (SELECT county_id FROM counties ORDER BY county_id) c;
	PERFORM period_counts_recount(array_agg(x.f), array_agg(x.p), array_agg(c.county_id))
	FROM unnest(k.f, k.p) AS x(f, p) CROSS JOIN counties c;
	screening := ARRAY(SELECT x.p FROM unnest(k.f, k.p) AS x(f, p) WHERE x.f = 'screening');
	IF cardinality(screening) > 0 THEN
		PERFORM screening_schools_rebuild(screening, NULL);
	END IF;
	INSERT INTO period_counts_basis AS b
	SELECT p.form, p.period, p.start_date, p.end_date, p.deadline
	FROM unnest(k.f, k.p) AS x(f, p) JOIN periods p ON p.form = x.f AND p.period = x.p
	ON CONFLICT (form, period) DO UPDATE SET start_date = excluded.start_date,
		end_date = excluded.end_date, deadline = excluded.deadline;
END;
$$;

-- A period written. A deleted one is never asked for (the inspections check that the
-- period exists), so its counts may stay until it comes back.
CREATE FUNCTION periods_recount() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM period_counts_recount_periods(array_agg(n.form), array_agg(n.period))
	FROM new_rows n;
	RETURN NULL;
END;
$$;
CREATE TRIGGER periods_counts_insert AFTER INSERT ON periods
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION periods_recount();
CREATE TRIGGER periods_counts_update AFTER UPDATE ON periods
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION periods_recount();

-- A county's current roster changed: rosters_track_latest() moved roster_version, or
-- schools of the current version were written.
CREATE FUNCTION counties_roster_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	c text[];
BEGIN
	IF TG_OP = 'INSERT' THEN
		SELECT array_agg(n.county_id) INTO c FROM new_rows n WHERE n.roster_version IS NOT NULL;
	ELSE
		SELECT array_agg(n.county_id) INTO c
		FROM new_rows n JOIN old_rows o ON o.county_id = n.county_id
		WHERE o.roster_version IS DISTINCT FROM n.roster_version;
	END IF;
	IF c IS NOT NULL THEN
		PERFORM roster_current_changed(c);
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER counties_roster_insert AFTER INSERT ON counties
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION counties_roster_changed();
CREATE TRIGGER counties_roster_update AFTER UPDATE ON counties
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION counties_roster_changed();

CREATE FUNCTION roster_schools_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	c text[];
BEGIN
	IF TG_OP = 'INSERT' THEN
		SELECT array_agg(DISTINCT k.county_id) INTO c
		FROM new_rows k JOIN counties x ON x.county_id = k.county_id
			AND x.roster_version = k.version;
	ELSIF TG_OP = 'UPDATE' THEN
		SELECT array_agg(DISTINCT k.county_id) INTO c
		FROM (SELECT county_id, version FROM new_rows
		      UNION SELECT county_id, version FROM old_rows) k
		JOIN counties x ON x.county_id = k.county_id AND x.roster_version = k.version;
	ELSE
		SELECT array_agg(DISTINCT k.county_id) INTO c
		FROM old_rows k JOIN counties x ON x.county_id = k.county_id
			AND x.roster_version = k.version;
	END IF;
	IF c IS NOT NULL THEN
		PERFORM roster_current_changed(c);
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER roster_schools_current_insert AFTER INSERT ON roster_schools
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION roster_schools_changed();
CREATE TRIGGER roster_schools_current_update AFTER UPDATE ON roster_schools
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION roster_schools_changed();
CREATE TRIGGER roster_schools_current_delete AFTER DELETE ON roster_schools
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION roster_schools_changed();

-- 5. The items of a rectification ledger that are not done or verified and have a
-- deadline (FORMS.md "Derived everywhere"), in their order; NULL when there is none.
CREATE FUNCTION ledger_open_items(items jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT jsonb_agg(it ORDER BY n)
	FROM jsonb_array_elements(CASE WHEN jsonb_typeof(items) = 'array' THEN items
				       ELSE '[]'::jsonb END) WITH ORDINALITY AS x(it, n)
	WHERE ((it ->> 'status') IS NULL OR (it ->> 'status') NOT IN ('done', 'verified'))
		AND json_string(it -> 'deadline') IS NOT NULL;
$$;

ALTER TABLE submission_current ADD COLUMN open_items jsonb;
COMMENT ON COLUMN submission_current.open_items IS
	'rectification ledgers with an open item (open_deadline not NULL): ledger_open_items()';

-- As in 006_inspection_speed.sql, with the open items of the ledgers, and then the counts
-- of the keys touched.
CREATE OR REPLACE FUNCTION submission_current_refresh(p_county text[], p_school text[],
						      p_form text[], p_period text[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(1919248229, hashtext(c))
	FROM (SELECT DISTINCT c FROM unnest(p_county) AS c ORDER BY c) l;
	DELETE FROM submission_current h
	USING unnest(p_county, p_school, p_form, p_period) AS k(county_id, school_id, form, period)
	WHERE h.form = k.form AND h.period = k.period AND h.county_id = k.county_id
		AND h.school_id = k.school_id;
	INSERT INTO submission_current (submission_id, county_id, form, period, school_id, is_event,
		created_at, hub_received_at, first_received_at, payload_sha256, on_time, ref_date,
		level, types, victims, perpetrators, open_deadline, enrolled, screened, committee,
		channel, open_items)
	SELECT DISTINCT ON (c.form, c.period, c.county_id, c.school_id,
			    CASE WHEN c.is_event THEN c.submission_id END)
		c.submission_id, c.county_id, c.form, c.period, c.school_id, c.is_event,
		c.created_at, c.hub_received_at,
		CASE WHEN c.is_event THEN c.hub_received_at ELSE c.first_received_at END,
		c.payload_sha256, c.on_time, coalesce(c.incident_on, c.ledger_as_of), c.incident_level,
		c.incident_types, c.incident_victims, c.incident_perpetrators,
		c.ledger_open_deadline, c.screening_enrolled, c.screening_screened,
		c.screening_committee, c.screening_channel,
		CASE WHEN c.ledger_open_deadline IS NOT NULL
			THEN ledger_open_items(c.payload #> '{data,items}') END
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
	PERFORM submission_current_order(p_county, p_school, p_form);
	PERFORM period_counts_recount(p_form, p_period, p_county);
	PERFORM screening_schools_recount(array_agg(k.period), array_agg(k.county_id),
					  array_agg(k.school_id))
	FROM unnest(p_county, p_school, p_form, p_period) AS k(county_id, school_id, form, period)
	WHERE k.form = 'screening';
END;
$$;

-- the rosters, the open items and the counts as they stand
INSERT INTO roster_current_schools
SELECT county_id, school_id, name, opened, closed FROM roster_current;
UPDATE submission_current h SET open_items = ledger_open_items(s.payload #> '{data,items}')
FROM submissions s
WHERE s.submission_id = h.submission_id AND h.open_deadline IS NOT NULL;
INSERT INTO period_counts_basis
SELECT form, period, start_date, end_date, deadline FROM periods;
SELECT period_counts_recount(array_agg(form), array_agg(period), array_agg(county_id))
FROM (SELECT p.form, p.period, c.county_id FROM periods p CROSS JOIN counties c
      UNION
      SELECT DISTINCT form, period, county_id FROM submission_current WHERE NOT is_event) k;
SELECT screening_schools_rebuild(NULL, NULL);

-- The late schools (first return on or after the deadline) of a county are few: a range of
-- this index.
CREATE INDEX submission_current_first ON submission_current
	(form, period, county_id, first_received_at) INCLUDE (school_id) WHERE NOT is_event;

-- 4. Every figure of an incident in the index, so that counting reads the index only.
DROP INDEX submission_current_events;
CREATE INDEX submission_current_events ON submission_current (form, ref_date)
	INCLUDE (county_id, school_id, level, types, victims, perpetrators, submission_id)
	WHERE is_event;

-- 1. late-returns from period_counts, as in 005_inspections.sql.
CREATE OR REPLACE FUNCTION late_returns(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, expected bigint, received bigint,
	       on_time bigint, late bigint, missing bigint, completeness numeric,
	       timeliness numeric)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get_required(p_form, p_period);
BEGIN
	RETURN QUERY
	SELECT c.county_id, c.name, coalesce(n.expected, 0)::bigint,
		coalesce(n.received, 0)::bigint, coalesce(n.on_time, 0)::bigint,
		coalesce(n.received - n.on_time, 0)::bigint,
		coalesce(n.expected - n.received, 0)::bigint,
		round(n.received::numeric / nullif(n.expected, 0), 4),
		round(n.on_time::numeric / nullif(n.expected, 0), 4)
	FROM counties c
	LEFT JOIN period_counts n ON n.form = per.form AND n.period = per.period
		AND n.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	ORDER BY c.county_id;
END;
$$;

-- 1b. The missing and late schools, as in 005_inspections.sql, looked for only in the
-- counties where period_counts says some are: the late ones from the index on
-- first_received_at, each school looked up with one index probe (OFFSET 0 keeps the
-- planner from hashing every school of the province for a few thousand).
CREATE OR REPLACE FUNCTION late_schools(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       status text, first_received_at timestamptz, deadline timestamptz,
	       days_late integer)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get_required(p_form, p_period);
BEGIN
	RETURN QUERY
	SELECT l.county_id, c.name, l.school_id, l.name, l.status, l.first_received_at,
		per.deadline,
		(floor(extract(epoch FROM l.first_received_at - per.deadline) / 86400))::integer + 1
	FROM (
		SELECT n.county_id, r.school_id, r.name, 'missing' AS status,
			NULL::timestamptz AS first_received_at
		FROM period_counts n
		CROSS JOIN LATERAL (
			SELECT r.school_id, r.name
			FROM roster_current_schools r
			WHERE r.county_id = n.county_id
				AND (r.opened IS NULL OR r.opened <= per.end_date)
				AND (r.closed IS NULL OR r.closed >= per.start_date)
				AND NOT EXISTS (SELECT 1 FROM submission_current h
						WHERE h.form = per.form AND h.period = per.period
							AND h.county_id = r.county_id
							AND h.school_id = r.school_id AND NOT h.is_event)
			OFFSET 0
		) r
		WHERE n.form = per.form AND n.period = per.period AND n.expected > n.received
			AND (p_county IS NULL OR n.county_id = p_county)
		UNION ALL
		SELECT n.county_id, h.school_id, r.name, 'late', h.first_received_at
		FROM period_counts n
		CROSS JOIN LATERAL (
			SELECT h.school_id, h.first_received_at
			FROM submission_current h
			WHERE h.form = per.form AND h.period = per.period
				AND h.county_id = n.county_id AND NOT h.is_event
				AND h.first_received_at >= per.deadline
			OFFSET 0
		) h
		CROSS JOIN LATERAL (
			SELECT r.name
			FROM roster_current_schools r
			WHERE r.county_id = n.county_id AND r.school_id = h.school_id
				AND (r.opened IS NULL OR r.opened <= per.end_date)
				AND (r.closed IS NULL OR r.closed >= per.start_date)
			OFFSET 0
		) r
		WHERE n.form = per.form AND n.period = per.period AND n.received > n.on_time
			AND (p_county IS NULL OR n.county_id = p_county)
	) l
	JOIN counties c ON c.county_id = l.county_id
	ORDER BY l.county_id, l.status DESC, l.school_id;
END;
$$;

-- 2. incidents, as in 005_inspections.sql: the incidents that share county, level and list
-- of types are added up first, then each list is split into its types.
CREATE OR REPLACE FUNCTION incidents(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, level integer, type text, incidents bigint,
	       victims bigint, perpetrators bigint)
LANGUAGE sql STABLE AS $$
	WITH g AS MATERIALIZED (
		SELECT r.county_id, r.level, r.types, count(*) AS n, sum(r.victims) AS victims,
			sum(r.perpetrators) AS perpetrators
		FROM incident_rows(p_from, p_to, p_county) r
		GROUP BY r.county_id, r.level, r.types
	), t AS (
		SELECT g.county_id, g.level, NULL::text AS type, sum(g.n) AS incidents,
			sum(g.victims) AS victims, sum(g.perpetrators) AS perpetrators
		FROM g
		GROUP BY g.county_id, g.level
		UNION ALL
		SELECT g.county_id, g.level, x.type, sum(g.n), sum(g.victims), sum(g.perpetrators)
		FROM g CROSS JOIN LATERAL unnest(g.types) AS x(type)
		GROUP BY g.county_id, g.level, x.type
	)
	SELECT t.county_id, c.name, t.level, t.type, t.incidents::bigint, t.victims::bigint,
		t.perpetrators::bigint
	FROM t JOIN counties c ON c.county_id = t.county_id
	ORDER BY t.county_id, t.level, t.type NULLS FIRST;
$$;

-- 2b. The level-3 list, as in 005_inspections.sql, reading each payload once; reports of
-- the same school, day and reference are in submission_id order.
CREATE OR REPLACE FUNCTION incidents_level3(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       incident_ref text, occurred_on date, discovered_on date, reported_on date,
	       types text[], measures text[], status text, closed_on date,
	       submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT r.county_id, c.name, r.school_id, rc.name, d.incident_ref, iso_date(r.occurred_on),
		iso_date(d.discovered_on), iso_date(d.reported_on), r.types, d.measures, d.status,
		iso_date(d.closed_on), r.submission_id
	FROM incident_rows(p_from, p_to, p_county) r
	JOIN counties c ON c.county_id = r.county_id
	CROSS JOIN LATERAL (
		SELECT x.d ->> 'incident_ref' AS incident_ref, x.d ->> 'discovered_on' AS discovered_on,
			x.d ->> 'reported_on' AS reported_on, json_strings(x.d -> 'measures') AS measures,
			x.d ->> 'status' AS status, x.d ->> 'closed_on' AS closed_on
		FROM (SELECT s.payload -> 'data' AS d FROM submissions s
		      WHERE s.submission_id = r.submission_id OFFSET 0) x
		OFFSET 0
	) d
	LEFT JOIN roster_current_schools rc ON rc.county_id = r.county_id
		AND rc.school_id = r.school_id
	WHERE r.level = 3
	ORDER BY r.occurred_on, r.county_id, r.school_id, 5, r.submission_id;
$$;

-- 5. The items of ledgers overdue as of p_as_of (overdue_ledgers() of
-- 006_inspection_speed.sql), one row each, from the ledger heads alone.
CREATE FUNCTION overdue_items(p_as_of date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, school_id text, period text, ref_date text,
	       submission_id uuid, item jsonb)
LANGUAGE sql STABLE AS $$
	SELECT h.county_id, h.school_id, h.period, h.ref_date, h.submission_id, it
	FROM submission_current h
	CROSS JOIN LATERAL jsonb_array_elements(h.open_items) AS it
	WHERE h.form = 'rectification' AND NOT h.is_event AND h.open_deadline IS NOT NULL
		AND coalesce(h.next_ref_date, '9999-12-31') > to_char(p_as_of, 'YYYY-MM-DD')
		AND h.ref_date <= to_char(p_as_of, 'YYYY-MM-DD')
		AND h.open_deadline < to_char(p_as_of, 'YYYY-MM-DD')
		AND (p_county IS NULL OR h.county_id = p_county)
		AND json_string(it -> 'deadline') < to_char(p_as_of, 'YYYY-MM-DD');
$$;

-- 3. overdue-rectification, as in 006_inspection_speed.sql, from overdue_items(), each member
-- of an item read once, school names by index probes.
CREATE OR REPLACE FUNCTION overdue_rectification(p_as_of date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       item_id text, category text, source text, problem text, measure text,
	       responsible_role text, deadline date, status text, days_overdue integer,
	       ledger_period text, ledger_as_of date, submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT i.county_id, c.name, i.school_id,
		(SELECT r.name FROM roster_current_schools r
		 WHERE r.county_id = i.county_id AND r.school_id = i.school_id),
		i.item_id, i.category, i.source, i.problem, i.measure, i.responsible_role, i.deadline,
		i.status, p_as_of - i.deadline, i.period, iso_date(i.ref_date), i.submission_id
	FROM (
		SELECT o.county_id, o.school_id, o.period, o.ref_date, o.submission_id, o.item_id,
			o.category, o.source, o.problem, o.measure, o.responsible_role,
			iso_date(o.deadline_text) AS deadline, o.deadline_text, o.status
		FROM (
			SELECT o.county_id, o.school_id, o.period, o.ref_date, o.submission_id,
				o.item ->> 'item_id' AS item_id, o.item ->> 'category' AS category,
				o.item ->> 'source' AS source, o.item ->> 'problem' AS problem,
				o.item ->> 'measure' AS measure,
				o.item ->> 'responsible_role' AS responsible_role,
				o.item ->> 'deadline' AS deadline_text, o.item ->> 'status' AS status
			FROM overdue_items(p_as_of, p_county) o
			OFFSET 0
		) o
		OFFSET 0
	) i
	JOIN counties c ON c.county_id = i.county_id
	ORDER BY i.county_id, i.school_id, i.deadline_text, i.item_id;
$$;

-- 4. follow-up, as in 006_inspection_speed.sql, with the overdue items counted from
-- overdue_items() and the names from roster_current_schools.
CREATE OR REPLACE FUNCTION follow_up(p_year integer, p_min_level integer DEFAULT 2,
				     p_county text DEFAULT NULL, p_as_of date DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       incidents bigint, max_level integer, level3 bigint, overdue_items bigint)
LANGUAGE sql STABLE AS $$
	WITH inc AS (
		SELECT r.county_id, r.school_id, count(*) AS n, max(r.level) AS max_level,
			count(*) FILTER (WHERE r.level = 3) AS n3
		FROM incident_rows(make_date(p_year, 1, 1), make_date(p_year, 12, 31), p_county) r
		WHERE r.level >= p_min_level
		GROUP BY r.county_id, r.school_id
	), od AS (
		SELECT o.county_id, o.school_id, count(*) AS n
		FROM overdue_items(coalesce(p_as_of, make_date(p_year, 12, 31)), p_county) o
		GROUP BY o.county_id, o.school_id
	), s AS (
		SELECT coalesce(inc.county_id, od.county_id) AS county_id,
			coalesce(inc.school_id, od.school_id) AS school_id,
			coalesce(inc.n, 0) AS incidents, inc.max_level, coalesce(inc.n3, 0) AS level3,
			coalesce(od.n, 0) AS overdue_items
		FROM inc FULL JOIN od ON od.county_id = inc.county_id
			AND od.school_id = inc.school_id
	)
	SELECT s.county_id, c.name, s.school_id, rc.name, s.incidents, s.max_level, s.level3,
		s.overdue_items
	FROM s
	JOIN counties c ON c.county_id = s.county_id
	LEFT JOIN roster_current_schools rc ON rc.county_id = s.county_id
		AND rc.school_id = s.school_id
	ORDER BY s.county_id, s.school_id;
$$;

-- 5. screening-coverage by county from period_counts, as in 006_inspection_speed.sql:
-- the schools are those expected and the other ones that filed.
CREATE OR REPLACE FUNCTION screening_coverage(p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, schools bigint, reported bigint,
	       students_enrolled bigint, students_screened bigint, coverage numeric,
	       without_committee bigint, without_reporting_channel bigint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get('screening', p_period);
BEGIN
	RETURN QUERY
	SELECT c.county_id, c.name, coalesce(n.expected + n.heads - n.received, 0)::bigint,
		coalesce(n.heads, 0)::bigint, coalesce(n.enrolled, 0), coalesce(n.screened, 0),
		round(n.screened::numeric / nullif(n.enrolled, 0), 4),
		coalesce(n.no_committee, 0)::bigint, coalesce(n.no_channel, 0)::bigint
	FROM counties c
	LEFT JOIN period_counts n ON n.form = per.form AND n.period = per.period
		AND n.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	ORDER BY c.county_id;
END;
$$;

-- 5b. screening-coverage per school, as in 005_inspections.sql, from screening_schools.
CREATE OR REPLACE FUNCTION screening_coverage_schools(p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       reported boolean, students_enrolled bigint, students_screened bigint,
	       coverage numeric, committee_established boolean,
	       reporting_channel_published boolean, submission_id uuid)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get('screening', p_period);
BEGIN
	RETURN QUERY
	SELECT s.county_id, c.name, s.school_id, s.name, s.submission_id IS NOT NULL,
		s.enrolled::bigint, s.screened::bigint, s.coverage, s.committee, s.channel,
		s.submission_id
	FROM screening_schools s
	JOIN counties c ON c.county_id = s.county_id
	WHERE s.period = per.period AND (p_county IS NULL OR s.county_id = p_county)
	ORDER BY s.county_id, s.school_id;
END;
$$;
