"""An FP16 copy of an FP32 ONNX graph whose inputs and outputs keep their types.

TensorRT 11 and TensorRT-RTX build only strongly typed networks, and TensorRT 10 needs the
STRONGLY_TYPED flag for the same file: the precision of every layer is the precision of its
tensors in the ONNX graph. So FP16 is made here, in the graph:

- every node that computes on float data runs in FP16, its float initializers and
  constants stored as FP16 (values beyond the FP16 range clamped, counted in the report);
- nodes that must stay FP32 keep FP32 inputs: precision-sensitive ops (`KEEP_FP32_OPS`:
  the score/threshold compares, TopK and NMS ordering, exp/log/pow, sums and norms),
  inputs the ONNX spec fixes to float32 (`FP32_ONLY_INPUTS`, e.g. Resize scales), and all
  *shape and constant arithmetic* (float nodes none of whose inputs derive from a graph
  input's values: anchor grids, scale factors computed from `Shape`), which TensorRT folds;
- with calibration inputs (`contract_feeds`), every node that reads or writes values beyond
  `DATA_MAX` in an FP32 run stays FP32: pixel coordinates above 512 (FP16 step >= 0.5 px),
  NMS box areas (w*h overflows FP16's 65504 for faces larger than ~256 px), big logits;
- Cast nodes sit wherever an FP16 producer meets an FP32 consumer or the reverse; graph
  inputs (uint8 images, float32 threshold, int32 max faces) are cast after entry and FP16
  graph outputs are cast back to float32 before exit, so callers see the same I/O types.

Control flow (If/Loop/Scan) is not supported: the Uniface export has none.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


log = logging.getLogger(__name__)

FP16_CONVERTER_VERSION = 1  # part of the engine cache key: bump when the conversion changes

KEEP_FP32_OPS = frozenset({
    # comparisons: the score threshold compare must see FP32 scores and threshold
    "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Equal",
    # ordering and suppression: FP16 ties reorder faces, IoU thresholds shift
    "TopK", "NonMaxSuppression",
    # range: exp overflows FP16 above 11, log/pow/sqrt lose small values
    "Exp", "Log", "Pow", "Sqrt", "Reciprocal", "Softplus",
    # accumulations that overflow or lose precision in FP16
    "ReduceSum", "ReduceSumSquare", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "LpNormalization", "CumSum",
    "LayerNormalization", "InstanceNormalization", "GroupNormalization",
    # generators and dequantisation: their output type is an attribute, not an input's
    "Range", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
    "Multinomial", "EyeLike", "DequantizeLinear",
})
# inputs the ONNX spec types as float32 whatever the data type (input index per op)
FP32_ONLY_INPUTS = {"Resize": frozenset({2}), "Upsample": frozenset({1})}
# ops that accept any element type and only look at shapes
ANY_TYPE_OPS = frozenset({"Shape", "Size"})
CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})
# ops whose outputs are taken from (or bounded by) these inputs: |out| <= max |in|. Calibration
# sees only the values its inputs select (e.g. K gathered anchors); the bound covers the rest.
BOUNDED_BY_INPUTS = {
    **dict.fromkeys(("Gather", "GatherElements", "GatherND", "Reshape", "Transpose", "Slice", "Squeeze",
                     "Unsqueeze", "Flatten", "Expand", "Tile", "Identity", "Split", "Pad", "Clip", "Relu",
                     "MaxPool", "ReduceMax", "ReduceMin", "TopK", "Resize", "GridSample", "RoiAlign"), (0,)),
    **dict.fromkeys(("Concat", "Max", "Min", "Sum", "Mean"), None),  # None: every input
    "Where": (1, 2),
    "ScatterND": (0, 2),
    "ScatterElements": (0, 2),
}
# after a selection (TopK/NMS/NonZero) calibration sees only the candidates it picked, so the
# box arithmetic there is bounded from its inputs as well: |a+b| <= |a|+|b|, |a*b| <= |a||b|
SELECTION_OPS = frozenset({"TopK", "NonMaxSuppression", "NonZero"})
ARITHMETIC_BOUNDS = {"Add": sum, "Sub": sum, "Mul": np.prod, "Neg": max, "Abs": max}

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
_FP16_MAX = float(np.finfo(np.float16).max)  # 65504
DATA_MAX = 512.0  # |values| above this stay FP32: FP16 spacing there is >= 0.5 (and overflow is near)
_FP16_MIN_POSITIVE = 2.0**-24  # smallest subnormal


@dataclass(slots=True)
class Fp16Report:
    """What the conversion did, for logs and tests."""

    fp16_nodes: int = 0
    fp32_nodes: int = 0  # float nodes kept FP32 (op list or names)
    constant_math_nodes: int = 0  # float shape/constant arithmetic kept FP32
    casts_added: int = 0
    initializers_converted: int = 0  # stored as FP16 in place
    range_nodes: int = 0  # kept FP32 because calibration saw values beyond DATA_MAX
    initializers_duplicated: int = 0  # FP32 kept, FP16 twin added (consumers of both kinds)
    constants_converted: int = 0  # Constant / ConstantOfShape values made FP16
    values_clamped: int = 0  # float values outside the FP16 range, clamped
    kept_ops: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        kept = ", ".join(f"{op}x{n}" for op, n in sorted(self.kept_ops.items())) or "none"
        return (
            f"{self.fp16_nodes} nodes FP16, {self.fp32_nodes} kept FP32 ({kept}), "
            f"{self.constant_math_nodes} shape/constant nodes FP32, {self.range_nodes} FP32 by value range, "
            f"{self.casts_added} casts, "
            f"{self.initializers_converted}+{self.initializers_duplicated} initializers FP16, "
            f"{self.values_clamped} values clamped"
        )


def _to_fp16(values: np.ndarray, report: Fp16Report) -> np.ndarray:
    """float -> float16, clamping finite values outside the FP16 range instead of inf/0."""
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    big = finite & (np.abs(a) > _FP16_MAX)
    tiny = finite & (a != 0) & (np.abs(a) < _FP16_MIN_POSITIVE)
    clamped = int(big.sum() + tiny.sum())
    if clamped:
        a = np.where(big, np.sign(a) * _FP16_MAX, a)
        a = np.where(tiny, np.sign(a) * _FP16_MIN_POSITIVE, a)
        report.values_clamped += clamped
    return a.astype(np.float16)


def _tensor_to_fp16(tensor: TensorProto, report: Fp16Report, name: str | None = None) -> TensorProto:
    out = numpy_helper.from_array(_to_fp16(numpy_helper.to_array(tensor), report), name or tensor.name)
    return out


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor name that ONNX shape inference can type."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types: dict[str, int] = {}
    for vi in [*g.input, *g.output, *g.value_info]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    for node in g.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
                elif attr.name in ("value_float", "value_floats"):
                    types[node.output[0]] = FLOAT
    return types


def value_ranges(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest finite |value| of every float tensor in one FP32 run of `model` on `feeds` (ONNX Runtime)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    types = _elem_types(probe)
    known = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in known and types.get(name) == FLOAT:
                probe.graph.output.append(helper.make_tensor_value_info(name, FLOAT, None))
                known.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ranges = {t.name: float(np.abs(numpy_helper.to_array(t)).max(initial=0.0))
              for t in probe.graph.initializer if t.data_type == FLOAT}
    ranges.update({k: float(np.abs(v).max(initial=0.0)) for k, v in feeds.items() if np.asarray(v).dtype.kind == "f"})
    for name, value in zip(names, session.run(names, feeds)):
        value = np.asarray(value)
        if value.dtype.kind == "f":
            finite = np.abs(value[np.isfinite(value)])
            ranges[name] = float(finite.max()) if finite.size else 0.0
    return ranges


def _bound_ranges(graph: onnx.GraphProto, ranges: dict[str, float]) -> None:
    """Raise calibrated ranges (in place) to what the inputs allow: `BOUNDED_BY_INPUTS` ops
    everywhere, `ARITHMETIC_BOUNDS` after a selection op."""
    selected: set[str] = set()
    for node in graph.node:
        if node.op_type in SELECTION_OPS or any(i in selected for i in node.input if i):
            selected.update(o for o in node.output if o)
        if node.op_type in BOUNDED_BY_INPUTS:
            which = BOUNDED_BY_INPUTS[node.op_type]
            inputs = [n for k, n in enumerate(node.input) if n and (which is None or k in which)]
            values = [ranges[n] for n in inputs if n in ranges]
            bound = max(values) if values else None
        elif node.op_type in ARITHMETIC_BOUNDS and node.output and node.output[0] in selected:
            values = [ranges[n] for n in node.input if n in ranges]
            bound = float(ARITHMETIC_BOUNDS[node.op_type](values)) if len(values) == len(node.input) else None
        else:
            continue
        if bound is None:
            continue
        for out in node.output:
            if out in ranges:
                ranges[out] = max(ranges[out], bound)


def contract_feeds(input_size: tuple[int, int], batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Calibration inputs for the Uniface graph: noise and a smooth gradient at (w, h), every
    candidate kept (threshold -1, no face limit) so all post-processing paths run."""
    w, h = input_size
    rng = np.random.default_rng(seed)
    images = np.empty((batch, h, w, 3), np.uint8)
    images[0] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None] * np.linspace(0.2, 1, h)[:, None, None]
    images[1:] = np.broadcast_to(ramp, (h, w, 3)).astype(np.uint8)
    return {"images": images, "score_threshold": np.array([-1.0], np.float32),
            "max_faces": np.array([1 << 20], np.int32)}


