"""Print the mean teacher face in box units (the face template of an aligned configuration).

    .venv/bin/python scripts/face_template.py [LABEL_DIR]   (default: USER_CACHE/labels)

Every labelled face counts; the result is written into engines/model/config.py by hand,
since a configuration must not change when the label cache grows.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.paths import user_cache_dir  # noqa: E402
from engines.model.alignment import measure_template  # noqa: E402
from engines.train.labelling import load_labels  # noqa: E402


def main() -> None:
    label_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else user_cache_dir() / "labels"
    labels = load_labels(label_dir)
    boxes = np.concatenate([x.boxes for x in labels if len(x.boxes)])
    landmarks = np.concatenate([x.landmarks for x in labels if len(x.boxes)])
    template, aspect = measure_template(boxes, landmarks)
    print(f"{len(boxes)} faces in {len(labels)} images ({label_dir})")
    print("face_template=(" + ", ".join(f"({x:.4f}, {y:.4f})" for x, y in template) + f"), face_aspect={aspect:.4f}")


if __name__ == "__main__":
    main()
