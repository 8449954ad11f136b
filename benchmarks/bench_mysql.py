"""Benchmark MySQL drivers on MLflow's metric history: PyMySQL against connectorx (Arrow).

Starts MariaDB on loopback (tests/support/mysql.py), lets mlflow create its schema and a few
runs, fills ``metrics`` with ``--points`` points server-side (MariaDB's sequence tables), then
times, best of ``--repeat``, the same metric query (every point of every run):

1. ``pymysql``: PyMySQL, unbuffered cursor, rows fetched in batches of 10,000 (what the store does);
2. ``store``: the store's own ``plan()`` + ``read()`` (PyMySQL, rows to Arrow batches, one
   read-only snapshot), without Spark;
3. ``connectorx``: ``connectorx.read_sql(..., return_type="arrow")``, one connection.

Usage::

    python -m benchmarks.bench_mysql --points 300000

Measured (2026-11-28, 2 shared cores, MariaDB 10.11, 300,000 points, best of 3): PyMySQL 3.66 s
(82,000 points/s), connectorx 0.58 s (515,000 points/s, 6.3x), the store (plan + read, points
through connectorx) 2.97 s, of which planning (PyMySQL, ``COUNT(*) ... GROUP BY run_uuid,
BINARY key`` on the server) is about 2.4 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # support.mysql

from benchmarks.timing import best_of  # noqa: E402

QUERY = "SELECT run_uuid, `key`, value, is_nan, step, timestamp FROM metrics"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    import connectorx
    import pymysql
    from mlflow.tracking import MlflowClient

    from pyspark_experiments.stores import open_store
    from pyspark_experiments.stores.base import Selection
    from pyspark_experiments.uri import resolve_tracking_uri
    from support.mysql import create_database, running_mariadb

    with tempfile.TemporaryDirectory(prefix="bench-mysql-") as folder, running_mariadb(folder) as server:
        host, port, user, password = server
        uri = create_database(*server, "bench")
        client = MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("bench")
        for i in range(args.runs):
            client.create_run(experiment, run_name=f"r{i}")
        per_run = args.points // args.runs
        raw = pymysql.connect(host=host, port=port, user=user, password=password, database="bench", autocommit=True)
        with raw.cursor() as cursor:
            cursor.execute(
                "INSERT INTO metrics (`key`, value, timestamp, run_uuid, step, is_nan) "
                "SELECT CONCAT('m', s.seq % 10), RAND(s.seq), 1700000000000 + s.seq, r.run_uuid, s.seq DIV 10, 0 "
                f"FROM runs r CROSS JOIN seq_0_to_{per_run - 1} s"
            )
            cursor.execute("SELECT COUNT(*) FROM metrics")
            points = cursor.fetchone()[0]

        def with_pymysql():
            import pymysql.cursors

            connection = pymysql.connect(host=host, port=port, user=user, password=password, database="bench")
            try:
                cursor = connection.cursor(pymysql.cursors.SSCursor)
                cursor.execute(QUERY)
                n = 0
                while rows := cursor.fetchmany(10_000):
                    n += len(rows)
                return n
            finally:
                connection.close()

        store = open_store(resolve_tracking_uri(uri))

        def with_store():
            selection = Selection("metrics", (experiment,))
            return sum(b.num_rows for p in store.plan(selection) for b in store.read(p))

        def with_connectorx():
            return connectorx.read_sql(f"mysql://{user}:{password}@{host}:{port}/bench", QUERY, return_type="arrow").num_rows

        result = {"points": points}
        for name, fn in (("pymysql", with_pymysql), ("store", with_store), ("connectorx", with_connectorx)):
            best, times, rows = best_of(args.repeat, fn)
            assert rows == points, (name, rows, points)
            result[name] = {"best_s": round(best, 3), "times_s": [round(t, 3) for t in times],
                            "points_per_s": round(points / best)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
