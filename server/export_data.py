"""What exports read from the server's database: one device's segments over a range, rendered by
``adbreak.exports``. Shared by ``GET /api/v1/export`` (through the store's read connection) and ``adbreak export`` /
``adbreak dataset`` (which open the database file themselves, read-only in effect: they never write). No Flask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from adbreak import exports
from adbreak.errors import AdbreakError
from adbreak.exports import Span, Timeline
from server.db import check_schema, make_engine, shown, sqlite_path
from server.models import Device, Recording, Segment
from server.recordings import file_stem, is_recording_key

SEGMENTS = Segment.__table__
DEVICES = Device.__table__
RECORDINGS = Recording.__table__


@dataclass(frozen=True)
class Export:
    text: str
    timeline: Timeline
    filename: str
    content_type: str


def database_url(db: str) -> str:
    """A SQLAlchemy URL from ``--db``: a URL as it is, a plain path as a SQLite file."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def open_database(db: str) -> Engine:
    """An engine on an existing database at the current schema; one readable line otherwise. A missing SQLite file
    is not created."""
    url = database_url(db)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise AdbreakError(f"database file {path} does not exist (give the server's --db)")
    check_schema(url)
    return make_engine(url)


def device_names(conn: Connection) -> list[str]:
    return list(conn.scalars(select(DEVICES.c.name).order_by(DEVICES.c.name)))


def require_device(conn: Connection, device: str) -> None:
    if conn.scalar(select(DEVICES.c.id).where(DEVICES.c.name == device)) is None:
        known = device_names(conn)
        raise AdbreakError(f"unknown device {device!r}" + (f" (known: {', '.join(known)})" if known else
                                                          " (the database has no device yet)"))


def device_spans(conn: Connection, device: str, start: float, end: float) -> list[Span]:
    """The device's segments overlapping ``[start, end)`` (an open one reaches to now), oldest first."""
    q = (select(SEGMENTS.c.start, SEGMENTS.c.end, SEGMENTS.c.label)
         .join_from(SEGMENTS, DEVICES, SEGMENTS.c.device_id == DEVICES.c.id)
         .where(DEVICES.c.name == device, SEGMENTS.c.start < end,
                SEGMENTS.c.end.is_(None) | (SEGMENTS.c.end > start))
         .order_by(SEGMENTS.c.start, SEGMENTS.c.id))
    return [Span(a, b, label) for a, b, label in conn.execute(q)]


def build_export(conn: Connection, device: str, start: float, end: float, fmt: str, *,
                 fps: float = exports.DEFAULT_FPS, now: float) -> Export:
    """The file of one device's segments over ``[start, end)`` in ``fmt``; :class:`~adbreak.exports.ExportError`
    for a bad range or format, or when no segment overlaps the range."""
    exports.check_format(fmt)
    exports.check_fps(fps)
    exports.check_range(start, end)
    spans = device_spans(conn, device, start, end)
    try:
        timeline = exports.clip_to_window(spans, start, end, now=now)
    except exports.ExportError as exc:
        raise exports.ExportError(f"device {device!r}: {exc} [{exports.stamp(start)}, {exports.stamp(end)})") \
            from None
    text = exports.render(fmt, timeline.segments, timeline.duration, fps=fps)
    return Export(text, timeline, _filename(conn, device, start, fmt), exports.CONTENT_TYPES[fmt])


def _filename(conn: Connection, device: str, start: float, fmt: str) -> str:
    """``tv1_20261123T100000Z.edl``; for a recording sent for review, its own name: ``The_Show.edl`` (the sidecar
    a DVR tool looks for beside ``The Show.ts``)."""
    if is_recording_key(device):
        name = conn.scalar(select(RECORDINGS.c.name).join_from(RECORDINGS, DEVICES, RECORDINGS.c.device_id ==
                                                                DEVICES.c.id).where(DEVICES.c.name == device))
        if name is not None:
            return f"{file_stem(name)}.{exports.EXTENSIONS[fmt]}"
    return exports.export_filename(device, start, fmt)


def read(engine: Engine, what: str, fn, *args, **kwargs):
    """Run ``fn(conn, ...)`` in one read transaction; a database error becomes one line."""
    try:
        with engine.connect() as conn:
            return fn(conn, *args, **kwargs)
    except SQLAlchemyError as exc:
        first = (str(getattr(exc, "orig", None) or exc).splitlines() or ["error"])[0]
        raise AdbreakError(f"cannot read {what} from {shown(str(engine.url))}: {first}") from None
