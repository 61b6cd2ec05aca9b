"""Authorisation over the whole URL map (issue 5, item 5), so a route added later cannot slip through, on the app
in this process (Flask's test client: it can list the URL map): every route and method, for four callers: nobody
(401), a revoked or made-up token (401), a signed-in non-admin (403 exactly on the admin-only routes listed here,
which a new route must join or not), and a cookie session without its CSRF token on a state-changing method
(refused). Socket.IO and the logs, against the real server process: ``tests/integration/test_authorization.py``;
the main paths over HTTP: ``tests/integration/test_server_live.py``.
"""

from __future__ import annotations

import re

import pytest

from server.auth import PUBLIC
from tests.server_support import SignedIn, error_of, make_app

pytestmark = pytest.mark.usefixtures("db_engine")

ADMIN_ONLY = {
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("DELETE", "/api/v1/users/<int:user_id>"),
}
"""Routes only an admin may use; every other signed-in route is open to any signed-in user."""


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    app.extensions["adbreak"].stop()


def _concrete(rule) -> str:
    return re.sub(r"<(?:int:)?[^>]+>", lambda m: "1" if m.group(0).startswith("<int:") else "tv1", rule.rule)


def _routes(app) -> list[tuple[str, str, str]]:
    """``(method, rule, url)`` of every /api route but the public ones."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule in PUBLIC:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, rule.rule, _concrete(rule)))
    return out


def _viewer_token(app) -> tuple[SignedIn, str]:
    """A non-admin with a cookie session and an API token (not token 1, which the walk deletes)."""
    admin = SignedIn(app)
    r = admin.post("/api/v1/users", json={"username": "viewer", "password": "viewer-pass"})
    assert r.status_code == 201, r.get_data(as_text=True)
    viewer = SignedIn(app, "viewer", "viewer-pass")
    token = viewer.post("/api/v1/auth/tokens", json={"name": "t"}).get_json()["token"]
    return viewer, token


def test_every_route_for_every_kind_of_caller(app):
    admin = SignedIn(app)
    revoked = admin.post("/api/v1/auth/tokens", json={"name": "old"}).get_json()
    assert revoked["id"] == 1
    assert admin.delete(f"/api/v1/auth/tokens/{revoked['id']}").status_code == 204
    viewer, token = _viewer_token(app)
    anon = app.test_client()
    routes = _routes(app)
    assert len(routes) >= 35, f"only {len(routes)} routes: is the URL map complete?"
    assert {(m, r) for m, r, _u in routes} >= ADMIN_ONLY, "an admin-only route is gone: update ADMIN_ONLY"

    forbidden = set()
    for method, rule, url in routes:
        for headers in ({}, {"Authorization": f"Bearer {revoked['token']}"}, {"Authorization": "Bearer adb_made_up"},
                        {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            r = anon.open(url, method=method, json={}, headers=headers)
            assert r.status_code == 401, (method, rule, headers, r.status_code)
            message = error_of(r, 401)
            if not headers:
                assert "sign in first" in message, (method, rule, message)
        r = anon.open(url, method=method, json={}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code != 401, (method, rule, r.get_data(as_text=True))
        if r.status_code == 403:
            assert error_of(r, 403) == "only an admin may do this"
            forbidden.add((method, rule))
    assert forbidden == ADMIN_ONLY

    # a cookie session must send its CSRF token with every state-changing method
    for method, rule, url in routes:
        if method == "GET":
            continue
        r = viewer.client.open(url, method=method, json={})
        assert r.status_code in (400, 403), (method, rule, r.status_code)
        assert "CSRF" in error_of(r, r.status_code), (method, rule)
