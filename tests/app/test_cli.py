"""CLI smoke tests and bad input: one-line errors and non-zero exits, never a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.paths import NO_FACE_IMAGE, REPO_ROOT, SAMPLE_IMAGE

ENGINE = ["--config", "tiny"]  # small graph: fast to export and run


def cli(*args, timeout=300):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, str(REPO_ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO_ROOT)


def test_identify_json_contract():
    r = cli("identify", str(SAMPLE_IMAGE), "--json", *ENGINE)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["image"] == str(SAMPLE_IMAGE) and out["engine"] == "uniface" and out["backend"] == "onnxruntime"
    assert out["random_weights"] is True and "RANDOM WEIGHTS" in r.stderr
    assert out["min_score"] == 0.9  # weights with no threshold of their own: the default
    for face in out["faces"]:
        assert len(face["box"]) == 4 and len(face["landmarks"]) == 5 and len(face["landmarks"][0]) == 2
        assert 0 <= face["score"] <= 1
        assert face["name"] is None and face["similarity"] is None  # random weights name nobody


def test_bench_json_contract():
    r = cli("bench", "--size", "320x240", "--iterations", "10", "--warmup", "2", "--json", *ENGINE)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backend"] == "onnxruntime" and out["size"] == "320x240" and out["batch"] == 1
    assert out["fps"] > 0 and 0 < out["latency_ms"]["p50"] <= out["latency_ms"]["p95"]
    assert out["random_weights"] is True


def test_bench_forced_face_sweep_and_backend_comparison():
    r = cli("bench", "--size", "320x240", "--iterations", "10", "--warmup", "1", "--faces", "1,5", "--force",
            "--backend", "onnxruntime,torch", "--json", *ENGINE)
    assert r.returncode == 0, r.stderr
    cases = json.loads(r.stdout)["cases"]
    assert [(c["backend"], c["faces"], c["forced"]) for c in cases] == [
        ("onnxruntime", 1, True), ("onnxruntime", 5, True), ("torch", 1, True), ("torch", 5, True)]
    assert [c["detected"] for c in cases] == [1, 5, 1, 5]  # random weights: only forcing embeds faces
    assert cases[0]["ratio_to_first"] == 1.0


def test_bench_frames_with_faces_in_view():
    """The shipped model on frames holding 1 and 5 copies of the sample's face, at its own threshold."""
    r = cli("bench", "--size", "640x480", "--iterations", "5", "--warmup", "1", "--faces", "1,5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["random_weights"] is False
    assert [(c["faces"], c["forced"], c["detected"]) for c in out["cases"]] == [(1, False, 1), (5, False, 5)]


@pytest.mark.parametrize("args,message", [(["--faces", "0"], "at least 1"), (["--faces", "1,x"], "face counts"),
                                          (["--force"], "--force needs --faces")])
def test_bench_rejects_bad_face_counts(args, message):
    r = cli("bench", *args, *ENGINE)
    assert r.returncode != 0 and message in r.stderr


def test_export_onnx(tmp_path):
    import onnx

    out = tmp_path / "m.onnx"
    r = cli("export", "onnx", "--config", "tiny", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["images", "score_threshold", "max_faces"]
    assert [o.name for o in model.graph.output] == ["boxes", "scores", "landmarks", "embeddings", "count"]
    assert json.loads(r.stdout)["model_id"] == "uniface-tiny-random"


def test_export_weights_from_a_checkpoint_and_its_errors(tmp_path):
    import torch

    from engines.model.config import TINY
    from engines.model.network import Uniface

    ckpt = tmp_path / "best.pt"
    torch.save({"config": "tiny", "state_dict": Uniface(TINY).state_dict(), "step": 7,
                "optimizer": {}, "settings": {"batch": 2}}, ckpt)
    out = tmp_path / "shipped.pt"
    r = cli("export", "weights", "--weights", str(ckpt), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["output"] == str(out) and summary["config"] == "tiny" and "step 7" in summary["trained"]
    assert "optimizer" not in torch.load(out, weights_only=True)
    assert summary["detection_threshold"] == 0.9  # none chosen: the default
    r = cli("export", "weights", "--weights", str(out), "--out", str(out), "--detection-threshold", "0.7", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["detection_threshold"] == 0.7 and "step 7" in json.loads(r.stdout)["trained"]
    assert torch.load(out, weights_only=True)["detection_threshold"] == 0.7
    for bad in ("1", "0", "-0.2", "high"):
        r = cli("export", "weights", "--weights", str(ckpt), "--detection-threshold", bad)
        assert r.returncode == 2 and "between 0 and 1" in r.stderr and "Traceback" not in r.stderr
    r = cli("export", "onnx", "--config", "tiny", "--detection-threshold", "0.7")
    assert r.returncode != 0 and "export weights" in r.stderr and "Traceback" not in r.stderr
    r = cli("export", "weights", "--out", str(out))
    assert r.returncode != 0 and "needs --weights" in r.stderr and "Traceback" not in r.stderr
    r = cli("export", "weights", "--weights", str(tmp_path / "missing.pt"))
    assert r.returncode != 0 and "not found" in r.stderr and "Traceback" not in r.stderr


def _write(path: Path, image) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, int | None]]:
    """name -> (file, expected faces or None when it must be refused)."""
    color = cv2.imread(str(SAMPLE_IMAGE))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(SAMPLE_IMAGE.read_bytes()[:4000])
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    rgba = np.dstack([color, np.full(color.shape[:2], 255, np.uint8)])
    return {
        "missing": (tmp_path / "nope.jpg", None),
        "directory": (tmp_path, None),
        "empty": (empty, None),
        "not an image": (text, None),
        "truncated": (truncated, None),
        "grayscale": (_write(tmp_path / "grey.png", cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)), 0),
        "rgba": (_write(tmp_path / "rgba.png", rgba), 0),
        "16-bit": (_write(tmp_path / "deep.png", color.astype(np.uint16) * 257), 0),
        "1x1": (_write(tmp_path / "dot.png", np.zeros((1, 1, 3), np.uint8)), 0),
        "8000x6000": (_write(tmp_path / "huge.jpg", cv2.resize(color, (8000, 6000), interpolation=cv2.INTER_NEAREST)), 0),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "not an image", "truncated", "grayscale",
                                  "rgba", "16-bit", "1x1", "8000x6000"])
