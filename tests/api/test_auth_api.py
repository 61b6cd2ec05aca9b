"""Sign-in, sessions, API tokens, CSRF, the login rate limit and user management, through the app in this process
(Flask's test client) on a migrated database of each engine; the main paths over HTTP against the real server
process: ``tests/integration/test_server_live.py``. Which route answers whom is walked over the whole URL map in
``test_authorization.py``."""

from __future__ import annotations

import pytest

from tests.server_support import ADMIN, ADMIN_PASSWORD, SignedIn, error_of, make_app

pytestmark = pytest.mark.usefixtures("db_engine")


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    app.extensions["adbreak"].stop()


def test_health_and_me_are_public(app):
    c = app.test_client()
    assert c.get("/api/v1/health").status_code == 200
    r = c.get("/api/v1/auth/me")
    assert r.status_code == 401 and r.get_json()["user"] is None and r.get_json()["csrf_token"]


def test_sign_in_out_and_wrong_password(app):
    c = app.test_client()
    token = c.get("/api/v1/auth/me").get_json()["csrf_token"]
    r = c.post("/api/v1/auth/login", json={"username": ADMIN, "password": "wrong"}, headers={"X-CSRFToken": token})
    assert error_of(r, 401) == "wrong user name or password"
    r = c.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong"},
               headers={"X-CSRFToken": token})
    assert error_of(r, 401) == "wrong user name or password"  # the same answer: no user enumeration
    r = c.post("/api/v1/auth/login", json={"username": ADMIN}, headers={"X-CSRFToken": token})
    assert "password" in error_of(r, 400)
    r = c.post("/api/v1/auth/login", json={"username": ADMIN, "password": ADMIN_PASSWORD},
               headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["user"]["username"] == ADMIN
    assert r.get_json()["user"]["is_admin"] is True
    csrf = r.get_json()["csrf_token"]
    assert c.get("/api/v1/devices").status_code == 200
    assert c.get("/api/v1/auth/me").get_json()["user"]["username"] == ADMIN
    assert c.post("/api/v1/auth/logout", headers={"X-CSRFToken": csrf}).status_code == 204
    assert c.get("/api/v1/devices").status_code == 401


def test_state_changing_requests_need_the_csrf_token(app):
    api = SignedIn(app)
    r = api.client.post("/api/v1/auth/tokens", json={"name": "x"})  # the cookie alone is not enough
    assert "CSRF token is missing" in error_of(r, 400)
    r = api.client.post("/api/v1/auth/tokens", json={"name": "x"}, headers={"X-CSRFToken": "forged"})
    assert "CSRF" in error_of(r, 400)
    assert api.post("/api/v1/auth/tokens", json={"name": "x"}).status_code == 201


def test_login_is_rate_limited(tmp_path):
    app = make_app(tmp_path, login_rate_limit="3 per minute")
    try:
        c = app.test_client()
        token = c.get("/api/v1/auth/me").get_json()["csrf_token"]
        for _ in range(3):
            r = c.post("/api/v1/auth/login", json={"username": ADMIN, "password": "guess"},
                       headers={"X-CSRFToken": token})
            assert r.status_code == 401
        r = c.post("/api/v1/auth/login", json={"username": ADMIN, "password": ADMIN_PASSWORD},
                   headers={"X-CSRFToken": token})
        assert "too many requests" in error_of(r, 429)  # even the right password, until the window passes
        assert int(r.headers["Retry-After"]) > 0
    finally:
        app.extensions["adbreak"].stop()


def test_api_tokens(app):
    api = SignedIn(app)
    created = api.post("/api/v1/auth/tokens", json={"name": "home assistant"}).get_json()
    token = created["token"]
    assert token.startswith("adb_") and created["hint"] == token[:10]
    listed = api.get("/api/v1/auth/tokens").get_json()["tokens"]
    assert [t["name"] for t in listed] == ["home assistant"] and "token" not in listed[0]

    c = app.test_client()  # no cookie, no CSRF: the token alone
    bearer = {"Authorization": f"Bearer {token}"}
    assert c.get("/api/v1/devices", headers=bearer).status_code == 200
    assert c.get("/api/v1/auth/me", headers=bearer).get_json()["user"]["username"] == ADMIN
    assert c.post("/api/v1/auth/tokens", json={"name": "second"}, headers=bearer).status_code == 201
    assert "invalid or revoked" in error_of(c.get("/api/v1/devices", headers={"Authorization": "Bearer adb_x"}), 401)

    assert api.delete(f"/api/v1/auth/tokens/{created['id']}").status_code == 204
    assert error_of(c.get("/api/v1/devices", headers=bearer), 401)
    assert error_of(api.delete(f"/api/v1/auth/tokens/{created['id']}"), 404)
    assert "name" in error_of(api.post("/api/v1/auth/tokens", json={"name": ""}), 400)
    assert "unknown field" in error_of(api.post("/api/v1/auth/tokens", json={"name": "a", "x": 1}), 400)


def test_users_are_managed_by_admins_only(app):
    admin = SignedIn(app)
    r = admin.post("/api/v1/users", json={"username": "viewer", "password": "viewer-pass"})
    assert r.status_code == 201 and r.get_json()["is_admin"] is False
    assert "exists" in error_of(admin.post("/api/v1/users", json={"username": "viewer", "password": "xxxxxxxx"}), 409)
    assert "password" in error_of(admin.post("/api/v1/users", json={"username": "v2", "password": "short"}), 400)
    assert "username" in error_of(admin.post("/api/v1/users", json={"username": "a b", "password": "xxxxxxxx"}), 400)

    viewer = SignedIn(app, "viewer", "viewer-pass")
    assert viewer.user == {"id": r.get_json()["id"], "username": "viewer", "is_admin": False}
    assert error_of(viewer.get("/api/v1/users"), 403) == "only an admin may do this"
    assert error_of(viewer.post("/api/v1/users", json={"username": "x", "password": "xxxxxxxx"}), 403)
    assert viewer.get("/api/v1/devices").status_code == 200

    users = admin.get("/api/v1/users").get_json()["users"]
    assert [u["username"] for u in users] == [ADMIN, "viewer"]
    assert all("password" not in k for u in users for k in u)
    assert error_of(admin.delete(f"/api/v1/users/{admin.user['id']}"), 400) == "you cannot delete yourself"
    assert admin.delete(f"/api/v1/users/{users[1]['id']}").status_code == 204
    assert viewer.get("/api/v1/devices").status_code == 401  # a deleted user's session ends


def test_password_change(app):
    api = SignedIn(app)
    r = api.post("/api/v1/auth/password", json={"current_password": "nope", "new_password": "a-new-password"})
    assert error_of(r, 403) == "the current password is wrong"
    r = api.post("/api/v1/auth/password", json={"current_password": ADMIN_PASSWORD, "new_password": "short"})
    assert "new_password" in error_of(r, 400)
    r = api.post("/api/v1/auth/password", json={"current_password": ADMIN_PASSWORD, "new_password": "a-new-password"})
    assert r.status_code == 204
    SignedIn(app, ADMIN, "a-new-password")
    with pytest.raises(AssertionError):
        SignedIn(app, ADMIN, ADMIN_PASSWORD)


def test_sessions_survive_a_restart(tmp_path):
    app = make_app(tmp_path)
    api = SignedIn(app)
    cookie = api.client.get_cookie("adbreak_session")
    assert cookie is not None
    app.extensions["adbreak"].stop()

    again = make_app(tmp_path)  # same database: the signing key is kept there
    try:
        c = again.test_client()
        c.set_cookie("adbreak_session", cookie.value)
        assert c.get("/api/v1/auth/me").get_json()["user"]["username"] == ADMIN
        assert c.get("/api/v1/devices").status_code == 200
    finally:
        again.extensions["adbreak"].stop()


def test_first_start_generates_an_admin_password_once(tmp_path):
    from server.app import create_app
    from tests.server_support import make_settings

    settings = make_settings(tmp_path).model_copy(update={"admin_password": None})
    app, _ = create_app(settings, start_mqtt=False)
    try:
        password = app.extensions["adbreak"].auth.first_password
        assert password and len(password) >= 12
        SignedIn(app, ADMIN, password)
    finally:
        app.extensions["adbreak"].stop()
    app, _ = create_app(settings, start_mqtt=False)  # a user exists now: nothing generated, nothing shown
    try:
        assert app.extensions["adbreak"].auth.first_password is None
    finally:
        app.extensions["adbreak"].stop()


def test_passwords_are_stored_hashed(app):
    from sqlalchemy import select

    from server.models import User

    with app.extensions["adbreak"].store._read() as conn:
        stored = conn.scalar(select(User.__table__.c.password_hash))
    assert ADMIN_PASSWORD not in stored and stored.startswith("scrypt:")
