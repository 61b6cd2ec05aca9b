"""The OpenAPI description (``server/openapi.yaml``, served at ``/api/v1/openapi.json``) covers exactly Flask's URL
map under ``/api``: the app in this process, whose URL map the test can list. Schemathesis against the real server
process: ``tests/integration/test_openapi.py``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.server_support import make_app

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "server" / "openapi.yaml").read_text(encoding="utf-8"))
METHODS = {"get", "put", "post", "patch", "delete"}
pytestmark = pytest.mark.usefixtures("db_engine")


def _openapi_path(rule: str) -> str:
    """Flask's ``/segments/<int:seg_id>`` as OpenAPI's ``/segments/{seg_id}``."""
    return re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule)


def test_spec_covers_the_url_map_and_nothing_else(tmp_path) -> None:
    app = make_app(tmp_path)
    try:
        _check(app)
    finally:
        app.extensions["adbreak"].stop()


def _check(app) -> None:
    routes = {(_openapi_path(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    served = app.test_client().get("/api/v1/openapi.json")  # no sign-in needed
    assert served.status_code == 200 and served.is_json
    spec = served.get_json()
    assert spec == SPEC
    assert spec["openapi"].startswith("3.1.")
    documented = {(path, method) for path, item in spec["paths"].items() for method in item if method in METHODS}
    assert routes - documented == set(), "routes missing from server/openapi.yaml"
    assert documented - routes == set(), "server/openapi.yaml documents routes the server does not have"
    ids = [op["operationId"] for item in spec["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids)) == len(routes)
