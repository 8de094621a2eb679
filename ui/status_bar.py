"""The status line: per-stage rates, end-to-end latency, drops, GUI smoothness, engine."""
from __future__ import annotations

from dataclasses import dataclass

from app.live.stats import PipelineStats
from engines.engine import EngineInfo


@dataclass(slots=True)
class DisplayStats:
    """What the window measures itself."""

    display_fps: float  # frames painted per second, all views together
    capture_fps: float | None = None  # frames captured per second, all sources (None: no pipeline)
    inference_fps: float | None = None  # frames through the engine per second
    latency_ms: float | None = None  # capture -> painted, median of recent frames
    display_dropped: int = 0  # results replaced before the window took them
    max_gap_ms: float = 0.0  # longest gap between two GUI timer ticks (recent window)


def status_text(stats: PipelineStats | None, shown: DisplayStats, engine: EngineInfo | None) -> str:
    """One line for the status bar."""
    parts = []
    if stats is not None:
        parts.append(f"capture {shown.capture_fps or 0.0:.1f} fps")
        parts.append(f"inference {shown.inference_fps or 0.0:.1f} fps")
    parts.append(f"display {shown.display_fps:.1f} fps")
    parts.append("latency " + ("-" if shown.latency_ms is None else f"{shown.latency_ms:.0f} ms"))
    dropped = (stats.dropped if stats is not None else 0) + shown.display_dropped
    parts.append(f"dropped {dropped}")
    parts.append(f"GUI max gap {shown.max_gap_ms:.0f} ms")
    if engine is not None:
        text = f"{engine.engine}/{engine.backend} {engine.device}"
        if engine.input_size:
            text += f" {engine.input_size[0]}x{engine.input_size[1]}"
        if engine.random_weights:
            text += " (RANDOM WEIGHTS)"
        parts.append(text)
    else:
        parts.append("engine loading…")
    return "  |  ".join(parts)
