-- The rows kept by triggers on submission_current (ledger_items, incident_items of 010;
-- rollup_checks, rollup_check_rows of 008) cost less to keep, with the same rows.
--
-- Where the time went (bench/region at 3,000 schools, pg_stat_user_functions and
-- pg_stat_statements): the ingest stores a county's returns in statements of about 20 (it
-- flushes them before each roll-up), and each statement's submission_current_refresh()
-- deletes, inserts and reorders heads: three statements on submission_current, each firing
-- three statement triggers. The triggers of 008 and 010 ran for 27 s of the 63 s of CPU
-- PostgreSQL spent, and most of that was planning: ledger_items_of() and
-- incident_items_of() are SQL functions called with a sub-select as argument, which
-- PostgreSQL does not inline, so each of their two calls a statement planned its query
-- again (0.5-2.5 ms a call), rows or none (submission_current_order()'s UPDATE of
-- next_ref_date never touches an incident). Next came two queries whose plan plpgsql
-- keeps for the session, and which may then read a whole table at every statement however
-- few its rows (a plan made for a first statement of thousands of rows hashes all of
-- submissions): 008's test of whether the latest roll-up lists a return (about 4 s of a
-- run) and submissions_touched()'s look-up of superseded returns (003; 2 s of a run, and
-- 7.5 of 11.4 s of CPU when one county's returns were stored again after such a
-- statement).
--
-- 1. One trigger function, submission_current_kept(), for the three kept tables: one firing
--    a statement instead of three, its queries planned by plpgsql once a session. An
--    insert copies its rows straight from the transition table. An update compares each
--    head's old and new version once (one join of old_rows and new_rows) on what each kept
--    table copies, and writes nothing when none of it changed. A ledger whose only change
--    is its next ledger's day (submission_current_order() moving next_ref_date, the common
--    update) has that column of its rows updated in place rather than its items unnested
--    again (in a replay of one county, the function's time 342 -> 201 ms); any other
--    change rewrites the head's rows.
-- 2. Every look-up a statement makes per row is one index probe whatever plan is kept
--    (OFFSET 0 keeps it from being turned into a hash of the whole table; deletes go by an
--    array of keys): in the run after 011, 0.34 s for 008's test. The triggers of 008 on
--    rollups and rollup_submissions stay: they fire once a roll-up, and their time is the
--    comparison itself.
-- 3. submissions_touched() (003) looks each superseded return up the same way (0.16 s in
--    the run after 011).
--
-- Same rows: the kept tables, period_counts, screening_schools and submission_current
-- compared whole after the same county (4,050 returns, 204 roll-ups) was stored again under
-- 010 and under 011, cold and after a first statement of 4,050 rows; the updates of heads
-- of tests/integration/test_region_kept_items.py pass under both. bench/region at 3,000
-- schools, alternated, on a shared machine: PostgreSQL CPU per ingested item 1,571-1,588 us
-- under 010, 1,052-1,145 under 011; the ingest ratio 0.427-0.445 -> 0.576-0.613 (at 6,000
-- schools, one run each: 1,878 -> 1,456 us, 0.532 -> 0.696).
--
-- ledger_items_of() and incident_items_of() stay, for a recomputation by hand
-- (docs/INSPECTIONS.md).

DROP TRIGGER submission_current_items_insert ON submission_current;
DROP TRIGGER submission_current_items_update ON submission_current;
DROP TRIGGER submission_current_items_delete ON submission_current;
DROP TRIGGER submission_current_incidents_insert ON submission_current;
DROP TRIGGER submission_current_incidents_update ON submission_current;
DROP TRIGGER submission_current_incidents_delete ON submission_current;
DROP TRIGGER submission_current_checks_insert ON submission_current;
DROP TRIGGER submission_current_checks_update ON submission_current;
DROP TRIGGER submission_current_checks_delete ON submission_current;
DROP FUNCTION submission_current_items();
DROP FUNCTION submission_current_incidents();
DROP FUNCTION submission_current_checks();

-- 1. Keeps ledger_items and incident_items (as 010's submission_current_items() and
-- submission_current_incidents()) and the roll-up comparisons (as 008's
-- submission_current_checks()) for a statement on submission_current. An AFTER trigger:
-- submission_current holds the statement's rows, which are those of new_rows.
CREATE FUNCTION submission_current_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	ledger_gone uuid[];	-- heads whose ledger_items rows go
	ledger_came uuid[];	-- heads whose ledger_items rows come
	ledger_moved uuid[];	-- ledgers whose next ledger's day alone changed
	ledger_next text[];	-- and that day
	incident_gone uuid[];
	incident_came uuid[];
	k_county text[];	-- the roll-up comparisons to make again
	k_form text[];
	k_period text[];
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO ledger_items
		SELECT h.submission_id, x.n::integer, h.county_id, h.school_id, h.period,
			h.ref_date, coalesce(h.next_ref_date, '9999-12-31'), x.it ->> 'deadline',
			iso_date(x.it ->> 'deadline'), iso_date(h.ref_date), x.it ->> 'item_id',
			x.it ->> 'category', x.it ->> 'source', x.it ->> 'problem',
			x.it ->> 'measure', x.it ->> 'responsible_role', x.it ->> 'status'
		FROM new_rows h
		CROSS JOIN LATERAL jsonb_array_elements(h.open_items) WITH ORDINALITY AS x(it, n)
		WHERE h.open_items IS NOT NULL AND h.form = 'rectification' AND NOT h.is_event
			AND h.open_deadline IS NOT NULL AND h.ref_date IS NOT NULL
			AND jsonb_typeof(h.open_items) = 'array'
			AND json_string(x.it -> 'deadline') IS NOT NULL;
		INSERT INTO incident_items
		SELECT h.submission_id, h.county_id, h.school_id, h.ref_date, h.level, h.types,
			h.victims, h.perpetrators, iso_date(h.ref_date), d ->> 'incident_ref',
			iso_date(d ->> 'discovered_on'), iso_date(d ->> 'reported_on'),
			json_strings(d -> 'measures'), d ->> 'status', iso_date(d ->> 'closed_on')
		FROM new_rows h
		CROSS JOIN LATERAL (SELECT s.payload -> 'data' AS d
				    FROM submissions s
				    WHERE s.submission_id = h.submission_id
				    OFFSET 0) p
		WHERE h.form = 'incident' AND h.is_event;
		SELECT array_agg(k.county_id), array_agg(k.form), array_agg(k.period)
		INTO k_county, k_form, k_period
		FROM (SELECT DISTINCT county_id, form, period FROM new_rows) k
		CROSS JOIN LATERAL rollup_latest_key(k.county_id, k.form, k.period) r
		WHERE EXISTS (SELECT 1 FROM new_rows h
			      WHERE h.county_id = k.county_id AND h.form = k.form
				AND h.period = k.period
				AND (h.hub_received_at <= r.computed_at
				     OR EXISTS (SELECT 1 FROM rollup_submissions l
						WHERE l.county_id = h.county_id
							AND l.rollup_id = r.rollup_id
							AND l.submission_id = h.submission_id
						OFFSET 0)));
	ELSIF TG_OP = 'DELETE' THEN
		DELETE FROM ledger_items i
		WHERE i.submission_id = ANY (ARRAY(SELECT o.submission_id FROM old_rows o
						   WHERE o.open_items IS NOT NULL));
		DELETE FROM incident_items i
		WHERE i.submission_id = ANY (ARRAY(SELECT o.submission_id FROM old_rows o
						   WHERE o.form = 'incident' AND o.is_event));
		SELECT array_agg(k.county_id), array_agg(k.form), array_agg(k.period)
		INTO k_county, k_form, k_period
		FROM (SELECT DISTINCT county_id, form, period FROM old_rows) k
		CROSS JOIN LATERAL rollup_latest_key(k.county_id, k.form, k.period) r
		WHERE EXISTS (SELECT 1 FROM old_rows h
			      WHERE h.county_id = k.county_id AND h.form = k.form
				AND h.period = k.period
				AND (h.hub_received_at <= r.computed_at
				     OR EXISTS (SELECT 1 FROM rollup_submissions l
						WHERE l.county_id = h.county_id
							AND l.rollup_id = r.rollup_id
							AND l.submission_id = h.submission_id
						OFFSET 0)));
	ELSE
		-- each head's versions compared once, on what ledger_items copies (l), the same
		-- but next_ref_date (m; a head that is not in both counts as changed), what
		-- incident_items copies (i) and what a roll-up comparison reads (c)
		SELECT array_agg(c.old_id) FILTER (WHERE c.old_ledger AND c.m),
			array_agg(c.new_id) FILTER (WHERE c.new_ledger AND c.m),
			array_agg(c.new_id) FILTER (WHERE c.old_ledger AND c.l AND NOT c.m),
			array_agg(c.new_next) FILTER (WHERE c.old_ledger AND c.l AND NOT c.m),
			array_agg(c.old_id) FILTER (WHERE c.old_incident AND c.i),
			array_agg(c.new_id) FILTER (WHERE c.new_incident AND c.i),
			array_cat(array_agg(c.new_county) FILTER (WHERE c.c AND c.new_id IS NOT NULL),
				  array_agg(c.old_county) FILTER (WHERE c.c AND c.old_id IS NOT NULL)),
			array_cat(array_agg(c.new_form) FILTER (WHERE c.c AND c.new_id IS NOT NULL),
				  array_agg(c.old_form) FILTER (WHERE c.c AND c.old_id IS NOT NULL)),
			array_cat(array_agg(c.new_period) FILTER (WHERE c.c AND c.new_id IS NOT NULL),
				  array_agg(c.old_period) FILTER (WHERE c.c AND c.old_id IS NOT NULL))
		INTO ledger_gone, ledger_came, ledger_moved, ledger_next, incident_gone, incident_came,
			k_county, k_form, k_period
		FROM (
			SELECT o.submission_id AS old_id, n.submission_id AS new_id,
				o.open_items IS NOT NULL AS old_ledger,
				n.open_items IS NOT NULL AS new_ledger,
				coalesce(n.next_ref_date, '9999-12-31') AS new_next,
				coalesce(o.form = 'incident' AND o.is_event, false) AS old_incident,
				coalesce(n.form = 'incident' AND n.is_event, false) AS new_incident,
				o.county_id AS old_county, o.form AS old_form, o.period AS old_period,
				n.county_id AS new_county, n.form AS new_form, n.period AS new_period,
				(n.form, n.is_event, n.county_id, n.school_id, n.period, n.ref_date,
				 n.next_ref_date, n.open_deadline, n.open_items) IS DISTINCT FROM
				(o.form, o.is_event, o.county_id, o.school_id, o.period, o.ref_date,
				 o.next_ref_date, o.open_deadline, o.open_items) AS l,
				o.submission_id IS NULL OR n.submission_id IS NULL
				OR (n.form, n.is_event, n.county_id, n.school_id, n.period, n.ref_date,
				    n.open_deadline, n.open_items) IS DISTINCT FROM
				   (o.form, o.is_event, o.county_id, o.school_id, o.period, o.ref_date,
				    o.open_deadline, o.open_items) AS m,
				(n.form, n.is_event, n.county_id, n.school_id, n.ref_date, n.level,
				 n.types, n.victims, n.perpetrators) IS DISTINCT FROM
				(o.form, o.is_event, o.county_id, o.school_id, o.ref_date, o.level,
				 o.types, o.victims, o.perpetrators) AS i,
				(n.county_id, n.form, n.period, n.school_id, n.payload_sha256,
				 n.hub_received_at) IS DISTINCT FROM
				(o.county_id, o.form, o.period, o.school_id, o.payload_sha256,
				 o.hub_received_at) AS c
			FROM old_rows o
			FULL JOIN new_rows n ON n.submission_id = o.submission_id
		) c;
		IF ledger_moved IS NOT NULL THEN
			UPDATE ledger_items i SET next_ref_date = m.next
			FROM unnest(ledger_moved, ledger_next) AS m(submission_id, next)
			WHERE i.submission_id = m.submission_id;
		END IF;
		IF ledger_gone IS NOT NULL THEN
			DELETE FROM ledger_items i WHERE i.submission_id = ANY (ledger_gone);
		END IF;
		IF ledger_came IS NOT NULL THEN
			INSERT INTO ledger_items SELECT * FROM ledger_items_of(ledger_came);
		END IF;
		IF incident_gone IS NOT NULL THEN
			DELETE FROM incident_items i WHERE i.submission_id = ANY (incident_gone);
		END IF;
		IF incident_came IS NOT NULL THEN
			INSERT INTO incident_items SELECT * FROM incident_items_of(incident_came);
		END IF;
	END IF;
	IF k_county IS NOT NULL THEN
		PERFORM rollup_checks_refresh(k_county, k_form, k_period);
	END IF;
	RETURN NULL;
END;
$$;
CREATE TRIGGER submission_current_kept_insert AFTER INSERT ON submission_current
	REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_kept();
CREATE TRIGGER submission_current_kept_update AFTER UPDATE ON submission_current
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_kept();
CREATE TRIGGER submission_current_kept_delete AFTER DELETE ON submission_current
	REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION submission_current_kept();

-- 3. As in 003_returns.sql, each superseded return looked up by its key (OFFSET 0: a plan
-- kept for the session must not hash every return, as one made for a large first batch
-- does, for the few a statement supersedes).
CREATE OR REPLACE FUNCTION submissions_touched() RETURNS trigger
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
		      FROM new_rows n
		      CROSS JOIN LATERAL (SELECT o.county_id, o.school_id, o.form, o.period
					  FROM submissions o
					  WHERE o.submission_id = n.supersedes
					  OFFSET 0) o) d;
	ELSIF TG_OP = 'UPDATE' THEN
		SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
			array_agg(period) AS p INTO k
		FROM (SELECT n.county_id, n.school_id, n.form, n.period FROM new_rows n
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period FROM old_rows o
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period
		      FROM (SELECT supersedes FROM new_rows UNION SELECT supersedes FROM old_rows) n
		      CROSS JOIN LATERAL (SELECT o.county_id, o.school_id, o.form, o.period
					  FROM submissions o
					  WHERE o.submission_id = n.supersedes
					  OFFSET 0) o) d;
	ELSE
		SELECT array_agg(county_id) AS c, array_agg(school_id) AS s, array_agg(form) AS f,
			array_agg(period) AS p INTO k
		FROM (SELECT o.county_id, o.school_id, o.form, o.period FROM old_rows o
		      UNION
		      SELECT o.county_id, o.school_id, o.form, o.period
		      FROM old_rows n
		      CROSS JOIN LATERAL (SELECT o.county_id, o.school_id, o.form, o.period
					  FROM submissions o
					  WHERE o.submission_id = n.supersedes
					  OFFSET 0) o) d;
	END IF;
	IF k.c IS NOT NULL THEN
		PERFORM submission_current_refresh(k.c, k.s, k.f, k.p);
	END IF;
	RETURN NULL;
END;
$$;
