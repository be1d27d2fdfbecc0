"""Reads the lake with the `deltalake` Python package, an independent Delta reader:
`read_delta.py TABLE [APP_ID ...]`, TABLE a directory or an object-store URL (credentials from
the environment), each APP_ID's txn version reported."""
import json
import os
import sys

from deltalake import DeltaTable

table = DeltaTable(sys.argv[1])
rows = table.to_pyarrow_table(columns=["event_id", "status"])
ids = rows.column("event_id").to_pylist()
statuses = rows.column("status").to_pylist()
by_status = {}
for status in statuses:
    by_status[str(status)] = by_status.get(str(status), 0) + 1
print(json.dumps({
    "version": table.version(),
    "rows": rows.num_rows,
    "distinct_event_ids": len(set(ids)),
    "errors": sum(1 for s in statuses if s >= 500),
    "by_status": by_status,
    "partition_columns": table.metadata().partition_columns,
    "txn": {app_id: table.transaction_version(app_id) for app_id in sys.argv[2:]},
}))
sys.stdout.flush()
# deltalake 1.6 + pyarrow 26 sometimes abort ("terminate called without an active
# exception") while tearing down their thread pools at interpreter exit, after the
# work is done; leave without that teardown.
os._exit(0)
