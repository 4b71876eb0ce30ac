-- Inspections that read kept rows instead of unnesting returns (issue 5: each inspection
-- query p95 <= 100 ms over HTTP on the 30,000-school run's data, docs/SCALING.md "The
-- largest run"). On that run's database, overdue-rectification unnested the open items of
-- 12,262 ledgers from submission_current.open_items and read every member of every item
-- from jsonb, then made dates of them with iso_date() (about 40% of its time); follow-up
-- did the same to count them, and read its incidents, like incidents(), through the index
-- on submission_current's incident heads, most of whose entries needed a visit to the heap
-- of that wide table (the batches keep rewriting it); the level-3 list read each report's
-- payload from submissions.
--
-- 1. ledger_items: one row per open item (not done or verified, with a deadline: what
--    ledger_open_items() of 007 keeps in submission_current.open_items) of each current
--    rectification ledger, its members already taken out of the jsonb, its dates already
--    made, with its ledger's as-of day and the next ledger's (next_ref_date).
--    overdue-rectification and follow-up read these rows by an index on (next as-of day,
--    as-of day, deadline): "the ledger as of D" and "overdue at D" are index conditions.
-- 2. incident_items: one row per incident report that counts, with the members of the
--    level-3 list taken out of the payload. incidents, level-3 and follow-up read this
--    narrow table (follow-up by an index on level).
--    Both are kept by statement triggers on submission_current (with transition tables),
--    in the transaction that stores a return: a return is visible to the inspections as
--    soon as its batch is answered, as before. An update of a head rewrites its rows only
--    when what they copy changed (submission_current_order() moving next_ref_date is the
--    common one). Both are filled here from what is stored.
-- 3.-6. The functions read them, with the same answers, row for row and in the same order
--    (compared in full on that database for as_of 2024-06-30, 2024-11-30, 2025-01-31,
--    years 2024 and 2023, min_level 1-3, four date ranges, three screening periods, all
--    counties and three single ones). The date bounds of incident_rows() are computed once
--    (a scalar subquery) rather than once per row when the planner scans the whole table.
-- 7. screening-coverage per school reads screening_schools in its key's order, unsorted.
--
-- Figures on that database (2 CPUs shared with other builds, so noisy; before and after
-- measured in the same run, functions swapped between them), SQL by psql/pgbench and HTTP
-- p95 of 20 calls through region-server:
--   overdue-rectification  SQL 268-288 -> 83-150 ms; HTTP p95 293-437 -> 110-162 ms
--   follow-up              SQL 209-242 -> 113-175 ms; HTTP p95 316-401 -> 161-188 ms
--   incidents (both tables)SQL  71-105 ->  49-73 ms;  HTTP p95 207-267 -> 101-117 ms
--   level3                 SQL  79-98  ->  11-19 ms;  HTTP p95  94-135 ->  22-29 ms
--   screening-coverage     SQL 100-134 ->  59-61 ms;  HTTP p95 165-196 -> 124-150 ms
-- (quiet-machine figures before, issue 5: SQL 168 / 265 / 126 / 66 / 110 ms).

CREATE TABLE ledger_items (
	submission_id uuid NOT NULL,
	n integer NOT NULL,			-- its place among the ledger's open items, from 1
	county_id text COLLATE "C" NOT NULL,
	school_id text COLLATE "C" NOT NULL,
	period text COLLATE "C" NOT NULL,
	ref_date text COLLATE "C" NOT NULL,	-- the ledger's as_of, "YYYY-MM-DD"
	next_ref_date text COLLATE "C" NOT NULL, -- the school's next ledger's, or '9999-12-31'
	deadline text NOT NULL,			-- item ->> 'deadline', "YYYY-MM-DD"
	deadline_on date,			-- iso_date(deadline)
	ref_on date,				-- iso_date(ref_date)
	item_id text,
	category text,
	source text,
	problem text,
	measure text,
	responsible_role text,
	status text,
	PRIMARY KEY (submission_id, n)
);
COMMENT ON TABLE ledger_items IS
	'the open items (submission_current.open_items) of the current rectification ledgers, '
	'one row each, kept by triggers on submission_current';
-- "the school's ledger as of D" is ref_date <= D < next_ref_date; "overdue" is deadline < D
CREATE INDEX ledger_items_as_of ON ledger_items (next_ref_date, ref_date, deadline)
	INCLUDE (county_id, school_id);

-- The rows of ledger_items of the given heads of submission_current (those that are not
-- ledgers with an open item give none).
CREATE FUNCTION ledger_items_of(p_ids uuid[])
RETURNS SETOF ledger_items
LANGUAGE sql STABLE AS $$
	SELECT h.submission_id, x.n::integer, h.county_id, h.school_id, h.period, h.ref_date,
		coalesce(h.next_ref_date, '9999-12-31'), x.it ->> 'deadline',
		iso_date(x.it ->> 'deadline'), iso_date(h.ref_date), x.it ->> 'item_id',
		x.it ->> 'category', x.it ->> 'source', x.it ->> 'problem', x.it ->> 'measure',
		x.it ->> 'responsible_role', x.it ->> 'status'
	FROM submission_current h
	CROSS JOIN LATERAL jsonb_array_elements(h.open_items) WITH ORDINALITY AS x(it, n)
	WHERE h.submission_id = ANY (p_ids)
		AND h.form = 'rectification' AND NOT h.is_event AND h.open_deadline IS NOT NULL
		AND h.ref_date IS NOT NULL AND jsonb_typeof(h.open_items) = 'array'
		AND json_string(x.it -> 'deadline') IS NOT NULL;
$$;

-- Keeps ledger_items: the removed heads' rows go, the new heads' rows come; an update
-- rewrites the rows of a head whose ledger, order or items changed (submission_current_order()
-- moving next_ref_date is the common one). An AFTER trigger: submission_current already
-- holds the statement's rows.
CREATE FUNCTION submission_current_items() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO ledger_items
		SELECT * FROM ledger_items_of(ARRAY(SELECT h.submission_id FROM new_rows h
						    WHERE h.open_items IS NOT NULL));
	ELSIF TG_OP = 'DELETE' THEN
		DELETE FROM ledger_items i
		USING old_rows o
		WHERE i.submission_id = o.submission_id AND o.open_items IS NOT NULL;
	ELSE
		DELETE FROM ledger_items i
		USING old_rows o
		LEFT JOIN new_rows n ON n.submission_id = o.submission_id
		WHERE i.submission_id = o.submission_id AND o.open_items IS NOT NULL
			AND (n.submission_id IS NULL
			     OR (n.form, n.is_event, n.county_id, n.school_id, n.period, n.ref_date,
				 n.next_ref_date, n.open_deadline, n.open_items) IS DISTINCT FROM
				(o.form, o.is_event, o.county_id, o.school_id, o.period, o.ref_date,
				 o.next_ref_date, o.open_deadline, o.open_items));
		INSERT INTO ledger_items
		SELECT * FROM ledger_items_of(ARRAY(
			SELECT n.submission_id FROM new_rows n
			LEFT JOIN old_rows o ON o.submission_id = n.submission_id
			WHERE n.open_items IS NOT NULL
				AND (o.submission_id IS NULL OR o.open_items IS NULL
				     OR (n.form, n.is_event, n.county_id, n.school_id, n.period,
					 n.ref_date, n.next_ref_date, n.open_deadline, n.open_items)
					IS DISTINCT FROM
					(o.form, o.is_event, o.county_id, o.school_id, o.period,
					 o.ref_date, o.next_ref_date, o.open_deadline, o.open_items))));
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER submission_current_items_insert AFTER INSERT ON submission_current
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_items();
CREATE TRIGGER submission_current_items_update AFTER UPDATE ON submission_current
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_items();
CREATE TRIGGER submission_current_items_delete AFTER DELETE ON submission_current
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_items();

-- the items as they stand
INSERT INTO ledger_items
SELECT * FROM ledger_items_of(ARRAY(SELECT h.submission_id FROM submission_current h
				    WHERE h.open_items IS NOT NULL));
ANALYZE ledger_items;

-- 2. incident_items: one row per current incident report (the event heads of
--    submission_current), with the members of the level-3 list taken out of the payload,
--    kept by the same kind of triggers. incidents, the level-3 list and follow-up read
--    this narrow table rather than the wide submission_current (whose index on incidents
--    sent most reads to the heap, the table being rewritten by every batch) and the
--    payloads of submissions.
CREATE TABLE incident_items (
	submission_id uuid PRIMARY KEY,
	county_id text COLLATE "C" NOT NULL,
	school_id text COLLATE "C" NOT NULL,
	occurred_on text COLLATE "C",		-- submission_current.ref_date
	level smallint,
	types text[],
	victims integer,
	perpetrators integer,
	occurred_date date,			-- iso_date(occurred_on)
	incident_ref text,			-- the payload's, as incidents_level3() shows it
	discovered_on date,
	reported_on date,
	measures text[],
	status text,
	closed_on date
);
COMMENT ON TABLE incident_items IS
	'the incident reports that count (event heads of submission_current), one row each, '
	'kept by triggers on submission_current';
CREATE INDEX incident_items_day ON incident_items (occurred_on)
	INCLUDE (county_id, level, types, victims, perpetrators);
CREATE INDEX incident_items_level ON incident_items (level, occurred_on)
	INCLUDE (county_id, school_id);

-- The rows of incident_items of the given heads of submission_current (those that are not
-- incident reports give none).
CREATE FUNCTION incident_items_of(p_ids uuid[])
RETURNS SETOF incident_items
LANGUAGE sql STABLE AS $$
	SELECT h.submission_id, h.county_id, h.school_id, h.ref_date, h.level, h.types, h.victims,
		h.perpetrators, iso_date(h.ref_date), d ->> 'incident_ref',
		iso_date(d ->> 'discovered_on'), iso_date(d ->> 'reported_on'),
		json_strings(d -> 'measures'), d ->> 'status', iso_date(d ->> 'closed_on')
	FROM submission_current h
	JOIN submissions s ON s.submission_id = h.submission_id
	CROSS JOIN LATERAL (SELECT s.payload -> 'data' AS d) p
	WHERE h.submission_id = ANY (p_ids) AND h.form = 'incident' AND h.is_event;
$$;

-- Keeps incident_items as submission_current_items() keeps ledger_items (the payload of a
-- stored return does not change).
CREATE FUNCTION submission_current_incidents() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO incident_items
		SELECT * FROM incident_items_of(ARRAY(SELECT h.submission_id FROM new_rows h
						      WHERE h.form = 'incident' AND h.is_event));
	ELSIF TG_OP = 'DELETE' THEN
		DELETE FROM incident_items i
		USING old_rows o
		WHERE i.submission_id = o.submission_id AND o.form = 'incident' AND o.is_event;
	ELSE
		DELETE FROM incident_items i
		USING old_rows o
		LEFT JOIN new_rows n ON n.submission_id = o.submission_id
		WHERE i.submission_id = o.submission_id AND o.form = 'incident' AND o.is_event
			AND (n.submission_id IS NULL
			     OR (n.form, n.is_event, n.county_id, n.school_id, n.ref_date, n.level,
				 n.types, n.victims, n.perpetrators) IS DISTINCT FROM
				(o.form, o.is_event, o.county_id, o.school_id, o.ref_date, o.level,
				 o.types, o.victims, o.perpetrators));
		INSERT INTO incident_items
		SELECT * FROM incident_items_of(ARRAY(
			SELECT n.submission_id FROM new_rows n
			LEFT JOIN old_rows o ON o.submission_id = n.submission_id
			WHERE n.form = 'incident' AND n.is_event
				AND (o.submission_id IS NULL OR NOT (o.form = 'incident' AND o.is_event)
				     OR (n.form, n.is_event, n.county_id, n.school_id, n.ref_date,
					 n.level, n.types, n.victims, n.perpetrators) IS DISTINCT FROM
					(o.form, o.is_event, o.county_id, o.school_id, o.ref_date,
					 o.level, o.types, o.victims, o.perpetrators))));
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER submission_current_incidents_insert AFTER INSERT ON submission_current
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_incidents();
CREATE TRIGGER submission_current_incidents_update AFTER UPDATE ON submission_current
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_incidents();
CREATE TRIGGER submission_current_incidents_delete AFTER DELETE ON submission_current
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_incidents();

-- the incidents as they stand
INSERT INTO incident_items
SELECT * FROM incident_items_of(ARRAY(SELECT h.submission_id FROM submission_current h
				      WHERE h.form = 'incident' AND h.is_event));
ANALYZE incident_items;

-- 3. overdue-rectification, as in 007_inspection_counts.sql, from ledger_items, with the
-- schools' names by one hash join rather than an index probe per item.
CREATE OR REPLACE FUNCTION overdue_rectification(p_as_of date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       item_id text, category text, source text, problem text, measure text,
	       responsible_role text, deadline date, status text, days_overdue integer,
	       ledger_period text, ledger_as_of date, submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT i.county_id, c.name, i.school_id, r.name, i.item_id, i.category, i.source,
		i.problem, i.measure, i.responsible_role, i.deadline_on, i.status,
		p_as_of - i.deadline_on, i.period, i.ref_on, i.submission_id
	FROM ledger_items i
	JOIN counties c ON c.county_id = i.county_id
	LEFT JOIN roster_current_schools r ON r.county_id = i.county_id
		AND r.school_id = i.school_id
	WHERE i.next_ref_date > to_char(p_as_of, 'YYYY-MM-DD')
		AND i.ref_date <= to_char(p_as_of, 'YYYY-MM-DD')
		AND i.deadline < to_char(p_as_of, 'YYYY-MM-DD')
		AND (p_county IS NULL OR i.county_id = p_county)
	ORDER BY i.county_id, i.school_id, i.deadline, i.item_id;
$$;

-- 4. follow-up, as in 007_inspection_counts.sql, with the incidents counted from
-- incident_items (below; by the index on level) and the overdue items from ledger_items.
CREATE OR REPLACE FUNCTION follow_up(p_year integer, p_min_level integer DEFAULT 2,
				     p_county text DEFAULT NULL, p_as_of date DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       incidents bigint, max_level integer, level3 bigint, overdue_items bigint)
LANGUAGE sql STABLE AS $$
	WITH inc AS (
		SELECT r.county_id, r.school_id, count(*) AS n, max(r.level)::integer AS max_level,
			count(*) FILTER (WHERE r.level = 3) AS n3
		FROM incident_items r
		WHERE r.level >= p_min_level
			AND r.occurred_on BETWEEN to_char(make_date(p_year, 1, 1), 'YYYY-MM-DD')
				AND to_char(make_date(p_year, 12, 31), 'YYYY-MM-DD')
			AND (p_county IS NULL OR r.county_id = p_county)
		GROUP BY r.county_id, r.school_id
	), od AS (
		SELECT i.county_id, i.school_id, count(*) AS n
		FROM ledger_items i
		WHERE i.next_ref_date > to_char(coalesce(p_as_of, make_date(p_year, 12, 31)),
						'YYYY-MM-DD')
			AND i.ref_date <= to_char(coalesce(p_as_of, make_date(p_year, 12, 31)),
						  'YYYY-MM-DD')
			AND i.deadline < to_char(coalesce(p_as_of, make_date(p_year, 12, 31)),
						 'YYYY-MM-DD')
			AND (p_county IS NULL OR i.county_id = p_county)
		GROUP BY i.county_id, i.school_id
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

-- 5. The incidents that count, as in 005_inspections.sql, from incident_items (incidents()
-- and follow_up() read them through this function).
CREATE OR REPLACE FUNCTION incident_rows(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, school_id text, submission_id uuid, occurred_on text,
	       level integer, types text[], victims integer, perpetrators integer)
LANGUAGE sql STABLE AS $$
	SELECT i.county_id, i.school_id, i.submission_id, i.occurred_on, i.level, i.types,
		i.victims, i.perpetrators
	FROM incident_items i
	WHERE i.occurred_on BETWEEN (SELECT to_char(p_from, 'YYYY-MM-DD'))
			AND (SELECT to_char(p_to, 'YYYY-MM-DD'))
		AND (p_county IS NULL OR i.county_id = p_county);
$$;

-- 6. The level-3 list, as in 007_inspection_counts.sql, from incident_items alone.
CREATE OR REPLACE FUNCTION incidents_level3(p_from date, p_to date, p_county text DEFAULT NULL)
RETURNS TABLE (county_id text, county_name text, school_id text, school_name text,
	       incident_ref text, occurred_on date, discovered_on date, reported_on date,
	       types text[], measures text[], status text, closed_on date,
	       submission_id uuid)
LANGUAGE sql STABLE AS $$
	SELECT i.county_id, c.name, i.school_id, rc.name, i.incident_ref, i.occurred_date,
		i.discovered_on, i.reported_on, i.types, i.measures, i.status, i.closed_on,
		i.submission_id
	FROM incident_items i
	JOIN counties c ON c.county_id = i.county_id
	LEFT JOIN roster_current_schools rc ON rc.county_id = i.county_id
		AND rc.school_id = i.school_id
	WHERE i.level = 3
		AND i.occurred_on BETWEEN (SELECT to_char(p_from, 'YYYY-MM-DD'))
			AND (SELECT to_char(p_to, 'YYYY-MM-DD'))
		AND (p_county IS NULL OR i.county_id = p_county)
	ORDER BY i.occurred_on, i.county_id, i.school_id, i.incident_ref, i.submission_id;
$$;

-- 7. screening-coverage per school reads screening_schools in the order of its primary key,
-- which is the order of the answer, rather than sorting 30,000 rows (the planner preferred
-- the sort: most index entries need a visit to the heap, as the table is rewritten by the
-- batches that touch screening). The function's one statement has no other sort.
ALTER FUNCTION screening_coverage_schools(text, text) SET enable_sort = off;
