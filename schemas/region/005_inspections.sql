-- The bureau's inspection queries (issue 5; DESIGN section 9), as SQL functions usable
-- from psql, e.g.  SELECT * FROM late_returns('summary', '2024-P1');
-- They count only the returns that count (submission_current: the latest verified
-- return not superseded), read the figures copied there, and go to the payloads only for
-- what they list. Every function that lists counties takes an optional county code
-- (NULL: every county), which is how a county viewer is held to its own county. Dates
-- are local dates (Asia/Shanghai) as the forms write them.
-- Errors: an unknown (form, period) raises invalid_parameter_value (22023).

-- The payload of a JWS (flattened JSON or compact serialization) as jsonb; NULL when the
-- text is not a JWS with a JSON payload. Does not verify anything: the region verifies
-- signatures at ingest and records the verdict next to the text.
CREATE FUNCTION jws_payload(jws text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
	p text;
BEGIN
	IF jws IS NULL THEN
		RETURN NULL;
	END IF;
	IF left(ltrim(jws), 1) = '{' THEN
		p := jws::jsonb ->> 'payload';
	ELSE
		p := split_part(jws, '.', 2);
	END IF;
	IF p IS NULL OR p !~ '^[A-Za-z0-9_-]+$' THEN
		RETURN NULL;
	END IF;
	p := translate(p, '-_', '+/');
	p := p || repeat('=', (4 - length(p) % 4) % 4);
	RETURN convert_from(decode(p, 'base64'), 'UTF8')::jsonb;
EXCEPTION WHEN others THEN
	RETURN NULL;
END;
$$;

-- The period row of (form, period), or invalid_parameter_value.
CREATE FUNCTION period_get(p_form text, p_period text) RETURNS periods
LANGUAGE plpgsql STABLE AS $$
DECLARE
	per periods;
BEGIN
	SELECT * INTO per FROM periods WHERE form = p_form AND period = p_period;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'form "%" has no period "%"', p_form, p_period
			USING ERRCODE = 'invalid_parameter_value',
			      HINT = 'the periods come from schemas/campaigns/ (region-server migrate)';
	END IF;
	RETURN per;
END;
$$;


-- The schools of the current rosters open for at least one day of the period: those
-- expected to file it when the period is required (DESIGN section 6).
CREATE FUNCTION period_schools(p_form text, p_period text)
RETURNS TABLE (county_id text, school_id text, name text)
LANGUAGE sql STABLE AS $$
	SELECT r.county_id, r.school_id, r.name
	FROM roster_current r
	JOIN periods p ON p.form = p_form AND p.period = p_period
	WHERE (r.opened IS NULL OR r.opened <= p.end_date)
		AND (r.closed IS NULL OR r.closed >= p.start_date);
$$;

-- Each expected school of (form, period) and the first time the hub received a verified
-- return of it for that period (NULL: none yet).
CREATE FUNCTION period_first_returns(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, school_id text, name text, first_received_at timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT e.county_id, e.school_id, e.name, h.first_received_at
	FROM period_schools(p_form, p_period) e
	LEFT JOIN submission_current h ON h.form = p_form AND h.period = p_period
		AND h.county_id = e.county_id AND h.school_id = e.school_id AND NOT h.is_event
	WHERE p_county IS NULL OR e.county_id = p_county;
$$;

-- The period of a required (form, period), or invalid_parameter_value.
CREATE FUNCTION period_get_required(p_form text, p_period text) RETURNS periods
LANGUAGE plpgsql STABLE AS $$
DECLARE
	per periods := period_get(p_form, p_period);
BEGIN
	IF NOT per.required THEN
		RAISE EXCEPTION 'period "%" of form "%" is not required: no school is late for it',
			p_period, p_form USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN per;
END;
$$;

-- 1. late-returns: per county, the schools expected to file (form, period), how many did,
-- how many by the deadline (the hub's receive time of their first return: a correction
-- sent after the deadline does not make a school late), completeness and timeliness
-- (DESIGN section 6). Only for required periods: nobody is late for an optional one.
CREATE FUNCTION late_returns(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, expected bigint, received bigint,
	       on_time bigint, late bigint, missing bigint, completeness numeric,
	       timeliness numeric)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get_required(p_form, p_period);
BEGIN
	RETURN QUERY
	WITH counts AS (
		SELECT f.county_id, count(*) AS expected,
			count(f.first_received_at) AS received,
			count(*) FILTER (WHERE f.first_received_at < per.deadline) AS on_time
		FROM period_first_returns(p_form, p_period, p_county) f
		GROUP BY f.county_id
	)
	SELECT c.county_id, c.name, coalesce(n.expected, 0), coalesce(n.received, 0),
		coalesce(n.on_time, 0), coalesce(n.received - n.on_time, 0),
		coalesce(n.expected - n.received, 0),
		round(n.received::numeric / nullif(n.expected, 0), 4),
		round(n.on_time::numeric / nullif(n.expected, 0), 4)
	FROM counties c
	LEFT JOIN counts n ON n.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	ORDER BY c.county_id;
END;
$$;
COMMENT ON FUNCTION late_returns(text, text, text) IS
	'late-returns: per county expected, received, on time, late, missing, completeness, timeliness';

-- 1b. The missing and late schools of late_returns, missing first. days_late counts the
-- started days after the deadline (received during the day after the due day: 1).
CREATE FUNCTION late_schools(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       status text, first_received_at timestamptz, deadline timestamptz,
	       days_late integer)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get_required(p_form, p_period);
BEGIN
	RETURN QUERY
	SELECT f.county_id, c.name, f.school_id, f.name,
		CASE WHEN f.first_received_at IS NULL THEN 'missing' ELSE 'late' END,
		f.first_received_at, per.deadline,
		(floor(extract(epoch FROM f.first_received_at - per.deadline) / 86400))::integer + 1
	FROM period_first_returns(p_form, p_period, p_county) f
	JOIN counties c ON c.county_id = f.county_id
	WHERE f.first_received_at IS NULL OR f.first_received_at >= per.deadline
	ORDER BY f.county_id, 5 DESC, f.school_id;
END;
$$;
COMMENT ON FUNCTION late_schools(text, text, text) IS
	'late-returns, school list: the missing and the late schools';

-- The incidents that count whose occurred_on lies in [p_from, p_to], one row each.
CREATE FUNCTION incident_rows(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, school_id text, submission_id uuid, occurred_on text,
	       level integer, types text[], victims integer, perpetrators integer)
LANGUAGE sql STABLE AS $$
	SELECT h.county_id, h.school_id, h.submission_id, h.ref_date, h.level, h.types,
		h.victims, h.perpetrators
	FROM submission_current h
	WHERE h.form = 'incident' AND h.is_event
		AND h.ref_date BETWEEN to_char(p_from, 'YYYY-MM-DD') AND to_char(p_to, 'YYYY-MM-DD')
		AND (p_county IS NULL OR h.county_id = p_county);
$$;

-- 2. incidents: counts by county x level x type of the incidents that occurred from p_from
-- to p_to (both included). An incident of several types counts once in each type; the
-- row with type NULL counts each incident once (all types). victims and perpetrators are
-- the sums over those incidents.
CREATE FUNCTION incidents(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, level integer, type text, incidents bigint,
	       victims bigint, perpetrators bigint)
LANGUAGE sql STABLE AS $$
	WITH i AS MATERIALIZED (
		SELECT r.county_id, r.level, r.types, r.victims, r.perpetrators
		FROM incident_rows(p_from, p_to, p_county) r
	), g AS (
		SELECT i.county_id, i.level, NULL::text AS type, count(*) AS incidents,
			sum(i.victims) AS victims, sum(i.perpetrators) AS perpetrators
		FROM i
		GROUP BY i.county_id, i.level
		UNION ALL
		SELECT i.county_id, i.level, t.type, count(*), sum(i.victims), sum(i.perpetrators)
		FROM i CROSS JOIN LATERAL unnest(i.types) AS t(type)
		GROUP BY i.county_id, i.level, t.type
	)
	SELECT g.county_id, c.name, g.level, g.type, g.incidents, g.victims::bigint,
		g.perpetrators::bigint
	FROM g JOIN counties c ON c.county_id = g.county_id
	ORDER BY g.county_id, g.level, g.type NULLS FIRST;
$$;
COMMENT ON FUNCTION incidents(date, date, text) IS
	'incidents: counts by county x level x type (type NULL: all types)';

-- 2b. The level-3 incidents (suspected crime) for notices (通报): school, dates, types,
-- measures, status.
CREATE FUNCTION incidents_level3(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       incident_ref text, occurred_on date, discovered_on date, reported_on date,
	       types text[], measures text[], status text, closed_on date,
	       submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT r.county_id, c.name, r.school_id, rc.name, d ->> 'incident_ref',
		iso_date(r.occurred_on), iso_date(d ->> 'discovered_on'),
		iso_date(d ->> 'reported_on'), r.types, json_strings(d -> 'measures'),
		d ->> 'status', iso_date(d ->> 'closed_on'), r.submission_id
	FROM incident_rows(p_from, p_to, p_county) r
	JOIN submissions s ON s.submission_id = r.submission_id
	CROSS JOIN LATERAL (SELECT s.payload -> 'data' AS d) p
	JOIN counties c ON c.county_id = r.county_id
	LEFT JOIN roster_current rc ON rc.county_id = r.county_id AND rc.school_id = r.school_id
	WHERE r.level = 3
	ORDER BY r.occurred_on, r.county_id, r.school_id, 5;
$$;
COMMENT ON FUNCTION incidents_level3(date, date, text) IS
	'incidents, level-3 list for notices';

-- 3. overdue-rectification: from each school's latest ledger as of p_as_of (its current
-- rectification return with the greatest as_of not after p_as_of), the items not done
-- or verified whose deadline is before p_as_of (FORMS.md "Derived everywhere"), with the
-- days overdue.
CREATE FUNCTION overdue_rectification(p_as_of date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       item_id text, category text, source text, problem text, measure text,
	       responsible_role text, deadline date, status text, days_overdue integer,
	       ledger_period text, ledger_as_of date, submission_id uuid)
LANGUAGE sql STABLE AS $$
	WITH ledgers AS (
		SELECT DISTINCT ON (h.county_id, h.school_id) h.county_id, h.school_id, h.period,
			h.ref_date, h.submission_id, h.open_deadline
		FROM submission_current h
		WHERE h.form = 'rectification' AND NOT h.is_event
			AND h.ref_date <= to_char(p_as_of, 'YYYY-MM-DD')
			AND (p_county IS NULL OR h.county_id = p_county)
		ORDER BY h.county_id, h.school_id, h.ref_date DESC, h.period DESC
	)
	SELECT l.county_id, c.name, l.school_id, rc.name, it ->> 'item_id', it ->> 'category',
		it ->> 'source', it ->> 'problem', it ->> 'measure', it ->> 'responsible_role',
		iso_date(it ->> 'deadline'), it ->> 'status',
		p_as_of - iso_date(it ->> 'deadline'), l.period, iso_date(l.ref_date),
		l.submission_id
	FROM ledgers l
	JOIN submissions s ON s.submission_id = l.submission_id
	CROSS JOIN LATERAL jsonb_array_elements(s.payload #> '{data,items}') AS it
	JOIN counties c ON c.county_id = l.county_id
	LEFT JOIN roster_current rc ON rc.county_id = l.county_id AND rc.school_id = l.school_id
	WHERE l.open_deadline < to_char(p_as_of, 'YYYY-MM-DD')
		AND ((it ->> 'status') IS NULL OR (it ->> 'status') NOT IN ('done', 'verified'))
		AND json_string(it -> 'deadline') < to_char(p_as_of, 'YYYY-MM-DD')
	ORDER BY l.county_id, l.school_id, it ->> 'deadline', 5;
$$;
COMMENT ON FUNCTION overdue_rectification(date, text) IS
	'overdue-rectification: ledger items past their deadline and not done, by county and school';

-- 4. follow-up: the "回头看" list: schools with incidents of level >= p_min_level that
-- occurred in p_year, or with overdue ledger items as of p_as_of (default: the last day
-- of p_year).
CREATE FUNCTION follow_up(p_year integer, p_min_level integer DEFAULT 2,
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
		FROM overdue_rectification(coalesce(p_as_of, make_date(p_year, 12, 31)),
					   p_county) o
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
	LEFT JOIN roster_current rc ON rc.county_id = s.county_id AND rc.school_id = s.school_id
	ORDER BY s.county_id, s.school_id;
$$;
COMMENT ON FUNCTION follow_up(integer, integer, text, date) IS
	'follow-up: schools with incidents of level >= min_level in the year or overdue items';

-- 5b. screening-coverage per school: every school of the current rosters open during the
-- period, and any other school that filed for it; its current return's figures.
CREATE FUNCTION screening_coverage_schools(p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       reported boolean, students_enrolled bigint, students_screened bigint,
	       coverage numeric, committee_established boolean,
	       reporting_channel_published boolean, submission_id uuid)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get('screening', p_period);
BEGIN
	RETURN QUERY
	WITH exp AS (
		SELECT e.county_id, e.school_id, e.name
		FROM period_schools('screening', per.period) e
		WHERE p_county IS NULL OR e.county_id = p_county
	), ret AS (
		SELECT h.county_id, h.school_id, h.submission_id, h.enrolled, h.screened,
			h.committee, h.channel
		FROM submission_current h
		WHERE h.form = 'screening' AND h.period = per.period AND NOT h.is_event
			AND (p_county IS NULL OR h.county_id = p_county)
	)
	SELECT coalesce(exp.county_id, ret.county_id), c.name,
		coalesce(exp.school_id, ret.school_id),
		coalesce(exp.name, (SELECT rc.name FROM roster_current rc
				    WHERE rc.county_id = ret.county_id
					AND rc.school_id = ret.school_id)),
		ret.submission_id IS NOT NULL, ret.enrolled::bigint, ret.screened::bigint,
		round(ret.screened::numeric / nullif(ret.enrolled, 0), 4), ret.committee,
		ret.channel, ret.submission_id
	FROM exp
	FULL JOIN ret ON ret.county_id = exp.county_id AND ret.school_id = exp.school_id
	JOIN counties c ON c.county_id = coalesce(exp.county_id, ret.county_id)
	ORDER BY 1, 3;
END;
$$;
COMMENT ON FUNCTION screening_coverage_schools(text, text) IS
	'screening-coverage per school: screened/enrolled, committee, reporting channel';

-- 5. screening-coverage per county: schools (open during the period, or that filed),
-- schools that reported, students screened of those enrolled (over the schools that
-- reported), and how many reporting schools have no governance committee or no published
-- reporting channel.
CREATE FUNCTION screening_coverage(p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, schools bigint, reported bigint,
	       students_enrolled bigint, students_screened bigint, coverage numeric,
	       without_committee bigint, without_reporting_channel bigint)
LANGUAGE sql STABLE AS $$
	WITH s AS (SELECT * FROM screening_coverage_schools(p_period, p_county))
	SELECT c.county_id, c.name, count(s.school_id), count(*) FILTER (WHERE s.reported),
		coalesce(sum(s.students_enrolled), 0)::bigint,
		coalesce(sum(s.students_screened), 0)::bigint,
		round(sum(s.students_screened)::numeric / nullif(sum(s.students_enrolled), 0), 4),
		count(*) FILTER (WHERE NOT s.committee_established),
		count(*) FILTER (WHERE NOT s.reporting_channel_published)
	FROM counties c
	LEFT JOIN s ON s.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	GROUP BY c.county_id, c.name
	ORDER BY c.county_id;
$$;
COMMENT ON FUNCTION screening_coverage(text, text) IS
	'screening-coverage: screened/enrolled by county; schools without committee or channel';

-- The latest verified roll-up of each county for (form, period).
CREATE FUNCTION rollup_latest(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS SETOF rollups
LANGUAGE sql STABLE AS $$
	SELECT DISTINCT ON (r.county_id) r.*
	FROM rollups r
	WHERE r.form = p_form AND r.period = p_period AND r.signature_verified
		AND (p_county IS NULL OR r.county_id = p_county)
	ORDER BY r.county_id, r.computed_at DESC, r.rollup_id DESC;
$$;

-- 6b. Every return on which a county's latest roll-up of (form, period) and the region
-- disagree, judged by what the hub could have known when it computed the roll-up:
--   'missing_at_region': listed, not held here;
--   'sha256_differs':    listed with another payload hash than the one held here;
--   'unverified':        listed, but its school signature did not verify here;
--   'not_current':       listed, but displaced by a return the hub had received by then
--                        (a later return of the school, or one superseding it);
--   'not_in_rollup':     counting here, received by the hub by then, not listed.
-- A roll-up computed before a correction arrived is stale, not wrong: not a mismatch.
CREATE FUNCTION rollup_mismatches(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, rollup_id bigint, computed_at timestamptz,
	       submission_id uuid, school_id text, problem text, county_sha256 text,
	       region_sha256 text)
LANGUAGE sql STABLE AS $$
	WITH r AS MATERIALIZED (
		SELECT * FROM rollup_latest(p_form, p_period, p_county)
	), listed AS MATERIALIZED (
		-- the listed returns that are not counting here with the same hash: few, so
		-- the judging below runs on them only
		SELECT r.county_id, r.rollup_id, r.computed_at, l.submission_id, l.sha256
		FROM r
		-- rollup_id alone is unique: joining on the county as well would make the planner
		-- take the two for independent and expect a few rows per roll-up
		JOIN rollup_submissions l ON l.rollup_id = r.rollup_id
		LEFT JOIN submission_current h ON h.submission_id = l.submission_id
			AND h.county_id = l.county_id AND h.form = p_form AND h.period = p_period
		WHERE h.payload_sha256 IS DISTINCT FROM l.sha256
	), judged AS (
		SELECT l.*, s.school_id, s.payload_sha256,
			CASE WHEN s.submission_id IS NULL THEN 'missing_at_region'
			     WHEN s.payload_sha256 <> l.sha256 THEN 'sha256_differs'
			     WHEN NOT s.signature_verified THEN 'unverified'
			     WHEN s.form <> p_form OR s.period <> p_period THEN 'not_current'
			     WHEN EXISTS (SELECT 1 FROM submission_current d
					  WHERE d.form = p_form AND d.period = p_period
						AND d.county_id = s.county_id
						AND d.school_id = s.school_id AND NOT d.is_event
						AND d.hub_received_at <= l.computed_at)
				OR EXISTS (SELECT 1 FROM submissions x
					   WHERE x.supersedes = s.submission_id
						AND x.school_id = s.school_id
						AND x.signature_verified
						AND x.hub_received_at <= l.computed_at)
				THEN 'not_current'
			END AS problem
		FROM listed l
		LEFT JOIN submissions s ON s.submission_id = l.submission_id
			AND s.county_id = l.county_id
	)
	SELECT j.county_id, j.rollup_id, j.computed_at, j.submission_id, j.school_id, j.problem,
		j.sha256, j.payload_sha256
	FROM judged j
	WHERE j.problem IS NOT NULL
	UNION ALL
	SELECT r.county_id, r.rollup_id, r.computed_at, h.submission_id, h.school_id,
		'not_in_rollup', NULL, h.payload_sha256
	FROM r
	JOIN submission_current h ON h.form = p_form AND h.period = p_period
		AND h.county_id = r.county_id AND h.hub_received_at <= r.computed_at
	WHERE NOT EXISTS (SELECT 1 FROM rollup_submissions l
			  WHERE l.rollup_id = r.rollup_id AND l.submission_id = h.submission_id)
	ORDER BY 1, 6, 4;
$$;
COMMENT ON FUNCTION rollup_mismatches(text, text, text) IS
	'rollup-integrity, return list: every return on which roll-up and region disagree';

-- 6. rollup-integrity: each county's latest verified roll-up of (form, period) against
-- the figures the region recomputes from the returns it holds, as the hub could have
-- known them (received by the hub at or before the roll-up's computed_at):
--   expected: schools of the current roster open during the period (required periods;
--             NULL, not compared, for optional and event periods);
--   received: phase and monthly forms: the schools with a verified return (of those
--             expected, for a required period); event forms: the events that counted
--             then (verified, not superseded by a return the hub had by then);
--   on_time:  phase and monthly forms: of those, first received before the deadline;
--             event forms: those the hub's receipt called on time;
-- with the return-level mismatches of rollup_mismatches (not_current counts the
-- 'unverified' ones too) and the integrity findings the
-- ingest recorded for this county, form and period (among them a roll-up object that
-- does not match the one recomputed from the returns it lists). ok is true when all of
-- these agree; a county without a roll-up has status, computed_at and ok NULL.
CREATE FUNCTION rollup_integrity(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, status text, computed_at timestamptz,
	       expected_county integer, expected_region bigint, received_county integer,
	       received_region bigint, on_time_county integer, on_time_region bigint,
	       listed bigint, missing_at_region bigint, sha256_differs bigint,
	       not_current bigint, not_in_rollup bigint, findings bigint, ok boolean)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get(p_form, p_period);
	is_event boolean := EXISTS (SELECT 1 FROM forms f
				    WHERE f.form = p_form AND f.period_type = 'event');
BEGIN
	RETURN QUERY
	WITH r AS MATERIALIZED (
		SELECT * FROM rollup_latest(p_form, p_period, p_county)
	), exp_schools AS MATERIALIZED (
		SELECT e.county_id, e.school_id
		FROM period_schools(p_form, p_period) e
		WHERE per.required AND (p_county IS NULL OR e.county_id = p_county)
	), exp AS (
		SELECT e.county_id, count(*) AS n FROM exp_schools e GROUP BY e.county_id
	), got AS (
		SELECT r.county_id, count(*) AS received,
			count(*) FILTER (WHERE h.first_received_at < per.deadline) AS on_time
		FROM r
		JOIN submission_current h ON h.form = p_form AND h.period = p_period
			AND h.county_id = r.county_id AND h.first_received_at <= r.computed_at
			AND NOT h.is_event
		WHERE NOT per.required
			OR (h.county_id, h.school_id) IN (SELECT * FROM exp_schools)
		GROUP BY r.county_id
		UNION ALL
		-- the events that counted when the roll-up was computed
		SELECT r.county_id, count(*), count(*) FILTER (WHERE s.on_time)
		FROM r
		JOIN submissions s ON s.form = p_form AND s.period = p_period
			AND s.county_id = r.county_id AND s.signature_verified
			AND s.hub_received_at <= r.computed_at
		WHERE is_event AND NOT EXISTS (
			SELECT 1 FROM submissions x
			WHERE x.supersedes = s.submission_id AND x.school_id = s.school_id
				AND x.signature_verified AND x.hub_received_at <= r.computed_at)
		GROUP BY r.county_id
	), mm AS (
		SELECT m.county_id,
			count(*) FILTER (WHERE m.problem = 'missing_at_region') AS missing_at_region,
			count(*) FILTER (WHERE m.problem = 'sha256_differs') AS sha256_differs,
			count(*) FILTER (WHERE m.problem IN ('not_current', 'unverified'))
				AS not_current,
			count(*) FILTER (WHERE m.problem = 'not_in_rollup') AS not_in_rollup
		FROM rollup_mismatches(p_form, p_period, p_county) m
		GROUP BY m.county_id
	), fi AS (
		SELECT f.county_id, count(*) AS n
		FROM integrity_findings f
		WHERE f.form = p_form AND f.period = p_period
			AND (p_county IS NULL OR f.county_id = p_county)
		GROUP BY f.county_id
	), listed AS (
		SELECT l.county_id, count(*) AS n
		FROM r JOIN rollup_submissions l ON l.rollup_id = r.rollup_id
		GROUP BY l.county_id
	)
	SELECT c.county_id, c.name, r.status, r.computed_at, r.expected,
		CASE WHEN per.required THEN coalesce(exp.n, 0) END,
		r.received, coalesce(got.received, 0), r.on_time, coalesce(got.on_time, 0),
		coalesce(listed.n, 0), coalesce(mm.missing_at_region, 0),
		coalesce(mm.sha256_differs, 0), coalesce(mm.not_current, 0),
		coalesce(mm.not_in_rollup, 0), coalesce(fi.n, 0),
		CASE WHEN r.county_id IS NOT NULL THEN
			(NOT per.required OR r.expected IS NOT DISTINCT FROM coalesce(exp.n, 0))
			AND r.received IS NOT DISTINCT FROM coalesce(got.received, 0)
			AND r.on_time IS NOT DISTINCT FROM coalesce(got.on_time, 0)
			AND mm.county_id IS NULL AND fi.county_id IS NULL
		END
	FROM counties c
	LEFT JOIN r ON r.county_id = c.county_id
	LEFT JOIN exp ON exp.county_id = c.county_id
	LEFT JOIN got ON got.county_id = c.county_id
	LEFT JOIN mm ON mm.county_id = c.county_id
	LEFT JOIN fi ON fi.county_id = c.county_id
	LEFT JOIN listed ON listed.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	ORDER BY c.county_id;
END;
$$;
COMMENT ON FUNCTION rollup_integrity(text, text, text) IS
	'rollup-integrity: each county''s roll-up against the figures recomputed from the returns';

-- 7. chain-of-custody: one return's trail: the school's signature as verified at ingest
-- (and the roster version whose key did it), the hub's receipt (verified at ingest, and
-- whether it names this return, its payload hash and the receive time stored), the time
-- at each tier, corrections, whether it counts, the roll-ups that list it with the same
-- hash, and the integrity findings about it.
CREATE FUNCTION chain_of_custody(p_submission_id uuid)
RETURNS TABLE (submission_id uuid, county_id text, county_name text, school_id text,
	       school_name text, form text, period text, payload_sha256 text,
	       signature_verified boolean, roster_version bigint, receipt_verified boolean,
	       receipt_matches boolean, on_time boolean, school_created_at timestamptz,
	       hub_received_at timestamptz, region_received_at timestamptz,
	       supersedes uuid, superseded_by uuid, counts boolean, in_rollups bigint,
	       findings bigint, batch_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT s.submission_id, s.county_id, c.name, s.school_id,
		coalesce(rs.name, rc.name), s.form, s.period, s.payload_sha256,
		s.signature_verified, s.roster_version, s.receipt_verified,
		coalesce(rp ->> 'submission_id' = s.submission_id::text
			 AND rp ->> 'sha256' = s.payload_sha256
			 AND rp ->> 'school_id' = s.school_id
			 AND rp ->> 'county_id' = s.county_id
			 AND CASE WHEN rp ->> 'received_at' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T'
				  THEN (rp ->> 'received_at')::timestamptz = s.hub_received_at
			     END, false),
		s.on_time, s.created_at, s.hub_received_at, s.region_received_at,
		s.supersedes,
		(SELECT x.submission_id FROM submissions x
		 WHERE x.supersedes = s.submission_id AND x.school_id = s.school_id
			AND x.signature_verified
		 ORDER BY x.created_at, x.submission_id LIMIT 1),
		EXISTS (SELECT 1 FROM submission_current h WHERE h.submission_id = s.submission_id),
		(SELECT count(*) FROM rollup_submissions l
		 WHERE l.submission_id = s.submission_id AND l.county_id = s.county_id
			AND l.sha256 = s.payload_sha256),
		(SELECT count(*) FROM integrity_findings f
		 WHERE f.submission_id = s.submission_id),
		s.batch_id
	FROM submissions s
	JOIN counties c ON c.county_id = s.county_id
	LEFT JOIN roster_schools rs ON rs.county_id = s.county_id
		AND rs.version = s.roster_version AND rs.school_id = s.school_id
	LEFT JOIN roster_current rc ON rc.county_id = s.county_id AND rc.school_id = s.school_id
	LEFT JOIN LATERAL jws_payload(s.receipt_jws) AS rp ON true
	WHERE s.submission_id = p_submission_id;
$$;
COMMENT ON FUNCTION chain_of_custody(uuid) IS
	'chain-of-custody: signature, receipt and the time at each tier of one return';
