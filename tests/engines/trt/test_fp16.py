"""FP16 ONNX with FP32 I/O: types, kept-FP32 regions, and the same detections under ONNX Runtime."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from app.paths import SAMPLE_IMAGE
from engines.preprocess import letterbox_batch
from engines.trt.fp16 import FP16_CONVERTER_VERSION, contract_feeds, convert_model
from engines.trt.fp16_check import Fp16Overflow, check_fp16, convert_file, simulate_fp16_storage

CONTRACT_K = 8
CONTRACT_SIZE = (128, 96)  # (w, h), multiples of 4


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def build_contract_model(k: int = CONTRACT_K, seed: int = 0) -> onnx.ModelProto:
    """A small graph with the Uniface I/O contract and its kinds of ops.

    images (N,H,W,3) uint8 -> normalise in-graph -> two convs -> top-down Resize + lateral
    (F_r) -> score/box/landmark head -> anchors computed from Shape (float shape arithmetic)
    -> TopK K -> decode with Exp -> threshold compare -> NonZero over valid faces ->
    GridSample per face from F_r -> Gemm -> L2 norm -> ScatterND back to (N,K,128).
    """
    rng = np.random.default_rng(seed)

    def conv_w(o, i, kk):
        return (rng.normal(0, 1.0 / np.sqrt(i * kk * kk), (o, i, kk, kk))).astype(np.float32)

    G = 4  # face grid samples per side
    inits = [
        _init("mean", np.array([104.0, 117.0, 123.0], np.float32)),
        _init("inv_std", np.array([1 / 58.0, 1 / 57.0, 1 / 57.5], np.float32)),
        _init("w1", conv_w(8, 3, 3)), _init("b1", rng.normal(0, 0.1, 8).astype(np.float32)),
        _init("w2", conv_w(16, 8, 3)), _init("b2", rng.normal(0, 0.1, 16).astype(np.float32)),
        _init("w3", conv_w(16, 8, 1)),
        _init("wh", conv_w(15, 16, 1) * 3.0), _init("bh", rng.normal(0, 0.5, 15).astype(np.float32)),
        _init("we", (rng.normal(0, 1 / 16, (16 * G * G, 128))).astype(np.float32)),
        _init("be", rng.normal(0, 0.1, 128).astype(np.float32)),
        _init("up_scales", np.array([1, 1, 2, 2], np.float32)),
        _init("k", np.array([k], np.int64)),
        _init("t", ((np.arange(G) + 0.5) / G).astype(np.float32)),
        _init("i0", np.array(0, np.int64)), _init("i1", np.array(1, np.int64)),
        _init("i2", np.array(2, np.int64)), _init("i3", np.array(3, np.int64)),
        _init("ax0", np.array([0], np.int64)), _init("ax1", np.array([1], np.int64)),
        _init("axm1", np.array([-1], np.int64)),
        _init("g_", np.array([G], np.int64)), _init("d128", np.array([128], np.int64)),
        _init("kk", np.array([k], np.int64)), _init("kscalar", np.array(k, np.int64)),
        _init("k32", np.arange(k, dtype=np.int32)),
        _init("flat15", np.array([0, 15, -1], np.int64)),
        _init("lm_shape", np.array([0, 0, 5, 2], np.int64)),
        _init("minus1", np.array([-1], np.int64)), _init("four", np.array([-1, 4], np.int64)),
    ]
    C = lambda name, value: h.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32)))  # noqa: E731
    n = h.make_node
    nodes = [
        C("half", 0.5), C("stride", 4.0), C("size", 16.0), C("two", 2.0), C("one", 1.0), C("eps", 1e-6),
        # normalise (in the graph, as the contract says) and NHWC -> NCHW
        n("Cast", ["images"], ["xf"], to=T.FLOAT),
        n("Sub", ["xf", "mean"], ["xc"]), n("Mul", ["xc", "inv_std"], ["xn"]),
        n("Transpose", ["xn"], ["x"], perm=[0, 3, 1, 2]),
        n("Conv", ["x", "w1", "b1"], ["c1p"], strides=[2, 2], pads=[1, 1, 1, 1]), n("Relu", ["c1p"], ["c1"]),
        n("Conv", ["c1", "w2", "b2"], ["c2p"], strides=[2, 2], pads=[1, 1, 1, 1]), n("Relu", ["c2p"], ["c2"]),
        # top-down: upsample + lateral = F_r at stride 2
        n("Resize", ["c2", "", "up_scales"], ["up"], mode="nearest"),
        n("Conv", ["c1", "w3"], ["lat"]), n("Add", ["up", "lat"], ["frp"]), n("Relu", ["frp"], ["fr"]),
        # head
        n("Conv", ["c2", "wh", "bh"], ["head"]), n("Reshape", ["head", "flat15"], ["hf"]),
        n("Split", ["hf", "head_split"], ["logit3", "deltas", "lms"], axis=1),
        n("Squeeze", ["logit3", "ax1"], ["logit"]), n("Sigmoid", ["logit"], ["all_scores"]),
        # anchors from Shape(c2): float shape arithmetic
        n("Shape", ["c2"], ["s2"]), n("Gather", ["s2", "i2"], ["hh"]), n("Gather", ["s2", "i3"], ["ww"]),
        n("Range", ["i0", "hh", "i1"], ["ry"]), n("Range", ["i0", "ww", "i1"], ["rx"]),
        n("Cast", ["ry"], ["ryf"], to=T.FLOAT), n("Cast", ["rx"], ["rxf"], to=T.FLOAT),
        n("Add", ["ryf", "half"], ["ryh"]), n("Mul", ["ryh", "stride"], ["cy"]),
        n("Add", ["rxf", "half"], ["rxh"]), n("Mul", ["rxh", "stride"], ["cx"]),
        n("Unsqueeze", ["hh", "ax0"], ["hh1"]), n("Unsqueeze", ["ww", "ax0"], ["ww1"]),
        n("Concat", ["hh1", "ww1"], ["hw"], axis=0),
        n("Unsqueeze", ["cy", "ax1"], ["cy2"]), n("Expand", ["cy2", "hw"], ["cyg"]),
        n("Unsqueeze", ["cx", "ax0"], ["cx2"]), n("Expand", ["cx2", "hw"], ["cxg"]),
        n("Reshape", ["cxg", "minus1"], ["acx"]), n("Reshape", ["cyg", "minus1"], ["acy"]),
        # top K candidates
        n("TopK", ["all_scores", "k"], ["top_s", "top_i"], axis=1),
        n("Unsqueeze", ["top_i", "ax1"], ["top_i1"]),
        n("Shape", ["deltas"], ["sd"]), n("Slice", ["sd", "ax0", "ax1"], ["sd_n"]),
        n("Concat", ["sd_n", "four_c", "kk"], ["idx4_shape"], axis=0),
        n("Concat", ["sd_n", "ten_c", "kk"], ["idx10_shape"], axis=0),
        n("Expand", ["top_i1", "idx4_shape"], ["idx4"]), n("Expand", ["top_i1", "idx10_shape"], ["idx10"]),
        n("GatherElements", ["deltas", "idx4"], ["d"], axis=2),
        n("GatherElements", ["lms", "idx10"], ["l"], axis=2),
        n("Gather", ["acx", "top_i"], ["ax"]), n("Gather", ["acy", "top_i"], ["ay"]),
        n("Split", ["d"], ["dx3", "dy3", "dw3", "dh3"], axis=1, num_outputs=4),
        n("Squeeze", ["dx3", "ax1"], ["dx"]), n("Squeeze", ["dy3", "ax1"], ["dy"]),
        n("Squeeze", ["dw3", "ax1"], ["dw"]), n("Squeeze", ["dh3", "ax1"], ["dh"]),
        n("Mul", ["dx", "size"], ["dxs"]), n("Add", ["ax", "dxs"], ["bcx"]),
        n("Mul", ["dy", "size"], ["dys"]), n("Add", ["ay", "dys"], ["bcy"]),
        n("Exp", ["dw"], ["ew"]), n("Mul", ["ew", "size"], ["bw"]),
        n("Exp", ["dh"], ["eh"]), n("Mul", ["eh", "size"], ["bh_"]),
        n("Mul", ["bw", "half"], ["hw_"]), n("Mul", ["bh_", "half"], ["hh_"]),
        n("Sub", ["bcx", "hw_"], ["x1"]), n("Sub", ["bcy", "hh_"], ["y1"]),
        n("Add", ["bcx", "hw_"], ["x2"]), n("Add", ["bcy", "hh_"], ["y2"]),
        *[n("Unsqueeze", [v, "axm1"], [v + "_u"]) for v in ("x1", "y1", "x2", "y2", "ax", "ay")],
        n("Concat", ["x1_u", "y1_u", "x2_u", "y2_u"], ["boxes"], axis=-1),
        # landmarks: anchor + offsets * size
        n("Transpose", ["l"], ["lt"], perm=[0, 2, 1]), n("Reshape", ["lt", "lm_shape"], ["l52"]),
        n("Mul", ["l52", "size"], ["l52s"]), n("Concat", ["ax_u", "ay_u"], ["axy"], axis=-1),
        n("Unsqueeze", ["axy", "axm1_2"], ["axy2"]), n("Add", ["l52s", "axy2"], ["landmarks"]),
        # validity: FP32 threshold compare, max_faces cut
        n("Greater", ["top_s", "score_threshold"], ["above"]),
        n("Less", ["k32", "max_faces"], ["within"]), n("And", ["above", "within"], ["valid"]),
        n("Cast", ["valid"], ["valid_i"], to=T.INT32),
        n("ReduceSum", ["valid_i", "ax1"], ["count"], keepdims=0),
        n("Cast", ["valid"], ["valid_f"], to=T.FLOAT), n("Mul", ["top_s", "valid_f"], ["scores"]),
        # embeddings for valid faces only: NonZero makes the shapes data dependent
        n("Reshape", ["valid", "minus1"], ["vflat"]), n("NonZero", ["vflat"], ["nz"]),
        n("Squeeze", ["nz", "ax0"], ["sel"]),
        n("Reshape", ["boxes", "four"], ["boxes_flat"]), n("Gather", ["boxes_flat", "sel"], ["sb"]),
        n("Div", ["sel", "kscalar"], ["bidx"]), n("Gather", ["fr", "bidx"], ["feat"], axis=0),
        n("Split", ["sb"], ["sx1", "sy1", "sx2", "sy2"], axis=1, num_outputs=4),
        n("Shape", ["images"], ["si"]), n("Gather", ["si", "i1"], ["Hin"]), n("Gather", ["si", "i2"], ["Win"]),
        n("Cast", ["Hin"], ["Hf"], to=T.FLOAT), n("Cast", ["Win"], ["Wf"], to=T.FLOAT),
        n("Div", ["two", "Wf"], ["sxn"]), n("Div", ["two", "Hf"], ["syn"]),
        n("Sub", ["sx2", "sx1"], ["sw"]), n("Mul", ["sw", "t"], ["swt"]), n("Add", ["sx1", "swt"], ["gx"]),
        n("Sub", ["sy2", "sy1"], ["sh"]), n("Mul", ["sh", "t"], ["sht"]), n("Add", ["sy1", "sht"], ["gy"]),
        n("Mul", ["gx", "sxn"], ["gx2"]), n("Sub", ["gx2", "one"], ["gxn"]),
        n("Mul", ["gy", "syn"], ["gy2"]), n("Sub", ["gy2", "one"], ["gyn"]),
        n("Shape", ["sel"], ["m"]), n("Concat", ["m", "g_", "g_"], ["mgg"], axis=0),
        n("Unsqueeze", ["gxn", "ax1"], ["gx3"]), n("Expand", ["gx3", "mgg"], ["gxe"]),
        n("Unsqueeze", ["gyn", "axm1"], ["gy3"]), n("Expand", ["gy3", "mgg"], ["gye"]),
        n("Unsqueeze", ["gxe", "axm1"], ["gx4"]), n("Unsqueeze", ["gye", "axm1"], ["gy4"]),
        n("Concat", ["gx4", "gy4"], ["grid"], axis=-1),
        n("GridSample", ["feat", "grid"], ["roi"], align_corners=0, mode="bilinear"),
        n("Flatten", ["roi"], ["rv"], axis=1), n("Gemm", ["rv", "we", "be"], ["e0"]),
        n("ReduceL2", ["e0", "ax1"], ["en"], keepdims=1), n("Max", ["en", "eps"], ["en2"]),
        n("Div", ["e0", "en2"], ["e"]),
        n("Shape", ["vflat"], ["nk"]), n("Concat", ["nk", "d128"], ["nk128"], axis=0),
        n("ConstantOfShape", ["nk128"], ["zeros"], value=numpy_helper.from_array(np.zeros(1, np.float32))),
        n("Unsqueeze", ["sel", "axm1"], ["sel2"]), n("ScatterND", ["zeros", "sel2", "e"], ["ef"]),
        n("Concat", ["sd_n", "kk", "d128"], ["nk_128"], axis=0),
        n("Reshape", ["ef", "nk_128"], ["embeddings"]),
    ]
    inits += [_init("four_c", np.array([4], np.int64)), _init("ten_c", np.array([10], np.int64)),
              _init("axm1_2", np.array([-2], np.int64)), _init("head_split", np.array([1, 4, 10], np.int64))]
    graph = h.make_graph(
        nodes,
        "contract",
        [
            h.make_tensor_value_info("images", T.UINT8, ["batch", "height", "width", 3]),
            h.make_tensor_value_info("score_threshold", T.FLOAT, [1]),
            h.make_tensor_value_info("max_faces", T.INT32, [1]),
        ],
        [
            h.make_tensor_value_info("boxes", T.FLOAT, ["batch", k, 4]),
            h.make_tensor_value_info("scores", T.FLOAT, ["batch", k]),
            h.make_tensor_value_info("landmarks", T.FLOAT, ["batch", k, 5, 2]),
            h.make_tensor_value_info("embeddings", T.FLOAT, ["batch", k, 128]),
            h.make_tensor_value_info("count", T.INT32, ["batch"]),
        ],
        initializer=inits,
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], producer_name="unisight-tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def save_contract_model(path: Path, **kw) -> Path:
    path.write_bytes(build_contract_model(**kw).SerializeToString())
    return path


def contract_frames() -> list[np.ndarray]:
    """The sample photo letterboxed, plus a textured synthetic frame."""
    rng = np.random.default_rng(3)
    photo = cv2.imread(str(SAMPLE_IMAGE))
    noise = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    batch, _ = letterbox_batch([photo, noise], CONTRACT_SIZE)
    return batch


def run_ort(model: onnx.ModelProto, batch: np.ndarray, thr: float, max_faces: int = 100):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": batch, "score_threshold": np.array([thr], np.float32),
                           "max_faces": np.array([max_faces], np.int32)})


def well_separated_threshold(scores: np.ndarray, margin: float = 0.02) -> float:
    """A threshold inside the widest gap between candidate scores, at least `margin` from any.

    FP16 moves scores by ~1e-3; a threshold that close to a score would make the face count
    a coin toss rather than a test of the conversion.
    """
    s = np.sort(np.unique(scores.ravel()))
    gaps = np.diff(s)
    i = int(np.argmax(gaps[1:-1])) + 1 if len(gaps) > 2 else int(np.argmax(gaps))
    assert gaps[i] > 2 * margin, f"scores leave no gap for a threshold: {s}"
    return float((s[i] + s[i + 1]) / 2)


def match_faces(boxes_a, boxes_b):
    """Index into b of the nearest box to each box of a (FP16 may swap near-equal scores)."""
    d = np.abs(boxes_a[:, None, :] - boxes_b[None, :, :]).max(-1)
    return d.argmin(1), d.min(1)


def assert_same_detections(ref, got, box_px=1.0, cos_min=0.99):
    boxes_a, scores_a, lm_a, emb_a, count_a = ref
    boxes_b, scores_b, lm_b, emb_b, count_b = got
    np.testing.assert_array_equal(count_a, count_b)
    for i, c in enumerate(count_a):
        if c == 0:
            continue
        j, dist = match_faces(boxes_a[i, :c], boxes_b[i, :c])
        assert sorted(j) == list(range(c)), "FP16 faces are not the same faces"
        assert dist.max() < box_px, f"box error {dist.max():.3f} px"
        assert np.abs(lm_a[i, :c] - lm_b[i, j]).max() < box_px
        assert np.abs(scores_a[i, :c] - scores_b[i, j]).max() < 0.01
        cos = (emb_a[i, :c] * emb_b[i, j]).sum(-1) / (
            np.linalg.norm(emb_a[i, :c], axis=-1) * np.linalg.norm(emb_b[i, j], axis=-1))
        assert cos.min() > cos_min, f"embedding cosine {cos.min():.4f}"


def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    t = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    t.update({i.name: i.data_type for i in g.initializer})
    return t


@pytest.fixture(scope="module")
def contract_pair():
    fp32 = build_contract_model()
    fp16, report = convert_model(fp32)
    return fp32, fp16, report


def test_io_types_stay_and_weights_become_fp16(contract_pair):
    fp32, fp16, report = contract_pair
    io = lambda m: [(v.name, v.type.tensor_type.elem_type) for v in [*m.graph.input, *m.graph.output]]  # noqa: E731
    assert io(fp16) == io(fp32)
    assert [t for _, t in io(fp16)] == [T.UINT8, T.FLOAT, T.INT32, T.FLOAT, T.FLOAT, T.FLOAT, T.FLOAT, T.INT32]
    inits = {i.name: i.data_type for i in fp16.graph.initializer}
    for w in ("w1", "w2", "w3", "wh", "we", "mean", "inv_std"):
        assert inits[w] == T.FLOAT16, w
    assert inits["up_scales"] == T.FLOAT  # Resize scales are float32 by the ONNX spec
    assert report.fp16_nodes > 40 and report.casts_added > 0 and report.initializers_converted >= 9
    # the FP32 result of every FP16 output is the graph output itself: a Cast back, by name
    producers = {o: nd for nd in fp16.graph.node for o in nd.output}
    for name in ("boxes", "landmarks", "embeddings", "scores"):
        assert producers[name].op_type == "Cast", name
    assert producers["count"].op_type == "ReduceSum"  # int32, untouched


def test_precision_sensitive_and_shape_math_stay_fp32(contract_pair):
    _, fp16, report = contract_pair
    types = _types(fp16)
    by_op = {}
    for nd in fp16.graph.node:
        by_op.setdefault(nd.op_type, []).append(nd)
    for op in ("TopK", "Greater", "Exp", "ReduceL2"):
        for nd in by_op[op]:
            assert types[nd.input[0]] == T.FLOAT, (op, nd.input[0])
            assert report.kept_ops[op] >= 1
    # the threshold compare sees the graph's float32 input directly
    assert by_op["Greater"][0].input[1] == "score_threshold"
    # anchor grid (computed from Shape) and the image-size scale factors stay float32
    for name in ("cx", "cy", "acx", "acy", "Wf", "Hf", "sxn", "zeros"):
        assert types[name] == T.FLOAT, name
    assert report.constant_math_nodes >= 10
    # the data path is FP16: normalisation, convs, F_r, grid sampling, embeddings before the norm
    for name in ("xf", "x", "c1", "c2", "fr", "all_scores", "roi", "e0", "e"):
        assert types[name] == T.FLOAT16, name
    # Cast nodes of the data path now produce FP16 (uint8 images -> FP16)
    first_cast = next(nd for nd in fp16.graph.node if nd.op_type == "Cast" and nd.input[0] == "images")
    assert first_cast.attribute[0].i == T.FLOAT16


def test_fp16_graph_gives_the_same_detections(contract_pair):
    fp32, fp16, _ = contract_pair
    batch = contract_frames()
    scores = run_ort(fp32, batch, thr=2.0)[1]  # thr 2: no faces, but scores of the top K come out
    raw = run_ort(fp32, batch, thr=-1.0)[1]
    thr = well_separated_threshold(raw)
    ref = run_ort(fp32, batch, thr)
    native = run_ort(fp16, batch, thr)  # ONNX Runtime loads and runs the FP16 graph itself
    assert native[0].dtype == np.float32 and native[4].dtype == np.int32
    assert_same_detections(ref, native)
    # ...but upcasts most FP16 ops; the faithful check rounds every FP16 tensor like TensorRT stores it
    sim = simulate_fp16_storage(fp16)
    got = run_ort(sim, batch, thr)
    assert ref[4].sum() > 0 and (ref[4] < CONTRACT_K).any(), f"threshold {thr} keeps {ref[4]} faces"
    assert np.all(scores == 0)
    assert_same_detections(ref, got)
    assert np.abs(got[0] - ref[0]).max() > 0  # FP16 rounding really happened
    # max_faces is honoured the same way
    assert_same_detections(run_ort(fp32, batch, -1.0, 3), run_ort(sim, batch, -1.0, 3))


def test_small_constants_are_clamped_not_zeroed():
    x = h.make_tensor_value_info("x", T.FLOAT, [4])
    y = h.make_tensor_value_info("y", T.FLOAT, [4])
    nodes = [
        h.make_node("Constant", [], ["tiny"], value=numpy_helper.from_array(np.array(1e-10, np.float32))),
        h.make_node("Constant", [], ["huge"], value_float=1e6),
        h.make_node("Add", ["x", "tiny"], ["a"]),
        h.make_node("Min", ["a", "huge"], ["y"]),
    ]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y]), opset_imports=[h.make_opsetid("", 18)])
    fp16, report = convert_model(model)
    assert report.values_clamped == 2 and report.constants_converted == 2
    consts = {nd.output[0]: numpy_helper.to_array(nd.attribute[0].t) for nd in fp16.graph.node
              if nd.op_type == "Constant"}
    assert consts["tiny"].dtype == np.float16 and consts["tiny"] > 0
    assert consts["huge"] == np.float16(65504)
    out = run_single(fp16, {"x": np.array([1, 2, 70000, -3], np.float32)})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [1, 2, 65504, -3], rtol=1e-3)


def run_single(model, feed):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)[0]


def test_keep_nodes_by_name_and_mixed_consumers_get_a_twin():
    x = h.make_tensor_value_info("x", T.FLOAT, [2, 3])
    y = h.make_tensor_value_info("y", T.FLOAT, [2, 3])
    z = h.make_tensor_value_info("z", T.FLOAT, [2, 3])
    w = numpy_helper.from_array(np.full((2, 3), 0.25, np.float32), "w")
    nodes = [h.make_node("Mul", ["x", "w"], ["y"], name="fast"), h.make_node("Add", ["x", "w"], ["z"], name="exact")]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y, z], initializer=[w]), opset_imports=[h.make_opsetid("", 18)])
    fp16, report = convert_model(model, keep_fp32_nodes=("exact",))
    inits = {i.name: i.data_type for i in fp16.graph.initializer}
    assert inits == {"w": T.FLOAT, "w__fp16": T.FLOAT16}
    assert report.initializers_duplicated == 1 and report.kept_ops["Add"] == 1
    sess = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    ys, zs = sess.run(None, {"x": np.ones((2, 3), np.float32)})
    np.testing.assert_allclose(ys, 0.25) and np.testing.assert_allclose(zs, 1.25)


def test_control_flow_is_refused_clearly():
    x = h.make_tensor_value_info("x", T.BOOL, [])
    y = h.make_tensor_value_info("y", T.FLOAT, [1])
    branch = lambda v: h.make_graph(  # noqa: E731
        [h.make_node("Constant", [], ["o"], value=numpy_helper.from_array(np.array([v], np.float32)))],
        "b", [], [h.make_tensor_value_info("o", T.FLOAT, [1])])
    node = h.make_node("If", ["x"], ["y"], then_branch=branch(1.0), else_branch=branch(2.0))
    model = h.make_model(h.make_graph([node], "g", [x], [y]), opset_imports=[h.make_opsetid("", 18)])
    with pytest.raises(ValueError, match="control flow"):
        convert_model(model)


def test_real_uniface_export_converts_and_matches(tmp_path, cache_dir):
    """The lead's exported tiny network (seeded spread weights) through the same conversion."""
    from engines.model.onnx_file import resolve_onnx
    from tests.engines.backends.test_backends import spread_weights

    weights = spread_weights("tiny", tmp_path / "w.pt")
    src, meta = resolve_onnx("tiny", weights, cache_dir)
    dst = tmp_path / "tiny_fp16.onnx"
    report = convert_file(src, dst, calibration=contract_feeds((160, 128)))  # checks for overflow too
    fp32, fp16 = onnx.load(str(src)), onnx.load(str(dst))
    assert report.fp16_nodes > 100 and FP16_CONVERTER_VERSION >= 1
    assert [(v.name, v.type.tensor_type.elem_type) for v in fp16.graph.input] == [
        ("images", T.UINT8), ("score_threshold", T.FLOAT), ("max_faces", T.INT32)]
    assert all(v.type.tensor_type.elem_type in (T.FLOAT, T.INT32) for v in fp16.graph.output)
    rng = np.random.default_rng(0)
    photo = cv2.imread(str(SAMPLE_IMAGE))
    frames = [np.clip(f + rng.normal(0, 6, f.shape), 0, 255).astype(np.uint8)
              for f in (photo, rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))]
    batch, _ = letterbox_batch(frames, (160, 128))
    thr = well_separated_threshold(run_ort(fp32, batch, -1.0)[1], margin=0.01)
    ref, got = run_ort(fp32, batch, thr), run_ort(simulate_fp16_storage(fp16), batch, thr)
    assert ref[4].sum() > 0 and report.range_nodes > 0
    assert_same_detections(ref, got)


