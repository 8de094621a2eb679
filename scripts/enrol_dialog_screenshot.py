"""The enrolment dialog of a live track, saved as a PNG (for the README):

    .venv/bin/python scripts/enrol_dialog_screenshot.py --out docs/screenshots/enrol_dialog.png
        [--source docs/samples/hamilton_clip.mp4] [--start-at 4.0] [--seconds 2.5] [--gallery DIR]

Runs the real window offscreen with the single-shot engine (ONNX Runtime, CPU), plays the
source from --start-at for --seconds, then opens the enrolment dialog of the largest tracked
face, as a click on it would, and grabs the dialog.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--source", default=str(REPO / "docs/samples/hamilton_clip.mp4"))
    p.add_argument("--start-at", type=float, default=4.0)
    p.add_argument("--seconds", type=float, default=2.5)
    p.add_argument("--gallery", default=None, help="gallery folder (default: a new empty one)")
    args = p.parse_args(argv)

    from PyQt5.QtWidgets import QApplication

    from app.paths import user_cache_dir
    from app.settings import Settings
    from engines.backends.registry import create_engine
    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    gallery = args.gallery or tempfile.mkdtemp(prefix="unisight-enrol-shot-")
    engine = create_engine("uniface", "onnxruntime", "cpu", cache_dir=user_cache_dir())
    window = MainWindow(Settings(gallery_dir=gallery), sources=[args.source], engine=engine, persist=False)
    window.resize(1280, 760)
    window.show()
    ready = []
    window.ready.connect(lambda: ready.append(True))
    window.start()

    def pump(seconds, until=lambda: False):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.01)

    pump(60, lambda: bool(ready))
    sid = list(window.grid.views)[0]
    window.session.seek(sid, args.start_at)
    pump(args.seconds)
    window.shortcut_actions["Space"].trigger()  # pause, so the dialog's crops are of the frames seen
    pump(0.3)
    window.enrolment.enrol_selected()
    pump(1.0)
    dialogs = [d for d in window._dialogs if d.windowTitle().startswith("Enrol track")]
    if not dialogs:
        print("no tracked face to enrol:", window.banner.text(), file=sys.stderr)
        return 1
    dialog = dialogs[0]
    dialog.resize(900, 520)
    pump(0.3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    dialog.grab().save(str(args.out))
    print(f"{args.out}: {len(dialog.candidates)} crops: " + "; ".join(c.reason for c in dialog.candidates))
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
