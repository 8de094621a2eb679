"""TensorRT without a GPU: version dispatch, engine build and cache, the runtime backend, the CLI.

A fake `tensorrt` module (tests/support/fake_tensorrt.py) stands in for TensorRT 10, 11 and
TensorRT-RTX; its engines run the ONNX graph with ONNX Runtime through the addresses the
backend binds, so outputs are checked against ONNX Runtime itself. Real builds are in the
`gpu`-marked test at the end, skipped without CUDA.
"""
from __future__ import annotations

import json
import logging
import threading

import cv2
import numpy as np
import onnx
import pytest

from app.paths import SAMPLE_IMAGE
from engines.errors import EngineUnavailable
from engines.backends.tensorrt_backend import TensorRTBackend
from engines.preprocess import RawOutputs, letterbox_batch, to_faces
from engines.trt import runtime_module
from engines.trt.build import BuildCancelled, BuildError, BuildSettings, ensure_engine
from engines.trt.cache import EngineCache
from engines.trt.runtime_module import GpuInfo, describe_module, load_tensorrt
from tests.support import fake_tensorrt
from tests.support.fake_tensorrt import FakeCudaDevice
from tests.engines.trt.test_fp16 import CONTRACT_K, CONTRACT_SIZE, run_ort, save_contract_model

RTX_4090 = GpuInfo(0, "NVIDIA GeForce RTX 4090", (8, 9), 24 << 30)
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 << 30)
VERSIONS = [("10.13.3.9", "tensorrt"), ("11.4.0.106", "tensorrt"), ("1.7.1.116", "tensorrt_rtx")]


@pytest.fixture
def contract(tmp_path):
    return save_contract_model(tmp_path / "contract.onnx")


def frames():
    rng = np.random.default_rng(5)
    photo = cv2.imread(str(SAMPLE_IMAGE))
    return [photo, cv2.resize(photo, (200, 150)), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)]


def ort_faces(model_path, images, thr, k, size=CONTRACT_SIZE):
    """What the backend must return: the same ONNX through ONNX Runtime, mapped to frame pixels."""
    batch, placements = letterbox_batch(images, size)
    outs = run_ort(onnx.load(str(model_path)), batch, thr, k)
    return to_faces(RawOutputs(*outs), placements)


def assert_faces_equal(a, b, atol=1e-4):
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        assert len(fa) == len(fb)
        np.testing.assert_allclose(fa.boxes, fb.boxes, atol=atol)
        np.testing.assert_allclose(fa.scores, fb.scores, atol=atol)
        np.testing.assert_allclose(fa.landmarks, fb.landmarks, atol=atol)
        np.testing.assert_allclose(fa.embeddings, fb.embeddings, atol=atol)


def backend(mod, contract, cache, **kw):
    kw.setdefault("input_size", CONTRACT_SIZE)
    kw.setdefault("precision", "fp32")
    kw.setdefault("max_batch", 4)
    kw.setdefault("cuda", FakeCudaDevice())
    return TensorRTBackend(onnx_path=contract, cache_dir=cache, trt=describe_module(mod, mod.__name__), **kw)


