#!/usr/bin/env python3
"""GPU figures for the shipped single-shot model, in one run: `scripts/gpu_check.sh` calls this.

Made for a machine with an NVIDIA GPU, no network and no `.venv` (the system `python3` with
torch, run from the repository root); it needs torch, numpy and OpenCV, and uses onnx,
onnxruntime, TensorRT and PyAV where they can be imported. Sections, in order of worth, each
skipped with a reason when the time budget (--budget-s) runs short; the JSON is rewritten
after each one, so a run cut off still leaves what it measured:

  machine     Python, torch, CUDA, the GPU (torch and nvidia-smi), package versions
  model       configuration, model id, weights, detection threshold
  reference   torch FP32 on the CPU over --frames frames spread through the clip: the faces
              every other run is compared with
  cpu         torch FP32 on the CPU at batch 1: the baseline on the same machine
  torch       torch on --device at FP16 (autocast) and FP32: the clip's faces against the
              reference (`engines.eval.backend_match`, tolerances in the JSON), then latency
              p50/p95 and images/s at each --batches size, after warm-up, end to end
              (letterbox, graph, results: `app.offline.benchmark.run_cases`)
  process     `main.py process CLIP --backend torch --device DEVICE`: the realtime factor
  tensorrt    the TensorRT backend at FP16 (built here, timed: build seconds, engine size),
              the same comparison and timings; else why it could not run
  process_tensorrt  `process` with --backend tensorrt, when the time left covers its own build

Exit status: 0 everything ran; 3 no CUDA device (the CPU parts are still written); 1 a section
failed (its error is in the JSON); 2 bad arguments. `--device cpu` runs the GPU sections on
the CPU: that is how this script is tested without a GPU.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402 - after the path setup above

from engines.errors import EngineUnavailable  # noqa: E402
from engines.model.config import SHIPPED_CONFIG, get_config  # noqa: E402
from scripts.gpu_check_measure import (Budget, _version, agreement, batch_of, cuda_state, infer_all,  # noqa: E402
                                      iterations_for, nvidia_smi, read_clip_frames, timing_cases)
# (batch_of, iterations_for: used by the tests through this module)

log = logging.getLogger("gpu_check")

FORMAT = "unisight-gpu-check/1"
DEFAULT_CLIP = REPO / "docs" / "samples" / "hamilton_clip.mp4"
OUT_NAME = "gpu_check.json"
SECTIONS = ("cpu", "torch", "process", "tensorrt", "process_tensorrt")  # the ones --skip may name
EXIT_OK, EXIT_FAILED, EXIT_ARGS, EXIT_NO_CUDA = 0, 1, 2, 3
REFERENCE_CHUNK = 8  # frames per call of the CPU reference
# seconds a section needs at least to be worth starting (the GPU ones measured nowhere yet: guesses)
NEEDS_S = {"cpu": 10, "torch": 40, "process": 40, "tensorrt": 90, "process_tensorrt": 60}
PACKAGES = ("torch", "numpy", "opencv-python-headless", "opencv-python", "onnx", "onnxruntime", "onnxruntime-gpu",
            "av", "scipy", "tensorrt", "tensorrt-cu13", "tensorrt_rtx", "cuda-python", "cuda-bindings")


class Unavailable(Exception):
    """A section cannot run on this machine; the reason goes into the JSON (not an error)."""


class Skipped(Exception):
    """A section was not run (time budget, --skip, a section it depends on did not run)."""


# ------------------------------------------------------------------------------ arguments
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"batches must look like 1,32, got {text!r}") from None
    if not values or any(v < 1 or v > 256 for v in values):
        raise argparse.ArgumentTypeError(f"each batch must be 1..256, got {text!r}")
    return tuple(dict.fromkeys(values))


def _skip(text: str) -> frozenset[str]:
    names = frozenset(v.strip() for v in text.split(",") if v.strip())
    unknown = names - set(SECTIONS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(sorted(unknown))}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu_check.py",
        description="GPU figures of the single-shot model (torch CUDA FP16/FP32, TensorRT, process) "
                    "as one JSON file; see the module docstring.")
    p.add_argument("--out", type=Path, default=None,
                   help=f"JSON file to write (default: $OUT/{OUT_NAME} when OUT is set)")
    p.add_argument("--config", default=SHIPPED_CONFIG, help=f"network configuration (default {SHIPPED_CONFIG})")
    p.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped model)")
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video whose frames are used (the bundled clip)")
    p.add_argument("--frames", type=_positive_int, default=32,
                   help="clip frames, spread evenly, compared with the CPU and timed (32)")
    p.add_argument("--batches", type=_batches, default=(1, 32), help="batch sizes to time (1,32)")
    p.add_argument("--iterations", type=_positive_int, default=200,
                   help="timed calls at batch 1; batch B gets ceil(N/sqrt(B)), at least min(N, 5) (200)")
    p.add_argument("--warmup", type=_positive_int, default=10, help="untimed calls first, per case (10)")
    p.add_argument("--cpu-iterations", type=int, default=20, help="timed CPU calls at batch 1, 0 to skip (20)")
    p.add_argument("--device", default="cuda:0",
                   help="cuda or cuda:N (default cuda:0); cpu runs the GPU sections on the CPU (tests)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="wall-clock seconds for all sections; later ones are skipped past it (420)")
    p.add_argument("--skip", type=_skip, default=frozenset(), help=f"sections to leave out: {', '.join(SECTIONS)}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Arguments, checked; argparse's exit status 2 with one error line for bad ones."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out is None:
        out_dir = os.environ.get("OUT")
        if not out_dir:
            parser.error("no output: give --out FILE.json or set OUT to a folder")
        args.out = Path(out_dir) / OUT_NAME
    if args.out.exists() and args.out.is_dir():
        parser.error(f"--out {args.out} is a folder: give a file name such as {args.out / OUT_NAME}")
    if not args.clip.is_file():
        parser.error(f"clip not found: {args.clip}")
    if args.weights is not None and not args.weights.is_file():
        parser.error(f"weights file not found: {args.weights}")
    try:
        get_config(args.config)
    except ValueError as exc:
        parser.error(str(exc))
    if not (args.device == "cpu" or args.device == "cuda" or args.device.startswith("cuda:")):
        parser.error(f"--device must be cuda, cuda:N or cpu, got {args.device!r}")
    if args.device.startswith("cuda:") and not args.device[5:].isdigit():
        parser.error(f"--device must look like cuda:0, got {args.device!r}")
    if args.cpu_iterations < 0:
        parser.error("--cpu-iterations must be 0 or more")
    if not args.budget_s > 0:
        parser.error("--budget-s must be positive")
    return args


class Check:
    """One run of the check: settings, shared state between sections, the report."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.budget = Budget(args.budget_s)
        self.work = Path(tempfile.mkdtemp(prefix="unisight-gpu-check-"))
        self.cache_dir = self.work / "cache"  # exported ONNX, TensorRT engines: this run's own
        self.cuda_ok, self.cuda_reason = (True, None)
        self.frames: list[np.ndarray] = []
        self.reference: list = []
        self.threshold: float | None = None
        self.trt_build_seconds: float | None = None
        self.report: dict = {
            "format": FORMAT,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
            "settings": {
                "config": args.config, "weights": str(args.weights) if args.weights else None,
                "clip": _shown(args.clip), "frames": args.frames, "batches": list(args.batches),
                "iterations": args.iterations, "warmup": args.warmup, "cpu_iterations": args.cpu_iterations,
                "device": args.device, "budget_s": args.budget_s, "skip": sorted(args.skip),
            },
            "status": "running",
            "errors": [],
        }

    # -- bookkeeping
    def write(self) -> None:
        """The report as it stands, written atomically."""
        out = self.args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(self.report, indent=1) + "\n")
        tmp.replace(out)

    def section(self, name: str, fn: Callable[[], dict]) -> None:
        """Run one section into report[name]: its result, or why it did not run, or its error."""
        t0 = time.monotonic()
        log.info("section %s (%.0f s of the budget left)", name, self.budget.left())
        try:
            if name in self.args.skip:
                raise Skipped("left out with --skip")
            if self.budget.left() < NEEDS_S.get(name, 0):
                raise Skipped(f"time budget: {self.budget.left():.0f} s left, needs about {NEEDS_S[name]} s")
            result = {"ran": True, **fn()}
        except Skipped as exc:
            result = {"ran": False, "skipped": str(exc)}
        except (Unavailable, EngineUnavailable) as exc:
            result = {"ran": False, "available": False, "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - one section's failure must not lose the others
            log.error("section %s failed:\n%s", name, traceback.format_exc())
            result = {"ran": False, "error": f"{type(exc).__name__}: {exc}"}
            self.report["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        result["seconds"] = round(time.monotonic() - t0, 2)
        self.report[name] = result
        self.write()

    # -- sections
    def machine(self) -> dict:
        import torch

        if self.args.device.startswith("cuda"):
            self.cuda_ok, self.cuda_reason = cuda_state(self.args.device)
        info = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_cuda_build": torch.version.cuda,
            "cuda_available": bool(torch.cuda.is_available()),
            "cuda_reason": self.cuda_reason,
            "gpu": None,
            "nvidia_smi": nvidia_smi(),
            "packages": {name: _version(name) for name in PACKAGES if _version(name)},
        }
        if self.cuda_ok and self.args.device.startswith("cuda"):
            index = int(self.args.device.split(":", 1)[1]) if ":" in self.args.device else 0
            props = torch.cuda.get_device_properties(index)
            info["gpu"] = {
                "name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
                "cudnn": torch.backends.cudnn.version(),
                "tf32_convolutions": bool(torch.backends.cudnn.allow_tf32),
            }
        return info

    def reference_run(self) -> dict:
        from engines.backends.torch_backend import TorchBackend

        args = self.args
        frames, picks = read_clip_frames(args.clip, args.frames)
        t0 = time.perf_counter()
        with TorchBackend(args.config, args.weights, device="cpu") as cpu:
            self.threshold = cpu.score_threshold
            self.reference = infer_all(cpu, frames, REFERENCE_CHUNK)
            info = cpu.info
        self.frames = frames  # set last: the later sections run only on a complete reference
        counts = [len(f) for f in self.reference]
        self.report["model"] = {
            "config": args.config, "model_id": info.model_id, "random_weights": info.random_weights,
            "weights": _shown(args.weights) if args.weights else "shipped",
            "detection_threshold": self.threshold,
            "input_size": f"{info.input_size[0]}x{info.input_size[1]}",
        }
        h, w = self.frames[0].shape[:2]
        return {
            "engine": "torch FP32 on the CPU", "frames": len(self.frames), "frame_indices": picks,
            "frame_size": f"{w}x{h}", "faces": int(sum(counts)), "faces_per_frame": counts,
            "infer_seconds": round(time.perf_counter() - t0, 2),
        }

    def cpu_timing(self) -> dict:
        from engines.backends.torch_backend import TorchBackend

        if self.args.cpu_iterations == 0:
            raise Skipped("--cpu-iterations 0")
        self._need_reference()
        with TorchBackend(self.args.config, self.args.weights, device="cpu") as cpu:
            cases = timing_cases({"torch_fp32_cpu": cpu}, self.frames, [1], self.args.cpu_iterations,
                                 min(self.args.warmup, 3))
        return {"cases": cases}

    def torch_run(self) -> dict:
        import torch

        from engines.backends.torch_backend import TorchBackend

        self._need_gpu()
        self._need_reference()
        args = self.args
        engines = {f"torch_{p}": TorchBackend(args.config, args.weights, device=args.device, precision=p)
                   for p in ("fp16", "fp32")}
        try:
            matches = {}
            for name, engine in engines.items():
                faces = infer_all(engine, self.frames, max(args.batches))
                matches[name] = agreement(self.reference, faces, self.threshold, name.rsplit("_", 1)[1])
            cases = timing_cases(engines, self.frames, args.batches, args.iterations, args.warmup)
            result = {"device": engines["torch_fp16"].info.device,
                      "fp16": "torch.autocast(float16): convolutions in FP16, softmax/decoding/NMS in FP32",
                      "agreement": matches, "cases": cases}
            if self.args.device.startswith("cuda"):
                result["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            return result
        finally:
            for engine in engines.values():
                engine.close()
            if self.args.device.startswith("cuda"):
                torch.cuda.empty_cache()

    def process_run(self, backend: str = "torch") -> dict:
        self._need_gpu()
        try:
            import av  # noqa: F401 - `process` decodes and encodes with PyAV
        except ImportError as exc:
            raise Unavailable(f"PyAV cannot be imported here ({exc}), and `process` decodes with it: run "
                              "scripts/gpu_wheels.sh where pip works and carry .whl") from None
        if backend == "tensorrt":
            if self.trt_build_seconds is None:
                raise Skipped("the tensorrt section did not build an engine")
            need = 1.5 * self.trt_build_seconds + 60
            if self.budget.left() < need:
                raise Skipped(f"time budget: {self.budget.left():.0f} s left; `process` builds its own engine "
                              f"(batch<=8), about {self.trt_build_seconds:.0f} s, plus the run")
        args = self.args
        work = self.work / f"process_{backend}"
        work.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(REPO / "main.py"), "process", str(args.clip), "--backend", backend,
               "--device", args.device, "--config", args.config, "--out", str(work / "annotated.mp4"),
               "--events", str(work / "events.jsonl"), "--json", "--no-progress"]
        if args.weights is not None:
            cmd += ["--weights", str(args.weights)]
        env = dict(os.environ, UNISIGHT_CACHE=str(self.cache_dir), UNISIGHT_DATA=str(work / "data"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        try:
            p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                               timeout=max(10.0, self.budget.left() - 5))
        except subprocess.TimeoutExpired:
            raise Skipped("time budget: `main.py process` was stopped before it finished") from None
        if p.returncode != 0:
            tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"main.py process exited {p.returncode}: {tail}")
        summary = json.loads(p.stdout.strip().splitlines()[-1])
        keep = ("frames", "expected_frames", "faces", "tracks", "fps", "video_fps", "realtime_factor", "seconds",
                "stage_ms", "engine", "audio", "truncated")
        shown = (f"main.py process {_shown(args.clip)} --backend {backend} --device {args.device} --config {args.config}"
                 " --out ANNOTATED.mp4 --events EVENTS.jsonl --json --no-progress")
        return {"command": shown,
                **{k: summary.get(k) for k in keep}}

    def tensorrt_run(self, trt=None, cuda=None) -> dict:
        """The TensorRT backend at FP16; `trt`/`cuda` replace the detected module and device (tests)."""
        from engines.backends.tensorrt_backend import TensorRTBackend
        from engines.trt.build import BuildCancelled
        from engines.trt.cache import EngineCache
        from engines.trt.runtime_module import load_tensorrt

        trt = trt or load_tensorrt()  # EngineUnavailable: not installed, with the import error
        if cuda is None:
            self._need_gpu()
        self._need_reference()
        args = self.args
        reserve = 60.0  # seconds kept for the sections after this one
        cancel = threading.Event()
        timer = threading.Timer(max(1.0, self.budget.left() - reserve), cancel.set)
        timer.daemon = True
        timer.start()
        t0 = time.monotonic()
        try:
            engine = TensorRTBackend(args.config, args.weights, cache_dir=self.cache_dir, device=args.device,
                                     precision="fp16", max_batch=max(args.batches), cancel=cancel,
                                     trt=trt, cuda=cuda)
        except BuildCancelled:
            raise Skipped(f"time budget: the engine build was cancelled after {time.monotonic() - t0:.0f} s") from None
        finally:
            timer.cancel()
        ready_s = time.monotonic() - t0
        try:
            sidecar = EngineCache(self.cache_dir).read_sidecar(engine.key) or {}
            self.trt_build_seconds = sidecar.get("build_seconds")
            faces = infer_all(engine, self.frames, max(args.batches))
            match = agreement(self.reference, faces, self.threshold, "fp16")
            cases = timing_cases({"tensorrt_fp16": engine}, self.frames, args.batches, args.iterations, args.warmup)
            return {
                "tensorrt": trt.label, "device": engine.info.device, "cuda_memory": engine.cuda.kind,
                "precision": "fp16", "max_batch": max(args.batches),
                "build_seconds": self.trt_build_seconds,
                "ready_seconds": round(ready_s, 2),  # export + FP16 conversion + build + load
                "engine_bytes": sidecar.get("engine_bytes"),
                "engine_mib": round(sidecar["engine_bytes"] / 2**20, 2) if sidecar.get("engine_bytes") else None,
                "agreement": {"tensorrt_fp16": match}, "cases": cases,
            }
        finally:
            engine.close()

    # -- preconditions
    def _need_gpu(self) -> None:
        if not self.cuda_ok:
            raise Unavailable(f"no CUDA device: {self.cuda_reason}")
        if self.args.device.startswith("cuda"):
            return
        # --device cpu: the GPU sections run on the CPU (how this script is tested)

    def _need_reference(self) -> None:
        if not self.frames:
            raise Skipped("the reference section did not run")

    # -- the whole run
    def run(self) -> int:
        self.section("machine", self.machine)
        self.section("reference", self.reference_run)
        self.section("cpu", self.cpu_timing)
        self.section("torch", self.torch_run)
        self.section("process", self.process_run)
        self.section("tensorrt", self.tensorrt_run)
        self.section("process_tensorrt", lambda: self.process_run("tensorrt"))
        self.report["summary"] = summarise(self.report)
        if self.report["errors"]:
            status, code = "errors", EXIT_FAILED
        elif not self.cuda_ok:
            status, code = "no_cuda", EXIT_NO_CUDA
        else:
            status, code = "ok", EXIT_OK
        self.report["status"] = status
        self.report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.write()
        shutil.rmtree(self.work, ignore_errors=True)
        return code


def summarise(report: dict) -> dict:
    """The headline figures (what the README's model card quotes) from the sections."""
    gpu = (report.get("machine") or {}).get("gpu") or {}
    s: dict = {"gpu": gpu.get("name"), "model_id": (report.get("model") or {}).get("model_id")}
    for section in ("torch", "tensorrt"):
        part = report.get(section) or {}
        for case in part.get("cases", []):
            key = f"{case['name']}_b{case['batch']}"
            s[f"{key}_p50_ms"] = case["latency_ms"]["p50"]
            s[f"{key}_images_per_s"] = case["images_per_s"]
        for name, match in (part.get("agreement") or {}).items():
            s[f"{name}_matches_cpu"] = match["ok"]
    for section in ("cpu",):
        for case in (report.get(section) or {}).get("cases", []):
            s[f"{case['name']}_b{case['batch']}_p50_ms"] = case["latency_ms"]["p50"]
    for section in ("process", "process_tensorrt"):
        part = report.get(section) or {}
        if part.get("ran"):
            s[f"{section}_realtime_factor"] = part.get("realtime_factor")
    return s


def _shown(path: Path | None) -> str | None:
    """A path as the report shows it: relative to the repository when inside it."""
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run every section, print the report; the exit status says how it went."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    check = Check(args)
    try:
        check.write()
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ARGS
    code = check.run()
    print(json.dumps(check.report, indent=1))
    print("summary: " + json.dumps({"status": check.report["status"], **check.report["summary"]}))
    log.info("status %s; report in %s", check.report["status"], args.out)
    return code


if __name__ == "__main__":
    sys.exit(main())
