"""Sign-in: users, sessions, API tokens, CSRF and the login rate limit.

* Users live in the ``users`` table; passwords are werkzeug hashes (scrypt). On the first start (no user yet) an
  admin is created with ``settings.admin_password`` or a generated password, which :attr:`Auth.first_password`
  holds so that ``adbreak server`` prints it once on the console (never logged).
* Sessions: Flask-Login on Flask's signed cookie session. The signing key is ``settings.secret_key`` or one generated
  once and kept in ``app_settings``: sign-ins survive restarts (and are shared by several server processes).
* API tokens: ``Authorization: Bearer adb_...``; only the token's sha256 is stored; shown once when created.
* Every ``/api`` route except :data:`PUBLIC` needs a signed-in user or a token (401 JSON otherwise); Socket.IO
  connections need a signed-in session or ``auth: {token}``.
* CSRF (Flask-WTF): state-changing requests signed in by cookie must send ``X-CSRFToken`` (from ``/auth/me`` or the
  login answer); token requests carry no cookie and are exempt.
* ``POST /auth/login`` is rate-limited per client address (Flask-Limiter, ``settings.login_rate_limit``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, current_app, g, jsonify, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect, generate_csrf
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, insert, select, update
from werkzeug.exceptions import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from werkzeug.security import check_password_hash, generate_password_hash

from server.ingest import JobRefused
from server.models import ApiToken, AppSetting, User, UserSession

if TYPE_CHECKING:
    from server.app import Runtime
    from server.store import WriteBatch

log = logging.getLogger(__name__)

USERS = User.__table__
TOKENS = ApiToken.__table__
SESSIONS = UserSession.__table__
APP_SETTINGS = AppSetting.__table__

PUBLIC = frozenset({"/api/v1/health", "/api/v1/openapi.json", "/api/v1/auth/me", "/api/v1/auth/login",
                    "/api/v1/auth/logout"})
TOKEN_PREFIX = "adb_"
MIN_PASSWORD = 8
LAST_USED_EVERY_S = 60.0
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

bp = Blueprint("auth", __name__, url_prefix="/api/v1")
login_manager = LoginManager()
csrf = CSRFProtect()


@dataclass(frozen=True)
class SignedInUser(UserMixin):
    id: int
    username: str
    is_admin: bool
    via_token: bool = False
    sid: str | None = None
    """The browser session's id (``user_sessions``); ``None`` for a token."""

    def get_id(self) -> str:
        """What the session (and remember-me) cookie carries: ``<user id>:<session id>``."""
        return f"{self.id}:{self.sid}" if self.sid else str(self.id)

    def as_dict(self) -> dict:
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _runtime() -> Runtime:
    return current_app.extensions["adbreak"]


def _user_from_row(row) -> SignedInUser:
    return SignedInUser(id=row.id, username=row.username, is_admin=bool(row.is_admin))


def current_username() -> str:
    """The name of whoever makes this request (for audit fields); ``"?"`` outside a signed-in request."""
    user = g.get("api_user") or (current_user if current_user and current_user.is_authenticated else None)
    return user.username if user is not None else "?"


def current_api_user() -> SignedInUser | None:
    user = g.get("api_user")
    if user is not None:
        return user
    if current_user and current_user.is_authenticated:
        return current_user  # type: ignore[return-value]
    return None


# ---------------------------------------------------------------------------------------------------- bodies
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class LoginBody(_Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordBody(_Body):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=MIN_PASSWORD, max_length=1024)


class TokenBody(_Body):
    name: str = Field(min_length=1, max_length=64)


class NewUserBody(_Body):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=MIN_PASSWORD, max_length=1024)
    is_admin: bool = False


