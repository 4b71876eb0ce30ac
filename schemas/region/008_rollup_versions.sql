-- rollup-integrity within 100 ms however many versions of each roll-up a region holds
-- (issue 5). A hub sends a new roll-up of a (form, period) each time its figures change:
-- the 4,000-school run of docs/SCALING.md left 18,670 roll-ups for 60,449 returns, each
-- return listed again by every later version, and rollup-integrity took 110-210 ms. The
-- answers are the same as before.
--
-- 1. rollup_mismatches' 'not_in_rollup' looked each return counting here up among the
--    listings of every version that lists it (by submission_id) to find the latest one's:
--    about 28 index entries a return, 90 % of the time. And when a listed return did
--    disagree, the planner hashed the whole submissions table to judge it.
-- 2. rollup_latest() sorted every version; it now takes each county's latest verified one
--    from an index in the order it asks for, one probe per county.
-- 3. The comparison of each county's latest verified roll-up with its returns that count
--    (the rows on which they disagree, and the number listed) is kept by triggers on
--    rollups, rollup_submissions and submission_current, for the keys a statement
--    touches: one county's few hundred returns of one period, when a roll-up or its
--    listing is stored and when returns are (a return that the latest roll-up does not
--    list and that the hub received after it was computed changes none: a probe). In
--    bench/region the ingest's CPU per item stayed the same. Compared at each call
--    instead, one period of its 30,000 schools took 25-85 ms a call, and a request makes
--    two.
-- 4. The listed returns that disagree are judged one look-up each.
-- 5. rollup_integrity() reads the expected schools and the returns that count from
--    period_counts (007_inspection_counts.sql), less those first received after the
--    roll-up was computed (an index range, usually empty), instead of recounting every
--    school and return of the period; for a period that is not required, and for event
--    forms, it counts as before.

-- 2. the order rollup_latest() asks for, verified versions only
DROP INDEX rollups_form_period;
CREATE INDEX rollups_latest ON rollups (form, period, county_id, computed_at DESC, rollup_id DESC)
	WHERE signature_verified;
-- 1. the listings are read by roll-up (county_id, rollup_id, the primary key) only now
DROP INDEX rollup_submissions_rollup;

