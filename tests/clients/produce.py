"""Produces N events with confluent-kafka, a Kafka client lakepulse did not write."""
import argparse
import json
from datetime import datetime, timezone

from confluent_kafka import Producer

parser = argparse.ArgumentParser()
parser.add_argument("--brokers", required=True)
parser.add_argument("--topic", required=True)
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--compression", default="none", help="none, gzip, snappy, lz4 or zstd")
args = parser.parse_args()

failures = []
producer = Producer(
    {"bootstrap.servers": args.brokers, "linger.ms": 5, "compression.type": args.compression}
)
for i in range(args.count):
    event = {
        # Snake-case spellings, as many Python services write them.
        "ts": datetime.now(timezone.utc).isoformat(),
        "source": "python-client",
        "method": "GET",
        "path": f"/py/items/{i % 7}",
        "status_code": 500 if i % 10 == 0 else 200,
        "response_time_ms": 12.5 + i % 30,
        "session_id": f"py-{i % 13}",
        "bytes": 100 + i,
    }
    producer.produce(
        args.topic,
        key=str(i),
        value=json.dumps(event).encode(),
        on_delivery=lambda err, _msg: err and failures.append(err),
    )
    producer.poll(0)
left = producer.flush(30)
if left or failures:
    raise SystemExit(f"undelivered: {left} in queue, {len(failures)} failed: {failures[:3]}")
print(f"produced {args.count}")
