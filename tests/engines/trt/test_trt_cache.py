"""Engine cache: key and sidecar, rebuild on any key change or damage, atomic writes."""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os

import pytest

from engines.trt.cache import EngineCache, EngineKey, atomic_write_bytes, read_blob, sha256_file


def make_key(**changes) -> EngineKey:
    base = dict(
        onnx_name="uniface_prod", onnx_sha256="ab" * 32, precision="fp16", fp16_converter=1,
        trt_module="tensorrt", trt_version="11.4.0.106", gpu_name="NVIDIA GeForce RTX 4090",
        compute_capability="8.9", min_batch=1, opt_batch=8, max_batch=8, input_width=640, input_height=480,
    )
    base.update(changes)
    return EngineKey(**base)


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_sidecar_holds_the_key_and_build_facts(tmp_path):
    cache = EngineCache(tmp_path)
    key = make_key()
    plan = bytes(range(256)) * 40
    path = cache.store(key, plan, build_seconds=93.25, extra={"io": [{"name": "images", "dtype": "UINT8"}]})
    assert path == tmp_path / "trt" / "uniface-prod-fp16-b8-640x480-nvidia-geforce-rtx-4090-sm89.engine"
    assert cache.lookup(key) == path and cache.read(key) == plan
    meta = json.loads(cache.sidecar_path(key).read_text())
    assert meta["key"] == dataclasses.asdict(key)
    assert meta["build_seconds"] == 93.25 and meta["engine_bytes"] == len(plan)
    assert meta["built_at"].endswith("Z") and meta["io"][0]["dtype"] == "UINT8"
    assert EngineKey.from_dict(meta["key"]) == key
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("field,value", [
    ("onnx_sha256", "cd" * 32),  # the model changed
    ("trt_version", "11.5.0.1"),  # TensorRT upgraded
    ("trt_module", "tensorrt_rtx"),
    ("gpu_name", "NVIDIA GeForce RTX 4090 D"),
    ("fp16_converter", 2),  # the FP16 conversion changed
    ("opt_batch", 4),
])
def test_any_key_change_means_rebuild(tmp_path, caplog, field, value):
    cache = EngineCache(tmp_path)
    cache.store(make_key(), b"engine-bytes", 1.0)
    new = make_key(**{field: value})
    with caplog.at_level(logging.INFO, logger="engines.trt.cache"):
        found = cache.lookup(new)
    assert found is None
    if new.slot == make_key().slot:  # same file name: the sidecar's key decides, and says what differs
        assert field in caplog.text and "rebuilding" in caplog.text
    assert cache.lookup(make_key()) is not None  # the old engine is still valid for the old key


def test_profile_and_precision_get_their_own_slot(tmp_path):
    assert make_key(max_batch=4).slot != make_key().slot
    assert make_key(precision="fp32", fp16_converter=0).slot != make_key().slot
    assert make_key(input_width=1280, input_height=720).slot != make_key().slot
    assert make_key(compute_capability="8.6").slot != make_key().slot


def test_damaged_engine_or_sidecar_is_not_used(tmp_path):
    cache = EngineCache(tmp_path)
    key = make_key()
    plan = os.urandom(4096)
    cache.store(key, plan, 1.0)
    engine = cache.engine_path(key)
    engine.write_bytes(plan[:100])  # truncated
    assert cache.lookup(key) is None
    engine.write_bytes(bytes(4096))  # right size, wrong bytes
    assert cache.lookup(key) == engine and cache.read(key) is None
    cache.store(key, plan, 1.0)
    cache.sidecar_path(key).write_text("{not json")
    assert cache.lookup(key) is None
    cache.sidecar_path(key).write_text(json.dumps({"format": 1, "key": {"onnx_name": "x"}}))
    assert cache.lookup(key) is None
    cache.sidecar_path(key).unlink()
    assert cache.lookup(key) is None


def test_invalidate_removes_engine_and_sidecar(tmp_path):
    cache = EngineCache(tmp_path)
    key = make_key()
    cache.store(key, b"x" * 10, 1.0)
    cache.invalidate(key, "TensorRT could not deserialise it")
    assert not cache.engine_path(key).exists() and not cache.sidecar_path(key).exists()
    cache.invalidate(key, "twice is fine")


def test_atomic_write_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "x.engine"
    atomic_write_bytes(target, b"old engine")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new engine that never fully lands" * 1000)
    assert target.read_bytes() == b"old engine"
    assert leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["x.engine"]


def test_atomic_write_onto_a_folder_fails_cleanly(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "taken", b"data")
    assert leftovers(tmp_path) == []


def test_interrupted_store_leaves_no_engine_that_looks_valid(tmp_path, monkeypatch):
    cache = EngineCache(tmp_path)
    old_key, new_key = make_key(trt_version="10.13.0.35"), make_key()
    cache.store(old_key, b"old plan", 1.0)

    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.store(new_key, b"new plan" * 100, 2.0)
    monkeypatch.undo()
    assert cache.lookup(new_key) is None and cache.lookup(old_key) is None  # the sidecar went first
    assert cache.engine_path(new_key).read_bytes() == b"old plan"  # never a half-written engine
    assert leftovers(tmp_path) == []


def test_timing_cache_is_per_tensorrt_version_and_gpu(tmp_path):
    cache = EngineCache(tmp_path)
    a = cache.timing_cache_path("tensorrt", "11.4.0.106", "NVIDIA H100 80GB HBM3", "9.0")
    assert a == tmp_path / "trt" / "timing" / "tensorrt-11.4.0.106-nvidia-h100-80gb-hbm3-sm90.cache"
    assert a != cache.timing_cache_path("tensorrt", "10.13.0.35", "NVIDIA H100 80GB HBM3", "9.0")
    assert a != cache.timing_cache_path("tensorrt", "11.4.0.106", "NVIDIA A100-SXM4-40GB", "8.0")
    assert read_blob(a) == b""  # optional: missing is empty
    atomic_write_bytes(a, b"timings")
    assert read_blob(a) == b"timings"


def test_sha256_file_reads_in_chunks(tmp_path):
    import hashlib

    data = os.urandom(3 * (1 << 20) + 17)
    (tmp_path / "m.onnx").write_bytes(data)
    assert sha256_file(tmp_path / "m.onnx", chunk=1 << 16) == hashlib.sha256(data).hexdigest()
