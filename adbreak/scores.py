"""The contract's per-frame scores file (``SCORES.csv``).

A CSV whose header starts ``t,p_ad`` and may go on with extra columns (one per class probability or cue): one row per
analysed frame, ``t`` in seconds from the start (increasing), ``p_ad`` the frame's probability of ``ad`` before any
temporal smoothing, empty where no trained head ran. Optional cue columns (``CUE_COLUMNS``: ``logo``, ``black``,
``silence``, ``cut``, ``repeat``, and this project's ``dip``, ``loudness``, ``aspect``,
``luma``) hold values in [0, 1], empty
where the cue could not be measured. ``adbreak evaluate --record-scores`` writes it and ``adbreak evaluate --scores``
re-runs the decision stage on it, so the writer keeps every float exactly (shortest round-trip repr): a re-run on
recorded scores reproduces the live decisions bit for bit.

Extra columns are kept by name as float arrays; an empty cell reads as NaN. Row numbers in error messages count the
header as row 1.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from adbreak.atomic import write_text
from adbreak.errors import AdbreakError

REQUIRED: tuple[str, str] = ("t", "p_ad")
CUE_COLUMNS: tuple[str, ...] = ("logo", "black", "silence", "cut", "repeat", "dip", "loudness", "aspect", "luma")
"""Extra columns whose values must lie in [0, 1] (or be empty): the contract's cues and this project's own."""


def _number(text: str, column: str, where: str, *, allow_empty: bool = False) -> float:
    text = text.strip()
    if allow_empty and not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise AdbreakError(f"{where}: {column} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise AdbreakError(f"{where}: {column} {text!r} is not a finite number")
    return value


def read_scores(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Read a scores file: ``(t, p_ad, extra)`` as float64 arrays, ``extra`` keyed by column name in file order.

    Raises :class:`AdbreakError` (one line, with the file name and row number) for a missing or empty file, a header
    that does not start ``t,p_ad`` or repeats a name, a row with the wrong number of fields, a value that is not a
    number, a negative or non-increasing ``t``, or a ``p_ad`` or cue value outside ``[0, 1]``. An empty ``p_ad`` (no
    head ran) and empty extra cells read as NaN.
    """
    p = Path(path)
    name = p.name
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AdbreakError(f"scores file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AdbreakError(f"cannot read scores file {p}: {exc}") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise AdbreakError(f"{name}: not a valid CSV file: {exc}") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise AdbreakError(f"{name} is empty; expected a header starting {','.join(REQUIRED)}")
    header = [cell.strip() for cell in rows[0]]
    if tuple(header[:2]) != REQUIRED:
        raise AdbreakError(f"{name} row 1: header {','.join(header)!r} does not start with {','.join(REQUIRED)!r}")
    extra_names = header[2:]
    for col in extra_names:
        if not col:
            raise AdbreakError(f"{name} row 1: an extra column has no name")
    if len(set(header)) != len(header):
        dup = sorted({c for c in header if header.count(c) > 1})
        raise AdbreakError(f"{name} row 1: column {dup[0]!r} appears more than once")

    ts: list[float] = []
    ps: list[float] = []
    extras: list[list[float]] = [[] for _ in extra_names]
    for index, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"{name} row {index}"
        if len(row) != len(header):
            raise AdbreakError(f"{where}: expected {len(header)} fields, got {len(row)}")
        t = _number(row[0], "t", where)
        if t < 0:
            raise AdbreakError(f"{where}: t {t} is negative")
        if ts and t <= ts[-1]:
            raise AdbreakError(f"{where}: t {t} does not increase (previous row has {ts[-1]})")
        p_ad = _number(row[1], "p_ad", where, allow_empty=True)
        if not (math.isnan(p_ad) or 0.0 <= p_ad <= 1.0):
            raise AdbreakError(f"{where}: p_ad {p_ad} is outside [0, 1]")
        ts.append(t)
        ps.append(p_ad)
        for values, col, cell in zip(extras, extra_names, row[2:], strict=True):
            value = _number(cell, col, where, allow_empty=True)
            if col in CUE_COLUMNS and not (math.isnan(value) or 0.0 <= value <= 1.0):
                raise AdbreakError(f"{where}: {col} {value} is outside [0, 1]")
            values.append(value)
    if not ts:
        raise AdbreakError(f"{name} has no rows (only the header)")
    extra = {col: np.asarray(values, dtype=np.float64) for col, values in zip(extra_names, extras, strict=True)}
    return np.asarray(ts, dtype=np.float64), np.asarray(ps, dtype=np.float64), extra


def _fmt(value: float) -> str:
    """Shortest text that reads back as the same float; NaN as an empty cell."""
    return "" if math.isnan(value) else repr(float(value))


def write_scores(
    path: str | os.PathLike[str],
    t: np.ndarray | list[float],
    p_ad: np.ndarray | list[float],
    extra: Mapping[str, np.ndarray | list[float]] | None = None,
) -> None:
    """Write a scores file atomically; floats are written exactly (see the module doc), NaN extras as empty cells.

    Raises :class:`AdbreakError` when the arrays differ in length, ``t`` is not finite, non-negative and strictly
    increasing, ``p_ad`` is outside ``[0, 1]``, or an extra column holds an infinity or has a bad name (empty,
    ``t``/``p_ad``, a comma or quote in it).
    """
    where = f"cannot write {Path(path).name}"
    t_arr = np.asarray(t, dtype=np.float64).reshape(-1)
    p_arr = np.asarray(p_ad, dtype=np.float64).reshape(-1)
    columns = {name: np.asarray(values, dtype=np.float64).reshape(-1) for name, values in (extra or {}).items()}
    if len(p_arr) != len(t_arr):
        raise AdbreakError(f"{where}: {len(t_arr)} times but {len(p_arr)} p_ad values")
    for col, values in columns.items():
        if not col or col in REQUIRED or any(ch in col for ch in ',"\r\n') or col != col.strip():
            raise AdbreakError(f"{where}: bad extra column name {col!r}")
        if len(values) != len(t_arr):
            raise AdbreakError(f"{where}: extra column {col!r} has {len(values)} values, expected {len(t_arr)}")
        if np.any(np.isinf(values)):
            raise AdbreakError(f"{where}: extra column {col!r} holds an infinite value")
    if not np.all(np.isfinite(t_arr)) or (len(t_arr) and t_arr[0] < 0):
        raise AdbreakError(f"{where}: times must be finite and non-negative")
    if np.any(np.diff(t_arr) <= 0):
        i = int(np.argmax(np.diff(t_arr) <= 0)) + 1
        raise AdbreakError(f"{where}: time {t_arr[i]} at frame {i} does not increase")
    if not np.all(np.isnan(p_arr) | ((p_arr >= 0.0) & (p_arr <= 1.0))):
        raise AdbreakError(f"{where}: p_ad values must lie in [0, 1] (or be NaN: no head ran)")
    for col, values in columns.items():
        if col in CUE_COLUMNS and not np.all(np.isnan(values) | ((values >= 0.0) & (values <= 1.0))):
            raise AdbreakError(f"{where}: cue column {col!r} must hold values in [0, 1] (or NaN)")

    out = io.StringIO()
    out.write(",".join((*REQUIRED, *columns)) + "\n")
    for i in range(len(t_arr)):
        cells = [_fmt(t_arr[i]), _fmt(p_arr[i]), *(_fmt(values[i]) for values in columns.values())]
        out.write(",".join(cells) + "\n")
    write_text(path, out.getvalue())
