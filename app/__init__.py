"""Unisight application logic: pipeline, sources, gallery, tracking, CLI. No Qt, no TensorRT."""
