"""`main.py process VIDEO`: an annotated copy of a recorded video and an appearance log."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from app.engine_options import add_engine_options, make_engine
from engines.errors import UserError
from app.video_writer import DEFAULT_CRF, DEFAULT_PRESET

log = logging.getLogger(__name__)

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow")


def register(sub) -> None:
    p = sub.add_parser("process",
                       description="Detect, track and name the faces of every frame of VIDEO; write an annotated "
                                   "H.264 copy (same frames, same timing, audio copied) and one event per "
                                   "appearance. Exit status 1 when the input is damaged (the output up to the "
                                   "damage is kept).")
    p.add_argument("input", metavar="VIDEO", help="video file (MP4, MOV, MKV, ...) or a stream URL")
    p.add_argument("--out", type=Path, default=None,
                   help="annotated video to write (default: ./NAME.annotated.mp4)")
    p.add_argument("--no-video", action="store_true", help="write no video, only --events")
    p.add_argument("--events", type=Path, default=None,
                   help="appearance log: .jsonl (JSON lines) or .csv")
    p.add_argument("--crops", type=Path, default=None, metavar="DIR",
                   help="also save each appearance's best face as JPEG in DIR (needs --events)")
    p.add_argument("--gallery", type=Path, default=None,
                   help="gallery folder (default: the user's gallery if it exists, else everyone is unknown)")
    p.add_argument("--threshold", type=float, default=None, help="recognition threshold (cosine)")
    p.add_argument("--min-score", type=float, default=None, help="minimum detection score (default: the model's own)")
    p.add_argument("--max-faces", type=int, default=None, help="at most this many faces per frame")
    add_engine_options(p)
    g = p.add_argument_group("encoding")
    g.add_argument("--crf", type=int, default=DEFAULT_CRF, help=f"H.264 quality, lower is better (default {DEFAULT_CRF})")
    g.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET,
                   help=f"x264 speed preset (default {DEFAULT_PRESET})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object with the summary at the end")
    p.set_defaults(func=run)


def run(args) -> int:
    from app.offline.process import check_outputs, default_output, process_video
    from app.sources import check_stream, mask_url

    if "://" not in args.input and not Path(args.input).exists():
        raise UserError(f"video not found: {args.input} (check the path)")
    args.input = args.input if "://" in args.input else Path(args.input)
    if args.no_video and args.events is None:
        raise UserError("--no-video leaves nothing to write: add --events FILE.jsonl")
    output = None if args.no_video else (args.out or default_output(args.input))
    if not 0 <= args.crf <= 51:
        raise UserError(f"--crf must be between 0 and 51, got {args.crf}")
    check_outputs(args.input, output, args.events, args.crops)  # before the engine loads: fail in milliseconds
    check_stream(str(args.input))  # a dead stream URL: one line now, not after the engine loads
    engine = make_engine(args)
    gallery = None
    try:
        recognizer, gallery, note = _recognizer(args, engine)
        summary = process_video(
            args.input, engine, output=output, events=args.events, crops_dir=args.crops, recognizer=recognizer,
            crf=args.crf, preset=args.preset, score_threshold=args.min_score, max_faces=args.max_faces,
            progress=not args.no_progress,
        )
    finally:
        if gallery is not None:
            gallery.close()
        engine.close()
    if args.json:
        print(json.dumps({**summary.to_dict(), "gallery": note}))
    else:
        rt = f"{summary.realtime_factor:.2f}x realtime" if summary.realtime_factor else ""
        print(f"{summary.input}: {summary.frames} frames, {summary.faces} faces, {summary.tracks} appearances, "
              f"{len(summary.identities)} known ({', '.join(summary.identities) or 'none'}); "
              f"{summary.fps:.1f} fps {rt}")
        if summary.output:
            print(f"  video:  {summary.output}" + ("" if summary.audio else " (no audio)"))
        if summary.events:
            print(f"  events: {summary.events}")
        print(f"  gallery: {note}")
    if summary.truncated:
        print(f"warning: {mask_url(str(args.input))} is damaged: {summary.error}; the {summary.frames} frames before the damage "
              "were processed and written", file=sys.stderr)
        return 1
    return 0


def _recognizer(args, engine):
    """The Recognizer, the gallery it reads (to close later) and a note saying which."""
    from app.gallery.store import DB_NAME, open_gallery
    from app.paths import default_gallery_dir
    from app.live.recognition import Recognizer

    folder = args.gallery or default_gallery_dir()
    if not (folder / DB_NAME).exists():
        if args.gallery is not None:
            raise UserError(f"no gallery in {folder}: enrol people first, or leave out --gallery")
        return Recognizer(None, args.threshold, engine=engine), None, "none (everyone is unknown)"
    gallery = open_gallery(folder, engine, threshold=args.threshold)
    try:
        recognizer = Recognizer(gallery, args.threshold, engine=engine)
    except BaseException:
        gallery.close()
        raise
    return recognizer, gallery, f"{folder} ({len(gallery)} identities)"
