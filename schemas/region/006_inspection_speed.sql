-- Faster inspections on a province's data (issue 5 "Benchmark": each query p95 <= 100 ms
-- on about 400,000 returns; bench/region measures it).
--
-- 1. overdue-rectification (and follow-up, which uses it) found each school's latest
--    ledger as of a day by sorting all the ledger heads (nine a school a year) and then
--    dropped the ledgers without an overdue item. Each ledger head now knows the as-of
--    day of the school's next ledger (next_ref_date, kept by the same triggers as the
--    heads), so "the latest ledger as of D" is "ref_date <= D < next_ref_date", and the
--    few ledgers with an item open past its deadline are read from an index on
--    open_deadline.
-- 2. The plpgsql inspections plan their statements for the values given: after five
--    calls in one session PostgreSQL may otherwise switch to a generic plan that does not
--    know the form and period, and takes several times longer on a large table.

ALTER TABLE submission_current ADD COLUMN next_ref_date text COLLATE "C";
COMMENT ON COLUMN submission_current.next_ref_date IS
	'phase and monthly forms: the ref_date of the school''s next head of the form in '
	'(ref_date, period) order; NULL for the last';

-- Recomputes next_ref_date for the heads of the given (county, school, form).
CREATE FUNCTION submission_current_order(p_county text[], p_school text[], p_form text[])
RETURNS void
LANGUAGE sql AS $$
	UPDATE submission_current h SET next_ref_date = x.next
	FROM (
		SELECT c.submission_id,
			lead(c.ref_date) OVER (PARTITION BY c.county_id, c.school_id, c.form
					       ORDER BY c.ref_date, c.period) AS next
		FROM (SELECT DISTINCT * FROM unnest(p_county, p_school, p_form)
		      AS k(county_id, school_id, form)) k
		JOIN submission_current c ON c.form = k.form AND c.county_id = k.county_id
			AND c.school_id = k.school_id AND NOT c.is_event
			AND c.ref_date IS NOT NULL
	) x
	WHERE h.submission_id = x.submission_id AND h.next_ref_date IS DISTINCT FROM x.next;
$$;

-- As in 003_returns.sql, and then the order of the touched schools' heads.
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
	PERFORM submission_current_order(p_county, p_school, p_form);
END;
$$;

-- the heads as they stand
SELECT submission_current_order(array_agg(county_id), array_agg(school_id), array_agg(form))
FROM (SELECT DISTINCT county_id, school_id, form FROM submission_current
      WHERE NOT is_event AND ref_date IS NOT NULL) d;

-- The ledgers that have an item open past some day: few. Keyed so that "latest as of D"
-- (next_ref_date, or none, after D) bounds the scan, and "as of D" and "open before D" are
-- checked in the index.
CREATE INDEX submission_current_open ON submission_current
	(form, (coalesce(next_ref_date, '9999-12-31')), ref_date, open_deadline)
	INCLUDE (county_id, school_id, period, submission_id)
	WHERE NOT is_event AND open_deadline IS NOT NULL;