def convert_model(
    model: onnx.ModelProto,
    keep_fp32_ops: frozenset[str] = KEEP_FP32_OPS,
    keep_fp32_nodes: tuple[str, ...] = (),
    calibration: dict[str, np.ndarray] | None = None,
    data_max: float = DATA_MAX,
) -> tuple[onnx.ModelProto, Fp16Report]:
    """The FP16 copy of `model` (left unchanged) and a report of what was converted.

    keep_fp32_ops: op types whose float inputs stay FP32 (default `KEEP_FP32_OPS`).
    keep_fp32_nodes: node names to keep FP32 as well.
    calibration: graph inputs for one FP32 run; nodes touching |values| > data_max stay FP32.
    """
    ranges = value_ranges(model, calibration) if calibration is not None else {}
    if ranges:
        _bound_ranges(model.graph, ranges)
    report = Fp16Report()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for node in g.node:
        if node.op_type in CONTROL_FLOW_OPS or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                                   for a in node.attribute):
            raise ValueError(f"FP16 conversion does not support control flow ({node.op_type} {node.name!r})")
    types = _elem_types(out)
    unknown = [o for n in g.node for o in n.output if o and o not in types]
    if unknown:
        log.warning("FP16: %d tensors have no inferred type and are left as they are (e.g. %s)",
                    len(unknown), unknown[0])

    def is_float(name: str) -> bool:
        return bool(name) and types.get(name) == FLOAT

    inits = {t.name: t for t in g.initializer}
    graph_inputs = [i.name for i in g.input if i.name not in inits]
    graph_outputs = {o.name for o in g.output}
    keep_nodes = set(keep_fp32_nodes)

    # 1. Which tensors carry values derived from the graph inputs ("data")? Shape/Size cut the
    #    chain: what is computed from shapes and constants is shape/constant arithmetic.
    data = set(graph_inputs)
    for node in g.node:
        if node.op_type in ANY_TYPE_OPS:
            continue
        if any(i in data for i in node.input if i):
            data.update(o for o in node.output if o)

    # 2. Precision of each node that touches floats.
    low: set[int] = set()  # node indices computing in FP16
    high: set[int] = set()  # float nodes kept FP32
    for idx, node in enumerate(g.node):
        if node.op_type in ("Constant", *ANY_TYPE_OPS):
            continue
        if not (any(is_float(i) for i in node.input) or any(is_float(o) for o in node.output)
                or (node.op_type == "Cast" and _cast_to(node) == FLOAT)):
            continue
        if node.op_type in keep_fp32_ops or node.name in keep_nodes:
            high.add(idx)
            report.fp32_nodes += 1
            report.kept_ops[node.op_type] += 1
        elif not any(i in data for i in node.input if i):
            high.add(idx)
            report.constant_math_nodes += 1
        elif max((ranges.get(t, 0.0) for t in [*node.input, *node.output] if is_float(t)), default=0.0) > data_max:
            high.add(idx)
            report.range_nodes += 1
        else:
            low.add(idx)
            report.fp16_nodes += 1

    def wanted(idx: int, pos: int) -> int | None:
        node = g.node[idx]
        if node.op_type in ANY_TYPE_OPS:
            return None
        if idx in low and pos not in FP32_ONLY_INPUTS.get(node.op_type, ()):
            return HALF
        return FLOAT

    # 3. FP16 graph outputs get renamed; a Cast back to float32 takes their name at the end.
    producer = {o: idx for idx, n in enumerate(g.node) for o in n.output if o}
    renamed: dict[str, str] = {}
    for name in list(graph_outputs):
        idx = producer.get(name)
        if idx is not None and idx in low and is_float(name):
            renamed[name] = f"{name}__fp16"
    for node in g.node:
        for k, name in enumerate(node.output):
            if name in renamed:
                node.output[k] = renamed[name]
        for k, name in enumerate(node.input):
            if name in renamed:
                node.input[k] = renamed[name]
    types.update({new: FLOAT for new in renamed.values()})

    # 4. Precision each float tensor will have: FP16 when made by an FP16 node.
    precision: dict[str, int] = {}
    for idx in low:
        for o in g.node[idx].output:
            if is_float(o):
                precision[o] = HALF
    consumers: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for idx, node in enumerate(g.node):
        for pos, name in enumerate(node.input):
            if name:
                consumers[name].append((idx, pos))

    def demand(name: str) -> set[int]:
        kinds = {wanted(idx, pos) for idx, pos in consumers.get(name, ())} - {None}
        if name in graph_outputs:
            kinds.add(FLOAT)
        return kinds

    # Initializers and Constant nodes adopt the precision their consumers want (no Cast needed).
    twins: dict[str, str] = {}  # FP32 name -> its FP16 twin
    for name, init in list(inits.items()):
        if init.data_type != FLOAT:
            continue
        kinds = demand(name)
        if kinds == {HALF}:
            init.CopyFrom(_tensor_to_fp16(init, report))
            precision[name] = HALF
            report.initializers_converted += 1
        elif HALF in kinds:
            twin = _tensor_to_fp16(init, report, name=f"{name}__fp16")
            g.initializer.append(twin)
            twins[name] = twin.name
            report.initializers_duplicated += 1

    # 5. Rewrite the node list: Casts where precisions meet, FP16 attributes in FP16 nodes.
    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(name: str, to: int) -> str:
        if to == HALF and name in twins:
            return twins[name]
        key = (name, to)
        if key not in casts:
            suffix = "fp16" if to == HALF else "fp32"
            casts[key] = f"{name}__to_{suffix}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], to=to, name=f"{name}__cast_{suffix}"))
            report.casts_added += 1
        return casts[key]

    for idx, node in enumerate(g.node):
        if node.op_type == "Constant" and node.output and is_float(node.output[0]):
            kinds = demand(node.output[0])
            if kinds == {HALF}:
                _constant_to_fp16(node, report)
                precision[node.output[0]] = HALF
                report.constants_converted += 1
            elif HALF in kinds:
                new_nodes.append(node)
                twin = onnx.NodeProto()
                twin.CopyFrom(node)
                twin.output[0] = f"{node.output[0]}__fp16"
                twin.name = f"{node.name or node.output[0]}__fp16"
                _constant_to_fp16(twin, report)
                twins[node.output[0]] = twin.output[0]
                new_nodes.append(twin)
                report.constants_converted += 1
                continue
            new_nodes.append(node)
            continue
        for pos, name in enumerate(node.input):
            if not is_float(name):
                continue
            want = wanted(idx, pos)
            have = precision.get(name, FLOAT)
            if want is not None and want != have:
                node.input[pos] = cast(name, want)
        if idx in low:
            _attributes_to_fp16(node, report)
        new_nodes.append(node)
    for old, new in renamed.items():
        new_nodes.append(helper.make_node("Cast", [new], [old], to=FLOAT, name=f"{old}__cast_out"))
        report.casts_added += 1

    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]  # the old types are wrong now; TensorRT and ORT infer their own
    _check_same_io(model, out)
    onnx.checker.check_model(out)
    onnx.shape_inference.infer_shapes(out, strict_mode=True)  # raises on any type mismatch
    return out, report


