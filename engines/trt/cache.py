"""The TensorRT engine cache: one engine per slot, its key in a JSON sidecar, every write atomic.

An engine is only valid for the ONNX file, TensorRT version, GPU, precision and optimisation
profile that built it. `EngineKey` holds all of them; the sidecar beside each engine stores
the key it was built with, so a changed key (new model, TensorRT upgrade, other GPU) or a
damaged file means a rebuild. Files are written to a temporary name and renamed, so a crash
or a full disk never leaves a half-written engine that looks valid.

Layout under `<cache_dir>/trt/`:
  <slot>.engine / <slot>.json   serialized engine and its sidecar
  timing/<trt>-<gpu>.cache      TensorRT timing cache, per TensorRT version and GPU
  runtime/<slot>.rtcache        TensorRT-RTX runtime (JIT kernel) cache
  onnx/<name>-<sha>-fp16.onnx   the FP16 graph the FP16 engines are built from
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SIDECAR_FORMAT = 1


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "x"


@dataclass(frozen=True, slots=True)
class EngineKey:
    """Everything an engine depends on; equal keys mean the cached engine can be reused."""

    onnx_name: str  # file stem of the source (FP32) ONNX
    onnx_sha256: str  # of the source ONNX file
    precision: str  # "fp16" or "fp32"
    fp16_converter: int  # version of engines.trt.fp16 that made the FP16 graph (0 for fp32)
    trt_module: str  # "tensorrt" or "tensorrt_rtx"
    trt_version: str
    gpu_name: str
    compute_capability: str  # "8.6"
    min_batch: int
    opt_batch: int
    max_batch: int
    input_width: int
    input_height: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EngineKey":
        """Parse a sidecar's key; ValueError when fields are missing, extra or mistyped."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(data) != names:
            raise ValueError(f"key fields differ: missing {sorted(names - set(data))}, extra {sorted(set(data) - names)}")
        key = cls(**data)
        for f in dataclasses.fields(cls):
            expected = int if f.type == "int" else str
            if type(getattr(key, f.name)) is not expected:
                raise ValueError(f"key field {f.name} should be {expected.__name__}")
        return key

    @property
    def slot(self) -> str:
        """File stem: one engine per model, precision, profile and GPU; other fields are checked."""
        return (
            f"{_slug(self.onnx_name)}-{self.precision}-b{self.max_batch}-{self.input_width}x{self.input_height}"
            f"-{_slug(self.gpu_name)}-sm{self.compute_capability.replace('.', '')}"
        )

    def differences(self, other: "EngineKey") -> list[str]:
        """'field: this != other' for every field that differs."""
        return [
            f"{f.name}: {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data) -> None:
    """Write `data` (bytes or any buffer) to `path` via a temporary file and a rename.

    Either the whole new content is at `path` afterwards, or the old file (if any) is
    untouched and no temporary file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_blob(path: Path) -> bytes:
    """A cache file's bytes, or b'' when it is missing or unreadable (caches are optional)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        log.warning("cannot read %s (%s); starting without it", path, exc)
        return b""


class EngineCache:
    """Engines and their sidecars under `<cache_dir>/trt/` (`cache_dir` given by the caller)."""

    def __init__(self, cache_dir: Path):
        self.root = Path(cache_dir) / "trt"

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.slot}.engine"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.slot}.json"

    def timing_cache_path(self, trt_module: str, trt_version: str, gpu_name: str, compute_capability: str) -> Path:
        """One timing cache per TensorRT version and GPU (it is only valid for that pair)."""
        name = f"{_slug(trt_module)}-{_slug(trt_version)}-{_slug(gpu_name)}-sm{compute_capability.replace('.', '')}"
        return self.root / "timing" / f"{name}.cache"

    def runtime_cache_path(self, key: EngineKey) -> Path:
        """TensorRT-RTX JIT kernel cache for one engine."""
        return self.root / "runtime" / f"{key.slot}.rtcache"

    def fp16_onnx_path(self, onnx_name: str, onnx_sha256: str, converter: int, input_size: tuple[int, int]) -> Path:
        """The FP16 graph (its FP32 islands come from a calibration run at `input_size`)."""
        w, h = input_size
        return self.root / "onnx" / f"{_slug(onnx_name)}-{onnx_sha256[:16]}-{w}x{h}-fp16-v{converter}.onnx"

    def read_sidecar(self, key: EngineKey) -> dict | None:
        """The sidecar of `key`'s slot, or None when missing or unreadable."""
        path = self.sidecar_path(key)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
                raise ValueError(f"unknown sidecar format {meta.get('format') if isinstance(meta, dict) else meta!r}")
            meta["key"] = EngineKey.from_dict(meta["key"])
            return meta
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("engine sidecar %s is unreadable (%s)", path.name, exc)
            return None

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine for `key`, or None (logging why) when it must be built."""
        engine = self.engine_path(key)
        if not engine.exists():
            log.info("no cached TensorRT engine %s", engine.name)
            return None
        meta = self.read_sidecar(key)
        if meta is None:
            log.info("cached engine %s has no valid sidecar: rebuilding", engine.name)
            return None
        if meta["key"] != key:
            log.info("cached engine %s was built for another setup (%s): rebuilding",
                     engine.name, "; ".join(key.differences(meta["key"])))
            return None
        size = engine.stat().st_size
        if size != meta.get("engine_bytes"):
            log.warning("cached engine %s is %d bytes, its sidecar says %s: rebuilding",
                        engine.name, size, meta.get("engine_bytes"))
            return None
        return engine

    def read(self, key: EngineKey) -> bytes | None:
        """The cached engine's bytes after checking key, size and checksum; None = build."""
        path = self.lookup(key)
        if path is None:
            return None
        data = path.read_bytes()
        meta = self.read_sidecar(key)
        if meta is None or hashlib.sha256(data).hexdigest() != meta.get("engine_sha256"):
            log.warning("cached engine %s fails its checksum: rebuilding", path.name)
            return None
        return data

    def store(self, key: EngineKey, plan, build_seconds: float, extra: dict | None = None) -> Path:
        """Write the engine, then its sidecar (the sidecar last: it marks the pair complete)."""
        data = bytes(plan) if not isinstance(plan, bytes) else plan
        engine, sidecar = self.engine_path(key), self.sidecar_path(key)
        with contextlib.suppress(FileNotFoundError):
            sidecar.unlink()  # a crash before the new sidecar lands must read as "no engine"
        atomic_write_bytes(engine, data)
        meta = {
            "format": SIDECAR_FORMAT,
            "key": key.as_dict(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(float(build_seconds), 3),
            "engine_bytes": len(data),
            "engine_sha256": hashlib.sha256(data).hexdigest(),
            **(extra or {}),
        }
        atomic_write_text(sidecar, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        log.info("cached TensorRT engine %s (%.1f MB)", engine, len(data) / 1e6)
        return engine

    def invalidate(self, key: EngineKey, reason: str) -> None:
        """Delete `key`'s engine and sidecar (e.g. TensorRT refused to deserialise it)."""
        log.warning("discarding cached engine %s: %s", self.engine_path(key).name, reason)
        for path in (self.sidecar_path(key), self.engine_path(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
