#!/usr/bin/env python3
"""Positive anchors per training canvas at each detection level, as a run's canvas stream makes
them (its settings.json: label cache, sets, canvas and augmentation options; the cached labels,
without `--official-boxes`), optionally with some
options changed: which face sizes the stream teaches, level by level.

    scripts/canvas_positives.py --run runs/student_mnv2face [--canvases 300] [--small-p 0.3]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import dataclasses

    import torch

    from engines.model.config import get_config
    from engines.model.network import Uniface
    from engines.train.dataset import FaceDataset, split_labels
    from engines.train.loop import TrainSettings, _anchors, augment_settings
    from engines.train.view_labels import load_view_labels

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a training run's folder (its settings.json)")
    p.add_argument("--canvases", type=int, default=300)
    p.add_argument("--small-p", type=float, default=None, help="instead of the run's own")
    args = p.parse_args()
    s = TrainSettings(**json.loads((args.run / "settings.json").read_text()))
    if args.small_p is not None:
        s = dataclasses.replace(s, small_p=args.small_p)
    labels = load_view_labels(Path(s.labels_dir), s.sets, None)
    train = split_labels(labels, s.val_images).train
    cfg = get_config(s.config)
    canvas = tuple(s.canvas)
    anchors = _anchors(Uniface(cfg), canvas, torch.device("cpu"))
    augment = augment_settings(s)
    dataset = FaceDataset(train, anchors, augment, seed=s.seed, repeats=s.set_repeat or None)
    w, h = canvas
    per_level = [-(-w // st) * -(-h // st) * n for st, n in zip(cfg.strides, cfg.anchors_per_cell)]
    edges = np.cumsum([0, *per_level])
    positives = np.zeros(len(per_level))
    for index in np.random.default_rng(0).integers(0, len(dataset), args.canvases):
        labels_of = dataset[int(index)].labels
        positives += [(labels_of[a:b] == 1).sum() for a, b in zip(edges[:-1], edges[1:])]
    print(f"{args.canvases} canvases of {w}x{h}, small_p {augment.small_p:g}: positive anchors per canvas")
    for stride, n in zip(cfg.strides, positives / args.canvases):
        print(f"  stride {stride:3d}: {n:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