def _cast_to(node: onnx.NodeProto) -> int | None:
    for attr in node.attribute:
        if attr.name == "to":
            return attr.i
    return None


def _constant_to_fp16(node: onnx.NodeProto, report: Fp16Report) -> None:
    for attr in node.attribute:
        if attr.name == "value" and attr.t.data_type == FLOAT:
            attr.t.CopyFrom(_tensor_to_fp16(attr.t, report))
            return
        if attr.name in ("value_float", "value_floats"):
            values = np.array(attr.f if attr.name == "value_float" else list(attr.floats), np.float32)
            tensor = numpy_helper.from_array(_to_fp16(values, report))
            node.attribute.remove(attr)
            node.attribute.append(helper.make_attribute("value", tensor))
            return


def _attributes_to_fp16(node: onnx.NodeProto, report: Fp16Report) -> None:
    """Type-carrying attributes of a node that now computes in FP16."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
            attr.i = HALF
        elif node.op_type == "ConstantOfShape" and attr.name == "value" and attr.t.data_type == FLOAT:
            attr.t.CopyFrom(_tensor_to_fp16(attr.t, report))
            report.constants_converted += 1


def _io_types(model: onnx.ModelProto) -> list[tuple[str, int]]:
    g = model.graph
    inits = {t.name for t in g.initializer}
    return [(v.name, v.type.tensor_type.elem_type) for v in [*g.input, *g.output] if v.name not in inits]


def _check_same_io(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    if _io_types(before) != _io_types(after):
        raise RuntimeError(f"FP16 conversion changed the graph I/O: {_io_types(before)} -> {_io_types(after)}")
