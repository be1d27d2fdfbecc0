"""Scrapes a Prometheus endpoint and parses it with prometheus_client's own parser, which
raises on anything outside the text exposition format.

Usage: scrape_prometheus.py URL
Prints one JSON object: metric family name -> {"type", "samples": [{"name", "labels", "value"}]}.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
    content_type = response.headers.get("Content-Type", "")
    text = response.read().decode("utf-8")

if not content_type.startswith("text/plain"):
    sys.exit(f"Content-Type {content_type!r}, not the text exposition format")

families = {}
for family in text_string_to_metric_families(text):
    families[family.name] = {
        "type": family.type,
        "samples": [
            {"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples
        ],
    }
print(json.dumps(families))
