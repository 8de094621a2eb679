"""`main.py gui`: the operator's window (also what `main.py` with no command opens).

Without a display it says so in one line and, so that the default job still does something
useful, processes the bundled sample video into the user data folder instead.
"""
from __future__ import annotations

import logging
from pathlib import Path

from app.engine_options import add_engine_options
from engines.model.config import SHIPPED_CONFIG

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("gui",
                       description="Open the operator's window on the given sources (default: the first camera, "
                                   "else the bundled sample video). Up to 4 sources share one engine.")
    p.add_argument("--source", action="append", default=None, metavar="SPEC",
                   help="camera index, video file, rtsp/http URL or synthetic:...; repeat for up to 4")
    p.add_argument("--loop", action="store_true", help="play video files in a loop")
    p.add_argument("--gallery", type=Path, default=None, help="gallery folder (default: the saved setting, "
                                                              "else the user's gallery)")
    p.add_argument("--threshold", type=float, default=None, help="recognition threshold (default: the saved setting)")
    add_engine_options(p)
    p.set_defaults(func=run, engine=None, backend=None)


def default_sources() -> list[tuple[str, bool]]:
    """The first camera found, else the bundled sample video (looping)."""
    from app.sources.cameras import find_cameras
    from app.paths import SAMPLE_VIDEO

    cameras = find_cameras(limit=4)
    if cameras:
        return [(str(cameras[0].index), False)]
    return [(str(SAMPLE_VIDEO), True)]


def run(args) -> int:
    from ui.app import display_available

    if not display_available():
        return run_headless(args)
    from app.settings import apply_engine_args, load_settings, settings_path
    from ui.app import application
    from ui.main_window import MainWindow

    settings = apply_engine_args(load_settings(), args)
    if args.gallery is not None:
        settings = settings.copy(gallery_dir=str(args.gallery))
    if args.threshold is not None:
        settings = settings.copy(threshold=args.threshold)
    sources = [(s, args.loop) for s in args.source] if args.source else default_sources()
    engine = None
    if args.weights is not None or args.device is not None or args.config != SHIPPED_CONFIG:
        from app.engine_options import EngineRequest, make_engine_for_gui

        engine = make_engine_for_gui(EngineRequest.from_settings(settings, device=args.device, config=args.config,
                                                                       weights=args.weights))
    app = application()
    window = MainWindow(settings, sources=sources, engine=engine, settings_file=settings_path())
    window.show()
    window.start()
    import signal

    signal.signal(signal.SIGINT, lambda *_: window.close())  # Ctrl-C in the terminal closes the window cleanly
    code = app.exec_()
    window.shutdown()
    return int(code)


def run_headless(args) -> int:
    """No display: process the bundled sample video with `main.py process` and say where the
    results went."""
    from app.cli import main as cli_main  # the headless commands: `process`
    from app.paths import SAMPLE_VIDEO, user_data_dir

    print("no display (DISPLAY and WAYLAND_DISPLAY are unset): the window cannot open; processing the bundled "
          f"sample video {SAMPLE_VIDEO.name} instead")
    out_dir = user_data_dir() / "sample-run"
    out_dir.mkdir(parents=True, exist_ok=True)
    video, events = out_dir / f"{SAMPLE_VIDEO.stem}.annotated.mp4", out_dir / f"{SAMPLE_VIDEO.stem}.events.jsonl"
    argv = ["process", str(SAMPLE_VIDEO), "--out", str(video), "--events", str(events), "--no-progress"]
    for option in ("engine", "backend", "device", "config"):
        value = getattr(args, option, None)
        if value is not None:
            argv += [f"--{option}", str(value)]
    if args.weights is not None:
        argv += ["--weights", str(args.weights)]
    if args.input_size is not None:
        argv += ["--input-size", f"{args.input_size[0]}x{args.input_size[1]}"]
    if args.gallery is not None:
        argv += ["--gallery", str(args.gallery)]
    if args.threshold is not None:
        argv += ["--threshold", str(args.threshold)]
    code = cli_main(argv)
    if code == 0:
        print(f"the annotated video and the event log are in {out_dir}")
    return code