def parse_body(model: type[BaseModel]):
    """The request's JSON body validated by ``model``; BadRequest with one line naming the fields otherwise."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object body (Content-Type: application/json)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "body"
            msg = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "invalid")
            parts.append(f"{where}: {msg}")
        raise BadRequest("; ".join(parts)) from None


# ---------------------------------------------------------------------------------------------------- the store side
class Auth:
    """Users and tokens in the database; writes go through the ingest worker (the single writer)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.first_password: str | None = None
        self._last_used: dict[int, float] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ reads
    def _read(self):
        return self.runtime.store._read()

    def user(self, user_id: int) -> SignedInUser | None:
        with self._read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.id == user_id)).first()
        return _user_from_row(row) if row is not None else None

    def session_user(self, user_id: int, sid: str) -> SignedInUser | None:
        """The user of a browser session, if that session was not ended (signed out, password changed)."""
        q = (select(USERS).join_from(SESSIONS, USERS, SESSIONS.c.user_id == USERS.c.id)
             .where(SESSIONS.c.sid_hash == hash_token(sid), SESSIONS.c.user_id == user_id))
        with self._read() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        return SignedInUser(id=row.id, username=row.username, is_admin=bool(row.is_admin), sid=sid)

    def start_session(self, user: SignedInUser) -> SignedInUser:
        """Record a new browser session of ``user``; the user, carrying its id."""
        sid = secrets.token_urlsafe(32)
        now = time.time()
        self.runtime.ingest.run(lambda batch: batch.conn.execute(
            insert(SESSIONS).values(user_id=user.id, sid_hash=hash_token(sid), created=now)))
        return SignedInUser(id=user.id, username=user.username, is_admin=user.is_admin, sid=sid)

    def end_sessions(self, user_id: int, *, only: str | None = None, keep: str | None = None) -> None:
        """End the user's browser session ``only``, or all of them but ``keep``."""
        q = delete(SESSIONS).where(SESSIONS.c.user_id == user_id)
        if only is not None:
            q = q.where(SESSIONS.c.sid_hash == hash_token(only))
        if keep is not None:
            q = q.where(SESSIONS.c.sid_hash != hash_token(keep))
        self.runtime.ingest.run(lambda batch: batch.conn.execute(q))

    def check_password(self, username: str, password: str) -> SignedInUser | None:
        with self._read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.username == username)).first()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)  # same work whether or not the user exists
            return None
        return _user_from_row(row) if check_password_hash(row.password_hash, password) else None

    def token_user(self, token: str) -> SignedInUser | None:
        digest = hash_token(token)
        q = (select(USERS, TOKENS.c.id.label("token_id"))
             .join_from(TOKENS, USERS, TOKENS.c.user_id == USERS.c.id)
             .where(TOKENS.c.token_hash == digest, TOKENS.c.revoked.is_(False)))
        with self._read() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        self._touch_token(row.token_id)
        return SignedInUser(id=row.id, username=row.username, is_admin=bool(row.is_admin), via_token=True)

    def _touch_token(self, token_id: int) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_used.get(token_id, 0.0) < LAST_USED_EVERY_S:
                return
            self._last_used[token_id] = now

        def job(batch: WriteBatch) -> None:
            batch.conn.execute(update(TOKENS).where(TOKENS.c.id == token_id).values(last_used=now))

        self.runtime.ingest.call(job)

    def users(self) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(select(USERS).order_by(USERS.c.username)).all()
        return [{"id": r.id, "username": r.username, "is_admin": bool(r.is_admin), "created": r.created,
                 "last_login": r.last_login} for r in rows]

    def tokens(self, user_id: int) -> list[dict]:
        with self._read() as conn:
            rows = conn.execute(select(TOKENS).where(TOKENS.c.user_id == user_id, TOKENS.c.revoked.is_(False))
                                .order_by(TOKENS.c.created)).all()
        return [{"id": r.id, "name": r.name, "hint": r.hint, "created": r.created, "last_used": r.last_used}
                for r in rows]

    # ------------------------------------------------------------------ writes
    def add_user(self, username: str, password: str, *, is_admin: bool = False) -> dict:
        now = time.time()
        digest = generate_password_hash(password)

        def job(batch: WriteBatch) -> dict:
            if batch.conn.scalar(select(USERS.c.id).where(USERS.c.username == username)) is not None:
                raise JobRefused(f"user {username!r} exists")
            uid = batch.conn.execute(insert(USERS).values(username=username, password_hash=digest,
                                                          is_admin=is_admin, created=now)).inserted_primary_key[0]
            return {"id": uid, "username": username, "is_admin": is_admin, "created": now, "last_login": None}

        try:
            return self.runtime.ingest.run(job)  # type: ignore[return-value]
        except JobRefused as exc:
            raise Conflict(str(exc)) from None

    def set_password(self, user_id: int, password: str) -> None:
        digest = generate_password_hash(password)

        def job(batch: WriteBatch) -> None:
            batch.conn.execute(update(USERS).where(USERS.c.id == user_id).values(password_hash=digest))

        self.runtime.ingest.run(job)

    def delete_user(self, user_id: int) -> None:
        def job(batch: WriteBatch) -> None:
            batch.conn.execute(delete(TOKENS).where(TOKENS.c.user_id == user_id))
            batch.conn.execute(delete(SESSIONS).where(SESSIONS.c.user_id == user_id))
            if batch.conn.execute(delete(USERS).where(USERS.c.id == user_id)).rowcount == 0:
                raise JobRefused(f"no user {user_id}")

        try:
            self.runtime.ingest.run(job)
        except JobRefused as exc:
            raise NotFound(str(exc)) from None

    def logged_in(self, user_id: int) -> None:
        now = time.time()
        self.runtime.ingest.call(
            lambda batch: batch.conn.execute(update(USERS).where(USERS.c.id == user_id).values(last_login=now)))

    def create_token(self, user_id: int, name: str) -> dict:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        hint = token[: len(TOKEN_PREFIX) + 6]

        def job(batch: WriteBatch) -> int:
            return batch.conn.execute(insert(TOKENS).values(user_id=user_id, name=name, token_hash=hash_token(token),
                                                            hint=hint, created=now)).inserted_primary_key[0]

        tid = self.runtime.ingest.run(job)
        return {"id": tid, "name": name, "hint": hint, "created": now, "last_used": None, "token": token}

    def revoke_token(self, user_id: int, token_id: int, *, any_user: bool = False) -> None:
        def job(batch: WriteBatch) -> None:
            q = update(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.revoked.is_(False))
            if not any_user:
                q = q.where(TOKENS.c.user_id == user_id)
            if batch.conn.execute(q.values(revoked=True)).rowcount == 0:
                raise JobRefused(f"no token {token_id}")

        try:
            self.runtime.ingest.run(job)
        except JobRefused as exc:
            raise NotFound(str(exc)) from None

    # ------------------------------------------------------------------ start-up
    def secret_key(self) -> str:
        """The configured key, else the one kept in the database (created on the first start)."""
        configured = self.runtime.settings.secret_key
        if configured is not None:
            return configured.get_secret_value()
        candidate = secrets.token_hex(32)

        def job(batch: WriteBatch) -> str:
            found = batch.conn.scalar(select(APP_SETTINGS.c.value).where(APP_SETTINGS.c.key == "secret_key"))
            if found is not None:
                return found
            batch.conn.execute(insert(APP_SETTINGS).values(key="secret_key", value=candidate))
            return candidate

        return self.runtime.ingest.run(job)  # type: ignore[return-value]

    def ensure_admin(self) -> None:
        """Create the first admin when there is no user; keep a generated password to be shown once."""
        with self._read() as conn:
            if conn.scalar(select(USERS.c.id).limit(1)) is not None:
                return
        settings = self.runtime.settings
        password = settings.admin_password.get_secret_value() if settings.admin_password else None
        generated = password is None
        if generated:
            password = secrets.token_urlsafe(12)
        try:
            self.add_user(settings.admin_username, password, is_admin=True)  # type: ignore[arg-type]
        except Conflict:
            return  # another server process created it first
        log.info("created the first admin user %r", settings.admin_username)
        if generated:
            self.first_password = password


