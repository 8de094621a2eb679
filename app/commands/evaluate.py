"""`main.py eval lfw|widerface|agreement`: the benchmark figures (LFW verification, WIDER FACE AP,
agreement with the teacher detector on video)."""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from app.engine_options import add_engine_options
from engines.errors import UserError
from app.paths import REPO_ROOT, SAMPLE_VIDEO, user_cache_dir
from engines.backends.registry import CASCADES

log = logging.getLogger(__name__)

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_LFW = SHARED_DATA / "lfw"
DEFAULT_WIDER = SHARED_DATA / "widerface-sample"
TEACHER_SCORE = 0.5  # a teacher box this sure confirms an engine box
ENGINE_OPTIONS = ("engine", "backend", "device", "config", "weights", "input_size")


def register(sub) -> None:
    p = sub.add_parser("eval")
    which = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)

    lfw = which.add_parser("lfw", help="LFW 10-fold verification accuracy (pairs.txt)",
                           description="Official 10-fold protocol: the whole 250x250 image goes to the engine, "
                           "the face nearest the centre is used; cosine similarity; per fold the threshold "
                           "is chosen on the other nine.")
    lfw.add_argument("--data", type=Path, default=DEFAULT_LFW,
                     help=f"LFW folder with pairs.txt (default {DEFAULT_LFW})")
    lfw.add_argument("--limit", type=int, default=None, help="only N pairs per fold (half matched), for quick checks")
    lfw.add_argument("--tilt", type=float, default=0.0, metavar="DEG",
                     help="turn each image by DEG degrees one way or the other (fixed per file name): "
                          "how recognition holds up on tilted heads (default 0)")
    lfw.add_argument("--jitter", type=int, default=0, metavar="PX",
                     help="crop or pad each side of each image by up to PX pixels (fixed per file name; the "
                          "Uniface paper's robustness test uses 60): how recognition holds up on loosely "
                          "framed faces (default 0)")
    lfw.add_argument("--min-score", type=float, default=None,
                     help="detection score a face needs (default: the model's own); a lower one keeps an early "
                          "checkpoint's detection out of a comparison of its recognition")
    _add_common(lfw)
    lfw.add_argument("--no-cache", action="store_true", help="recompute every embedding (and do not store them)")
    lfw.set_defaults(func=run_lfw)

    wider = which.add_parser("widerface", help="WIDER FACE val easy/medium/hard AP",
                             description="The official evaluation (IoU 0.5, ignored faces, 1000 thresholds, "
                             "VOC AP) over the val images found in --images.")
    wider.add_argument("--images", type=Path, default=DEFAULT_WIDER,
                       help=f"folder of val images, EVENT_NAME.jpg or EVENT/NAME.jpg (default {DEFAULT_WIDER})")
    wider.add_argument("--gt", type=Path, default=None,
                       help="wider_face_val.mat, with wider_{easy,medium,hard}_val.mat beside it "
                            "(default: IMAGES/wider_face_val.mat)")
    wider.add_argument("--min-score", type=float, default=0.02, help="detection score threshold (0.02)")
    wider.add_argument("--limit", type=int, default=None, help="only the first N images found")
    wider.add_argument("--sizes", type=Path, default=None,
                       help="original sizes of resized copies: 'NAME WIDTH HEIGHT' lines; detections are "
                            "scaled to them before matching")
    _add_common(wider)
    wider.set_defaults(func=run_widerface)

    agree = which.add_parser("agreement", help="boxes the teacher detector does not confirm, on a video",
                             description="Runs the engine and a teacher detector (YuNet, or MTCNN) on the frames of a video. An "
                             "engine box that overlaps no teacher box (IoU 0.3) is unconfirmed: on footage "
                             "without labels, this is where invented faces show, large ones on dark or "
                             "blurred backgrounds above all. Also reports the share of the teacher's sure "
                             "faces the engine finds (IoU 0.5).")
    agree.add_argument("--video", type=Path, default=SAMPLE_VIDEO, help=f"video file (default {SAMPLE_VIDEO.name})")
    agree.add_argument("--teacher", choices=["yunet", "mtcnn"], default="yunet",
                       help="the detector that confirms boxes: yunet (the cascade's, default) or mtcnn (the "
                            "mtcnn-dlib engine's, the earlier models' teacher)")
    agree.add_argument("--every", type=int, default=1, metavar="N", help="look at every Nth frame (1)")
    agree.add_argument("--limit", type=int, default=None, help="stop after N frames looked at")
    agree.add_argument("--min-score", type=_scores, default=None, metavar="T[,T...]",
                       help="detection thresholds to count at, e.g. 0.5,0.6,0.7,0.8,0.9: one inference, one "
                            "row each, to choose a model's threshold (default: the model's own)")
    add_engine_options(agree)
    agree.add_argument("--json", action="store_true", help="print one JSON object")
    agree.set_defaults(func=run_agreement)


