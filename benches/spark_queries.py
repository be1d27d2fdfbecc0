"""Spark local (PySpark) side of benches/sql.rs: the same queries over the same Parquet files.

Usage: spark_queries.py TABLE_DIR REPEATS QUERY...
Prints one JSON object: session start, the cold first query and each query's warm median (ms).
"""

import json
import statistics
import sys
import time

from pyspark.sql import SparkSession

table_dir, repeats, queries = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

started = time.perf_counter()
spark = (
    SparkSession.builder.master("local[*]")
    .appName("lakepulse-bench")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)
spark.sparkContext.setLogLevel("ERROR")
# Spark skips the _delta_log directory (a leading underscore) and reads the partitions.
spark.read.parquet(table_dir).createOrReplaceTempView("logs")
session_ms = (time.perf_counter() - started) * 1000


def run(query):
    started = time.perf_counter()
    rows = spark.sql(query).collect()
    return (time.perf_counter() - started) * 1000, len(rows)


cold_ms, _ = run(queries[0])
warm = []
for query in queries:
    times = [run(query) for _ in range(repeats)]
    warm.append({"median_ms": statistics.median(t for t, _ in times), "rows": times[0][1]})
print(json.dumps({"session_ms": session_ms, "cold_ms": cold_ms, "warm": warm}))
spark.stop()
