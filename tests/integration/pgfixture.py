"""A throwaway PostgreSQL for the integration tests, started by scripts/pg-tmp (the same
script the demo and the benchmarks use) in a temporary folder and removed at the end of
the session. Import the fixture into a test module to use it:

    from pgfixture import pg_server  # noqa: F401  (a pytest fixture)

    def test_something(pg_server):
        dsn = pg_server.new_database("mytest")   # an empty database of its own
        ...

pg_server.conninfo is the libpq connection string of the "postgres" database, and
pg_server.dsn(name) the one of another database on the same server."""

import os
import re
import subprocess
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PG_TMP = ROOT / "scripts" / "pg-tmp"


class PgServer:
    def __init__(self, folder, conninfo):
        self.folder = Path(folder)
        self.conninfo = conninfo

    def dsn(self, dbname):
        """The connection string of database dbname on this server."""
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", dbname), dbname
        return re.sub(r"dbname=\S+", f"dbname={dbname}", self.conninfo)

    def new_database(self, dbname):
        """Creates dbname afresh (dropping any earlier one) and returns its dsn."""
        conn = psycopg2.connect(self.conninfo)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
                cur.execute(f"CREATE DATABASE {dbname}")
        finally:
            conn.close()
        return self.dsn(dbname)


def pg_tmp(*args, timeout=180):
    """Runs scripts/pg-tmp; returns the CompletedProcess (text mode)."""
    return subprocess.run(
        [str(PG_TMP), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def start_server(folder):
    proc = pg_tmp("start", folder)
    assert proc.returncode == 0, f"pg-tmp start failed: {proc.stderr}"
    conninfo = proc.stdout.strip()
    assert "\n" not in conninfo and "port=" in conninfo, proc.stdout
    return PgServer(folder, conninfo)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """One PostgreSQL server for the whole session (see the module's docstring)."""
    folder = tmp_path_factory.mktemp("pg")
    server = start_server(folder)
    yield server
    if not os.environ.get("KEEP_PG"):
        pg_tmp("destroy", folder)
    else:
        pg_tmp("stop", folder)