_DUMMY_HASH = generate_password_hash("not a real password")


# ---------------------------------------------------------------------------------------------------- wiring
def _auth() -> Auth:
    return current_app.extensions["adbreak_auth"]


@login_manager.user_loader
def _load_user(user_id: str) -> SignedInUser | None:
    """The user of a session or remember-me cookie: ``<user id>:<session id>``, a session not ended since."""
    uid, _, sid = user_id.partition(":")
    try:
        return _auth().session_user(int(uid), sid) if sid else None
    except ValueError:
        return None


@login_manager.unauthorized_handler
def _unauthorized():
    raise Unauthorized("sign in first (session cookie or Authorization: Bearer token)")


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _guard():
    """Before every request: who is it, and may they?"""
    path = request.path
    if not (path == "/api" or path.startswith("/api/")):
        return None
    token = _bearer()
    if token is not None:
        user = _auth().token_user(token)
        if user is None:
            raise Unauthorized("invalid or revoked API token")
        g.api_user = user
        return None
    if path not in PUBLIC and not current_user.is_authenticated:
        raise Unauthorized("sign in first (session cookie or Authorization: Bearer token)")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # cookie-authenticated writes must carry the CSRF token
    return None


def require_admin() -> SignedInUser:
    user = current_api_user()
    if user is None:
        raise Unauthorized("sign in first")
    if not user.is_admin:
        raise Forbidden("only an admin may do this")
    return user


