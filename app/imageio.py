"""Loading still images: any path, any common format, always BGR uint8 with 3 channels.

Conversions: grayscale -> BGR; alpha is composited on **white** (a transparent background
reads as the page a person would see it on) and then dropped; 16-bit images are scaled to
8 bits (65535 -> 255, rounded), floating-point images are taken as 0..1. JPEG EXIF
orientation is applied, so phone photos come out upright. Every failure is a one-line
`UserError` that says what is wrong with which file.
"""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from engines.errors import UserError

MAX_PIXELS = 100_000_000  # refuse larger images: decoding them costs gigabytes
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FORMATS = "JPEG, PNG, BMP, TIFF, WebP, PNM"


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image at `path` as a BGR uint8 (h, w, 3) array; `UserError` when it cannot be."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"image not found: {p} (check the path)")
    if p.is_dir():
        raise UserError(f"{p} is a folder, not an image: give an image file such as photo.jpg")
    try:
        data = np.fromfile(str(p), dtype=np.uint8)
    except PermissionError as exc:
        raise UserError(f"permission denied reading {p}: check the file's permissions") from exc
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from exc
    return decode_image(data, name=str(p), max_pixels=max_pixels)


def decode_image(data: bytes | np.ndarray, *, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (a file's contents) like `load_image`; `name` is used in
    error messages."""
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise UserError(f"{name} is an empty file: it holds no image")
    head = buf[:64].tobytes()
    size = header_size(buf.tobytes(), name)
    _check_size(size[0], size[1], name, max_pixels)  # from the header: before any pixel is decoded
    flags = cv2.IMREAD_COLOR if head.startswith(JPEG_MAGIC) else cv2.IMREAD_UNCHANGED  # COLOR applies EXIF rotation
    try:
        image = cv2.imdecode(buf, flags)
    except cv2.error as exc:
        raise UserError(f"cannot decode {name}: {str(exc).strip().splitlines()[-1]}") from exc
    if image is None:
        raise UserError(f"cannot decode {name}: not a {FORMATS} image, or the file is damaged")
    _check_size(image.shape[1], image.shape[0], name, max_pixels)
    return to_bgr8(image, name)


def to_bgr8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Any decoded image (gray, gray+alpha, BGR, BGRA; 8/16-bit or float) as BGR uint8."""
    image = _to_uint8(image, name)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 2:  # gray + alpha
        gray = _composite_on_white(image[:, :, :1], image[:, :, 1])
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if channels == 3:
        return np.ascontiguousarray(image)
    if channels == 4:
        return _composite_on_white(image[:, :, :3], image[:, :, 3])
    raise UserError(f"cannot use {name}: it has {channels} channels (expected 1 to 4)")


def _to_uint8(image: np.ndarray, name: str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if image.dtype in (np.float32, np.float64):
        return (np.clip(np.nan_to_num(image), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if image.dtype == np.int8:
        return (image.astype(np.int16) + 128).astype(np.uint8)
    raise UserError(f"cannot use {name}: unsupported pixel type {image.dtype}")


def _composite_on_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint16)[:, :, None]
    out = (color.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def header_size(data: bytes, name: str = "image") -> tuple[int, int]:
    """(width, height) read from the header of an encoded image, for every format this
    module decodes; `UserError` for anything else (OpenCV would otherwise allocate whatever
    a header claims before noticing the rest is missing)."""
    head = data[:64]
    if head.startswith(JPEG_MAGIC):
        size = _check_jpeg(data, name)
        if size is None:
            raise UserError(f"{name} is a damaged JPEG (no frame header): re-export or re-copy it")
        return size
    if head.startswith(PNG_MAGIC):
        return _check_png(data, name)
    if head.startswith(b"BM"):
        if len(head) < 26:
            raise UserError(f"{name} is a truncated BMP: re-export or re-copy it")
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_size(data, name)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head, name)
    if len(head) >= 2 and head[0] == ord("P") and head[1] in b"123456":
        return _pnm_size(data[:1024], name)
    raise UserError(f"cannot decode {name}: not a {FORMATS} image, or the file is damaged")


def _tiff_size(raw: bytes, name: str) -> tuple[int, int]:
    """ImageWidth (256) and ImageLength (257) of the first IFD (classic and BigTIFF)."""
    order = "<" if raw[:2] == b"II" else ">"
    damaged = UserError(f"{name} is a truncated or damaged TIFF: re-export or re-copy it")
    try:
        big = struct.unpack(order + "H", raw[2:4])[0] == 43
        if big:
            offset = struct.unpack(order + "Q", raw[8:16])[0]
            count = struct.unpack(order + "Q", raw[offset:offset + 8])[0]
            entries, size, first = offset + 8, 20, 8
        else:
            offset = struct.unpack(order + "I", raw[4:8])[0]
            count = struct.unpack(order + "H", raw[offset:offset + 2])[0]
            entries, size, first = offset + 2, 12, 4
        found = {}
        for i in range(min(count, 4096)):
            e = raw[entries + i * size: entries + (i + 1) * size]
            tag, kind = struct.unpack(order + "HH", e[:4])
            if tag in (256, 257):
                value = e[4 + first: 4 + 2 * first] if big else e[8:12]
                if kind == 3:
                    found[tag] = struct.unpack(order + "H", value[:2])[0]
                elif kind == 4:
                    found[tag] = struct.unpack(order + "I", value[:4])[0]
                elif kind == 16:
                    found[tag] = struct.unpack(order + "Q", value[:8])[0]
    except struct.error:
        raise damaged from None
    if 256 not in found or 257 not in found:
        raise damaged
    return found[256], found[257]


def _webp_size(head: bytes, name: str) -> tuple[int, int]:
    """The canvas size from the VP8X, VP8L or VP8 chunk header."""
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return w & 0x3FFF, h & 0x3FFF
    raise UserError(f"{name} is a truncated or damaged WebP: re-export or re-copy it")


def _pnm_size(head: bytes, name: str) -> tuple[int, int]:
    """Width and height from a PBM/PGM/PPM header (comments skipped)."""
    text = b"\n".join(line.split(b"#")[0] for line in head[2:].split(b"\n"))
    fields = text.split()
    try:
        return int(fields[0]), int(fields[1])
    except (IndexError, ValueError):
        raise UserError(f"{name} is a truncated or damaged PNM image: re-export or re-copy it") from None


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise UserError(f"cannot use {name}: its header says {width}x{height} pixels (damaged file?)")
    if width * height > max_pixels:
        raise UserError(f"{name} is too large: {width}x{height} = {width * height / 1e6:.0f} megapixels, "
                        f"the limit is {max_pixels / 1e6:.0f}; shrink it first")


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _check_jpeg(data: bytes, name: str) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first scan; the size from the frame header. A file
    whose segments run past its end, or with no end-of-image marker after the scan data,
    is truncated. (OpenCV would decode it with a grey lower part and a warning.)"""
    truncated = UserError(f"{name} is a truncated or damaged JPEG: re-export or re-copy it")
    i, n, size = 2, len(data), None
    while True:
        if i + 4 > n:
            raise truncated
        if data[i] != 0xFF:
            raise UserError(f"{name} is a damaged JPEG (bad segment marker): re-export or re-copy it")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker == 0xD9:
            raise truncated
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        end = i + 2 + length
        if length < 2 or end > n:
            raise truncated
        if marker in _SOF_MARKERS and length >= 7:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            size = (w, h)
        if marker == 0xDA:
            if data.find(b"\xff\xd9", end) < 0:
                raise truncated
            return size
        i = end


def _check_png(data: bytes, name: str) -> tuple[int, int]:
    """The size from IHDR; a PNG without its IEND chunk is truncated."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise UserError(f"{name} is a truncated or damaged PNG: re-export or re-copy it")
    w, h = struct.unpack(">II", data[16:24])
    if data.rfind(b"IEND") < 0:
        raise UserError(f"{name} is a truncated PNG (no end chunk): re-export or re-copy it")
    return w, h
