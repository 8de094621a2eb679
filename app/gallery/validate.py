"""Checking what enters the gallery: identity names, embeddings and stored crops.

An import is checked sample by sample before anything is written, so a damaged or crafted
export can never leave the gallery in a state where recognition silently stops working
(NaN rows match nothing), every later command fails (undecodable crops), or a crop costs
gigabytes to decode.
"""
from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from engines.errors import UserError
from engines.faces import EMBEDDING_DIM

MAX_NAME_LENGTH = 100
NORM_TOLERANCE = 1e-3  # stored embeddings are unit length (float32 rounding is ~1e-7)
MAX_CROP_PIXELS = 1024 * 1024  # stored crops are at most 256 px square (app.gallery.face_crop)
MAX_CROP_BYTES = 4_000_000
# Direction overrides can make a name display as another; they are never part of a name.
_BIDI_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def clean_name(name: str) -> str:
    """`name` with runs of white space collapsed and the ends trimmed; `UserError` for an
    empty or overlong name or one holding control characters (ANSI escapes, newlines, ...)."""
    if not isinstance(name, str):
        raise UserError("an identity name must be text")
    cleaned = " ".join(name.split())
    if not cleaned:
        raise UserError("an identity name cannot be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise UserError(f"identity name too long ({len(cleaned)} characters, at most {MAX_NAME_LENGTH})")
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in cleaned):
        raise UserError(f"identity name {cleaned!r} contains control characters")
    return cleaned


def name_key(name: str) -> str:
    """How the gallery compares names (its column is COLLATE NOCASE: ASCII case folded)."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def vector_problem(blob) -> str | None:
    """Why a stored embedding blob cannot be used (None when it is a finite unit vector)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        return f"its embedding is not a vector ({type(blob).__name__})"
    if len(blob) != EMBEDDING_DIM * 4:
        return f"its embedding has {len(blob) // 4} values, not {EMBEDDING_DIM}"
    with np.errstate(invalid="ignore", over="ignore"):  # signalling NaNs, huge values: judged below
        v = np.frombuffer(blob, "<f4").astype(np.float64)
        if not np.isfinite(v).all():
            return "its embedding holds NaN or infinite values"
        norm = float(np.linalg.norm(v))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        return f"its embedding is not unit length (norm {norm:.4g})"
    return None


def crop_problem(data, box) -> str | None:
    """Why a stored crop cannot be used (None when it decodes, is small enough and its face
    box lies inside it). The size is read from the header before any decoding."""
    from app.imageio import decode_image

    if not isinstance(data, (bytes, bytearray, memoryview)):
        return f"its crop is not image bytes ({type(data).__name__})"
    if len(data) > MAX_CROP_BYTES:
        return f"its crop is {len(data) / 1e6:.1f} MB (at most {MAX_CROP_BYTES / 1e6:.0f} MB)"
    try:
        image = decode_image(bytes(data), name="its crop", max_pixels=MAX_CROP_PIXELS)
    except UserError as exc:
        return str(exc)
    if box is None or len(box) != 4 or any(b is None or not isinstance(b, (int, float)) or not math.isfinite(b)
                                            for b in box):
        return "its crop has no valid face box"
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    if not (x2 > x1 and y2 > y1 and x2 > 0 and y2 > 0 and x1 < w and y1 < h):
        return f"its face box {tuple(round(b, 1) for b in box)} is not inside its {w}x{h} crop"
    return None


@dataclass(frozen=True, slots=True)
class Rejection:
    """One sample (or a whole identity) an import left out, and why."""

    name: str  # the identity's name as the export spells it
    sample: int | None  # the sample's id inside the export (None: the whole identity)
    reason: str

    def line(self) -> str:
        what = f"sample {self.sample} of {self.name!r}" if self.sample is not None else f"identity {self.name!r}"
        return f"{what}: {self.reason}"

    def to_dict(self) -> dict:
        return {"name": self.name, "sample": self.sample, "reason": self.reason}
