"""Checks lakepulse's OpenAPI document with validators nobody here wrote: the document with
openapi-spec-validator, real responses with openapi-core.

Usage: validate_openapi.py BASE_URL REQUESTS_JSON
REQUESTS_JSON is a list of {"method", "path", "json"?, "form"?}. Prints one JSON object:
"operations" (every METHOD /path the document has), "covered" (those a request exercised),
"errors" (what failed to validate, one line each).
"""

import json
import re
import sys

import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_spec_validator import validate

base, wanted = sys.argv[1], json.loads(sys.argv[2])
document = requests.get(f"{base}/api/openapi.json", timeout=30).json()
errors = []
try:
    validate(document)
except Exception as error:  # noqa: BLE001 - every failure is reported, none raised
    errors.append(f"the document: {error}")


def csv_text(body, **_parameters):
    """openapi-core reads JSON, forms and text/plain; a CSV download is text too."""
    return body if isinstance(body, str) else body.decode("utf-8")


config = Config(extra_media_type_deserializers={"text/csv": csv_text})
openapi = OpenAPI.from_dict(document, config=config)

operations = sorted(
    f"{method.upper()} {path}"
    for path, item in document["paths"].items()
    for method in item
    if method in ("get", "post", "put", "delete", "patch")
)
covered = set()
session = requests.Session()
for call in wanted:
    request = requests.Request(
        call["method"], base + call["path"], json=call.get("json"), data=call.get("form")
    )
    streaming = call["path"].startswith("/events")
    request = session.prepare_request(request)
    response = session.send(request, allow_redirects=False, stream=streaming, timeout=60)
    name = f'{call["method"]} {call["path"]} -> {response.status_code}'
    if streaming:
        # A stream never ends: its status and content type against the document, then close.
        media = response.headers.get("Content-Type", "").split(";")[0]
        answers = document["paths"]["/events"]["get"]["responses"]
        declared = answers.get(str(response.status_code), {}).get("content", {})
        if media not in declared:
            errors.append(f"{name}: {media} is not among {sorted(declared)}")
        response.close()
        covered.add("GET /events")
        continue
    try:
        openapi.validate_request(RequestsOpenAPIRequest(request))
        openapi.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response))
    except Exception as error:  # noqa: BLE001
        detail = getattr(error, "__cause__", None) or error
        errors.append(f"{name}: {type(error).__name__}: {error} ({detail})")
        continue
    concrete = call["path"].split("?")[0]
    covered.update(
        f'{call["method"]} {path}'
        for path in document["paths"]
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", path), concrete)
    )

print(json.dumps({"operations": operations, "covered": sorted(covered), "errors": errors}))