-- Each school's latest ledger as of p_as_of (its rectification head with the greatest
-- (as_of, period) whose as_of is not after p_as_of), when it has an item open past its
-- deadline before p_as_of (FORMS.md "Derived everywhere").
CREATE FUNCTION overdue_ledgers(p_as_of date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, school_id text, period text, ref_date text,
	       submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT h.county_id, h.school_id, h.period, h.ref_date, h.submission_id
	FROM submission_current h
	WHERE h.form = 'rectification' AND NOT h.is_event AND h.open_deadline IS NOT NULL
		AND coalesce(h.next_ref_date, '9999-12-31') > to_char(p_as_of, 'YYYY-MM-DD')
		AND h.ref_date <= to_char(p_as_of, 'YYYY-MM-DD')
		AND h.open_deadline < to_char(p_as_of, 'YYYY-MM-DD')
		AND (p_county IS NULL OR h.county_id = p_county);
$$;

-- 3. overdue-rectification, as in 005_inspections.sql, from overdue_ledgers(), with the
-- school's name looked up in its county's current roster (an index probe each, rather than
-- the whole roster_current view).
CREATE OR REPLACE FUNCTION overdue_rectification(p_as_of date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       item_id text, category text, source text, problem text, measure text,
	       responsible_role text, deadline date, status text, days_overdue integer,
	       ledger_period text, ledger_as_of date, submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT l.county_id, c.name, l.school_id, rc.name, it ->> 'item_id', it ->> 'category',
		it ->> 'source', it ->> 'problem', it ->> 'measure', it ->> 'responsible_role',
		iso_date(it ->> 'deadline'), it ->> 'status',
		p_as_of - iso_date(it ->> 'deadline'), l.period, iso_date(l.ref_date),
		l.submission_id
	FROM overdue_ledgers(p_as_of, p_county) l
	JOIN counties c ON c.county_id = l.county_id
	JOIN submissions s ON s.submission_id = l.submission_id
	CROSS JOIN LATERAL jsonb_array_elements(s.payload #> '{data,items}') AS it
	LEFT JOIN LATERAL (SELECT r.name FROM roster_schools r
			   WHERE r.county_id = c.county_id AND r.version = c.roster_version
				AND r.school_id = l.school_id) rc ON true
	WHERE ((it ->> 'status') IS NULL OR (it ->> 'status') NOT IN ('done', 'verified'))
		AND json_string(it -> 'deadline') < to_char(p_as_of, 'YYYY-MM-DD')
	ORDER BY l.county_id, l.school_id, it ->> 'deadline', 5;
$$;
COMMENT ON FUNCTION overdue_rectification(date, text) IS
	'overdue-rectification: ledger items past their deadline and not done, by county and school';

-- 4. follow-up, as in 005_inspections.sql, counting the overdue items straight from
-- overdue_ledgers() (no names, no sorting of items it does not show), names by index
-- probes.
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
	), day AS (
		SELECT coalesce(p_as_of, make_date(p_year, 12, 31)) AS d
	), od AS (
		SELECT l.county_id, l.school_id, count(*) AS n
		FROM day
		CROSS JOIN LATERAL overdue_ledgers(day.d, p_county) l
		JOIN submissions s ON s.submission_id = l.submission_id
		CROSS JOIN LATERAL jsonb_array_elements(s.payload #> '{data,items}') AS it
		WHERE ((it ->> 'status') IS NULL OR (it ->> 'status') NOT IN ('done', 'verified'))
			AND json_string(it -> 'deadline') < to_char(day.d, 'YYYY-MM-DD')
		GROUP BY l.county_id, l.school_id
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
	LEFT JOIN LATERAL (SELECT r.name FROM roster_schools r
			   WHERE r.county_id = c.county_id AND r.version = c.roster_version
				AND r.school_id = s.school_id) rc ON true
	ORDER BY s.county_id, s.school_id;
$$;
COMMENT ON FUNCTION follow_up(integer, integer, text, date) IS
	'follow-up: schools with incidents of level >= min_level in the year or overdue items';

-- 6. iso_date without an exception block: a plpgsql function that catches an error opens a
-- subtransaction at each call, and the lists call it for every row they show.
CREATE OR REPLACE FUNCTION iso_date(t text) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE
		WHEN t !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN NULL
		WHEN substr(t, 1, 4)::integer < 1 OR substr(t, 6, 2)::integer NOT BETWEEN 1 AND 12
			THEN NULL
		WHEN substr(t, 9, 2)::integer BETWEEN 1 AND
			extract(day FROM make_date(substr(t, 1, 4)::integer, substr(t, 6, 2)::integer, 1)
				+ interval '1 month - 1 day')::integer
			THEN make_date(substr(t, 1, 4)::integer, substr(t, 6, 2)::integer,
				       substr(t, 9, 2)::integer)
	END;
$$;

-- 7. screening-coverage by county, as in 005_inspections.sql, counted from the heads
-- without making the school list (names, per-school rows) first.
CREATE OR REPLACE FUNCTION screening_coverage(p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, schools bigint, reported bigint,
	       students_enrolled bigint, students_screened bigint, coverage numeric,
	       without_committee bigint, without_reporting_channel bigint)
LANGUAGE sql STABLE AS $$
	WITH per AS MATERIALIZED (
		SELECT p.period FROM period_get('screening', p_period) p
	), exp AS (
		SELECT e.county_id, e.school_id
		FROM per CROSS JOIN LATERAL period_schools('screening', per.period) e
		WHERE p_county IS NULL OR e.county_id = p_county
	), ret AS (
		SELECT h.county_id, h.school_id, h.enrolled, h.screened, h.committee, h.channel
		FROM per
		JOIN submission_current h ON h.form = 'screening' AND h.period = per.period
			AND NOT h.is_event
		WHERE p_county IS NULL OR h.county_id = p_county
	), s AS (
		SELECT coalesce(exp.county_id, ret.county_id) AS county_id,
			ret.school_id IS NOT NULL AS reported, ret.enrolled, ret.screened,
			ret.committee, ret.channel
		FROM exp
		FULL JOIN ret ON ret.county_id = exp.county_id AND ret.school_id = exp.school_id
	)
	SELECT c.county_id, c.name, count(s.county_id), count(*) FILTER (WHERE s.reported),
		coalesce(sum(s.enrolled), 0)::bigint, coalesce(sum(s.screened), 0)::bigint,
		round(sum(s.screened)::numeric / nullif(sum(s.enrolled), 0), 4),
		count(*) FILTER (WHERE NOT s.committee), count(*) FILTER (WHERE NOT s.channel)
	FROM counties c
	LEFT JOIN s ON s.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	GROUP BY c.county_id, c.name
	ORDER BY c.county_id;
$$;
COMMENT ON FUNCTION screening_coverage(text, text) IS
	'screening-coverage: screened/enrolled by county; schools without committee or channel';

-- 5. custom plans for the plpgsql inspections
ALTER FUNCTION late_returns(text, text, text) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION late_schools(text, text, text) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION screening_coverage_schools(text, text) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION rollup_integrity(text, text, text) SET plan_cache_mode = force_custom_plan;