def test_calibration_keeps_large_values_fp32():
    """Box areas overflow FP16 (w*h > 65504 for faces over ~256 px): calibration catches them."""
    x = h.make_tensor_value_info("x", T.FLOAT, ["n"])
    y = h.make_tensor_value_info("y", T.FLOAT, ["n"])
    z = h.make_tensor_value_info("z", T.FLOAT, ["n"])
    c = numpy_helper.from_array(np.array(100.0, np.float32), "c")
    nodes = [h.make_node("Mul", ["x", "x"], ["area"]), h.make_node("Div", ["area", "c"], ["y"]),
             h.make_node("Relu", ["x"], ["z"])]
    model = h.make_model(h.make_graph(nodes, "g", [x], [y, z], initializer=[c]), opset_imports=[h.make_opsetid("", 18)])
    feed = {"x": np.array([300.0, -250.0, 10.0], np.float32)}
    naive, _ = convert_model(model)
    assert np.isinf(run_single(simulate_fp16_storage(naive), feed)).any()  # a 300 px box's area in FP16
    with pytest.raises(Fp16Overflow, match="non-finite values in 'y'"):
        check_fp16(model, naive, feed)
    safe, report = convert_model(model, calibration={"x": np.array([2.0, 3.0], np.float32)})
    assert report.range_nodes == 0  # small calibration values: nothing to protect
    safe, report = convert_model(model, calibration=feed)
    assert report.range_nodes == 2 and report.fp16_nodes == 1  # Mul and Div; Relu (|x| <= 300) stays FP16
    np.testing.assert_allclose(run_single(simulate_fp16_storage(safe), feed), [900.0, 625.0, 1.0], rtol=1e-6)
    assert check_fp16(model, safe, feed)["y"] == 0.0


def test_contract_calibration_at_a_large_input_keeps_pixel_math_fp32():
    from engines.trt.fp16 import contract_feeds

    model = build_contract_model()
    _, small = convert_model(model, calibration=contract_feeds((128, 96), batch=1))
    fp16, big = convert_model(model, calibration=contract_feeds((800, 608), batch=1))
    assert big.range_nodes > small.range_nodes
    types = _types(fp16)
    for name in ("x1", "y1", "x2", "y2", "bcx", "gx"):  # pixel coordinates up to 800
        assert types[name] == T.FLOAT, name
    for name in ("c1", "c2", "fr", "roi"):  # the feature path stays FP16
        assert types[name] == T.FLOAT16, name
