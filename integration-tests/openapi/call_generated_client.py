"""Real calls through a client generated (openapi-python-client) from the
OpenAPI document the standalone server serves.

    python call_generated_client.py <dir holding the generated `client` package> <base URL> <API key>
"""

import sys

generated, base_url, key = sys.argv[1:4]
sys.path.insert(0, generated)

from client import AuthenticatedClient  # noqa: E402
from client.api.default import find_one, insert_one  # noqa: E402
from client.models import Error, FindOneBody, InsertOneBody  # noqa: E402

NAMESPACE = {"dataSource": "mongodb-atlas", "database": "openapi", "collection": "c"}
failures = 0


def check(name, response, status, test):
    global failures
    ok = response.status_code == status and test(response.parsed)
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
    if not ok:
        failures += 1
        print(f"     expected {status}, got {response.status_code}: {response.content!r}")


def client(api_key):
    return AuthenticatedClient(
        base_url=base_url, token=api_key, prefix="", auth_header_name="apiKey"
    )


inserted = insert_one.sync_detailed(
    client=client(key),
    body=InsertOneBody.from_dict({**NAMESPACE, "document": {"_id": 7, "via": "generated client"}}),
)
check("insertOne through the generated client", inserted, 201,
      lambda parsed: parsed.to_dict() == {"insertedId": 7})

found = find_one.sync_detailed(
    client=client(key), body=FindOneBody.from_dict({**NAMESPACE, "filter": {"_id": 7}})
)
check("findOne through the generated client", found, 200,
      lambda parsed: parsed.to_dict()["document"] == {"_id": 7, "via": "generated client"})

refused = find_one.sync_detailed(
    client=client("wrong-key"), body=FindOneBody.from_dict({**NAMESPACE, "filter": {}})
)
check("a wrong key is refused in the documented error shape", refused, 401,
      lambda parsed: isinstance(parsed, Error) and parsed.error_code == "InvalidSession")

sys.exit(1 if failures else 0)
