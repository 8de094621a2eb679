"""Recorded video: processing a file, writing the annotated copy, events, unknowns, benchmarks."""
