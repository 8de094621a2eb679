"""`main.py soak`: run the live pipeline for a long time and check threads and memory stay flat."""
from __future__ import annotations

import json
import sys

from app.engine_options import add_engine_options, make_engine
from app.paths import SAMPLE_IMAGE

DEFAULT_SOURCE = f"synthetic:size=640x480,fps=30,face={SAMPLE_IMAGE}"


def register(sub) -> None:
    p = sub.add_parser("soak",
                       description="Run capture, inference, tracking, recognition and drawing on a live source "
                                   "(default: a synthetic 30 fps camera showing the bundled sample face; a video file is looped at its own pace) and "
                                   "sample the process's memory and threads after a warm-up. Exit status 1 when "
                                   "threads grow, memory grows by --max-growth-mb or more, or the pipeline fails.")
    p.add_argument("--source", default=DEFAULT_SOURCE, help="source spec (default: a synthetic live camera)")
    p.add_argument("--minutes", type=float, default=10.0, help="measured duration after the warm-up (10)")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds before the first sample (30)")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (10)")
    p.add_argument("--max-growth-mb", type=float, default=50.0, help="allowed memory growth (50)")
    p.add_argument("--samples", action="store_true", help="include every sample in the JSON")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from engines.errors import UserError
    from app.live.soak import run_soak
    from app.sources import check_stream, open_source

    if args.minutes <= 0 or args.warmup < 0 or args.sample_every <= 0:
        raise UserError("--minutes and --sample-every must be positive, --warmup not negative")
    # a file plays looped at its own pace, like a camera
    check_stream(args.source)  # a dead stream: one line now, not a failed run with no reason
    source = open_source(args.source, loop=True, realtime=True)
    if not source.info.realtime:
        raise UserError(f"{args.source} is not a live source: use a camera, a stream, synthetic: or a video file")
    engine = make_engine(args)

    def show(sample) -> None:
        if not args.json:
            print(f"{sample.seconds:7.0f} s  rss {sample.rss_mb:7.1f} MB  threads {sample.threads:3d} "
                  f"(os {sample.os_threads:3d})  frames {sample.frames:7d}  inference {sample.inference_fps:5.1f} fps"
                  f"  dropped {sample.dropped}", file=sys.stderr, flush=True)

    try:
        report = run_soak(source, engine, seconds=args.minutes * 60, warmup=args.warmup,
                          sample_every=args.sample_every, max_rss_growth_mb=args.max_growth_mb, on_sample=show)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        engine.close()
    d = report.to_dict(with_samples=args.samples)
    if args.json:
        print(json.dumps(d))
    else:
        print(f"soak {'passed' if report.passed else 'FAILED'}: {report.frames} frames in {report.seconds:.0f} s, "
              f"memory {report.rss_start_mb:.1f} -> {report.rss_end_mb:.1f} MB ({report.rss_growth_mb:+.1f}, "
              f"limit {report.max_rss_growth_mb:g}), threads {report.threads_start} -> {report.threads_end} "
              f"(os {report.os_threads_start} -> {report.os_threads_end}), after stop {report.threads_after} "
              f"(before start {report.threads_before}), errors {len(report.errors)}")
        for e in report.errors:
            print(f"  error: {e}")
        for reason in report.reasons:
            print(f"  failed because: {reason}")
    return 0 if report.passed else 1