def socket_allowed(auth: object) -> bool:
    """Whether a Socket.IO connection may open: a signed-in session, or ``auth={"token": ...}``."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return _auth().token_user(auth["token"]) is not None
    return bool(current_user and current_user.is_authenticated)


def init_app(app: Flask, runtime: Runtime) -> Auth:
    auth = Auth(runtime)
    app.extensions["adbreak_auth"] = auth
    settings = runtime.settings
    app.config.update(
        SECRET_KEY=auth.secret_key(),
        PERMANENT_SESSION_LIFETIME=timedelta(days=settings.session_days),
        REMEMBER_COOKIE_DURATION=timedelta(days=settings.session_days),
        SESSION_COOKIE_NAME="adbreak_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in _guard, only for cookie-authenticated requests
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the session
        WTF_CSRF_SSL_STRICT=False,  # the LAN dashboard is often plain HTTP
        RATELIMIT_ENABLED=True,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    # one limiter (and in-memory count) per app; the sign-in route's limit registered on it by name
    limiter = Limiter(key_func=get_remote_address, app=app, storage_uri="memory://", default_limits=[],
                      headers_enabled=True)
    app.extensions["adbreak_limiter"] = limiter
    app.before_request(_guard)
    app.register_blueprint(bp)
    auth.ensure_admin()
    return auth


# ---------------------------------------------------------------------------------------------------- routes
def _me_body(user: SignedInUser | None) -> dict:
    return {"user": user.as_dict() if user is not None else None, "csrf_token": generate_csrf()}


@bp.get("/auth/me")
def me():
    user = current_api_user()
    if user is None:
        response = jsonify({"error": "not signed in", **_me_body(None)})
        response.status_code = 401
        return response
    return jsonify(_me_body(user))


def _login_limit() -> str:
    return _runtime().settings.login_rate_limit


@bp.post("/auth/login")
def login():
    with current_app.extensions["adbreak_limiter"].limit(_login_limit, scope="login"):
        body = parse_body(LoginBody)
        user = _auth().check_password(body.username, body.password)
    if user is None:
        log.info("sign-in refused for %r from %s", body.username, request.remote_addr)
        raise Unauthorized("wrong user name or password")
    session.permanent = True
    user = _auth().start_session(user)
    login_user(user, remember=True)
    _auth().logged_in(user.id)
    return jsonify(_me_body(user))


@bp.post("/auth/logout")
def logout():
    user = current_user if current_user and current_user.is_authenticated else None
    if user is not None and user.sid:
        _auth().end_sessions(user.id, only=user.sid)  # a copy of this cookie is worth nothing from now on
    session.clear()
    logout_user()  # after the clear: it marks the remember-me cookie for deletion in the session
    return "", 204


@bp.post("/auth/password")
def change_password():
    user = current_api_user()
    assert user is not None
    body = parse_body(PasswordBody)
    if _auth().check_password(user.username, body.current_password) is None:
        raise Forbidden("the current password is wrong")
    _auth().set_password(user.id, body.new_password)
    _auth().end_sessions(user.id, keep=user.sid)  # every other browser signs in again with the new password
    return "", 204


@bp.get("/auth/tokens")
def list_tokens():
    user = current_api_user()
    assert user is not None
    return jsonify({"tokens": _auth().tokens(user.id)})


@bp.post("/auth/tokens")
def create_token():
    user = current_api_user()
    assert user is not None
    body = parse_body(TokenBody)
    response = jsonify(_auth().create_token(user.id, body.name))
    response.status_code = 201
    return response


@bp.delete("/auth/tokens/<int:token_id>")
def revoke_token(token_id: int):
    user = current_api_user()
    assert user is not None
    _auth().revoke_token(user.id, token_id, any_user=user.is_admin)
    return "", 204


@bp.get("/users")
def list_users():
    require_admin()
    return jsonify({"users": _auth().users()})


@bp.post("/users")
def create_user():
    require_admin()
    body = parse_body(NewUserBody)
    response = jsonify(_auth().add_user(body.username, body.password, is_admin=body.is_admin))
    response.status_code = 201
    return response


@bp.delete("/users/<int:user_id>")
def delete_user(user_id: int):
    admin = require_admin()
    if admin.id == user_id:
        raise BadRequest("you cannot delete yourself")
    _auth().delete_user(user_id)
    return "", 204