# ------------------------------------------------------------------ version dispatch
def test_dispatch_knows_what_each_version_needs(monkeypatch):
    caps = {}
    for version, name in VERSIONS:
        fake_tensorrt.install(monkeypatch, version, name)
        trt = load_tensorrt()
        caps[name + version[:2]] = trt
        assert trt.name == name and trt.version == version and trt.strongly_typed_flag
        assert trt.network_flags() == 1 << int(trt.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    t10, t11, rtx = caps["tensorrt10"], caps["tensorrt11"], caps["tensorrt_rtx1."]
    assert (t10.major, t10.always_strongly_typed, t10.has_fp16_flag, t10.timing_cache) == (10, False, True, True)
    assert (t11.major, t11.always_strongly_typed, t11.has_fp16_flag, t11.timing_cache) == (11, True, False, True)
    assert (rtx.is_rtx, rtx.always_strongly_typed, rtx.has_fp16_flag) == (True, True, False)
    assert rtx.runtime_cache and not rtx.timing_cache and rtx.compute_capability_api
    assert not t11.runtime_cache and not t11.compute_capability_api


def test_dispatch_order_env_override_and_clear_errors(monkeypatch):
    full = fake_tensorrt.make_module("11.4.0.106", "tensorrt")
    rtx = fake_tensorrt.make_module("1.7.1.116", "tensorrt_rtx")
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", full)
    monkeypatch.setitem(__import__("sys").modules, "tensorrt_rtx", rtx)
    monkeypatch.delenv("UNISIGHT_TRT_MODULE", raising=False)
    assert load_tensorrt().name == "tensorrt"  # both installed: full TensorRT first
    assert load_tensorrt(preferred="tensorrt_rtx").name == "tensorrt_rtx"
    monkeypatch.setenv("UNISIGHT_TRT_MODULE", "tensorrt_rtx")
    assert load_tensorrt().name == "tensorrt_rtx"
    monkeypatch.setenv("UNISIGHT_TRT_MODULE", "tensorrtx")
    with pytest.raises(EngineUnavailable, match="UNISIGHT_TRT_MODULE"):
        load_tensorrt()
    monkeypatch.delenv("UNISIGHT_TRT_MODULE")
    old = fake_tensorrt.make_module("8.6.1", "tensorrt")
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", old)
    assert load_tensorrt().name == "tensorrt_rtx"  # TensorRT 8 is skipped, RTX used
    monkeypatch.setitem(__import__("sys").modules, "tensorrt_rtx", None)
    with pytest.raises(EngineUnavailable) as err:
        load_tensorrt()
    assert "too old" in str(err.value) and "tensorrt_rtx: not installed" in str(err.value)
    assert "requirements-gpu.txt" in str(err.value)


def test_gpu_support_per_flavour(monkeypatch):
    rtx = describe_module(fake_tensorrt.make_module("1.7.1.116", "tensorrt_rtx"), "tensorrt_rtx")
    full = describe_module(fake_tensorrt.make_module("11.4.0.106"), "tensorrt")
    rtx.check_gpu(RTX_4090)
    rtx.check_gpu(GpuInfo(0, "NVIDIA GeForce RTX 2080 Ti", (7, 5)))
    with pytest.raises(EngineUnavailable, match="tensorrt-cu13"):
        rtx.check_gpu(H100)  # data-centre GPUs are not RTX GPUs
    full.check_gpu(H100)
    with pytest.raises(EngineUnavailable, match="7.5"):
        full.check_gpu(GpuInfo(0, "Tesla V100", (7, 0)))


def test_no_cuda_here_means_unavailable_not_a_crash(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    with pytest.raises(EngineUnavailable, match="CUDA"):
        TensorRTBackend(onnx_path=contract, cache_dir=tmp_path)  # this machine has no CUDA
    with pytest.raises(EngineUnavailable, match="CUDA devices only"):
        TensorRTBackend(onnx_path=contract, cache_dir=tmp_path, device="cpu")
    with pytest.raises(EngineUnavailable, match="no CUDA GPU"):
        runtime_module.query_gpu()
    assert mod.stats["build"] == 0


def test_without_tensorrt_auto_falls_back_and_says_why(monkeypatch, cache_dir, caplog):
    from engines.backends.registry import create_engine

    for name in ("tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    monkeypatch.delenv("UNISIGHT_TRT_MODULE", raising=False)
    with pytest.raises(EngineUnavailable, match="no usable TensorRT"):
        create_engine("uniface", "tensorrt", config="tiny", cache_dir=cache_dir)
    with caplog.at_level(logging.INFO, logger="engines.backends.registry"):
        engine = create_engine("uniface", "auto", config="tiny", cache_dir=cache_dir)
    assert engine.info.backend != "tensorrt"
    assert "tensorrt/cuda: no usable TensorRT" in caplog.text


# ------------------------------------------------------------------ build and cache
@pytest.mark.parametrize("version,name", VERSIONS)
def test_fp16_build_is_strongly_typed_profiled_and_cached(monkeypatch, contract, tmp_path, caplog, version, name):
    mod = fake_tensorrt.install(monkeypatch, version, name)
    trt = load_tensorrt()
    settings = BuildSettings(precision="fp16", max_batch=12, input_size=CONTRACT_SIZE, workspace_mib=256)
    phases = []
    with caplog.at_level(logging.INFO):
        rec = ensure_engine(contract, tmp_path, settings, trt, RTX_4090,
                            on_progress=lambda p, d, t: phases.append((p, d, t)))
    assert rec.built and rec.path.exists() and mod.stats["build"] == 1
    # strongly typed on every flavour; FP16 from the FP16 graph, never a builder flag
    assert mod.last.network_flags & trt.network_flags()
    config = mod.last.config
    assert not any(getattr(mod.BuilderFlag, "FP16", None) == f for f in config.flags)
    assert config.get_flag(mod.BuilderFlag.TF32)  # left alone for fp16
    assert config.get_memory_pool_limit(mod.MemoryPoolType.WORKSPACE) == 256 << 20
    used = onnx.load(str(rec.onnx_used))
    assert rec.onnx_used != contract and any(i.data_type == onnx.TensorProto.FLOAT16 for i in used.graph.initializer)
    # profile: batch 1..12, opt 8, fixed H x W
    w, h = CONTRACT_SIZE
    assert config.profiles[0].shapes["images"] == ((1, h, w, 3), (8, h, w, 3), (12, h, w, 3))
    # progress: phases reported and logged
    assert phases[0] == ("Building engine", 0, 3) and phases[-1] == ("Building engine", 3, 3)
    assert "TensorRT build: Building engine" in caplog.text
    # the engine's real I/O is logged and stored in the sidecar
    meta = json.loads(EngineCache(tmp_path).sidecar_path(rec.key).read_text())
    io = {t["name"]: t["dtype"] for t in meta["io"]}
    assert io == {"images": "UINT8", "score_threshold": "FLOAT", "max_faces": "INT32", "boxes": "FLOAT",
                  "scores": "FLOAT", "landmarks": "FLOAT", "embeddings": "FLOAT", "count": "INT32"}
    assert "engine input images: UINT8" in caplog.text and meta["strongly_typed"]
    # timing cache: kept per TensorRT+GPU for TensorRT 10/11; not on RTX (a no-op there)
    timing = EngineCache(tmp_path).timing_cache_path(trt.name, trt.version, RTX_4090.name, RTX_4090.sm)
    assert timing.exists() == (not trt.is_rtx)
    if trt.is_rtx:
        assert list(config.compute_capabilities.values()) == [mod.ComputeCapability.CURRENT]
    # second call: cache hit, no build
    again = ensure_engine(contract, tmp_path, settings, trt, RTX_4090)
    assert not again.built and again.path == rec.path and mod.stats["build"] == 1


def test_timing_cache_is_loaded_before_and_saved_after(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "10.13.3.9")
    trt = load_tensorrt()
    settings = BuildSettings(precision="fp32", max_batch=2, input_size=CONTRACT_SIZE)
    ensure_engine(contract, tmp_path, settings, trt, RTX_4090)
    timing = EngineCache(tmp_path).timing_cache_path(trt.name, trt.version, RTX_4090.name, RTX_4090.sm)
    first = json.loads(timing.read_bytes()[6:])
    assert first["entries"] and not mod.last.config.get_flag(mod.BuilderFlag.TF32)  # fp32: TF32 off
    rec = ensure_engine(contract, tmp_path, settings, trt, RTX_4090, force=True)
    assert rec.built and mod.last.config.timing_cache.entries == first["entries"]  # loaded, reused
    # a timing cache from another TensorRT is refused by TensorRT and replaced, not fatal
    timing.write_bytes(b"FAKETC" + json.dumps({"origin": "tensorrt 10.0.0", "entries": {"x": 1}}).encode())
    ensure_engine(contract, tmp_path, settings, trt, RTX_4090, force=True)
    assert "x" not in json.loads(timing.read_bytes()[6:])["entries"]


def test_new_tensorrt_version_rebuilds(monkeypatch, contract, tmp_path, caplog):
    settings = BuildSettings(precision="fp16", max_batch=2, input_size=CONTRACT_SIZE)
    old = fake_tensorrt.install(monkeypatch, "11.3.0.10")
    first = ensure_engine(contract, tmp_path, settings, load_tensorrt(), RTX_4090)
    new = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    with caplog.at_level(logging.INFO, logger="engines.trt.cache"):
        second = ensure_engine(contract, tmp_path, settings, load_tensorrt(), RTX_4090)
    assert first.path == second.path and second.built and old.stats["build"] == new.stats["build"] == 1
    assert "trt_version: '11.4.0.106' != '11.3.0.10'" in caplog.text


def test_parser_errors_are_all_reported(monkeypatch, contract, tmp_path, caplog):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    mod.faults.unsupported_ops = {"NonZero", "GridSample"}
    settings = BuildSettings(precision="fp32", max_batch=2, input_size=CONTRACT_SIZE)
    with caplog.at_level(logging.ERROR), pytest.raises(BuildError, match="2 error") as err:
        ensure_engine(contract, tmp_path, settings, load_tensorrt(), RTX_4090)
    assert "No importer registered for op: NonZero" in str(err.value)
    assert "ONNX parser error 1/2" in caplog.text and "ONNX parser error 2/2" in caplog.text
    assert "GridSample" in caplog.text and mod.stats["build"] == 0
    assert not list((tmp_path / "trt").glob("*.engine"))


def test_build_failure_and_cancel_cache_nothing(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    settings = BuildSettings(precision="fp32", max_batch=2, input_size=CONTRACT_SIZE)
    mod.faults.fail_build = True
    with pytest.raises(BuildError, match="Could not find any implementation"):
        ensure_engine(contract, tmp_path, settings, load_tensorrt(), RTX_4090)
    mod.faults.fail_build = False
    cancel = threading.Event()

    def progress(phase, done, total):
        if done == 1:
            cancel.set()  # the user pressed cancel during the build

    with pytest.raises(BuildCancelled):
        ensure_engine(contract, tmp_path, settings, load_tensorrt(), RTX_4090, on_progress=progress, cancel=cancel)
    assert not list((tmp_path / "trt").glob("*.engine")) and mod.stats["build"] == 2


def test_without_a_progress_monitor_the_build_still_logs(monkeypatch, contract, tmp_path, caplog):
    mod = fake_tensorrt.install(monkeypatch, "10.13.3.9", progress_monitor=False)
    trt = load_tensorrt()
    assert not trt.progress_monitor
    calls = []
    settings = BuildSettings(precision="fp32", max_batch=2, input_size=CONTRACT_SIZE)
    with caplog.at_level(logging.INFO):
        rec = ensure_engine(contract, tmp_path, settings, trt, RTX_4090, on_progress=lambda *a: calls.append(a))
    assert rec.built and calls == [] and mod.last.config.progress_monitor is None
    assert "building the FP32 engine with tensorrt 10.13.3.9" in caplog.text


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="precision"):
        BuildSettings(precision="int8")
    with pytest.raises(ValueError, match="max batch"):
        BuildSettings(max_batch=0)
    with pytest.raises(ValueError, match="opt batch"):
        BuildSettings(max_batch=4, opt_batch=5)
    assert BuildSettings(max_batch=32).opt == 8 and BuildSettings(max_batch=3).opt == 3


# ------------------------------------------------------------------ runtime backend
def test_backend_matches_onnxruntime_and_binds_only_on_change(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    cuda = FakeCudaDevice()
    eng = backend(mod, contract, tmp_path, cuda=cuda)
    assert eng.info.backend == "tensorrt" and eng.max_faces == CONTRACT_K and eng.info.input_size == CONTRACT_SIZE
    imgs = frames()
    got = eng.infer(imgs[:2], score_threshold=0.55)
    assert_faces_equal(got, ort_faces(contract, imgs[:2], 0.55, CONTRACT_K))
    assert sum(len(f) for f in got) > 0
    shapes, addrs, uploads = mod.stats["set_input_shape"], mod.stats["set_tensor_address"], cuda.stats["upload"]
    assert shapes == 1 and addrs == 8  # 3 inputs + 5 outputs, once
    eng.infer(imgs[:2], score_threshold=0.55)  # same shape, same values: nothing rebound
    assert (mod.stats["set_input_shape"], mod.stats["set_tensor_address"]) == (1, 8)
    assert cuda.stats["upload"] == uploads + 1  # only the images
    got1 = eng.infer(imgs[2:], score_threshold=0.3, max_faces=2)  # batch 1: new shape, same buffers
    assert (mod.stats["set_input_shape"], mod.stats["set_tensor_address"]) == (2, 8)
    assert_faces_equal(got1, ort_faces(contract, imgs[2:], 0.3, 2))
    assert len(got1[0]) <= 2
    assert mod.stats["contexts"] == 1 and mod.stats["build"] == 1
    eng.close()


def test_larger_batches_are_split_to_the_profile(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    eng = backend(mod, contract, tmp_path, max_batch=2)
    imgs = frames() * 2  # 6 images, max batch 2
    assert_faces_equal(eng.infer(imgs, score_threshold=0.4), ort_faces(contract, imgs, 0.4, CONTRACT_K))
    assert mod.stats["execute"] == 3


def test_every_tensorrt_return_value_is_checked(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    eng = backend(mod, contract, tmp_path)
    mod.faults.fail_execute = True
    with pytest.raises(RuntimeError, match=r"execute_async_v3 failed: enqueueV3"):
        eng.infer(frames()[:1])
    mod.faults.fail_execute = False
    mod.faults.fail_set_input_shape = True
    with pytest.raises(RuntimeError, match=r"set_input_shape\('images'"):
        eng.infer(frames()[:3])
    mod.faults.fail_set_input_shape = False
    eng2 = backend(mod, contract, tmp_path)
    mod.faults.fail_set_address = True
    with pytest.raises(RuntimeError, match=r"set_tensor_address\('images'\) failed"):
        eng2.infer(frames()[:1])  # a fresh thread context binds its buffers first


def test_one_context_per_thread(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    eng = backend(mod, contract, tmp_path)
    imgs = frames()
    ref = ort_faces(contract, imgs[:1], 0.5, CONTRACT_K)
    results, errors = [], []

    def worker():
        try:
            for _ in range(3):
                results.append(eng.infer(imgs[:1], score_threshold=0.5))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 9 and mod.stats["contexts"] == 3
    for r in results:
        assert_faces_equal(r, ref)


def test_data_dependent_outputs_use_an_output_allocator(monkeypatch, contract, tmp_path, caplog):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    mod.faults.dynamic_outputs = {"embeddings", "boxes"}
    with caplog.at_level(logging.INFO):
        eng = backend(mod, contract, tmp_path)
        imgs = frames()
        got = eng.infer(imgs[:2], score_threshold=0.5)
    assert_faces_equal(got, ort_faces(contract, imgs[:2], 0.5, CONTRACT_K))
    assert "output embeddings has a data-dependent shape" in caplog.text
    assert mod.stats["set_tensor_address"] == 6  # boxes and embeddings come from the allocator


def test_max_faces_as_a_host_shape_input(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    mod.faults.shape_tensor_inputs = {"max_faces"}
    with pytest.raises(EngineUnavailable, match="max_faces must bound it"):
        backend(mod, contract, tmp_path, config="no-such-config")  # no config: nothing bounds it
    eng = backend(mod, contract, tmp_path)
    assert eng.host_inputs == {"max_faces"}
    imgs = frames()[:1]
    for k in (8, 2, 5):
        assert_faces_equal(eng.infer(imgs, score_threshold=-1.0, max_faces=k), ort_faces(contract, imgs, -1.0, k))
    assert mod.stats["set_input_shape"] == 3  # a new shape-input value re-derives the output shapes


def test_undeserialisable_engine_is_rebuilt(monkeypatch, contract, tmp_path, caplog):
    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    backend(mod, contract, tmp_path).close()
    cache = EngineCache(tmp_path)
    engine = next((tmp_path / "trt").glob("*.engine"))
    sidecar = engine.with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    garbage = b"\0" * 64  # passes size and checksum (sidecar rewritten), TensorRT refuses it
    import hashlib

    engine.write_bytes(garbage)
    meta.update(engine_bytes=64, engine_sha256=hashlib.sha256(garbage).hexdigest())
    sidecar.write_text(json.dumps(meta))
    assert cache.read(_key(meta)) == garbage
    with caplog.at_level(logging.WARNING):
        eng = backend(mod, contract, tmp_path)
    assert "could not load it" in caplog.text and "magicTag" in caplog.text
    assert mod.stats["build"] == 2
    imgs = frames()[:1]
    assert_faces_equal(eng.infer(imgs, score_threshold=0.5), ort_faces(contract, imgs, 0.5, CONTRACT_K))
    with pytest.raises(EngineUnavailable, match="run `main.py build-engine`"):
        backend(mod, contract, tmp_path, max_batch=3, build=False)  # no engine for this profile


def _key(meta):
    from engines.trt.cache import EngineKey

    return EngineKey.from_dict(meta["key"])


def test_rtx_runtime_cache_persists_jit_kernels(monkeypatch, contract, tmp_path):
    mod = fake_tensorrt.install(monkeypatch, "1.7.1.116", "tensorrt_rtx")
    eng = backend(mod, contract, tmp_path)
    eng.infer(frames()[:1])
    eng.close()
    assert mod.stats["jit_compiles"] == 1 and mod.stats["jit_cache_hits"] == 0
    assert list((tmp_path / "trt" / "runtime").glob("*.rtcache"))
    eng = backend(mod, contract, tmp_path)
    eng.infer(frames()[:1])
    assert mod.stats["jit_cache_hits"] == 1 and mod.stats["build"] == 1  # engine and kernels reused
    assert not (tmp_path / "trt" / "timing").exists()


def test_the_weights_detection_threshold_reaches_the_tensorrt_backend(monkeypatch, tmp_path, cache_dir):
    """From weights (exported on the way) and from an ONNX file exported from them."""
    from engines.model.export import export_onnx
    from engines.model.weights import publish_weights
    from tests.engines.backends.test_backends import spread_weights

    fake_tensorrt.install(monkeypatch, "11.4.0.106")
    weights = publish_weights(spread_weights("tiny", tmp_path / "w.pt"), tmp_path / "p.pt", detection_threshold=0.62)
    onnx_file = export_onnx("tiny", tmp_path / "p.pt", tmp_path / "p.onnx")
    for source in ({"weights": tmp_path / "p.pt"}, {"onnx_path": onnx_file}):
        engine = TensorRTBackend(config="tiny", cache_dir=cache_dir, max_batch=2, trt=load_tensorrt(),
                                 cuda=FakeCudaDevice(), workspace_mib=64, **source)
        assert engine.score_threshold == 0.62 and engine.info.model_id == weights.model_id, source
        engine.close()


def test_fp16_engine_path_matches_fp32_onnxruntime_on_the_real_network(monkeypatch, tmp_path, cache_dir):
    """The exported tiny Uniface, FP16 through build + backend, against ONNX Runtime FP32."""
    from engines.backends.onnxruntime_backend import OnnxRuntimeBackend
    from tests.engines.backends.test_backends import spread_weights
    from tests.engines.trt.test_fp16 import assert_same_detections, well_separated_threshold

    mod = fake_tensorrt.install(monkeypatch, "11.4.0.106")
    weights = spread_weights("tiny", tmp_path / "w.pt")
    ref_engine = OnnxRuntimeBackend(config="tiny", weights=weights, cache_dir=cache_dir, threads=1)
    trt_engine = TensorRTBackend(config="tiny", weights=weights, cache_dir=cache_dir, max_batch=2,
                                 trt=load_tensorrt(), cuda=FakeCudaDevice(), workspace_mib=64)
    assert trt_engine.info.model_id == ref_engine.info.model_id and trt_engine.max_faces == 16
    imgs = [np.clip(f + np.random.default_rng(0).normal(0, 6, f.shape), 0, 255).astype(np.uint8) for f in frames()]
    batch, _ = letterbox_batch(imgs, trt_engine.input_size)
    # FP16 moves this network's scores by <= 3e-4 (measured): a 3e-3 margin is ten times that
    thr = well_separated_threshold(ref_engine._run(batch, -1.0, 16).scores, margin=0.003)
    ref, got = ref_engine._run(batch, thr, 16), trt_engine._run(batch, thr, 16)
    assert got.count.sum() > 0
    fields = ("boxes", "scores", "landmarks", "embeddings", "count")
    assert_same_detections([getattr(ref, f) for f in fields], [getattr(got, f) for f in fields])
    assert mod.stats["execute"] == 2  # 3 images at max batch 2


# ------------------------------------------------------------------ CLI
def test_build_engine_cli(monkeypatch, contract, tmp_path, capsys):
    from main import main

    monkeypatch.setenv("UNISIGHT_CACHE", str(tmp_path / "cache"))
    args = ["build-engine", "--onnx", str(contract), "--input-size", "160x128", "--max-batch", "2", "--config", "tiny"]
    for name in ("tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    assert main(args) == 2
    assert "error: cannot build a TensorRT engine: no usable TensorRT" in capsys.readouterr().err
    mod = fake_tensorrt.install(monkeypatch, "10.13.3.9")
    assert main(args) == 2 and "no CUDA GPU" in capsys.readouterr().err  # TensorRT but no GPU here
    monkeypatch.setattr(runtime_module, "query_gpu", lambda index=0: RTX_4090)
    assert main([*args, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["built"] and first["precision"] == "fp16" and first["input_size"] == "160x128"
    assert first["engine"].startswith(str(tmp_path / "cache" / "trt"))
    assert main(args) == 0 and "cached, reused" in capsys.readouterr().out
    assert main([*args, "--force"]) == 0 and "built in" in capsys.readouterr().out
    assert mod.stats["build"] == 2
    with pytest.raises(SystemExit) as stop:  # argparse refuses it before anything runs
        main(["build-engine", "--onnx", str(contract), "--input-size", "100x100"])
    assert stop.value.code == 2
    assert "multiples of 32" in capsys.readouterr().err
    assert main(["build-engine", "--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert "ONNX file not found" in capsys.readouterr().err
    mod.faults.unsupported_ops = {"TopK"}
    assert main([*args, "--precision", "fp32"]) == 2
    assert "No importer registered for op: TopK" in capsys.readouterr().err


# ------------------------------------------------------------------ on a real GPU
@pytest.mark.gpu
def test_real_tensorrt_build_and_run(tmp_path):
    """Real TensorRT on a real GPU: FP16 engine from the contract graph agrees with ONNX Runtime."""
    try:
        trt = load_tensorrt()
        runtime_module.query_gpu()
    except EngineUnavailable as exc:
        pytest.skip(f"no TensorRT GPU here: {exc}")
    contract = save_contract_model(tmp_path / "contract.onnx")
    from tests.engines.trt.test_fp16 import assert_same_detections, well_separated_threshold

    eng = TensorRTBackend(onnx_path=contract, cache_dir=tmp_path, input_size=CONTRACT_SIZE, precision="fp16",
                          max_batch=4, trt=trt)
    batch, _ = letterbox_batch(frames(), CONTRACT_SIZE)
    thr = well_separated_threshold(run_ort(onnx.load(str(contract)), batch, -1.0)[1])
    got = eng._run(batch, thr, CONTRACT_K)
    ref = run_ort(onnx.load(str(contract)), batch, thr)
    assert_same_detections(ref, (got.boxes, got.scores, got.landmarks, got.embeddings, got.count))
    eng.close()
