"""Backends: PyTorch and ONNX Runtime agree, `auto` falls back, Faces come back in frame pixels."""
import logging

import numpy as np
import pytest

from app.paths import SAMPLE_IMAGE
from engines.errors import EngineUnavailable
from engines.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.backends.registry import create_engine
from engines.backends.torch_backend import TorchBackend
from engines.faces import Faces
from engines.model.config import SHIPPED_CONFIG


def _frames():
    import cv2

    img = cv2.imread(str(SAMPLE_IMAGE))
    rng = np.random.default_rng(0)
    frames = [img, cv2.resize(img, (300, 200)), rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)]
    # noise breaks exact score ties, which random weights produce on flat image areas and
    # which two runtimes may order differently
    return [np.clip(f + rng.normal(0, 6, f.shape), 0, 255).astype(np.uint8) for f in frames]


def spread_weights(config: str, path, start_from: str | None = None):
    """Seeded weights whose scores differ between anchors (a fresh init scores all alike),
    from the shipped weights of `start_from` (a configuration of the same layout) if given."""
    import torch

    from engines.model.config import get_config
    from engines.model.deepen import deepen_state
    from engines.model.network import Uniface
    from engines.model.weights import load_model

    model, _ = load_model(start_from or config)
    gen = torch.Generator().manual_seed(1)
    if start_from:
        state = model.state_dict()
        model = Uniface(get_config(config))
        if set(state) < set(model.state_dict()):  # a deeper configuration
            fresh, shallow = model.state_dict(), set(state)
            state = deepen_state(state, fresh)
            for name in sorted(set(fresh) - shallow):  # sorted: set order changes per process
                if "running" not in name and state[name].is_floating_point():  # the new blocks start as the
                    state[name] = 0.05 * torch.randn(state[name].shape, generator=gen)  # identity: make them count
        model.load_state_dict(state)
    # batch-norm statistics from a few images keep deep activations alive (a fresh init
    # with unit running variance lets them fade to a constant)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for f in _frames():
            model.forward_heads(model.normalise(torch.from_numpy(f)[None]))
    model.eval()
    with torch.no_grad():
        for head in model.heads:
            head.pred.weight.normal_(0, 0.3 / head.pred.in_channels**0.5, generator=gen)
            head.pred.bias.normal_(0, 0.3, generator=gen)
    torch.save({"config": config, "state_dict": model.state_dict()}, path)
    return path


@pytest.mark.parametrize("config, start_from", [
    ("tiny", None), (SHIPPED_CONFIG, None), ("wide_roi32", SHIPPED_CONFIG), ("wide", SHIPPED_CONFIG),
    ("wide_aligned_deep", SHIPPED_CONFIG), ("tiny_mnv2face", None), ("tiny_mnv2face_b", None), ("tiny_mnv2face_c", None),
    ("tiny_mnv2face_d", None), ("tiny_mnv2face_px", None), ("mnv2_s8_mnv2face_px_d8", "mnv2_s8_mnv2face_px"),
    ("tiny_ctx", "tiny")])
def test_torch_and_onnxruntime_agree(config, start_from, cache_dir, tmp_path):
    frames = _frames()
    weights = spread_weights(config, tmp_path / "w.pt", start_from)
    ort_engine = OnnxRuntimeBackend(config=config, weights=weights, cache_dir=cache_dir)
    torch_engine = TorchBackend(config=config, weights=weights)
    assert not ort_engine.info.random_weights
    assert ort_engine.info.model_id == torch_engine.info.model_id
    # threshold 0 makes every candidate NMS keeps a face (-1 would add the ones it suppressed, all
    # scored 0, whose order two runtimes may break differently), 64 of them per image
    a = ort_engine.infer(frames, score_threshold=0.0, max_faces=64)
    b = torch_engine.infer(frames, score_threshold=0.0, max_faces=64)
    for fa, fb in zip(a, b):
        assert len(fa) == len(fb) > 0
        np.testing.assert_allclose(fa.boxes, fb.boxes, atol=1e-2)
        np.testing.assert_allclose(fa.scores, fb.scores, atol=1e-5)
        np.testing.assert_allclose(fa.landmarks, fb.landmarks, atol=1e-2)
        assert np.abs(fa.embeddings - fb.embeddings).max() < 1e-3


def test_faces_in_frame_coordinates(cache_dir):
    engine = OnnxRuntimeBackend(config="tiny", cache_dir=cache_dir)
    big = np.zeros((1280, 1600, 3), np.uint8)  # the input's shape: no padding, so no box is dropped
    faces = engine.infer([big], score_threshold=-1.0, max_faces=5)[0]
    assert isinstance(faces, Faces) and len(faces) == 5
    assert faces.boxes[:, 0::2].max() <= 1600 and faces.boxes[:, 1::2].max() <= 1280
    # a frame at 10x the input scale gets boxes spread over the whole frame, not the input
    assert faces.boxes.max() > engine.input_size[0]


