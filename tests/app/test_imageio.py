"""load_image: every bad input is a clear UserError; every odd but valid image becomes BGR uint8."""
import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from engines.errors import UserError
from app.imageio import load_image


def _write(path, image, ext=None, params=()):
    ok, data = cv2.imencode(ext or path.suffix, image, list(params))
    assert ok
    data.tofile(str(path))
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_missing_directory_empty(tmp_path):
    with pytest.raises(UserError, match="image not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(UserError, match="is a folder"):
        load_image(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(UserError, match="empty file"):
        load_image(tmp_path / "empty.jpg")


def test_not_an_image_and_corrupt_data(tmp_path):
    (tmp_path / "notes.jpg").write_text("hello, not a picture")
    with pytest.raises(UserError, match="cannot decode"):
        load_image(tmp_path / "notes.jpg")
    good = _write(tmp_path / "good.png", np.full((20, 20, 3), 90, np.uint8))
    data = bytearray(good.read_bytes())
    data[40:60] = b"\x00" * 20  # smash the compressed data (IEND still there)
    (tmp_path / "smashed.png").write_bytes(bytes(data))
    with pytest.raises(UserError):
        load_image(tmp_path / "smashed.png")


def test_truncated_jpeg_and_png_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 160, 3), np.uint8)
    for ext in (".jpg", ".png"):
        whole = _write(tmp_path / f"whole{ext}", image)
        cut = tmp_path / f"cut{ext}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
        with pytest.raises(UserError, match="truncated"):
            load_image(cut)
        assert load_image(whole).shape == (120, 160, 3)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(0, 250, 10, dtype=np.uint8).reshape(5, 5)
    out = load_image(_write(tmp_path / "gray.png", gray))
    assert out.shape == (5, 5, 3) and out.dtype == np.uint8
    assert (out[:, :, 0] == gray).all() and (out[:, :, 2] == gray).all()


def test_rgba_is_composited_on_white(tmp_path):
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., :3] = (10, 20, 200)
    bgra[0, :, 3] = (0, 255, 128)
    bgra[1, :, 3] = 255
    out = load_image(_write(tmp_path / "alpha.png", bgra))
    assert out.shape == (2, 3, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)  # fully transparent -> white
    assert tuple(out[0, 1]) == (10, 20, 200)  # opaque -> the colour
    assert np.allclose(out[0, 2], [(10 * 128 + 255 * 127) / 255, (20 * 128 + 255 * 127) / 255,
                                   (200 * 128 + 255 * 127) / 255], atol=1)


def test_16bit_png_is_scaled_not_truncated(tmp_path):
    values = np.array([[0, 256, 32768, 65535]], np.uint16)
    img16 = np.repeat(values[:, :, None], 3, axis=2)
    out = load_image(_write(tmp_path / "deep.png", img16))
    assert out.dtype == np.uint8
    assert list(out[0, :, 0]) == [0, 1, 128, 255]  # the low byte alone would give 0, 0, 0, 255


def test_odd_path_and_tiny_image(tmp_path):
    folder = tmp_path / "fötos ü #1"
    folder.mkdir()
    path = _write(folder / "José (copy) 1×1.jpg", np.full((1, 1, 3), 200, np.uint8), ext=".jpg")
    out = load_image(path)
    assert out.shape == (1, 1, 3)
    assert abs(int(out[0, 0, 0]) - 200) <= 3


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = 255  # left half white
    ok, data = cv2.imencode(".jpg", image)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) \
        + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    raw = data.tobytes()
    (tmp_path / "rotated.jpg").write_bytes(raw[:2] + app1 + raw[2:])
    out = load_image(tmp_path / "rotated.jpg")
    assert out.shape == (40, 20, 3)  # orientation 6: turned 90 degrees clockwise to display
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # the white half is now on top


def test_absurd_size_is_refused_before_decoding(tmp_path):
    header = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 9000, 8, 2, 0, 0, 0))
    body = _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + _png_chunk(b"IEND", b"")
    (tmp_path / "huge.png").write_bytes(header + body)
    with pytest.raises(UserError, match=r"too large: 12000x9000 = 108 megapixels"):
        load_image(tmp_path / "huge.png")
    small = tmp_path / "small.png"
    _write(small, np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(UserError, match="too large"):
        load_image(small, max_pixels=1000)


def test_48_megapixel_image_is_accepted(tmp_path):
    big = np.zeros((6000, 8000, 3), np.uint8)
    big[::500, :, 1] = 255
    path = _write(tmp_path / "big.jpg", big, params=(cv2.IMWRITE_JPEG_QUALITY, 50))
    del big
    out = load_image(path)
    assert out.shape == (6000, 8000, 3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = _write(tmp_path / "secret.png", np.zeros((4, 4, 3), np.uint8))
    path.chmod(0)
    try:
        with pytest.raises(UserError, match="permission denied"):
            load_image(path)
    finally:
        path.chmod(0o644)
