"""Produces N events with a Kafka client lakepulse did not write: confluent-kafka (librdkafka
underneath) or kafka-python (the protocol written in Python)."""
import argparse
import json
from datetime import datetime, timezone

parser = argparse.ArgumentParser()
parser.add_argument("--brokers", required=True)
parser.add_argument("--topic", required=True)
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--compression", default="none", help="none, gzip, snappy, lz4 or zstd")
parser.add_argument("--client", default="confluent-kafka", choices=["confluent-kafka", "kafka-python"])
parser.add_argument("--tag", default="", help="when set, each event's message is 'TAG N'")
args = parser.parse_args()


def event(i):
    tagged = {"message": f"{args.tag} {i}"} if args.tag else {}
    return tagged | {
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


if args.client == "confluent-kafka":
    from confluent_kafka import Producer

    failures = []
    producer = Producer(
        {"bootstrap.servers": args.brokers, "linger.ms": 5, "compression.type": args.compression}
    )
    for i in range(args.count):
        producer.produce(
            args.topic,
            key=str(i),
            value=json.dumps(event(i)).encode(),
            on_delivery=lambda err, _msg: err and failures.append(err),
        )
        producer.poll(0)
    left = producer.flush(30)
else:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=args.brokers,
        # Batches of many 32 KiB blocks, as a busy service sends them: kafka-python frames
        # snappy the xerial way (like Java), one length-prefixed block per 32 KiB.
        linger_ms=100,
        batch_size=1 << 20,
        compression_type=None if args.compression == "none" else args.compression,
    )
    sent = [
        producer.send(args.topic, key=str(i).encode(), value=json.dumps(event(i)).encode())
        for i in range(args.count)
    ]
    producer.flush(30)
    failures = [f.exception for f in sent if not f.succeeded()]
    left = sum(1 for f in sent if not f.is_done)
if left or failures:
    raise SystemExit(f"undelivered: {left} in queue, {len(failures)} failed: {failures[:3]}")
print(f"produced {args.count}")