-- 2. The latest verified roll-up of each county for (form, period), as in
-- 005_inspections.sql.
CREATE OR REPLACE FUNCTION rollup_latest(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS SETOF rollups
LANGUAGE sql STABLE AS $$
	SELECT r.*
	FROM counties c
	CROSS JOIN LATERAL (
		SELECT *
		FROM rollups r
		WHERE r.form = p_form AND r.period = p_period AND r.county_id = c.county_id
			AND r.signature_verified
		ORDER BY r.computed_at DESC, r.rollup_id DESC
		LIMIT 1
	) r
	WHERE p_county IS NULL OR c.county_id = p_county
	ORDER BY c.county_id;
$$;

-- 3. Each county's latest verified roll-up of each (form, period) compared with the
-- county's returns that count, kept in the transaction that changes either: the rows on
-- which they disagree (the ones rollup_mismatches() judges) and the number of returns the
-- roll-up lists. A roll-up without a kept comparison (one that lists no return) is
-- compared when asked, the same way.
CREATE TABLE rollup_checks (
	county_id text COLLATE "C" NOT NULL,
	form text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	rollup_id bigint NOT NULL,
	listed integer NOT NULL,
	PRIMARY KEY (county_id, form, period)
);
COMMENT ON TABLE rollup_checks IS
	'the latest verified roll-up of a (county, form, period) whose comparison with the '
	'returns that count is kept in rollup_check_rows, with the number of returns it lists; '
	'kept by triggers on rollups, rollup_submissions and submission_current';

CREATE TABLE rollup_check_rows (
	county_id text COLLATE "C" NOT NULL,
	form text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	listed_id uuid,			-- listed, not counting here with this hash
	sha256 text,
	current_id uuid,		-- counting here, had by the hub, not listed
	school_id text COLLATE "C",
	payload_sha256 text
);
CREATE INDEX rollup_check_rows_key ON rollup_check_rows (county_id, form, period);
COMMENT ON TABLE rollup_check_rows IS
	'where the roll-up of rollup_checks and the returns that count disagree';

-- The comparison of county c's roll-up r (listing l) with its returns of the same form and
-- period (h), as rollup_mismatches() judges it: a listed return not counting here with
-- the same hash, or a return counting here that the hub had by then and that is not
-- listed.
CREATE FUNCTION rollup_compare(p_county text, p_rollup bigint, p_form text, p_period text,
			       p_computed_at timestamptz)
RETURNS TABLE (listed_id uuid, sha256 text, current_id uuid, school_id text,
	       payload_sha256 text)
LANGUAGE sql STABLE AS $$
	SELECT l.submission_id, l.sha256, h.submission_id, h.school_id, h.payload_sha256
	FROM (SELECT l.submission_id, l.sha256
	      FROM rollup_submissions l
	      WHERE l.county_id = p_county AND l.rollup_id = p_rollup) l
	FULL JOIN (SELECT h.submission_id, h.school_id, h.payload_sha256, h.hub_received_at
		   FROM submission_current h
		   WHERE h.form = p_form AND h.period = p_period AND h.county_id = p_county) h
		ON h.submission_id = l.submission_id
	WHERE (l.submission_id IS NOT NULL AND h.payload_sha256 IS DISTINCT FROM l.sha256)
		OR (l.submission_id IS NULL AND h.hub_received_at <= p_computed_at);
$$;

-- The latest verified roll-up of a county, form and period (none: no row).
CREATE FUNCTION rollup_latest_key(p_county text, p_form text, p_period text)
RETURNS TABLE (rollup_id bigint, computed_at timestamptz)
LANGUAGE sql STABLE AS $$
	SELECT r.rollup_id, r.computed_at
	FROM rollups r
	WHERE r.form = p_form AND r.period = p_period AND r.county_id = p_county
		AND r.signature_verified
	ORDER BY r.computed_at DESC, r.rollup_id DESC
	LIMIT 1;
$$;

-- Makes the kept comparisons of the (county, form, period) keys given again: one for each
-- key's latest verified roll-up that lists returns. Takes the county locks of
-- submission_current_refresh(), so that a roll-up and the returns of its county are
-- compared as committed. One key at a time, each statement on its index.
CREATE FUNCTION rollup_checks_refresh(p_county text[], p_form text[], p_period text[])
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	key record;
	latest record;
BEGIN
	IF p_county IS NULL THEN
		RETURN;	-- no key (array_agg() of none)
	END IF;
	PERFORM pg_advisory_xact_lock(1919248229, hashtext(c))
	FROM (SELECT DISTINCT c FROM unnest(p_county) AS c ORDER BY c) l;
	FOR key IN SELECT DISTINCT * FROM unnest(p_county, p_form, p_period)
		   AS x(county_id, form, period) LOOP
		DELETE FROM rollup_checks k
		WHERE k.county_id = key.county_id AND k.form = key.form AND k.period = key.period;
		DELETE FROM rollup_check_rows k
		WHERE k.county_id = key.county_id AND k.form = key.form AND k.period = key.period;
		SELECT * INTO latest FROM rollup_latest_key(key.county_id, key.form, key.period);
		CONTINUE WHEN NOT FOUND;
		INSERT INTO rollup_checks
		SELECT key.county_id, key.form, key.period, latest.rollup_id, l.n
		FROM (SELECT count(*) AS n
		      FROM rollup_submissions l
		      WHERE l.county_id = key.county_id AND l.rollup_id = latest.rollup_id) l
		WHERE l.n > 0;
		CONTINUE WHEN NOT FOUND;
		INSERT INTO rollup_check_rows
		SELECT key.county_id, key.form, key.period, g.*
		FROM rollup_compare(key.county_id, latest.rollup_id, key.form, key.period,
				    latest.computed_at) g;
	END LOOP;
END;
$$;

-- A roll-up written: the comparisons of its county, form and period are made again (a new
-- version lists its returns only after this: its listing's trigger compares it).
CREATE FUNCTION rollups_checks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		PERFORM rollup_checks_refresh(array_agg(k.county_id), array_agg(k.form),
					      array_agg(k.period))
		FROM (SELECT DISTINCT county_id, form, period FROM new_rows) k;
	ELSIF TG_OP = 'UPDATE' THEN
		PERFORM rollup_checks_refresh(array_agg(k.county_id), array_agg(k.form),
					      array_agg(k.period))
		FROM (SELECT county_id, form, period FROM new_rows
		      UNION SELECT county_id, form, period FROM old_rows) k;
	ELSE
		PERFORM rollup_checks_refresh(array_agg(k.county_id), array_agg(k.form),
					      array_agg(k.period))
		FROM (SELECT DISTINCT county_id, form, period FROM old_rows) k;
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER rollups_checks_insert AFTER INSERT ON rollups
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION rollups_checks();
CREATE TRIGGER rollups_checks_update AFTER UPDATE ON rollups
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION rollups_checks();
CREATE TRIGGER rollups_checks_delete AFTER DELETE ON rollups
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION rollups_checks();

-- A listing written: the comparisons of its roll-ups' keys are made again (a listing
-- deleted with its roll-up has no key left: the roll-up's trigger did it).
CREATE FUNCTION rollup_submissions_checks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		PERFORM rollup_checks_refresh(array_agg(r.county_id), array_agg(r.form),
					      array_agg(r.period))
		FROM (SELECT DISTINCT county_id, rollup_id FROM new_rows) l
		CROSS JOIN LATERAL (SELECT r.county_id, r.form, r.period
				    FROM rollups r
				    WHERE r.county_id = l.county_id AND r.rollup_id = l.rollup_id
				    OFFSET 0) r;
	ELSIF TG_OP = 'UPDATE' THEN
		PERFORM rollup_checks_refresh(array_agg(r.county_id), array_agg(r.form),
					      array_agg(r.period))
		FROM (SELECT county_id, rollup_id FROM new_rows
		      UNION SELECT county_id, rollup_id FROM old_rows) l
		CROSS JOIN LATERAL (SELECT r.county_id, r.form, r.period
				    FROM rollups r
				    WHERE r.county_id = l.county_id AND r.rollup_id = l.rollup_id
				    OFFSET 0) r;
	ELSE
		PERFORM rollup_checks_refresh(array_agg(r.county_id), array_agg(r.form),
					      array_agg(r.period))
		FROM (SELECT DISTINCT county_id, rollup_id FROM old_rows) l
		CROSS JOIN LATERAL (SELECT r.county_id, r.form, r.period
				    FROM rollups r
				    WHERE r.county_id = l.county_id AND r.rollup_id = l.rollup_id
				    OFFSET 0) r;
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER rollup_submissions_checks_insert AFTER INSERT ON rollup_submissions
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION rollup_submissions_checks();
CREATE TRIGGER rollup_submissions_checks_update AFTER UPDATE ON rollup_submissions
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION rollup_submissions_checks();
CREATE TRIGGER rollup_submissions_checks_delete AFTER DELETE ON rollup_submissions
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION rollup_submissions_checks();

-- Returns that count written: the comparisons of their keys are made again, but for a
-- return that the latest roll-up does not list and that the hub received after it was
-- computed, which changes none (the common case: returns arriving after a roll-up). An
-- update is compared again when it changes what a comparison reads (not, say, the next
-- ledger day that submission_current_order() writes).
CREATE FUNCTION submission_current_checks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		PERFORM rollup_checks_refresh(array_agg(k.county_id), array_agg(k.form),
					      array_agg(k.period))
		FROM (SELECT DISTINCT county_id, form, period FROM new_rows) k
		CROSS JOIN LATERAL rollup_latest_key(k.county_id, k.form, k.period) r
		WHERE EXISTS (SELECT 1 FROM new_rows h
			      WHERE h.county_id = k.county_id AND h.form = k.form
				AND h.period = k.period
				AND (h.hub_received_at <= r.computed_at
				     OR EXISTS (SELECT 1 FROM rollup_submissions l
						WHERE l.county_id = h.county_id
							AND l.rollup_id = r.rollup_id
							AND l.submission_id = h.submission_id)));
	ELSIF TG_OP = 'DELETE' THEN
		PERFORM rollup_checks_refresh(array_agg(k.county_id), array_agg(k.form),
					      array_agg(k.period))
		FROM (SELECT DISTINCT county_id, form, period FROM old_rows) k
		CROSS JOIN LATERAL rollup_latest_key(k.county_id, k.form, k.period) r
		WHERE EXISTS (SELECT 1 FROM old_rows h
			      WHERE h.county_id = k.county_id AND h.form = k.form
				AND h.period = k.period
				AND (h.hub_received_at <= r.computed_at
				     OR EXISTS (SELECT 1 FROM rollup_submissions l
						WHERE l.county_id = h.county_id
							AND l.rollup_id = r.rollup_id
							AND l.submission_id = h.submission_id)));
	ELSE
		PERFORM rollup_checks_refresh(array_agg(k.county_id), array_agg(k.form),
					      array_agg(k.period))
		FROM (SELECT n.county_id, n.form, n.period, o.county_id AS old_county,
			     o.form AS old_form, o.period AS old_period
		      FROM new_rows n
		      FULL JOIN old_rows o ON o.submission_id = n.submission_id
		      WHERE (n.county_id, n.form, n.period, n.school_id, n.payload_sha256,
			     n.hub_received_at) IS DISTINCT FROM
			    (o.county_id, o.form, o.period, o.school_id, o.payload_sha256,
			     o.hub_received_at)) c
		CROSS JOIN LATERAL (VALUES (c.county_id, c.form, c.period),
					   (c.old_county, c.old_form, c.old_period))
			AS k(county_id, form, period)
		WHERE k.county_id IS NOT NULL;
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER submission_current_checks_insert AFTER INSERT ON submission_current
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_checks();
CREATE TRIGGER submission_current_checks_update AFTER UPDATE ON submission_current
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_checks();
CREATE TRIGGER submission_current_checks_delete AFTER DELETE ON submission_current
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_checks();

-- the comparisons as they stand
SELECT rollup_checks_refresh(array_agg(county_id), array_agg(form), array_agg(period))
FROM (SELECT DISTINCT county_id, form, period FROM rollups WHERE signature_verified) k;


-- 3, 4. rollup-integrity's return list, as in 005_inspections.sql, from the kept comparison
-- of each county's latest roll-up (or, when none is kept, the comparison made now), its
-- listed returns judged one look-up each.
CREATE OR REPLACE FUNCTION rollup_mismatches(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, rollup_id bigint, computed_at timestamptz,
	       submission_id uuid, school_id text, problem text, county_sha256 text,
	       region_sha256 text)
LANGUAGE sql STABLE AS $$
	WITH r AS MATERIALIZED (
		SELECT r.county_id, r.rollup_id, r.computed_at, k.rollup_id IS NOT NULL AS kept
		FROM rollup_latest(p_form, p_period, p_county) r
		LEFT JOIN rollup_checks k ON k.county_id = r.county_id AND k.form = p_form
			AND k.period = p_period AND k.rollup_id = r.rollup_id
	), side AS MATERIALIZED (
		SELECT r.county_id, r.rollup_id, r.computed_at, g.listed_id, g.sha256,
			g.current_id, g.school_id, g.payload_sha256
		FROM r
		JOIN rollup_check_rows g ON g.county_id = r.county_id AND g.form = p_form
			AND g.period = p_period
		WHERE r.kept
		UNION ALL
		SELECT r.county_id, r.rollup_id, r.computed_at, g.*
		FROM r
		CROSS JOIN LATERAL rollup_compare(r.county_id, r.rollup_id, p_form, p_period,
						  r.computed_at) g
		WHERE NOT r.kept
	), judged AS (
		SELECT d.county_id, d.rollup_id, d.computed_at, d.listed_id, d.sha256, s.school_id,
			s.payload_sha256,
			CASE WHEN s.submission_id IS NULL THEN 'missing_at_region'
			     WHEN s.payload_sha256 <> d.sha256 THEN 'sha256_differs'
			     WHEN NOT s.signature_verified THEN 'unverified'
			     WHEN s.form <> p_form OR s.period <> p_period THEN 'not_current'
			     WHEN EXISTS (SELECT 1 FROM submission_current c
					  WHERE c.form = p_form AND c.period = p_period
						AND c.county_id = s.county_id
						AND c.school_id = s.school_id AND NOT c.is_event
						AND c.hub_received_at <= d.computed_at)
				OR EXISTS (SELECT 1 FROM submissions x
					   WHERE x.supersedes = s.submission_id
						AND x.school_id = s.school_id
						AND x.signature_verified
						AND x.hub_received_at <= d.computed_at)
				THEN 'not_current'
			END AS problem
		FROM side d
		-- one look-up each (OFFSET 0: not a hash of every return for a few)
		LEFT JOIN LATERAL (
			SELECT s.submission_id, s.county_id, s.school_id, s.form, s.period,
				s.payload_sha256, s.signature_verified
			FROM submissions s
			WHERE s.submission_id = d.listed_id AND s.county_id = d.county_id
			OFFSET 0
		) s ON true
		WHERE d.listed_id IS NOT NULL
	)
	SELECT j.county_id, j.rollup_id, j.computed_at, j.listed_id, j.school_id, j.problem,
		j.sha256, j.payload_sha256
	FROM judged j
	WHERE j.problem IS NOT NULL
	UNION ALL
	SELECT d.county_id, d.rollup_id, d.computed_at, d.current_id, d.school_id,
		'not_in_rollup', NULL, d.payload_sha256
	FROM side d
	WHERE d.listed_id IS NULL
	ORDER BY 1, 6, 4;
$$;

CREATE OR REPLACE FUNCTION rollup_integrity(p_form text, p_period text, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, status text, computed_at timestamptz,
	       expected_county integer, expected_region bigint, received_county integer,
	       received_region bigint, on_time_county integer, on_time_region bigint,
	       listed bigint, missing_at_region bigint, sha256_differs bigint,
	       not_current bigint, not_in_rollup bigint, findings bigint, ok boolean)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan AS $$
#variable_conflict use_column
DECLARE
	per periods := period_get(p_form, p_period);
	is_event boolean := EXISTS (SELECT 1 FROM forms f
				    WHERE f.form = p_form AND f.period_type = 'event');
BEGIN
	RETURN QUERY
	WITH r AS MATERIALIZED (
		SELECT r.county_id, r.rollup_id, r.status, r.computed_at, r.expected, r.received,
			r.on_time
		FROM rollup_latest(p_form, p_period, p_county) r
	), got AS (
		-- required periods: the expected schools with a return that counts, less those
		-- first received after the roll-up was computed
		SELECT r.county_id, n.received - a.received AS received,
			n.on_time - a.on_time AS on_time
		FROM r
		JOIN period_counts n ON n.form = per.form AND n.period = per.period
			AND n.county_id = r.county_id
		CROSS JOIN LATERAL (
			SELECT count(*) AS received,
				count(*) FILTER (WHERE h.first_received_at < per.deadline) AS on_time
			FROM submission_current h
			JOIN roster_current_schools s ON s.county_id = h.county_id
				AND s.school_id = h.school_id
				AND (s.opened IS NULL OR s.opened <= per.end_date)
				AND (s.closed IS NULL OR s.closed >= per.start_date)
			WHERE h.form = per.form AND h.period = per.period
				AND h.county_id = r.county_id AND NOT h.is_event
				AND h.first_received_at > r.computed_at
		) a
		WHERE per.required
		UNION ALL
		-- other periods of phase and monthly forms: every school with a return by then
		SELECT r.county_id, count(*), count(*) FILTER (WHERE h.first_received_at < per.deadline)
		FROM r
		JOIN submission_current h ON h.form = p_form AND h.period = p_period
			AND h.county_id = r.county_id AND h.first_received_at <= r.computed_at
			AND NOT h.is_event
		WHERE NOT per.required
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
		SELECT r.county_id,
			coalesce(k.listed, (SELECT count(*) FROM rollup_submissions l
					    WHERE l.county_id = r.county_id
						AND l.rollup_id = r.rollup_id)) AS n
		FROM r
		LEFT JOIN rollup_checks k ON k.county_id = r.county_id AND k.form = p_form
			AND k.period = p_period AND k.rollup_id = r.rollup_id
	)
	SELECT c.county_id, c.name, r.status, r.computed_at, r.expected,
		CASE WHEN per.required THEN coalesce(n.expected, 0)::bigint END,
		r.received, coalesce(got.received, 0)::bigint, r.on_time,
		coalesce(got.on_time, 0)::bigint, coalesce(listed.n, 0),
		coalesce(mm.missing_at_region, 0), coalesce(mm.sha256_differs, 0),
		coalesce(mm.not_current, 0), coalesce(mm.not_in_rollup, 0), coalesce(fi.n, 0),
		CASE WHEN r.county_id IS NOT NULL THEN
			(NOT per.required OR r.expected IS NOT DISTINCT FROM coalesce(n.expected, 0))
			AND r.received IS NOT DISTINCT FROM coalesce(got.received, 0)
			AND r.on_time IS NOT DISTINCT FROM coalesce(got.on_time, 0)
			AND mm.county_id IS NULL AND fi.county_id IS NULL
		END
	FROM counties c
	LEFT JOIN period_counts n ON n.form = per.form AND n.period = per.period
		AND n.county_id = c.county_id
	LEFT JOIN r ON r.county_id = c.county_id
	LEFT JOIN got ON got.county_id = c.county_id
	LEFT JOIN mm ON mm.county_id = c.county_id
	LEFT JOIN fi ON fi.county_id = c.county_id
	LEFT JOIN listed ON listed.county_id = c.county_id
	WHERE p_county IS NULL OR c.county_id = p_county
	ORDER BY c.county_id;
END;
$$;
