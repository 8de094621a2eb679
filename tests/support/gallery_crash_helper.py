"""Enrols identities into a gallery in a loop until killed (used by tests/app/test_gallery.py).

Usage: python tests/support/gallery_crash_helper.py GALLERY_DIR FIRST_INDEX [--begin]
Prints "committed NAME" (flushed) after each enrolment's transaction has returned; with
--begin also "begin NAME" just before it starts (so a kill can be placed inside one).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from app.gallery.face_crop import FaceCrop  # noqa: E402
from app.gallery.store import Gallery, NewSample  # noqa: E402


def main() -> None:
    folder, first = Path(sys.argv[1]), int(sys.argv[2])
    say_begin = "--begin" in sys.argv[3:]
    rng = np.random.default_rng(first)
    with Gallery(folder) as gallery:
        print("ready", flush=True)
        i = first
        while True:
            samples = []
            for k in range(4):
                crop = FaceCrop(image=rng.integers(0, 255, (160, 160, 3), dtype=np.uint8),
                                box=np.array([40, 40, 120, 120], np.float32),
                                landmarks=np.zeros((5, 2), np.float32))
                samples.append(NewSample(embedding=rng.normal(size=128), crop=crop, quality=0.5, source=f"crash {k}"))
            name = f"person-{i:05d}"
            if say_begin:
                print(f"begin {name}", flush=True)
            gallery.add_samples(name, samples, "crash-model")
            print(f"committed {name}", flush=True)
            i += 1


if __name__ == "__main__":
    main()
