"""The GPU check (scripts/gpu_check.py, scripts/gpu_check.sh) run for real on this CPU machine:
the no-GPU path, every GPU section on the CPU (--device cpu), arguments, the TensorRT section
through the TensorRT stand-in; and `process` without the packages a GPU machine lacks."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engines.eval.backend_match import FP16_TOLERANCE, FP32_TOLERANCE
from tests.support.paths import REPO

pytestmark = pytest.mark.timeout(300)
SCRIPT = REPO / "scripts" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    """The bundled clip's first 12 frames (two real faces each), as H.264 at 30 fps."""
    av = pytest.importorskip("av")
    path = tmp_path_factory.mktemp("clip") / "short.mp4"
    with av.open(str(REPO / "docs/samples/hamilton_clip.mp4")) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 12:
                break
            copy = av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24")
            out.mux(stream.encode(copy))
        out.mux(stream.encode(None))
    return path


def _cuda_here() -> bool:
    import torch

    return torch.cuda.is_available()


def _run(args, env=None, script=SCRIPT, timeout=280):
    return subprocess.run([*([] if script.suffix == ".sh" else [sys.executable]), str(script), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


# ------------------------------------------------------------------------- whole runs
@pytest.mark.skipif(_cuda_here(), reason="this machine has CUDA: the no-GPU path does not happen here")
def test_without_a_gpu_the_wrapper_says_so_and_still_writes_the_cpu_parts(tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = _run(["--frames", "2", "--batches", "1,2", "--iterations", "2", "--warmup", "1", "--cpu-iterations", "2"],
             env={"OUT": str(out_dir), "PYTHON": sys.executable}, script=REPO / "scripts" / "gpu_check.sh")
    assert p.returncode == gpu_check.EXIT_NO_CUDA, p.stderr[-2000:]
    assert "== nvidia-smi" in p.stdout and "nvidia-smi: not found" in p.stdout
    report = json.loads((out_dir / "gpu_check.json").read_text())  # OUT names the folder, the file is ours
    assert report["status"] == "no_cuda" and report["errors"] == []
    machine = report["machine"]
    assert machine["cuda_available"] is False and "sees no CUDA device" in machine["cuda_reason"]
    assert machine["gpu"] is None and machine["nvidia_smi"]["ok"] is False
    # the CPU parts: the model, its faces on the clip's frames, the CPU timing
    assert report["model"]["model_id"].startswith("uniface-wide_aligned-") and not report["model"]["random_weights"]
    ref = report["reference"]
    assert ref["ran"] and ref["frames"] == 2 and ref["frame_indices"] == [0, 274] and ref["frame_size"] == "640x360"
    assert ref["faces"] == sum(ref["faces_per_frame"]) >= 2
    (cpu,) = report["cpu"]["cases"]
    assert cpu["batch"] == 1 and cpu["latency_ms"]["p95"] >= cpu["latency_ms"]["p50"] > 0
    # every GPU part says why it did not run, in one line
    for name in ("torch", "process", "process_tensorrt"):
        assert report[name]["ran"] is False and report[name]["reason"].startswith("no CUDA device: torch"), name
    trt = report["tensorrt"]
    assert trt["ran"] is False and trt["reason"] and "\n" not in trt["reason"]
    assert report["summary"]["gpu"] is None and report["summary"]["torch_fp32_cpu_b1_p50_ms"] == cpu["latency_ms"]["p50"]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: ") and json.loads(last[len("summary: "):])["status"] == "no_cuda"


def test_every_gpu_section_runs_on_the_cpu_with_figures_and_agreement(tmp_path, short_clip, capsys):
    out = tmp_path / "r.json"
    code = gpu_check.main(["--out", str(out), "--device", "cpu", "--clip", str(short_clip), "--frames", "3",
                           "--batches", "1,3", "--iterations", "2", "--warmup", "1", "--cpu-iterations", "0",
                           "--skip", "tensorrt"])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert code == gpu_check.EXIT_OK and report["status"] == "ok" and report["errors"] == []
    assert json.loads(printed[: printed.rindex("\nsummary: ")]) == report
    assert report["cpu"] == {"ran": False, "skipped": "--cpu-iterations 0", "seconds": report["cpu"]["seconds"]}
    torch_part = report["torch"]
    assert torch_part["device"] == "cpu"
    rows = {(c["name"], c["batch"]): c for c in torch_part["cases"]}
    assert set(rows) == {(f"torch_{p}", b) for p in ("fp16", "fp32") for b in (1, 3)}
    for (name, b), c in rows.items():
        assert c["iterations"] == 5  # min(N, 5) calls, one per interleaved round
        assert c["latency_ms"]["p95"] >= c["latency_ms"]["p50"] > 0
        assert c["images_per_s"] == pytest.approx(b * 1000 / c["latency_ms"]["p50"], abs=0.06)
        assert c["faces_per_image"] == 2.0  # the singer and the pianist
    for name, tol in (("torch_fp32", FP32_TOLERANCE), ("torch_fp16", FP16_TOLERANCE)):
        m = torch_part["agreement"][name]
        assert m["ok"] and m["problems"] == [] and m["tolerance"] == tol.as_dict(), name
        assert m["frames"] == 3 and m["reference_faces"] == m["faces"] == m["matched"] == 6
        assert m["min_iou"] >= tol.iou and m["min_cosine"] >= tol.cosine
    assert torch_part["agreement"]["torch_fp32"]["min_iou"] > 0.999  # same device, same precision
    proc = report["process"]
    assert proc["ran"] and proc["frames"] == proc["expected_frames"] == 12 and proc["faces"] == 24
    assert proc["engine"]["backend"] == "torch" and proc["engine"]["device"] == "cpu"
    assert proc["realtime_factor"] == pytest.approx(proc["fps"] / proc["video_fps"], rel=1e-2)
    assert proc["command"].startswith("main.py process ") and "--device cpu" in proc["command"]
    assert report["tensorrt"]["skipped"] == "left out with --skip"
    assert report["process_tensorrt"]["ran"] is False
    s = report["summary"]
    assert s["torch_fp16_b3_images_per_s"] == rows[("torch_fp16", 3)]["images_per_s"]
    assert s["torch_fp16_b1_p50_ms"] == rows[("torch_fp16", 1)]["latency_ms"]["p50"]
    assert s["torch_fp16_matches_cpu"] is True and s["process_realtime_factor"] == proc["realtime_factor"]


def test_without_pyav_process_says_why_and_the_other_sections_still_run(tmp_path, short_clip):
    hidden = tmp_path / "hidden"
    (hidden / "av").mkdir(parents=True)
    (hidden / "av" / "__init__.py").write_text("raise ImportError('PyAV hidden by the test')\n")
    out = tmp_path / "r.json"
    p = _run(["--out", str(out), "--device", "cpu", "--clip", str(short_clip), "--frames", "1", "--batches", "1",
              "--iterations", "1", "--warmup", "1", "--cpu-iterations", "0", "--skip", "torch,tensorrt"],
             env={"PYTHONPATH": str(hidden)})
    report = json.loads(out.read_text())
    assert p.returncode == 0 and report["status"] == "ok", p.stderr[-2000:]
    assert report["reference"]["ran"] and report["reference"]["faces"] == 2
    proc = report["process"]
    assert proc["ran"] is False and proc["available"] is False
    assert "PyAV hidden by the test" in proc["reason"] and "scripts/gpu_wheels.sh" in proc["reason"]


def test_a_failing_section_is_reported_and_the_run_goes_on(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    out = tmp_path / "r.json"
    p = _run(["--out", str(out), "--weights", str(bad), "--device", "cpu", "--frames", "1", "--skip", "process,tensorrt"])
    report = json.loads(out.read_text())
    assert p.returncode == gpu_check.EXIT_FAILED and report["status"] == "errors"
    assert report["reference"]["ran"] is False and report["reference"]["error"]
    assert report["errors"] and report["errors"][0].startswith("reference: ")
    assert report["machine"]["ran"] is True  # the sections before it keep their results
    assert report["torch"]["skipped"] == "the reference section did not run"


def test_sections_past_the_time_budget_are_skipped_with_the_reason(tmp_path):
    out = tmp_path / "r.json"
    p = _run(["--out", str(out), "--device", "cpu", "--frames", "1", "--budget-s", "5"])
    report = json.loads(out.read_text())
    assert p.returncode == 0, p.stderr[-2000:]
    assert report["machine"]["ran"] and report["reference"]["ran"]  # they need no budget
    for name in ("torch", "process", "tensorrt", "process_tensorrt"):
        assert report[name]["skipped"].startswith("time budget: "), name


# ------------------------------------------------------------------------- TensorRT section
def test_tensorrt_section_builds_times_and_compares_through_the_stand_in(monkeypatch, tmp_path):
    """The TensorRT module cannot run here: the project's stand-in (ONNX Runtime behind
    TensorRT's API, host memory as device memory) carries the section's own logic."""
    from engines.trt.runtime_module import load_tensorrt
    from tests.support import fake_tensorrt

    fake_tensorrt.install(monkeypatch, "11.4.0.106")
    args = gpu_check.parse_args(["--out", str(tmp_path / "r.json"), "--config", "tiny", "--device", "cuda:0",
                                 "--frames", "2", "--batches", "1,2", "--iterations", "2", "--warmup", "1"])
    check = gpu_check.Check(args)
    check.section("reference", check.reference_run)
    check.section("tensorrt", lambda: check.tensorrt_run(trt=load_tensorrt(), cuda=fake_tensorrt.FakeCudaDevice()))
    part = json.loads(args.out.read_text())["tensorrt"]
    assert part["ran"], part
    assert part["tensorrt"] == "tensorrt 11.4.0.106" and part["precision"] == "fp16" and part["max_batch"] == 2
    assert part["build_seconds"] >= 0 and part["ready_seconds"] >= part["build_seconds"] - 0.01
    assert part["engine_bytes"] > 0 and part["engine_mib"] == round(part["engine_bytes"] / 2**20, 2)
    assert [(c["name"], c["batch"]) for c in part["cases"]] == [("tensorrt_fp16", 1), ("tensorrt_fp16", 2)]
    m = part["agreement"]["tensorrt_fp16"]
    assert m["frames"] == 2 and m["tolerance"] == FP16_TOLERANCE.as_dict() and isinstance(m["ok"], bool)
    assert check.trt_build_seconds == part["build_seconds"]


def test_tensorrt_section_without_tensorrt_gives_the_import_reason(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    monkeypatch.delenv("UNISIGHT_TRT_MODULE", raising=False)
    args = gpu_check.parse_args(["--out", str(tmp_path / "r.json"), "--frames", "1"])
    check = gpu_check.Check(args)
    check.section("tensorrt", check.tensorrt_run)
    part = check.report["tensorrt"]
    assert part["ran"] is False and part["available"] is False
    assert part["reason"].startswith("no usable TensorRT (tensorrt: ") and "requirements-gpu.txt" in part["reason"]


# ------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("argv, message", [
    ([], "no output: give --out FILE.json or set OUT to a folder"),
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/r.json", "--batches", "1,0"], "each batch must be 1..256"),
    (["--out", "{tmp}/r.json", "--batches", "one"], "batches must look like 1,32"),
    (["--out", "{tmp}/r.json", "--frames", "0"], "expected at least 1"),
    (["--out", "{tmp}/r.json", "--clip", "{tmp}/missing.mp4"], "clip not found"),
    (["--out", "{tmp}/r.json", "--weights", "{tmp}/missing.pt"], "weights file not found"),
    (["--out", "{tmp}/r.json", "--config", "nope"], "nope"),
    (["--out", "{tmp}/r.json", "--device", "gpu"], "--device must be cuda, cuda:N or cpu"),
    (["--out", "{tmp}/r.json", "--device", "cuda:x"], "--device must look like cuda:0"),
    (["--out", "{tmp}/r.json", "--skip", "torch,warp"], "unknown section(s) warp"),
    (["--out", "{tmp}/r.json", "--budget-s", "0"], "--budget-s must be positive"),
])
def test_bad_arguments_exit_2_with_one_error_line(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OUT", raising=False)
    with pytest.raises(SystemExit) as exc:
        gpu_check.parse_args([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("gpu_check.py: error: ")
    assert not (tmp_path / "r.json").exists()


def test_out_comes_from_the_OUT_folder_unless_given(tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.parse_args([]).out == tmp_path / "gpu_check.json"
    assert gpu_check.parse_args(["--out", str(tmp_path / "x.json")]).out == tmp_path / "x.json"


def test_iterations_shrink_with_the_batch_but_not_below_five():
    assert [gpu_check.iterations_for(b, 200) for b in (1, 4, 32, 256)] == [200, 100, 36, 13]
    assert gpu_check.iterations_for(32, 20) == 5 and gpu_check.iterations_for(32, 2) == 2
    assert gpu_check.batch_of(["a", "b"], 5) == ["a", "b", "a", "b", "a"]


def test_process_command_loads_without_the_packages_a_gpu_machine_lacks(tmp_path):
    """The device image has no PyQt5, dlib or platformdirs: `main.py process` must still be there
    (the cache and data folders come from UNISIGHT_CACHE / UNISIGHT_DATA, as the check sets them)."""
    hidden = tmp_path / "hidden"
    for name in ("PyQt5", "dlib", "platformdirs", "face_recognition_models", "facenet_pytorch"):
        (hidden / name).mkdir(parents=True)
        (hidden / name / "__init__.py").write_text(f"raise ImportError('{name} hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": str(hidden), "UNISIGHT_CACHE": str(tmp_path / "c"),
           "UNISIGHT_DATA": str(tmp_path / "d")}
    p = subprocess.run([sys.executable, "main.py", "process", "--help"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "--device" in p.stdout, p.stderr[-2000:]
    assert "command 'process' unavailable" not in p.stderr
    q = subprocess.run([sys.executable, "-c", "from app.paths import user_cache_dir; print(user_cache_dir())"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert q.returncode == 0 and q.stdout.strip() == str(tmp_path / "c"), q.stderr


def test_clip_frames_are_spread_evenly_and_a_non_video_is_refused(tmp_path):
    frames, picks = gpu_check.read_clip_frames(REPO / "docs/samples/hamilton_clip.mp4", 3)
    assert picks == [0, 137, 274] and all(f.shape == (360, 640, 3) for f in frames)
    _, every = gpu_check.read_clip_frames(REPO / "docs/samples/hamilton_clip.mp4", 1000)
    assert every == list(range(275))  # no more than the clip has
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    with pytest.raises(RuntimeError, match="notes.mp4"):
        gpu_check.read_clip_frames(bad, 3)