def test_identify_bad_input(case, tmp_path):
    path, expected = bad_inputs(tmp_path)[case]
    r = cli("identify", str(path), "--json", *ENGINE)
    assert "Traceback" not in r.stderr
    if expected is None:
        assert r.returncode != 0
        errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
        assert len(errors) == 1 and str(path.name) in errors[0], r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert isinstance(json.loads(r.stdout)["faces"], list)


def test_bad_options_are_one_line_errors(tmp_path):
    r = cli("bench", "--size", "big", *ENGINE)
    assert r.returncode == 2 and "size must look like 640x480" in r.stderr and "Traceback" not in r.stderr
    r = cli("identify", str(SAMPLE_IMAGE), "--backend", "quantum", *ENGINE)
    assert r.returncode == 2 and "unknown backend" in r.stderr and "Traceback" not in r.stderr
    r = cli("identify", str(SAMPLE_IMAGE), "--weights", str(tmp_path / "none.pt"))
    assert r.returncode == 2 and "weights file not found" in r.stderr


def test_cascade_engine_names_nobody_without_gallery():
    pytest.importorskip("dlib")
    r = cli("identify", str(SAMPLE_IMAGE), "--engine", "cascade", "--json")
    assert r.returncode == 0, r.stderr
    faces = json.loads(r.stdout)["faces"]
    assert len(faces) == 1 and faces[0]["name"] is None
    r = cli("identify", str(NO_FACE_IMAGE), "--engine", "cascade", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["faces"] == []


def test_train_rejects_bad_crop_settings_in_one_line(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    r = cli("train", "--labels", str(labels), "--crop-context", "0.5,2")
    assert r.returncode == 2 and "need 1 <= LO <= HI" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--crop-batch", "4",
            "--crop-canvas", "100")
    assert r.returncode == 2 and "multiple of 32" in r.stderr and "Traceback" not in r.stderr


def test_train_rejects_a_bad_relation_loss_setting_in_one_line(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--relation-weight", "1",
            "--relation-temp", "0")
    assert r.returncode == 2 and "--relation-temp" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--letterbox-p", "1.5")
    assert r.returncode == 2 and "--letterbox-p" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--turn-p", "-0.1")
    assert r.returncode == 2 and "--turn-p" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--turn-degrees", "120")
    assert r.returncode == 2 and "--turn-degrees" in r.stderr and "Traceback" not in r.stderr
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--residual-lr-scale", "0")
    assert r.returncode == 2 and "--residual-lr-scale" in r.stderr and "Traceback" not in r.stderr
    # a kept checkpoint is written at an evaluation: every N-th step must be one
    r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), "--eval-every", "250",
            "--keep-every", "600")
    assert r.returncode == 2 and "--keep-every" in r.stderr and "Traceback" not in r.stderr
    for flag, value in (("--backdrop-p", "1.01"), ("--faceless-p", "-0.5"), ("--dark-p", "2")):
        r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), flag, value)
        assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr


def test_commands_load_lazily_and_an_unavailable_one_says_why(capsys):
    """Only the chosen command's module is imported; one whose import fails is still listed and,
    when called, says why in one line (exit 2) instead of disappearing."""
    import app.cli

    table = {"identify": ("app.commands.identify", "find faces"), "broken": ("no_such_package.cmd", "needs a package")}
    parser = app.cli.build_parser(table, ["identify", "x.jpg"])
    assert "broken" in parser.format_help()
    assert app.cli.main(["broken", "--any", "thing"], table) == 2
    assert capsys.readouterr().err.strip() == "error: command 'broken' is unavailable: No module named 'no_such_package'"


def test_main_composes_every_layer_s_commands():
    import main

    assert {"gui", "screenshot"} <= set(main.COMMANDS) and main.COMMANDS["gui"][0].startswith("ui.")
    assert {"label", "label-views", "train", "export weights"} <= set(main.COMMANDS)
    assert all(main.COMMANDS[c][0].startswith("engines.train.") for c in ("label", "label-views", "train", "export weights"))
    assert main.COMMANDS["export onnx"][0] == "app.commands.export"
