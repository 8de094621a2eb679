"""HotSwapEngine: serve with the fallback, switch between calls when ready, survive failures."""
from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from engines.engine import EngineInfo, FaceEngine
from engines.wrappers.hot_swap import HotSwapEngine
from engines.faces import Faces

FRAME = np.zeros((48, 64, 3), np.uint8)


class FakeEngine(FaceEngine):
    """Answers with one face whose score is its `mark`; can block inside infer; refuses use after close."""

    def __init__(self, backend: str, mark: float, model_id: str = "uniface-prod-abc", fail_infer: bool = False):
        self.info = EngineInfo(engine="uniface", backend=backend, device="x", model_id=model_id,
                               input_size=(64, 48))
        self.mark = mark
        self.fail_infer = fail_infer
        self.calls = 0
        self.closed = threading.Event()
        self.gate: threading.Event | None = None  # when set, infer waits for it
        self.entered = threading.Event()

    def infer(self, images, score_threshold=None, max_faces=None):
        if self.closed.is_set():
            raise RuntimeError(f"{self.info.backend} used after close")
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(5), "test gate never opened"
        if self.fail_infer:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return [Faces(boxes=[[0, 0, 1, 1]], scores=[self.mark], landmarks=np.zeros((1, 5, 2)),
                      embeddings=np.ones((1, 128)) / np.sqrt(128)) for _ in images]

    def close(self):
        self.closed.set()


def marks(engine):
    return float(engine.infer([FRAME])[0].scores[0])


def test_serves_at_once_then_switches_between_calls(caplog):
    fallback, fast = FakeEngine("onnxruntime", 1.0), FakeEngine("tensorrt", 2.0)
    release = threading.Event()

    def factory(progress):
        progress.update("Building engine", 1, 4)
        assert release.wait(5)
        progress.update("Building engine", 4, 4)
        return fast

    with caplog.at_level(logging.INFO, logger="engines.backends.hot_swap"):
        engine = HotSwapEngine(fallback, factory)
        assert marks(engine) == 1.0  # served immediately by the fallback
        status = engine.status()
        assert (status.state, status.active, status.preferred) == ("preparing", "onnxruntime", "tensorrt")
        assert status.phase == "Building engine" and status.fraction == 0.25
        assert engine.info.backend == "onnxruntime"
        release.set()
        assert engine.wait(5)
        assert engine.status().state == "ready" and fast.calls == 1  # the warm-up frame
        assert marks(engine) == 2.0  # the next call switched
    status = engine.status()
    assert (status.state, status.active) == ("switched", "tensorrt") and status.error is None
    assert engine.info.backend == "tensorrt"
    assert "switched from onnxruntime to tensorrt after" in caplog.text
    assert fallback.closed.wait(5)  # released once nothing uses it
    engine.close()
    assert fast.closed.is_set()


def test_in_flight_call_finishes_on_the_old_engine_before_it_closes():
    fallback, fast = FakeEngine("onnxruntime", 1.0), FakeEngine("tensorrt", 2.0)
    ready = threading.Event()
    engine = HotSwapEngine(fallback, lambda p: (ready.wait(5), fast)[1], warmup=False)
    fallback.gate = threading.Event()
    result = {}
    slow = threading.Thread(target=lambda: result.setdefault("old", marks(engine)))
    slow.start()
    assert fallback.entered.wait(5)  # a frame is inside the fallback now
    ready.set()
    assert engine.wait(5)
    assert marks(engine) == 2.0  # new calls go to the new engine at once
    assert not fallback.closed.is_set()  # but the old one is still busy: not closed under it
    fallback.gate.set()
    slow.join(5)
    assert result["old"] == 1.0
    assert fallback.closed.wait(5)
    engine.close()


@pytest.mark.parametrize("failure,expected", [
    ("factory", "EngineUnavailable: no usable TensorRT"),
    ("warmup", "CUDA error: an illegal memory access"),
    ("model", "embeddings would not match"),
])
def test_failed_preparation_keeps_the_fallback(caplog, failure, expected):
    from engines.errors import EngineUnavailable

    fallback = FakeEngine("onnxruntime", 1.0)
    candidate = FakeEngine("tensorrt", 2.0, fail_infer=failure == "warmup",
                           model_id="uniface-other" if failure == "model" else "uniface-prod-abc")

    def factory(progress):
        if failure == "factory":
            raise EngineUnavailable("no usable TensorRT (tensorrt: not installed)")
        return candidate

    with caplog.at_level(logging.WARNING, logger="engines.backends.hot_swap"):
        engine = HotSwapEngine(fallback, factory)
        assert engine.wait(5)
    status = engine.status()
    assert status.state == "failed" and expected in status.error and status.active == "onnxruntime"
    assert "could not be prepared" in caplog.text and "staying on onnxruntime" in caplog.text
    assert marks(engine) == 1.0 and marks(engine) == 1.0
    assert not fallback.closed.is_set()
    assert candidate.closed.is_set() == (failure != "factory")
    engine.close()
    assert fallback.closed.is_set()


def test_close_cancels_preparation():
    fallback, fast = FakeEngine("onnxruntime", 1.0), FakeEngine("tensorrt", 2.0)
    seen_cancel = threading.Event()

    def factory(progress):
        while not progress.cancel.wait(0.01):
            pass
        seen_cancel.set()
        return fast  # a factory that ignores cancel still gets its engine closed

    engine = HotSwapEngine(fallback, factory)
    assert marks(engine) == 1.0
    engine.close()
    assert seen_cancel.is_set() and engine.status().state == "cancelled"
    assert fallback.closed.is_set() and fast.closed.is_set()


