"""Command-line value types and options shared by the commands of every layer: sizes given as
WxH, and the options of `export onnx` (app) and `export weights` (engines/train)."""
from __future__ import annotations

import argparse
from pathlib import Path

from engines.errors import UserError
from engines.model.config import CONFIG_HELP, MIN_INPUT_SIZE, SHIPPED_CONFIG, get_config


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480), with a clear error for anything else."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 1 or h < 1 or w > 16384 or h > 16384:
        raise argparse.ArgumentTypeError(f"size {text!r} is out of range (1..16384 per side)")
    return w, h


def parse_input_size(text: str) -> tuple[int, int]:
    """A network input size: multiples of 32, at least `MIN_INPUT_SIZE` (128x128)."""
    w, h = parse_size(text)
    min_w, min_h = MIN_INPUT_SIZE
    if w % 32 or h % 32 or w < min_w or h < min_h:
        raise argparse.ArgumentTypeError(f"input size must be multiples of 32, at least {min_w}x{min_h}, got {text!r}")
    return w, h


def add_export_options(p: argparse.ArgumentParser) -> None:
    """--config, --weights (repeatable), --out, --detection-threshold, --json: both export formats."""
    p.add_argument("--config", default=SHIPPED_CONFIG, help=CONFIG_HELP)
    p.add_argument("--weights", type=Path, action="append", default=None,
                   help="weights (default: the shipped model); with `weights`, give it several times to "
                        "average checkpoints of one configuration fine-tuned from the same weights")
    p.add_argument("--out", type=Path, default=None, help="output file (default: uniface_CONFIG.onnx)")
    p.add_argument("--detection-threshold", type=_threshold, default=None, metavar="T",
                   help="with `weights`: the detection score (0-1) the weights use wherever none is asked "
                        "for, chosen for them with `eval agreement --min-score` (default: the checkpoint's "
                        "own, else 0.9); published weights may be given again to change only this")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _threshold(text: str) -> float:
    from engines.model.detection_threshold import checked_detection_threshold

    try:
        return checked_detection_threshold(text, "--detection-threshold")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_export_args(args) -> None:
    """A known configuration and existing weights files, for either format."""
    try:
        get_config(args.config)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    for path in args.weights or []:
        if not path.exists():
            raise UserError(f"weights file not found: {path}")
