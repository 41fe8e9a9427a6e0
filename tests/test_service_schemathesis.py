"""schemathesis against the service's own OpenAPI schema: every operation, with a
valid admin key, on a gallery holding real people. No 5xx, and every response
(errors included) matches the status codes, content types, headers and schemas
the schema documents.

Requests are generated from the schema, so uploads are random bytes: they test the
refusals. What real photos get back is checked by test_service_api.py, whose
answers FastAPI validates against the same response models."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service_harness import client, knn_dir, make_app, new_key, upload  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


pytestmark = pytest.mark.slow  # about 30 s: 32 operations, 8 generated requests each


def _app():
    import tempfile
    from pathlib import Path

    # Built when the module is collected (the schema is read from it), so nothing slow
    # here: models load on first use, the people are enrolled by the fixture below.
    tmp = Path(tempfile.mkdtemp(prefix="vultus-schemathesis-"))
    app, s = make_app(tmp, max_images=4, preload=False)
    _, headers = new_key(s, "admin", name="schemathesis")
    return app, headers


APP, HEADERS = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def people():
    """A collection with two real people, so listings, ids and identify have something to return."""
    with client(APP) as c:
        assert c.post("/v1/collections", headers=HEADERS, json={"name": "default"}).status_code == 201
        if knn_dir() is not None:
            for person in ("obama", "biden"):
                photo = sorted((knn_dir() / "train" / person).iterdir())[0]
                r = c.post("/v1/collections/default/people", headers=HEADERS, data={"name": person},
                           files=[upload(photo)])
                assert r.status_code == 201, r.text


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case):
    case.call_and_validate(headers=HEADERS, checks=CHECKS)