def test_many_threads_during_the_switch_never_touch_a_closed_engine():
    fallback, fast = FakeEngine("onnxruntime", 1.0), FakeEngine("tensorrt", 2.0)
    ready = threading.Event()
    engine = HotSwapEngine(fallback, lambda p: (ready.wait(5), fast)[1])
    seen: list[list[float]] = [[] for _ in range(4)]
    errors = []
    stop = threading.Event()

    def worker(mine):
        try:
            while not stop.is_set():
                mine.append(marks(engine))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seen[i],)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    ready.set()
    assert engine.wait(5)
    deadline = time.monotonic() + 5
    while engine.status().state != "switched" and time.monotonic() < deadline:
        time.sleep(0.01)
    # until every thread has had a call answered by the new engine: a fixed pause was not
    # always enough for four busy threads on a loaded 2-core machine (one CI run)
    while not all(mine and mine[-1] == 2.0 for mine in seen) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(5)
    assert not errors
    for mine in seen:  # each thread: fallback answers, then only the new engine, never back
        assert mine and mine == sorted(mine) and mine[-1] == 2.0
    assert any(1.0 in mine for mine in seen)
    assert fallback.closed.wait(5)
    engine.close()


def test_onnxruntime_to_tensorrt_build_in_the_background(monkeypatch, cache_dir, tmp_path, caplog):
    """The real pieces: ONNX Runtime serves while the (fake-TensorRT) FP16 engine builds, then switch."""
    from engines.backends.onnxruntime_backend import OnnxRuntimeBackend
    from engines.backends.tensorrt_backend import TensorRTBackend
    from engines.trt.runtime_module import load_tensorrt
    from tests.support import fake_tensorrt

    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    fallback = OnnxRuntimeBackend(config="tiny", cache_dir=cache_dir, threads=1)
    reports = []

    def factory(progress):
        def on_progress(phase, done, total):
            reports.append((phase, done, total))
            progress.update(phase, done, total)

        return TensorRTBackend(config="tiny", onnx_path=fallback.onnx_path, cache_dir=tmp_path, max_batch=2,
                               trt=load_tensorrt(), cuda=fake_tensorrt.FakeCudaDevice(),
                               on_progress=on_progress, cancel=progress.cancel)

    frame = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with caplog.at_level(logging.INFO):
        engine = HotSwapEngine(fallback, factory)
        before = engine.infer([frame], score_threshold=-1.0)[0]
        assert engine.wait(60)
        after = engine.infer([frame], score_threshold=-1.0)[0]
    assert engine.status().state == "switched" and engine.info.backend == "tensorrt"
    assert reports[-1] == ("Building engine", 3, 3) and mod.stats["build"] == 1
    assert "switched from onnxruntime to tensorrt" in caplog.text
    assert len(before) == len(after) == 16
    assert engine.info.model_id == fallback.info.model_id
    engine.close()
    assert fallback.session is None  # the fallback was closed


class NotCachedTensorRT(FakeEngine):
    """Stands in for TensorRTBackend in the registry: no engine cached, a build that takes a moment."""

    built = threading.Event()
    builds: list[dict] = []

    def __init__(self, device="cuda", build=True, on_progress=None, cancel=None, **kw):
        from engines.errors import EngineNotCached

        if not build:
            raise EngineNotCached("no TensorRT engine cached for test.onnx: run `main.py build-engine`")
        NotCachedTensorRT.builds.append(dict(device=device, **kw))
        on_progress("Building engine", 1, 2)
        time.sleep(0.2)
        on_progress("Building engine", 2, 2)
        super().__init__("tensorrt", 2.0)
        NotCachedTensorRT.built.set()


class CpuOnlyOrt(FakeEngine):
    def __init__(self, device="cpu", **kw):
        from engines.errors import EngineUnavailable

        if device.startswith("cuda"):
            raise EngineUnavailable("onnxruntime has no CUDA provider here")
        super().__init__("onnxruntime", 1.0)


def test_auto_serves_with_the_next_backend_while_tensorrt_builds(monkeypatch, caplog):
    from engines.backends import registry

    monkeypatch.setattr(registry, "UNIFACE_BACKENDS", {
        "tensorrt": lambda: NotCachedTensorRT, "onnxruntime": lambda: CpuOnlyOrt, "torch": lambda: CpuOnlyOrt})
    NotCachedTensorRT.builds.clear()
    caplog.set_level(logging.INFO)
    engine = registry.create_engine("uniface", "auto", config="prod")
    try:
        assert isinstance(engine, HotSwapEngine)
        assert engine.info.backend == "onnxruntime" and marks(engine) == 1.0  # serves at once
        assert engine.wait(5) and NotCachedTensorRT.builds == [{"device": "cuda", "config": "prod"}]
        assert marks(engine) == 2.0 and engine.info.backend == "tensorrt"
        assert "while the tensorrt engine builds in the background" in caplog.text
    finally:
        engine.close()
    # without background builds, auto just takes the next backend
    plain = registry.create_engine("uniface", "auto", background_build=False)
    assert not isinstance(plain, HotSwapEngine) and plain.info.backend == "onnxruntime"
