"""TensorRT support: module/version dispatch, FP16 ONNX, engine build and the engine cache.

Modules (each importable without TensorRT installed; TensorRT itself is imported lazily):
  runtime_module  which TensorRT flavour is installed (tensorrt 10/11 or tensorrt_rtx) and the GPU
  fp16            an FP16 copy of an FP32 ONNX graph with its inputs and outputs unchanged
  cache           engine cache key, JSON sidecar, atomic writes, timing/runtime cache files
  build           parse ONNX, optimisation profile, build with progress, `ensure_engine`
"""
