"""The FP16 graph checked and written: an FP32 twin that rounds every FP16 tensor as TensorRT
stores it (`simulate_fp16_storage`), both graphs run on calibration inputs (`check_fp16`: inf/NaN
where FP32 is finite is an `Fp16Overflow`), and the file written atomically (`convert_file`).
The conversion itself is `fp16.py`'s."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from engines.trt.cache import atomic_write_bytes
from engines.trt.fp16 import FLOAT, HALF, Fp16Report, _elem_types, convert_model

log = logging.getLogger("engines.trt.fp16")


class Fp16Overflow(ValueError):
    """The FP16 graph produces inf/NaN where the FP32 graph does not."""


def simulate_fp16_storage(fp16_model: onnx.ModelProto) -> onnx.ModelProto:
    """An FP32 twin of an FP16 graph that rounds every FP16 tensor to FP16 (explicit Cast pairs).

    That is FP16 storage with FP32 arithmetic, as TensorRT's FP16 kernels (FP32 accumulation)
    behave, and overflow shows up as inf. ONNX Runtime's CPU provider cannot stand in for this
    by itself: it upcasts most FP16 ops to FP32 and drops the rounding between them.
    """
    m = onnx.ModelProto()
    m.CopyFrom(fp16_model)
    types = _elem_types(m)
    g = m.graph
    for init in g.initializer:
        if init.data_type == HALF:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
    nodes = []
    for node in g.node:
        for attr in node.attribute:
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == HALF:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == HALF:
                attr.i = FLOAT
        rounded = [o for o in node.output if o and types.get(o) == HALF]
        for k, name in enumerate(node.output):
            if name in rounded:
                node.output[k] = f"{name}__unrounded"
        nodes.append(node)
        for name in rounded:
            nodes.append(helper.make_node("Cast", [f"{name}__unrounded"], [f"{name}__half"], to=HALF))
            nodes.append(helper.make_node("Cast", [f"{name}__half"], [name], to=FLOAT))
    del g.node[:]
    g.node.extend(nodes)
    del g.value_info[:]
    return m


def check_fp16(fp32_model: onnx.ModelProto, fp16_model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, float]:
    """Run both graphs (FP16 simulated faithfully) on `feeds`; max |difference| per float output.

    Raises Fp16Overflow when the FP16 graph gives inf/NaN where the FP32 graph is finite.
    Differences are for logs: near-tied scores may reorder faces, which is not an error.
    """
    import onnxruntime as ort

    def run(model):
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))

    ref, got = run(fp32_model), run(simulate_fp16_storage(fp16_model))
    diffs = {}
    for name, a in ref.items():
        b = got[name]
        if a.dtype.kind != "f":
            continue
        bad = np.isfinite(a) & ~np.isfinite(b)
        if bad.any():
            raise Fp16Overflow(f"FP16 graph gives {int(bad.sum())} non-finite values in {name!r} where FP32 is finite")
        diffs[name] = float(np.abs(a - b).max(initial=0.0))
    return diffs


def convert_file(src: Path, dst: Path, **kw) -> Fp16Report:
    """Convert the ONNX file `src` and write the FP16 graph to `dst` atomically.

    With `calibration` inputs the result is checked first (`check_fp16`): an FP16 graph that
    overflows raises Fp16Overflow and is not written.
    """
    model = onnx.load(str(src))
    converted, report = convert_model(model, **kw)
    log.info("FP16 graph %s: %s", Path(dst).name, report.summary())
    if kw.get("calibration") is not None:
        diffs = check_fp16(model, converted, kw["calibration"])
        log.info("FP16 check on calibration inputs, max |FP16 - FP32|: %s",
                 ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    atomic_write_bytes(Path(dst), converted.SerializeToString())
    return report
