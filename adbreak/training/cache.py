"""Cached bottlenecks: backbone features keyed by image content, one SQLite file per backbone hash.

A re-run of ``adbreak train`` on the same images skips the backbone entirely. The key is the sha256 of the image
file's bytes plus the preprocessing (input size, geometry); the file name carries the backbone's sha256, so a new
backbone never reads stale features. SQLite transactions make every write all-or-nothing: an interrupted run leaves
a valid cache with the features it had committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    env = os.environ.get("ADBREAK_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "adbreak"


def content_key(data: bytes, preprocessing: str) -> str:
    return hashlib.sha256(data + b"\0" + preprocessing.encode()).hexdigest()


class BottleneckCache:
    def __init__(self, cache_dir: str | Path, backbone_sha256: str, dim: int) -> None:
        self.dim = dim
        self.path = Path(cache_dir) / f"bottlenecks-{backbone_sha256[:16]}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:  # a corrupt file: set it aside and start a fresh cache
            log.warning("bottleneck cache %s is unreadable (%s): starting a new one", self.path, exc)
            os.replace(self.path, self.path.with_suffix(".corrupt"))
            self._db = self._open()
        self.hits = 0
        self.misses = 0

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS features (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        db.execute("SELECT count(*) FROM features").fetchone()
        return db

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(f"SELECT key, vec FROM features WHERE key IN ({marks})", chunk):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (self.dim,):
                    found[key] = vec
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put_many(self, pairs: Iterable[tuple[str, np.ndarray]]) -> None:
        with self._db:  # one transaction
            self._db.executemany(
                "INSERT OR REPLACE INTO features (key, vec) VALUES (?, ?)",
                ((k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in pairs),
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM features").fetchone()[0])

    def close(self) -> None:
        self._db.close()
