-- Count maintenance in proportion to the batch (issue 6's scale run: at 4,000 schools the
-- region's PostgreSQL spent about 12 ms on each stored batch, most of it recounting every
-- current return of each (form, period, county) the batch touched, joined to the roster;
-- that grows with the county and with the number of batches).
--
-- 1. period_counts: submission_current_refresh() hands the heads it removed and the heads
--    it wrote to period_counts_adjust(), which adds to each (form, period, county) the new
--    heads' contributions and takes away the old ones', a few index probes per school.
--    A key is still recounted whole when it has no row yet, when its period is not in the
--    calendar, or when the period's dates or deadline differ from those period_counts was
--    counted with (none of these holds in steady state). Roster and calendar changes
--    recount as in 007: the adjustment relies on every row having been counted with the
--    current roster and its period's current dates, which those recounts keep true.
-- 2. So that a sum can go back to NULL (sum() of no value) when its last value leaves,
--    each row also counts the heads that gave enrolled and screened.
-- 3. screening_schools is recomputed for the touched schools only, as before, and only
--    when a batch touches screening.
-- 4. submission_current_rebuild() removes the heads through submission_current_refresh()
--    too (no bare DELETE, which the counts would not see).
-- 5. submission_current_order(), which every batch calls, is a plpgsql function rather than
--    a SQL one, with the same statement: a SQL function is planned again at each call, and
--    planning took longer than running it (together 1.3-1.6 ms of CPU a call, now 0.6-0.8).

-- 2. Filled from the heads as they stand.
ALTER TABLE period_counts ADD COLUMN enrolled_heads integer NOT NULL DEFAULT 0,
	ADD COLUMN screened_heads integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN period_counts.enrolled_heads IS 'heads with a value of enrolled';
COMMENT ON COLUMN period_counts.screened_heads IS 'heads with a value of screened';
UPDATE period_counts n SET enrolled_heads = h.enrolled, screened_heads = h.screened
FROM (SELECT form, period, county_id, count(enrolled) AS enrolled, count(screened) AS screened
      FROM submission_current
      WHERE NOT is_event AND (enrolled IS NOT NULL OR screened IS NOT NULL)
      GROUP BY form, period, county_id) h
WHERE n.form = h.form AND n.period = h.period AND n.county_id = h.county_id;
ALTER TABLE period_counts ALTER COLUMN enrolled_heads DROP DEFAULT,
	ALTER COLUMN screened_heads DROP DEFAULT;

-- As in 007_inspection_counts.sql, with the heads that gave each sum.
CREATE OR REPLACE FUNCTION period_counts_recount(p_form text[], p_period text[], p_county text[])
RETURNS void
LANGUAGE sql AS $$
	DELETE FROM period_counts_basis b
	USING unnest(p_form, p_period) AS k(form, period)
	WHERE b.form = k.form AND b.period = k.period
		AND NOT EXISTS (SELECT 1 FROM periods p
				WHERE p.form = k.form AND p.period = k.period);
	DELETE FROM period_counts n
	USING unnest(p_form, p_period, p_county) AS k(form, period, county_id)
	WHERE n.form = k.form AND n.period = k.period AND n.county_id = k.county_id;
	INSERT INTO period_counts (form, period, county_id, expected, heads, received, on_time,
		enrolled, screened, no_committee, no_channel, enrolled_heads, screened_heads)
	SELECT k.form, k.period, k.county_id, e.n, h.heads, h.received, h.on_time, h.enrolled,
		h.screened, h.no_committee, h.no_channel, h.enrolled_heads, h.screened_heads
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
			count(r.school_id) FILTER (WHERE h.first_received_at < p.deadline)
				AS on_time,
			sum(h.enrolled) AS enrolled, sum(h.screened) AS screened,
			count(*) FILTER (WHERE NOT h.committee) AS no_committee,
			count(*) FILTER (WHERE NOT h.channel) AS no_channel,
			count(h.enrolled) AS enrolled_heads, count(h.screened) AS screened_heads
		FROM submission_current h
		LEFT JOIN roster_current_schools r ON r.county_id = h.county_id
			AND r.school_id = h.school_id AND p.period IS NOT NULL
			AND (r.opened IS NULL OR r.opened <= p.end_date)
			AND (r.closed IS NULL OR r.closed >= p.start_date)
		WHERE h.form = k.form AND h.period = k.period AND h.county_id = k.county_id
			AND NOT h.is_event
	) h;
$$;