def _scores(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(0.0 <= v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"expected detection scores in [0, 1) such as 0.7,0.9, got {text!r}")
    return values


def _add_common(p: argparse.ArgumentParser) -> None:
    add_engine_options(p)
    p.add_argument("--workers", type=int, default=None,
                   help="processes, each with its own engine (default: 2 for cascade, 1 for uniface)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class EngineSpec:
    """A picklable recipe for the engine the options ask for (worker processes build their own)."""

    options: dict = field(default_factory=dict)
    embed: bool = True  # False: detection only, where the engine can skip embeddings

    def __call__(self):
        args = argparse.Namespace(**self.options)
        if args.engine in CASCADES:
            return _cascade(args, self.embed)
        from app.engine_options import make_engine

        return make_engine(args, background_build=False)


def _cascade(args: argparse.Namespace, embed: bool):
    """A two-network engine, without its embedder when only boxes are measured."""
    from engines.errors import EngineUnavailable

    own_backend, load = CASCADES[args.engine]
    if args.backend not in ("auto", own_backend):
        raise UserError(f"the {args.engine} engine runs on {own_backend}; --backend {args.backend} does not apply")
    try:
        return load()(embed=embed)
    except EngineUnavailable as exc:
        raise UserError(str(exc)) from None


def _spec(args, embed: bool = True) -> EngineSpec:
    return EngineSpec({k: getattr(args, k) for k in ENGINE_OPTIONS}, embed)


def _workers(args) -> int:
    if args.workers is not None:
        if args.workers < 1:
            raise UserError("--workers must be at least 1")
        return args.workers
    # MTCNN + dlib run one core each: two processes use both; the others thread natively
    return 2 if args.engine == "mtcnn-dlib" else 1


def _info_dict(info) -> dict:
    return {"engine": info.engine, "backend": info.backend, "device": info.device, "model_id": info.model_id,
            "random_weights": info.random_weights}


def run_lfw(args) -> int:
    from engines.eval.lfw import EmbeddingCache, evaluate_lfw

    if args.limit is not None and args.limit < 2:
        raise UserError("--limit must be at least 2 (one matched and one mismatched pair per fold)")
    if not -180 <= args.tilt <= 180:
        raise UserError(f"--tilt must be between -180 and 180 degrees, got {args.tilt}")
    if not 0 <= args.jitter <= 100:
        raise UserError(f"--jitter must be between 0 and 100 pixels (LFW images are 250x250), got {args.jitter}")
    if args.min_score is not None and not 0 <= args.min_score < 1:
        raise UserError(f"--min-score must be in [0, 1), got {args.min_score}")
    if not (args.data / "pairs.txt").is_file():
        raise UserError(f"no pairs.txt in {args.data}: point --data at the LFW folder (pairs.txt and images/)")
    spec = _spec(args)
    workers = _workers(args)
    engine = spec()
    try:
        info = engine.info
        # random weights may differ between runs: never cache what they produce
        # the detection threshold picks the central face, so it is part of the key
        score = args.min_score if args.min_score is not None else getattr(engine, "score_threshold", None)
        key = info.model_id if score is None else f"{info.model_id}-score{score:g}"
        # so do the input size and how far small photos are enlarged
        key += "" if info.input_size is None else f"-{info.input_size[0]}x{info.input_size[1]}"
        upscale = getattr(engine, "max_upscale", None)
        key += "" if upscale is None else f"-up{upscale:g}"
        key += f"-tilt{args.tilt:g}" if args.tilt else ""
        key += f"-jitter{args.jitter}" if args.jitter else ""
        cache = None if args.no_cache or info.random_weights else EmbeddingCache.file_for(
            user_cache_dir() / "eval", "lfw", info.engine, key)
        if workers > 1:
            engine.close()
        try:
            result = evaluate_lfw(args.data, spec, engine, cache_file=cache, limit=args.limit, workers=workers,
                                  progress=not args.quiet, tilt=args.tilt, score_threshold=args.min_score,
                                  jitter=args.jitter)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(f"{exc} (check --data)") from None
    finally:
        engine.close()
    if args.json:
        print(json.dumps({
            "benchmark": "lfw",
            "accuracy": round(result.accuracy, 6),
            "std": round(result.std, 6),
            "threshold": round(result.threshold, 6),
            **{name: round(value, 6) for p in result.operating_points.values()
               for name, value in ((f"threshold_far_{100 * p.far:g}pct", p.threshold),
                                   (f"tar_at_far_{100 * p.far:g}pct", p.tar))},
            "no_face": result.no_face,
            "no_face_pairs": result.no_face_pairs,
            "pairs": result.pairs,
            "images": result.images,
            "tilt": args.tilt,
            "jitter": args.jitter,
            "min_score": score,
            "folds": [round(a, 6) for a in result.fold_accuracies],
            "seconds": round(result.seconds, 1),
            "cache": None if cache is None else str(cache),
            **_info_dict(info),
        }))
        return 0
    perturbed = f", each turned {args.tilt:g} degrees one way or the other" if args.tilt else ""
    perturbed += f", each side cropped or padded by up to {args.jitter} px" if args.jitter else ""
    print(f"LFW 10-fold verification: {result.pairs} pairs, {result.images} images{perturbed}  "
          f"[{info.engine}/{info.backend} {info.model_id}]")
    print(f"  accuracy  {100 * result.accuracy:.2f}% ± {100 * result.std:.2f}")
    print(f"  threshold {result.threshold:.4f} (cosine similarity, mean of the 10 folds' choices)")
    for p in result.operating_points.values():
        print(f"  at {100 * p.far:g}% false accepts: threshold {p.threshold:.4f}, "
              f"{100 * p.tar:.1f}% of same-person pairs accepted")
    print(f"  no face found in {result.no_face} of {result.images} images; the {result.no_face_pairs} pairs "
          f"with such an image count as 'different'")
    if result.no_face_images:
        print("  no face: " + ", ".join(result.no_face_images[:10]) + (" ..." if result.no_face > 10 else ""))
    if result.seconds:
        print(f"  embedding took {result.seconds:.0f} s ({workers} worker(s))")
    return 0


def run_widerface(args) -> int:
    from engines.eval.widerface import evaluate_widerface, read_sizes

    gt = args.gt or args.images / "wider_face_val.mat"
    if not gt.is_file():
        raise UserError(f"ground truth {gt} not found: pass --gt path/to/wider_face_val.mat")
    if not args.images.is_dir():
        raise UserError(f"image folder {args.images} not found (see --images)")
    sizes = None
    if args.sizes is not None:
        try:
            sizes = read_sizes(args.sizes)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read --sizes: {exc}") from None
    spec = _spec(args, embed=False)
    workers = _workers(args)
    engine = spec()
    try:
        info = engine.info
        # recall by face size at the score the product draws boxes at
        own_score = getattr(engine, "score_threshold", None)
        if workers > 1:
            engine.close()
        try:
            result = evaluate_widerface(args.images, gt, spec, engine=engine, workers=workers,
                                        score_threshold=args.min_score, limit=args.limit, progress=not args.quiet,
                                        original_sizes=sizes, size_score=own_score)
        except FileNotFoundError as exc:
            raise UserError(f"{exc} (check --images and --gt)") from None
    finally:
        engine.close()
    if result.resized:
        log.warning("%d of %d images are smaller than their ground truth (resized copies): their AP is "
                    "meaningless without --sizes giving the original sizes", result.resized, result.images)
    if args.json:
        print(json.dumps({
            "benchmark": "widerface",
            "easy": round(result.easy, 6),
            "medium": round(result.medium, 6),
            "hard": round(result.hard, 6),
            "images": result.images,
            "faces": result.faces,
            "detections": result.detections,
            "resized_images": result.resized,
            "rescaled_images": result.rescaled,
            "min_score": args.min_score,
            "recall_by_size": {"score": result.by_size_score,
                               "bins": [{"size": b.label, "faces": b.faces, "recalled": b.recalled} for b in result.by_size]},
            **_info_dict(info),
        }))
        return 0
    print(f"WIDER FACE val AP over {result.images} images  [{info.engine}/{info.backend} {info.model_id}]")
    print(f"  easy {result.easy:.4f}  medium {result.medium:.4f}  hard {result.hard:.4f}  "
          f"(faces counted: {result.faces['easy']}/{result.faces['medium']}/{result.faces['hard']})")
    if result.by_size:
        print(f"  faces found at the model's score {result.by_size_score:g} (IoU >= 0.5), by the box's longer side: "
              + ", ".join(f"{b.label} {b.recalled}/{b.faces}" for b in result.by_size if b.faces))
    if result.rescaled:
        print(f"  {result.rescaled} images were resized copies; detections mapped to the sizes from --sizes")
    if result.resized:
        print(f"  WARNING: {result.resized} images are resized copies (their ground truth reaches past them): "
              "these figures are meaningless without --sizes")
    return 0


def run_agreement(args) -> int:
    from app.sources import open_source
    from engines.errors import EngineUnavailable
    from engines.eval.agreement import LARGE_SHARE, AgreementResult, agreement_at

    if args.every < 1 or (args.limit is not None and args.limit < 1):
        raise UserError("--every and --limit must be at least 1")
    if args.engine in CASCADES:
        raise UserError(f"the {args.engine} engine's detector is a teacher: compare --engine uniface with it")
    try:
        if args.teacher == "mtcnn":
            from engines.teachers.mtcnn import MTCNN

            mtcnn = MTCNN()

            def teach(image):
                return mtcnn.detect([image], TEACHER_SCORE)[0]
        else:
            from engines.teachers.yunet import YuNetDetector

            yunet = YuNetDetector()

            def teach(image):
                return yunet.detect(image, TEACHER_SCORE)
    except EngineUnavailable as exc:
        raise UserError(f"the teacher detector is not installed: {exc}") from None
    source = open_source(str(args.video), realtime=False)
    engine = _spec(args, embed=False)()
    try:
        info = engine.info
        thresholds = args.min_score or [engine.score_threshold]
        results = [AgreementResult() for _ in thresholds]
        with source:
            for frame in source:
                if frame.index % args.every:
                    continue
                faces = engine.infer([frame.image], score_threshold=min(thresholds))[0]
                taught = teach(frame.image)
                counts = agreement_at(faces, taught, frame.image.shape[0], thresholds)
                for result, count in zip(results, counts):
                    result.add(frame.index, count)
                if args.limit is not None and results[0].frames >= args.limit:
                    break
    finally:
        engine.close()
    if source.error:
        log.warning("%s: %s; the figures cover the %d frames read", args.video, source.error, source.frames_read)
    if results[0].frames == 0:
        raise UserError(f"no frames could be read from {args.video}")
    if args.json:
        print(json.dumps({
            "benchmark": "agreement",
            "video": str(args.video),
            "every": args.every,
            "teacher": args.teacher,
            **_agreement_dict(thresholds[0], results[0]),
            "large_share": LARGE_SHARE,
            "model_min_score": engine.score_threshold,
            **({"curve": [_agreement_dict(t, r) for t, r in zip(thresholds, results)]} if len(results) > 1 else {}),
            **_info_dict(info),
        }))
        return 0
    print(f"Teacher agreement on {args.video.name}: {results[0].frames} frames  "
          f"[{info.engine}/{info.backend} {info.model_id}, its own detection threshold {engine.score_threshold:g}]")
    for threshold, result in zip(thresholds, results):
        print(f"  at score > {threshold:g}: engine boxes {result.boxes}: {result.unconfirmed} unconfirmed by the "
              f"teacher ({result.per_100_frames(result.unconfirmed):.1f} per 100 frames), "
              f"{result.unconfirmed_large} of them large ({result.per_100_frames(result.unconfirmed_large):.1f} "
              f"per 100 frames; side >= {100 * LARGE_SHARE:g}% of the frame height)")
        if result.teacher_faces:
            print(f"    teacher faces {result.teacher_faces}: {100 * result.found_share:.1f}% found by the engine")
        if result.large_frames:
            shown = ", ".join(str(i) for i in result.large_frames[:20])
            print(f"    frames with an unconfirmed large box: {shown}{' ...' if len(result.large_frames) > 20 else ''}")
    return 0


def _agreement_dict(threshold: float, result) -> dict:
    return {
        "min_score": threshold,
        "frames": result.frames,
        "boxes": result.boxes,
        "unconfirmed": result.unconfirmed,
        "unconfirmed_large": result.unconfirmed_large,
        "unconfirmed_per_100_frames": round(result.per_100_frames(result.unconfirmed), 3),
        "unconfirmed_large_per_100_frames": round(result.per_100_frames(result.unconfirmed_large), 3),
        "teacher_faces": result.teacher_faces,
        "found": result.found,
        "found_share": round(result.found_share, 6) if result.teacher_faces else None,
        "large_frames": result.large_frames,
    }