def test_max_faces_and_threshold(cache_dir):
    engine = OnnxRuntimeBackend(config="tiny", cache_dir=cache_dir)
    frame = _frames()[2]
    assert len(engine.infer([frame], score_threshold=-1.0, max_faces=3)[0]) == 3
    assert len(engine.infer([frame], score_threshold=1.0)[0]) == 0
    assert engine.infer([]) == []


def test_auto_falls_back_and_says_why(cache_dir, caplog):
    with caplog.at_level(logging.INFO, logger="engines.backends.registry"):
        engine = create_engine("uniface", "auto", config="tiny", cache_dir=cache_dir)
    # no GPU here: TensorRT and the CUDA paths are skipped, ONNX Runtime on the CPU serves
    assert engine.info.backend == "onnxruntime" and engine.info.device == "cpu"
    assert "auto backend: onnxruntime on cpu" in caplog.text


def test_explicit_gpu_backend_is_unavailable_without_cuda(cache_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(EngineUnavailable):
        create_engine("uniface", "torch", device="cuda", config="tiny")
    with pytest.raises(EngineUnavailable):
        create_engine("uniface", "onnxruntime", device="cuda", config="tiny", cache_dir=cache_dir)
    with pytest.raises(ValueError):
        create_engine("uniface", "nonsense")


def test_random_weights_are_flagged(cache_dir):
    engine = create_engine("uniface", "onnxruntime", config="tiny", cache_dir=cache_dir)
    assert engine.info.random_weights and engine.info.model_id.endswith("random")


def test_graph_of_a_model_that_finds_no_face_in_a_blank_image_runs_any_face_count(cache_dir, tmp_path):
    """A trained model scores a blank image as no face: exporting must not bake the trace's
    face count (one throwaway ROI) into the graph. Every count from 0 to K, batch 1 and 2."""
    import cv2
    import torch

    path = spread_weights("tiny", tmp_path / "w.pt")
    state = torch.load(path, weights_only=True)
    for key in [k for k in state["state_dict"] if k.startswith("heads.") and k.endswith("pred.bias")]:
        bias = state["state_dict"][key].view(-1, 16)
        bias[:, 0], bias[:, 1] = 8.0, -8.0  # background logit >> face logit everywhere
    torch.save(state, path)
    ort_engine = OnnxRuntimeBackend(config="tiny", weights=path, cache_dir=cache_dir)
    torch_engine = TorchBackend(config="tiny", weights=path)
    blank = np.zeros((128, 160, 3), np.uint8)
    assert len(ort_engine.infer([blank])[0]) == 0  # what the export used to trace
    # frames of the input's shape: no letterbox padding, so every face the graph returns is kept
    frames = [cv2.resize(f, (320, 256)) for f in _frames()]
    k = ort_engine.max_faces
    for batch in (frames[:1], frames[:2]):
        for n in sorted({0, 1, 2, k // 2 + 1, k}):
            a = ort_engine.infer(batch, score_threshold=-1.0, max_faces=n)
            b = torch_engine.infer(batch, score_threshold=-1.0, max_faces=n)
            for fa, fb in zip(a, b):
                assert len(fa) == len(fb) == n
                np.testing.assert_allclose(np.linalg.norm(fa.embeddings, axis=1), 1.0, atol=1e-4)
                assert n == 0 or np.abs(fa.embeddings - fb.embeddings).max() < 1e-3


def test_graph_runs_nms_on_a_threshold_dependent_number_of_candidates(cache_dir, tmp_path):
    """NMS runs on the candidates above the threshold only, a length known at run time: the
    exported graph (traced with every candidate above it) must agree with PyTorch at any
    threshold, from every candidate to none."""
    path = spread_weights("tiny", tmp_path / "w.pt")
    ort_engine = OnnxRuntimeBackend(config="tiny", weights=path, cache_dir=cache_dir)
    torch_engine = TorchBackend(config="tiny", weights=path)
    frames = _frames()[:2]
    ranked = np.sort(torch_engine.infer(frames[:1], score_threshold=-1.0)[0].scores)[::-1]
    # between the 1st and 2nd, the 3rd and 4th, ... best faces of the first frame: 1, 3, 10 faces
    for threshold in [-1.0, 1.0, *((ranked[i - 1] + ranked[i]) / 2 for i in (1, 3, 10))]:
        a = ort_engine.infer(frames, score_threshold=float(threshold))
        b = torch_engine.infer(frames, score_threshold=float(threshold))
        for fa, fb in zip(a, b):
            assert len(fa) == len(fb) and np.all(fa.scores > threshold)
            np.testing.assert_allclose(fa.boxes, fb.boxes, atol=1e-2)
            assert len(fa) == 0 or np.abs(fa.embeddings - fb.embeddings).max() < 1e-3
        assert [len(f) for f in a][0] == (sum(ranked > threshold) if threshold > -1 else ort_engine.max_faces)


def test_small_frames_are_placed_at_their_own_size_not_enlarged(cache_dir):
    from engines.preprocess import centred_in_frame, letterbox_into

    frame = np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    out = np.full((128, 160, 3), 9, np.uint8)
    placed = letterbox_into(frame, out, max_scale=1.0)
    assert placed.scale == 1.0 and np.array_equal(out[:96, :128], frame) and not out[96:].any()
    assert letterbox_into(frame, out).scale == 1.25  # uncapped: enlarged to fill the input

    engine = OnnxRuntimeBackend(config="tiny", cache_dir=cache_dir)
    assert engine.max_upscale == 1.0 and engine.input_size == (160, 128)
    padded = np.zeros((128, 160, 3), np.uint8)
    padded[:96, :128] = frame
    small, big = engine.infer([frame, padded], score_threshold=-1.0)
    # the network saw the same pixels either way, so the faces are the same, less those
    # centred on what is padding for the small frame
    on_small = centred_in_frame(big.boxes, (128, 96))
    assert 0 < on_small.sum() < len(big)
    np.testing.assert_allclose(small.boxes, np.minimum(big.boxes[on_small], [128, 96, 128, 96]), atol=1e-3)
    np.testing.assert_allclose(small.embeddings, big.embeddings[on_small], atol=1e-5)


def test_the_letterbox_buffer_is_reused_per_thread_and_grown_for_larger_batches():
    import threading

    engine = TorchBackend(config="tiny", input_size=(96, 64))
    frame = np.full((64, 96, 3), 100, np.uint8)
    engine.infer([frame])
    first = engine._staging(1)
    engine.infer([frame, frame, frame])
    grown = engine._staging(1)
    assert grown.shape == (3, 64, 96, 3) and grown is not first
    engine.infer([frame])
    assert engine._staging(1) is grown  # a smaller batch keeps the larger buffer
    other = []
    thread = threading.Thread(target=lambda: other.append(engine._staging(1)))
    thread.start()
    thread.join()
    assert other[0] is not grown  # threads never share a buffer they may be writing


def test_boxes_centred_on_the_letterbox_padding_are_dropped_and_the_rest_mapped_to_the_frame():
    from engines.preprocess import Letterbox, RawOutputs, to_faces

    # a 200x100 frame placed at scale 2 fills 400x200 of the input; everything else is padding
    boxes = np.array([[[40, 40, 120, 160],      # a face on the frame
                       [360, 150, 440, 250],    # cut by the frame's corner, centre (400, 200): kept
                       [420, 20, 600, 300],     # on the padding (centre x 510 > 400)
                       [100, 180, 300, 470]]],  # on the padding below (centre y 325 > 200)
                     np.float32)
    k = boxes.shape[1]
    raw = RawOutputs(boxes=boxes, scores=np.array([[0.99, 0.98, 0.97, 0.96]], np.float32),
                     landmarks=np.tile(boxes[..., None, :2], (1, 1, 5, 1)),
                     embeddings=np.eye(k, 128, dtype=np.float32)[None], count=np.array([k], np.int32))
    faces = to_faces(raw, [Letterbox(scale=2.0, frame_size=(200, 100))])[0]
    assert len(faces) == 2
    np.testing.assert_allclose(faces.boxes, [[20, 20, 60, 80], [180, 75, 200, 100]])  # clipped to the frame
    np.testing.assert_allclose(faces.scores, [0.99, 0.98])
    np.testing.assert_allclose(faces.landmarks[:, 0], [[20, 20], [180, 75]])
    assert faces.embeddings[1].argmax() == 1  # rows stay together


def _threshold_between(scores: np.ndarray) -> float:
    """A detection threshold halfway between two neighbouring distinct scores near the middle."""
    distinct = np.unique(scores)
    mid = len(distinct) // 2
    return float((distinct[mid - 1] + distinct[mid]) / 2)


def test_weights_carry_their_own_detection_threshold_to_every_backend(cache_dir, tmp_path):
    import torch

    from engines.model.weights import DEFAULT_DETECTION_THRESHOLD, load_model, publish_weights

    raw = spread_weights("tiny", tmp_path / "raw.pt")
    frame = _frames()[2]
    assert TorchBackend(config="tiny", weights=raw).score_threshold == DEFAULT_DETECTION_THRESHOLD
    scores = TorchBackend(config="tiny", weights=raw).infer([frame], score_threshold=-1.0)[0].scores
    own = _threshold_between(scores)
    assert 0 < own < 1 and (scores > own).sum() != (scores > DEFAULT_DETECTION_THRESHOLD).sum()

    published = tmp_path / "published.pt"
    meta = publish_weights(raw, published, detection_threshold=own)
    assert meta.detection_threshold == own
    for engine in (TorchBackend(config="tiny", weights=published),
                   OnnxRuntimeBackend(config="tiny", weights=published, cache_dir=cache_dir)):
        assert engine.score_threshold == pytest.approx(own, abs=1e-12), engine.info.backend
        faces = engine.infer([frame])[0]  # no threshold asked: the weights' own
        assert len(faces) == (scores > own).sum() and (faces.scores > own).all()
        assert len(engine.infer([frame], score_threshold=0.999)[0]) < len(faces)  # asked: it wins

    # published weights given again: the parameters and their summary stay, only the threshold changes;
    # the export cached under the same model id must not hand back the old threshold
    again = publish_weights(published, tmp_path / "again.pt", detection_threshold=0.75)
    assert (again.model_id, again.trained) == (meta.model_id, meta.trained) and again.detection_threshold == 0.75
    assert OnnxRuntimeBackend(config="tiny", weights=tmp_path / "again.pt", cache_dir=cache_dir).score_threshold == 0.75
    assert publish_weights(published, tmp_path / "kept.pt").detection_threshold == pytest.approx(own, abs=1e-12)

    payload = torch.load(published, weights_only=True)
    for bad in (1.5, 0.0, "high"):
        torch.save({**payload, "detection_threshold": bad}, tmp_path / "bad.pt")
        with pytest.raises(ValueError, match="detection threshold must be between 0 and 1"):
            load_model("tiny", tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="detection threshold"):
        publish_weights(raw, tmp_path / "x.pt", detection_threshold=1.0)


def test_torch_fp16_runs_under_autocast_and_stays_within_the_fp16_tolerance_of_fp32():
    """FP16 (autocast: convolutions in half precision) on the shipped model and the sample face;
    on the CPU here, on CUDA in scripts/gpu_check.py. Outputs come back as float32."""
    from engines.eval.backend_match import FP16_TOLERANCE, compare_runs

    frames = _frames()[:2]
    fp32 = TorchBackend(device="cpu")
    fp16 = TorchBackend(device="cpu", precision="fp16")
    assert fp16.precision == "fp16" and fp32.precision == "fp32"
    from engines.preprocess import letterbox_batch

    batch, _ = letterbox_batch(frames[:1], fp16.input_size)
    raw = fp16._run(batch, fp16.score_threshold, 8)
    assert raw.boxes.dtype == raw.scores.dtype == raw.landmarks.dtype == raw.embeddings.dtype == np.float32
    assert raw.count.dtype == np.int32 and raw.count[0] >= 1
    a, b = fp32.infer(frames), fp16.infer(frames)
    r = compare_runs(a, b, fp32.score_threshold, FP16_TOLERANCE)
    assert r.ok and r.matched >= 1, r.problems
    assert 0 < r.max_landmark_px < 3.0 and 0.9 < r.min_cosine < 1.0  # half precision moves it, a little


def test_torch_backend_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="unknown precision 'int8'; choose from fp32, fp16"):
        TorchBackend(config="tiny", precision="int8")


def test_a_crowd_keeps_more_faces_than_the_old_cap(cache_dir):
    """A frame of 120 faces (the sample's face tiled 12 x 10): the shipped graph finds nearly all of
    them, where its K of 64 (export version 6 and before) kept 64 at most."""
    import cv2

    img = cv2.imread(str(SAMPLE_IMAGE))
    (x1, y1, x2, y2), = OnnxRuntimeBackend(cache_dir=cache_dir).infer([img])[0].boxes.astype(int)
    side = int(1.8 * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    face = cv2.resize(img[max(0, cy - side // 2):cy + side // 2, max(0, cx - side // 2):cx + side // 2], (106, 96))
    crowd = np.tile(face, (10, 12, 1))  # 960 x 1272
    engine = OnnxRuntimeBackend(cache_dir=cache_dir, input_size=(1280, 960))
    faces = engine.infer([crowd])[0]
    assert engine.max_faces >= 120
    assert len(faces) >= 110
    # one box a tile: no tile twice, none between tiles
    cells = {(int((b[0] + b[2]) / 2 // 106), int((b[1] + b[3]) / 2 // 96)) for b in faces.boxes}
    assert len(cells) == len(faces)
