"""Helpers for tests of the server: a migrated SQLite file, the app, and clients signed in as the admin.

* ``make_app(tmp_path, **settings)``: a Flask app (in this process: the API tests of ``tests/api/``) on a fresh
  migrated database of the test's engine (``db_engine``: a SQLite file or a PostgreSQL database,
  ``tests/db_support.py``; no broker unless asked), with an admin user ``ADMIN`` / ``ADMIN_PASSWORD``.
* ``SignedIn(app)``: Flask's test client signed in as the admin, sending the CSRF token on every state-changing
  request (``api.get / post / put / patch / delete``, same arguments as the test client).
* ``http_session(base_url)``: a ``requests.Session`` signed in to a running server over real HTTP.
* ``ServerProcess(tmp_path, ...)``: ``adbreak server`` as a real process; the integration tests of
  ``tests/integration/`` share one per engine and session (``tests/integration/conftest.py``: ``live_server``).
* ``sio_client(**kw)``: a ``socketio.Client`` whose websocket's close waits for the server's close frame, not 3 s
  (``PromptCloseWebSocket``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

import requests
import socketio
import websocket

from server import db
from server.app import create_app
from server.settings import ServerSettings
from tests.db_support import migrated_url

ADMIN = "admin"
ADMIN_PASSWORD = "adbreak-test-password"


def make_settings(tmp_path: Path, **overrides: Any) -> ServerSettings:
    url = overrides.pop("database_url", None)
    if url is None:
        url = migrated_url(tmp_path)
    else:
        db.upgrade(url)
    values: dict[str, Any] = {
        "database_url": url,
        "web_dir": tmp_path / "no-web-dist",
        "data_dir": tmp_path / "data",
        "admin_password": ADMIN_PASSWORD,
    }
    values.update(overrides)
    return ServerSettings(**values)


def make_app(tmp_path: Path, *, start_mqtt: bool = False, **overrides: Any):
    app, _ = create_app(make_settings(tmp_path, **overrides), start_mqtt=start_mqtt)
    return app


class SignedIn:
    """Flask test client signed in as a user; adds ``X-CSRFToken`` to state-changing requests."""

    def __init__(self, app, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
        self.client = app.test_client()
        me = self.client.get("/api/v1/auth/me")
        self.csrf = me.get_json()["csrf_token"]
        r = self.client.post("/api/v1/auth/login", json={"username": username, "password": password},
                             headers={"X-CSRFToken": self.csrf})
        assert r.status_code == 200, r.get_data(as_text=True)
        self.csrf = r.get_json()["csrf_token"]
        self.user = r.get_json()["user"]

    def _call(self, method: str, *args: Any, **kwargs: Any):
        if method != "get":
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf)
            kwargs["headers"] = headers
        return getattr(self.client, method)(*args, **kwargs)

    def get(self, *a: Any, **k: Any):
        return self._call("get", *a, **k)

    def post(self, *a: Any, **k: Any):
        return self._call("post", *a, **k)

    def put(self, *a: Any, **k: Any):
        return self._call("put", *a, **k)

    def patch(self, *a: Any, **k: Any):
        return self._call("patch", *a, **k)

    def delete(self, *a: Any, **k: Any):
        return self._call("delete", *a, **k)


def http_session(base_url: str, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> requests.Session:
    """A requests session signed in to the server at ``base_url`` (``http://host:port``), CSRF header set."""
    s = requests.Session()
    me = s.get(f"{base_url}/api/v1/auth/me", timeout=10)
    token = me.json()["csrf_token"]
    r = s.post(f"{base_url}/api/v1/auth/login", json={"username": username, "password": password},
               headers={"X-CSRFToken": token}, timeout=10)
    r.raise_for_status()
    s.headers["X-CSRFToken"] = r.json()["csrf_token"]
    return s


def error_of(response, status: int) -> str:
    """The one-line JSON error of a Flask test response with ``status``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


class ServerProcess:
    """``adbreak server`` as a real process on a free port, on a freshly migrated database of the test's engine
    (``migrated_url``; or ``db``, migrated here, e.g. one that several servers share), with the test admin.

    ``with ServerProcess(tmp_path, mqtt=(host, port)) as srv: srv.base ...``; its log is ``tmp_path/server.log``.
    ``port``: listen there (a restart on the same address); the same ``tmp_path`` gives the same database again.
    """

    def __init__(self, tmp_path: Path, mqtt: tuple[str, int] = ("127.0.0.1", 1), *, env: dict[str, str] | None = None,
                 wait_mqtt: bool = True, db: str | None = None, port: int | None = None) -> None:
        from tests.mqtt_support import find_free_port

        self.tmp_path = tmp_path
        self._given_db = db is not None
        self.db = db or migrated_url(tmp_path)
        self.mqtt = mqtt
        self.port = port or find_free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.wait_mqtt = wait_mqtt
        self.proc = None

    def __enter__(self) -> ServerProcess:
        import os
        import subprocess
        import sys
        import time

        from tests.support import ROOT

        if self._given_db:
            db.upgrade(self.db)
        self._log = open(self.tmp_path / "server.log", "ab")  # noqa: SIM115 - a restart appends
        env = {**os.environ, "ADBREAK_SERVER_ADMIN_PASSWORD": ADMIN_PASSWORD,
               "ADBREAK_SERVER_DATA_DIR": str(self.tmp_path / "server-data"), **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adbreak", "server", "--db", self.db, "--mqtt", f"{self.mqtt[0]}:{self.mqtt[1]}",
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        try:
            while True:
                assert self.proc.poll() is None, (self.tmp_path / "server.log").read_text()
                try:
                    health = requests.get(f"{self.base}/api/v1/health", timeout=1).json()
                    if health["mqtt"]["connected"] or not self.wait_mqtt:
                        return self
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, \
                    "server did not start: " + (self.tmp_path / "server.log").read_text()
                time.sleep(0.05)
        except BaseException:
            self.__exit__(None, None, None)  # a server that did not come up is not left running
            raise

    def session(self) -> requests.Session:
        return http_session(self.base)

    def __exit__(self, *exc: object) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class PromptCloseWebSocket(websocket.WebSocket):
    """websocket-client's ``WebSocket`` whose ``close()`` ends when the server's close frame has come, whichever
    thread read it.

    ``WebSocket.close()`` sends a close frame and reads frames itself until the server's close frame, for up to 3 s.
    Under python-engineio's client the read loop thread is reading the same socket: it takes the server's close
    frame (the server closes on Engine.IO's close packet, sent just before), so ``close()`` read nothing and waited
    the full 3 s on every disconnect (measured: 3.0 s each, with the server's close frame there after 1 ms). Here
    ``close()`` sends its close frame and waits, up to the same 3 s, for the close frame that either thread reads;
    then it shuts the socket down as ``WebSocket.close()`` does. What goes over the wire is unchanged.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._peer_closed = threading.Event()

    def recv_frame(self):
        frame = super().recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            self._peer_closed.set()
        return frame

    def close(self, status: int = websocket.STATUS_NORMAL, reason: str | bytes = b"", timeout: float = 3) -> None:
        if not self.connected:
            return
        try:
            self.send_close(status, reason)
        except (OSError, websocket.WebSocketException):
            pass
        else:
            self._peer_closed.wait(timeout)
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the read loop if it still waits
        self.shutdown()


def sio_client(**kwargs: Any) -> socketio.Client:
    """A ``socketio.Client`` (``kwargs`` as its own) whose websocket transport is a :class:`PromptCloseWebSocket`."""
    return socketio.Client(websocket_extra_options={"class_": PromptCloseWebSocket}, **kwargs)
