"""The baselines' side of benches/sql.rs: the same questions over the same table in Spark
local (PySpark, `local[*]`) or DuckDB (2 threads, this machine's cores).

Usage: baseline_queries.py spark|duckdb TABLE_DIR REPEATS QUERY...
Prints one JSON object: session start, the cold first query and each query's warm median (ms).
"""

import json
import statistics
import sys
import time

engine, table_dir, repeats, queries = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]


def spark_session():
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[*]")
        .appName("lakepulse-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    # Spark skips the _delta_log directory (a leading underscore) and reads the partitions;
    # no compaction runs on the benchmark's table, so every file there is live.
    spark.read.parquet(table_dir).createOrReplaceTempView("logs")
    return lambda query: spark.sql(query).collect()


def duckdb_session():
    import duckdb
    from deltalake import DeltaTable

    connection = duckdb.connect()
    connection.execute("SET threads = 2")
    connection.execute("SET TimeZone = 'UTC'")
    # The files of the table's latest version, as a user with the table's Parquet would.
    files = DeltaTable(table_dir).file_uris()
    connection.execute(
        f"CREATE VIEW logs AS SELECT * FROM read_parquet({files!r}, hive_partitioning = true)"
    )
    return lambda query: connection.execute(query).fetchall()


started = time.perf_counter()
answer = {"spark": spark_session, "duckdb": duckdb_session}[engine]()
session_ms = (time.perf_counter() - started) * 1000


def run(query):
    started = time.perf_counter()
    rows = answer(query)
    return (time.perf_counter() - started) * 1000, len(rows)


cold_ms, _ = run(queries[0])
warm = []
for query in queries:
    times = [run(query) for _ in range(repeats)]
    warm.append({"median_ms": statistics.median(t for t, _ in times), "rows": times[0][1]})
print(json.dumps({"session_ms": session_ms, "cold_ms": cold_ms, "warm": warm}))
