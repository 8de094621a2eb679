"""The appearance event log: one record per appearance (a track from first to last sight),
written as JSON lines (`.jsonl`, `.ndjson`, `.json`) or CSV (`.csv`), with optional best-face
crops as JPEG files.

Records are written to a temporary file and renamed when complete, like the video.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
from pathlib import Path
from typing import Iterable, Protocol

import cv2
import numpy as np

from engines.errors import UserError
from app.storage import make_private_folder, write_private
from app.video_writer import as_user_error

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)


class AppearanceLike(Protocol):
    """What the recognizer reports per appearance (`app.live.recognition.Appearance`)."""

    track_id: int
    name: str | None
    best_similarity: float | None
    first_time: float
    last_time: float
    first_frame: int
    last_frame: int
    source_id: str
    best_crop: np.ndarray | None


# The keys of one record, in order (those of `app.live.recognition.Appearance.to_record`).
FIELDS = ("type", "source_id", "track_id", "name", "similarity", "first_time", "last_time", "first_frame",
          "last_frame", "observations", "quality", "embedding", "crop", "ongoing", "model_id")
CSV_FIELDS = tuple(f for f in FIELDS if f != "embedding")  # 684 characters of base64 help no one in a sheet


def to_record(appearance: AppearanceLike, crop: str | None = None) -> dict:
    """The log record of one appearance: `name` None = unknown, `similarity` the best
    similarity to that name, times in media seconds. Uses the appearance's own `to_record`
    when it has one, so every writer of event logs agrees."""
    if hasattr(appearance, "to_record"):
        record = dict(appearance.to_record(crop))
    else:
        sim = appearance.best_similarity
        record = {
            "type": "appearance",
            "source_id": str(appearance.source_id),
            "track_id": int(appearance.track_id),
            "name": appearance.name,
            "similarity": None if sim is None or not math.isfinite(float(sim)) else round(float(sim), 4),
            "first_time": round(float(appearance.first_time), 3),
            "last_time": round(float(appearance.last_time), 3),
            "first_frame": int(appearance.first_frame),
            "last_frame": int(appearance.last_frame),
            "crop": crop,
            "model_id": getattr(appearance, "model_id", None),
        }
    return record


def event_format(path: str | Path) -> str:
    """"jsonl" or "csv" from the file name; `UserError` for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise UserError(f"cannot tell the event log format of {path}: name it .jsonl (JSON lines) or .csv")


def render_records(records: Iterable[dict], fmt: str) -> str:
    """The text of the log in `fmt` ("jsonl" or "csv"; CSV leaves out embeddings)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})
    return buf.getvalue()


def write_crop(image: np.ndarray, folder: Path, source_id: str, track_id: int, quality: int = 92) -> Path:
    """Save a face crop as `folder/<source>_track<id>.jpg`; returns the path."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(source_id))[-40:] or "src"
    path = folder / f"{safe}_track{int(track_id)}.jpg"
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise UserError(f"could not encode the face crop of track {track_id} as JPEG")
    _atomic_write(path, data.tobytes())
    return path


def write_events(path: str | Path, appearances: Iterable[AppearanceLike],
                 crops_dir: str | Path | None = None) -> list[dict]:
    """Write one record per appearance to `path` (format from its suffix), sorted by first
    frame, and the best crops into `crops_dir` when given. Returns the records."""
    path = Path(path)
    fmt = event_format(path)
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} for the event log does not exist: create it first")
    crops = Path(crops_dir) if crops_dir is not None else None
    if crops is not None:
        make_private_folder(crops)
    ordered = sorted(appearances, key=lambda a: (a.first_frame, str(a.source_id), a.track_id))
    records = []
    for a in ordered:
        crop_ref = None
        if crops is not None and a.best_crop is not None and a.best_crop.size:
            crop_path = write_crop(a.best_crop, crops, a.source_id, a.track_id)
            crop_ref = os.path.relpath(crop_path.resolve(), path.parent.resolve())
        records.append(to_record(a, crop_ref))
    _atomic_write(path, render_records(records, fmt).encode("utf-8"))
    return records


def read_events(path: str | Path) -> list[dict]:
    """The records of an event log as dicts (CSV values are converted back to numbers)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if event_format(path) == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        rows.append({k: _from_csv(k, v) for k, v in row.items()})
    return rows


def _from_csv(key: str, value: str):
    if value == "":
        return None
    if key in ("track_id", "first_frame", "last_frame", "observations"):
        return int(value)
    if key in ("similarity", "first_time", "last_time", "quality"):
        return float(value)
    if key == "ongoing":
        return value == "True"
    return value


def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    if path.exists() and not path.is_file():  # a device such as /dev/full: write directly
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as exc:
            raise as_user_error(exc, path) from exc
        return
    tmp = path.with_name(f".{path.name}.partial-{secrets.token_hex(4)}")
    try:
        write_private(tmp, data)  # faces and names: user-only, like the gallery
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise as_user_error(exc, path) from exc
