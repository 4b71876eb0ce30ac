-- Who may send and who may read (DESIGN sections 3 and 9): the counties and their hubs'
-- keys, each county's school rosters as the county signed them, and the inspectors'
-- bearer tokens.
--
-- Distribution (DESIGN section 11): counties is small and would be a Citus reference
-- table; every other table carries county_id, the distribution column, and its primary
-- and unique keys include it.

CREATE TABLE counties (
	county_id text COLLATE "C" PRIMARY KEY CHECK (county_id ~ '^[0-9]{6}$'),
	name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
	-- the hub's public key as a JWK (RFC 8037): never a private one
	hub_key jsonb NOT NULL CHECK (jsonb_typeof(hub_key) = 'object'
		AND hub_key->>'kty' = 'OKP' AND hub_key->>'crv' = 'Ed25519'
		AND hub_key->>'x' ~ '^[A-Za-z0-9_-]{43}$' AND NOT hub_key ? 'd'),
	registered_at timestamptz NOT NULL DEFAULT now(),
	roster_version bigint			-- its latest roster, kept by a trigger on rosters
);
COMMENT ON TABLE counties IS 'counties (县/市/区) and the public keys of their hubs';

-- Every roster version a county sent (PROTOCOL.md "County hub -> region"), kept forever:
-- a school's signature is verified against the key of the roster it was sent under.
CREATE TABLE rosters (
	county_id text COLLATE "C" NOT NULL REFERENCES counties,
	version bigint NOT NULL CHECK (version > 0),
	issued_at timestamptz NOT NULL,
	jws text NOT NULL,			-- the county-signed roster, as received
	region_received_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (county_id, version)
);

CREATE TABLE roster_schools (
	county_id text COLLATE "C" NOT NULL,
	version bigint NOT NULL,
	school_id text COLLATE "C" NOT NULL CHECK (school_id ~ '^[0-9]{10}$'),
	name text NOT NULL,
	type text,
	opened date,				-- NULL: open since before the campaign
	closed date,				-- its last open day; NULL: still open
	public_key jsonb NOT NULL,
	PRIMARY KEY (county_id, version, school_id),
	FOREIGN KEY (county_id, version) REFERENCES rosters ON DELETE CASCADE,
	CHECK (closed IS NULL OR opened IS NULL OR closed >= opened)
);
CREATE INDEX roster_schools_school ON roster_schools (school_id);

CREATE FUNCTION rosters_track_latest() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE counties SET roster_version = NEW.version
	WHERE county_id = NEW.county_id
		AND (roster_version IS NULL OR roster_version < NEW.version);
	RETURN NULL;
END;
$$;
CREATE TRIGGER rosters_latest AFTER INSERT ON rosters
	FOR EACH ROW EXECUTE FUNCTION rosters_track_latest();

-- The schools of each county's latest roster: the denominators of completeness.
CREATE VIEW roster_current AS
SELECT s.county_id, s.version, s.school_id, s.name, s.type, s.opened, s.closed, s.public_key
FROM roster_schools s
JOIN counties c ON c.county_id = s.county_id AND c.roster_version = s.version;

-- Bearer tokens for the inspection API. Only the SHA-256 (hex) of a token is stored; the
-- token itself is printed once by `region-server token add`.
CREATE TABLE tokens (
	name text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
	role text NOT NULL CHECK (role IN ('region-inspector', 'county-viewer')),
	county_id text COLLATE "C" REFERENCES counties,
	secret_sha256 text NOT NULL UNIQUE CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
	created_at timestamptz NOT NULL DEFAULT now(),
	revoked_at timestamptz,
	-- a county viewer sees exactly one county; an inspector sees them all
	CHECK ((role = 'county-viewer') = (county_id IS NOT NULL))
);
