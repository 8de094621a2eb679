"""`main.py screenshot`: run the real window offscreen on a source for a few seconds, save a
picture of it and report how smoothly it ran (longest GUI timer gap, display vs source rate)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from app.engine_options import add_engine_options
from engines.errors import UserError

TABS = ("sources", "gallery", "unknowns", "events")


def register(sub) -> None:
    p = sub.add_parser("screenshot",
                       description="Open the operator's window offscreen on SOURCE(s), play for --seconds, save a "
                                   "PNG of the window, and print the longest gap between two GUI timer ticks and "
                                   "the display rate against the source's own rate.")
    p.add_argument("--source", action="append", required=True, metavar="SPEC",
                   help="video file (or camera index, URL, synthetic:...); repeat for up to 4")
    p.add_argument("--out", type=Path, required=True, metavar="PNG", help="where to save the screenshot")
    p.add_argument("--seconds", type=float, default=5.0, help="how long to play before the picture (default 5)")
    p.add_argument("--start-at", type=float, action="append", default=None, metavar="S",
                   help="seek video files to S seconds before measuring (once for all, or once per --source)")
    p.add_argument("--loop", action="store_true", help="play video files in a loop")
    p.add_argument("--min-frames", type=int, default=0, metavar="N",
                   help="after --seconds, also wait (up to 5 min) until every view showed N new frames "
                        "(a slow engine's first results)")
    p.add_argument("--gallery", type=Path, default=None, help="gallery folder (default: the user's gallery)")
    p.add_argument("--threshold", type=float, default=None, help="recognition threshold (default: the engine's)")
    p.add_argument("--tab", choices=TABS, default="events", help="side panel to show (default events)")
    p.add_argument("--size", default="1280x760", metavar="WxH", help="window size (default 1280x760)")
    p.add_argument("--max-kb", type=int, default=300, help="shrink the PNG (256 colours, then scaling) above this")
    p.add_argument("--json", action="store_true", help="print one JSON object with the measurements")
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from app.engine_options import parse_size
    from app.engine_options import make_engine_for_gui
    from app.settings import Settings

    if args.seconds <= 0:
        raise UserError("--seconds must be positive")
    if args.out.suffix.lower() != ".png":
        raise UserError(f"--out {args.out}: give a .png file name")
    if not args.out.parent.is_dir():
        raise UserError(f"folder {args.out.parent} does not exist")
    width, height = parse_size(args.size)
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before Qt starts: no display needed, none used
    settings = Settings(engine=args.engine, backend=args.backend, input_size=args.input_size,
                        gallery_dir=str(args.gallery) if args.gallery else None, threshold=args.threshold)
    starts = args.start_at or []
    if len(starts) not in (0, 1, len(args.source)):
        raise UserError(f"give --start-at once, or once per --source ({len(args.source)})")
    from app.sources import check_stream

    for spec in args.source:  # a dead stream fails now, in one line, not after the whole wait
        check_stream(spec)
    engine = make_engine_for_gui(args)  # loaded before the window: the measured seconds are all playback
    from ui.screenshot import ScreenshotRequest, take_screenshot

    request = ScreenshotRequest(sources=[(s, args.loop) for s in args.source], out=args.out, seconds=args.seconds,
                                starts=starts, min_frames=args.min_frames, tab=TABS.index(args.tab),
                                size=(width, height), max_kb=args.max_kb)
    saved, figures = take_screenshot(settings, engine, request)
    report = {"png": str(args.out), "png_kb": round(args.out.stat().st_size / 1024, 1), "png_mode": saved,
              "window": [width, height], **figures}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.out} ({report['png_kb']} KB, {saved})")
        print(f"GUI timer: longest gap {figures['max_tick_gap_ms']} ms over {figures['ticks']} ticks "
              f"(p99 {figures['p99_tick_gap_ms']} ms, median {figures['median_tick_gap_ms']} ms) in "
              f"{figures['seconds']} s of playback")
        for sid, s in figures["sources"].items():
            print(f"{sid}: display {s['display_fps']} fps vs source {s['source_fps']} fps "
                  f"(captured {s['capture_fps']} fps, inference {s['processed_fps']} fps)")
        print(f"engine {figures['engine']}")
    return 0