-- 1. The (form, period, county) keys given (parallel arrays; repeats are fine) had the heads
-- p_old (as they were removed) replaced by the heads p_new: each key whose row was counted
-- with its period's current dates gets the difference, as period_counts_recount() would
-- count it; every other key is recounted. Event heads count nowhere. Every head of p_old
-- and p_new must belong to a key given. The caller holds the counties' advisory locks, as
-- for period_counts_recount().
CREATE FUNCTION period_counts_adjust(p_form text[], p_period text[], p_county text[],
				     p_old submission_current[], p_new submission_current[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	k record;
BEGIN
	UPDATE period_counts n SET heads = n.heads + d.heads, received = n.received + d.received,
		on_time = n.on_time + d.on_time,
		enrolled = CASE WHEN n.enrolled_heads + d.enrolled_heads > 0
			THEN coalesce(n.enrolled, 0) + d.enrolled END,
		screened = CASE WHEN n.screened_heads + d.screened_heads > 0
			THEN coalesce(n.screened, 0) + d.screened END,
		no_committee = n.no_committee + d.no_committee,
		no_channel = n.no_channel + d.no_channel,
		enrolled_heads = n.enrolled_heads + d.enrolled_heads,
		screened_heads = n.screened_heads + d.screened_heads
	FROM (
		SELECT h.form, h.period, h.county_id, sum(h.sign) AS heads,
			coalesce(sum(h.sign) FILTER (WHERE r.school_id IS NOT NULL), 0) AS received,
			coalesce(sum(h.sign) FILTER (WHERE r.school_id IS NOT NULL
						     AND h.first_received_at < p.deadline), 0)
				AS on_time,
			coalesce(sum(h.sign * h.enrolled::bigint), 0) AS enrolled,
			coalesce(sum(h.sign * h.screened::bigint), 0) AS screened,
			coalesce(sum(h.sign) FILTER (WHERE NOT h.committee), 0) AS no_committee,
			coalesce(sum(h.sign) FILTER (WHERE NOT h.channel), 0) AS no_channel,
			coalesce(sum(h.sign) FILTER (WHERE h.enrolled IS NOT NULL), 0)
				AS enrolled_heads,
			coalesce(sum(h.sign) FILTER (WHERE h.screened IS NOT NULL), 0)
				AS screened_heads
		FROM (SELECT -1 AS sign, o.form, o.period, o.county_id, o.school_id,
			     o.first_received_at, o.enrolled, o.screened, o.committee, o.channel
		      FROM unnest(p_old) o
		      WHERE NOT o.is_event
		      UNION ALL
		      SELECT 1, o.form, o.period, o.county_id, o.school_id, o.first_received_at,
			     o.enrolled, o.screened, o.committee, o.channel
		      FROM unnest(p_new) o
		      WHERE NOT o.is_event) h
		JOIN periods p ON p.form = h.form AND p.period = h.period
		LEFT JOIN roster_current_schools r ON r.county_id = h.county_id
			AND r.school_id = h.school_id
			AND (r.opened IS NULL OR r.opened <= p.end_date)
			AND (r.closed IS NULL OR r.closed >= p.start_date)
		GROUP BY h.form, h.period, h.county_id
	) d
	WHERE n.form = d.form AND n.period = d.period AND n.county_id = d.county_id
		AND (d.heads, d.received, d.on_time, d.enrolled, d.screened, d.no_committee,
		     d.no_channel, d.enrolled_heads, d.screened_heads)
			<> (0, 0, 0, 0, 0, 0, 0, 0, 0)
		AND EXISTS (SELECT 1 FROM periods p
			    JOIN period_counts_basis b ON b.form = p.form AND b.period = p.period
			    WHERE p.form = d.form AND p.period = d.period
				AND (b.start_date, b.end_date, b.deadline) IS NOT DISTINCT FROM
				    (p.start_date, p.end_date, p.deadline));
	-- the others, the same test the other way round
	SELECT array_agg(x.form) AS f, array_agg(x.period) AS p, array_agg(x.county_id) AS c
	INTO k
	FROM (SELECT DISTINCT * FROM unnest(p_form, p_period, p_county)
	      AS x(form, period, county_id)) x
	WHERE NOT EXISTS (SELECT 1 FROM period_counts n
			  WHERE n.form = x.form AND n.period = x.period
				AND n.county_id = x.county_id)
		OR NOT EXISTS (SELECT 1 FROM periods p
			       JOIN period_counts_basis b ON b.form = p.form AND b.period = p.period
			       WHERE p.form = x.form AND p.period = x.period
				AND (b.start_date, b.end_date, b.deadline) IS NOT DISTINCT FROM
				    (p.start_date, p.end_date, p.deadline));
	IF k.f IS NOT NULL THEN
		PERFORM period_counts_recount(k.f, k.p, k.c);
	END IF;
END;
$$;

-- As in 007_inspection_counts.sql, handing the heads it replaces and the heads it writes to
-- period_counts_adjust() (1), and recomputing screening rows only when there are some (3).
CREATE OR REPLACE FUNCTION submission_current_refresh(p_county text[], p_school text[],
						      p_form text[], p_period text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	gone submission_current[];
	came submission_current[];
BEGIN
	PERFORM pg_advisory_xact_lock(1919248229, hashtext(c))
	FROM (SELECT DISTINCT c FROM unnest(p_county) AS c ORDER BY c) l;
	WITH d AS (
		DELETE FROM submission_current h
		USING unnest(p_county, p_school, p_form, p_period)
			AS k(county_id, school_id, form, period)
		WHERE h.form = k.form AND h.period = k.period AND h.county_id = k.county_id
			AND h.school_id = k.school_id
		RETURNING h
	)
	SELECT array_agg(d.h) FILTER (WHERE NOT (d.h).is_event) INTO gone FROM d;
	WITH i AS (
		INSERT INTO submission_current AS h (submission_id, county_id, form, period,
			school_id, is_event, created_at, hub_received_at, first_received_at,
			payload_sha256, on_time, ref_date, level, types, victims, perpetrators,
			open_deadline, enrolled, screened, committee, channel, open_items)
		SELECT DISTINCT ON (c.form, c.period, c.county_id, c.school_id,
				    CASE WHEN c.is_event THEN c.submission_id END)
			c.submission_id, c.county_id, c.form, c.period, c.school_id, c.is_event,
			c.created_at, c.hub_received_at,
			CASE WHEN c.is_event THEN c.hub_received_at ELSE c.first_received_at END,
			c.payload_sha256, c.on_time, coalesce(c.incident_on, c.ledger_as_of),
			c.incident_level, c.incident_types, c.incident_victims,
			c.incident_perpetrators, c.ledger_open_deadline, c.screening_enrolled,
			c.screening_screened, c.screening_committee, c.screening_channel,
			CASE WHEN c.ledger_open_deadline IS NOT NULL
				THEN ledger_open_items(c.payload #> '{data,items}') END
		FROM (
			SELECT s.*, coalesce(f.period_type = 'event', false) AS is_event,
				min(s.hub_received_at) OVER (PARTITION BY s.form, s.period,
							     s.county_id, s.school_id)
					AS first_received_at
			FROM (SELECT DISTINCT * FROM unnest(p_county, p_school, p_form, p_period)
				AS k(county_id, school_id, form, period)) k
			JOIN submissions s ON s.form = k.form AND s.period = k.period
				AND s.county_id = k.county_id AND s.school_id = k.school_id
				AND s.signature_verified
			LEFT JOIN forms f ON f.form = s.form
		) c
		WHERE NOT EXISTS (SELECT 1 FROM submissions x
				  WHERE x.supersedes = c.submission_id
					AND x.school_id = c.school_id AND x.signature_verified)
		ORDER BY c.form, c.period, c.county_id, c.school_id,
			CASE WHEN c.is_event THEN c.submission_id END, c.hub_received_at DESC,
			c.created_at DESC, c.submission_id DESC
		RETURNING h
	)
	SELECT array_agg(i.h) FILTER (WHERE NOT (i.h).is_event) INTO came FROM i;
	PERFORM submission_current_order(p_county, p_school, p_form);
	PERFORM period_counts_adjust(p_form, p_period, p_county, gone, came);
	IF 'screening' = ANY (p_form) THEN
		PERFORM screening_schools_recount(array_agg(k.period), array_agg(k.county_id),
						  array_agg(k.school_id))
		FROM unnest(p_county, p_school, p_form, p_period)
			AS k(county_id, school_id, form, period)
		WHERE k.form = 'screening';
	END IF;
END;
$$;

-- 4. As in 003_returns.sql, every key with a return or a head recomputed, and no head
-- removed otherwise.
CREATE OR REPLACE FUNCTION submission_current_rebuild(p_form text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	k record;
BEGIN
	SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
		array_agg(period) AS p INTO k
	FROM (SELECT county_id, school_id, form, period FROM submissions
	      WHERE p_form IS NULL OR form = p_form
	      UNION
	      SELECT county_id, school_id, form, period FROM submission_current
	      WHERE p_form IS NULL OR form = p_form) d;
	IF k.c IS NOT NULL THEN
		PERFORM submission_current_refresh(k.c, k.s, k.f, k.p);
	END IF;
END;
$$;

-- 5. As in 006_inspection_speed.sql, in plpgsql.
CREATE OR REPLACE FUNCTION submission_current_order(p_county text[], p_school text[],
						    p_form text[])
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
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
END;
$$;

