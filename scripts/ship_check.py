#!/usr/bin/env python3
"""Does a checkpoint beat the shipped model? Issue 24's rule for shipping one: better on LFW and on
the WIDER FACE sample at 640x480, without losing the detection checks (teacher agreement on the
two clips, no more faces on the cat, the astronaut found with her landmarks in order).

Both models are measured in this run by the product's own commands (`main.py eval lfw`, `eval
widerface`, `eval agreement`, `identify`); LFW embeddings are cached per model, so the shipped
model's figures cost nothing after the first run. Prints a table and the verdict, writes the
figures as JSON (--out), exit status 0 when the candidate may ship, 1 when not.

    .venv/bin/python scripts/ship_check.py --config mnv2_s8_mnv2face \\
        --weights runs/student_mnv2face/step_003000.pt [--min-score 0.8] [--quick] [--out FILE]

--min-score: the detection threshold the candidate would ship with (`export weights
--detection-threshold`; default: the checkpoint's own). --quick: LFW on 1,000 pairs, 20 WIDER
images and every 5th clip frame, a look rather than a decision.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engines.faces import box_iou  # noqa: E402
SAMPLES = REPO / "docs" / "samples"
OTHER_CLIP = REPO.parent / "shared" / "data" / "video" / "facenet_pytorch_example.mp4"
WIDER_SIZES = ("640x480", "1024x768")
# a candidate may find this many points fewer of the teacher's faces on a clip and still ship
FOUND_SLACK = 0.02
# ... and draw this many more unconfirmed large boxes per 100 frames
LARGE_SLACK = 1.0


def main_py(*args: str) -> dict:
    """One `main.py ... --json` command's JSON (an error stops the check, with the command's own message)."""
    cmd = [sys.executable, str(REPO / "main.py"), *args, "--json"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def measure(engine: list[str], min_score: float | None, quick: bool) -> dict:
    """The figures the rule compares, for one model (`engine`: its --config/--weights options)."""
    score = [] if min_score is None else ["--min-score", f"{min_score:g}"]
    lfw = main_py("eval", "lfw", *engine, *score, "--quiet", *(["--limit", "100"] if quick else []))
    figures = {"model_id": lfw["model_id"], "lfw": lfw["accuracy"], "lfw_std": lfw["std"],
               "lfw_no_face_share": lfw["no_face"] / lfw["images"], "lfw_pairs": lfw["pairs"]}
    for size in WIDER_SIZES:
        wider = main_py("eval", "widerface", *engine, "--input-size", size, "--quiet",
                        *(["--limit", "20"] if quick else []))
        figures[f"wider_{size}"] = [wider["easy"], wider["medium"], wider["hard"]]
    every = ["--every", "5"] if quick else []
    clips = [("clip", SAMPLES / "hamilton_clip.mp4", every)]
    if OTHER_CLIP.is_file():
        clips.append(("group_video", OTHER_CLIP, ["--every", "15" if quick else "3"]))
    for name, video, step in clips:
        agreement = main_py("eval", "agreement", *engine, *score, "--video", str(video), *step)
        figures[f"{name}_found"] = agreement["found_share"]
        figures[f"{name}_unconfirmed_large_per_100"] = agreement["unconfirmed_large_per_100_frames"]
    astronaut = main_py("identify", str(SAMPLES / "astronaut.jpg"), *engine, *score)
    teacher = main_py("identify", str(SAMPLES / "astronaut.jpg"), "--engine", "cascade")
    figures["astronaut_ok"] = astronaut_found(astronaut["faces"], teacher["faces"])
    figures["cat_faces"] = len(main_py("identify", str(SAMPLES / "cat_no_face.jpg"), *engine, *score)["faces"])
    figures["min_score"] = astronaut["min_score"]
    return figures


def astronaut_found(faces: list[dict], teacher: list[dict]) -> bool:
    """One face, on the teacher's (IoU > 0.5), its landmarks inside the box and in order."""
    if len(faces) != 1 or len(teacher) != 1:
        return False
    x1, y1, x2, y2 = faces[0]["box"]
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = faces[0]["landmarks"]
    inside = all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in faces[0]["landmarks"])
    on_teacher = box_iou(faces[0]["box"], teacher[0]["box"])[0, 0] > 0.5
    return bool(on_teacher and inside and lx < nx < rx and mlx < mrx and max(ly, ry) < ny < min(mly, mry))


def shortfalls(candidate: dict, shipped: dict) -> list[str]:
    """Why the candidate may not replace the shipped model (empty: it may)."""
    why = []
    if candidate["lfw"] <= shipped["lfw"]:
        why.append(f"LFW {100 * candidate['lfw']:.2f}% is not above the shipped {100 * shipped['lfw']:.2f}%")
    if candidate["lfw_no_face_share"] >= 0.005:
        why.append(f"no face in {100 * candidate['lfw_no_face_share']:.2f}% of LFW images (the bar: < 0.5%)")
    for level, new, old in zip(("easy", "medium", "hard"), candidate["wider_640x480"], shipped["wider_640x480"]):
        if new <= old:
            why.append(f"WIDER 640x480 {level} AP {new:.3f} is not above the shipped {old:.3f}")
    for clip in ("clip", "group_video"):
        if f"{clip}_found" not in candidate:
            continue
        if candidate[f"{clip}_found"] < shipped[f"{clip}_found"] - FOUND_SLACK:
            why.append(f"{clip}: finds {100 * candidate[f'{clip}_found']:.1f}% of the teacher's faces, the "
                       f"shipped model {100 * shipped[f'{clip}_found']:.1f}%")
        key = f"{clip}_unconfirmed_large_per_100"
        if candidate[key] > shipped[key] + LARGE_SLACK:
            why.append(f"{clip}: {candidate[key]:.1f} unconfirmed large boxes per 100 frames, the shipped "
                       f"model {shipped[key]:.1f}")
    if not candidate["astronaut_ok"] and shipped["astronaut_ok"]:
        why.append("the astronaut is not found as one face on the teacher's box with her landmarks in order")
    if candidate["cat_faces"] > shipped["cat_faces"]:
        why.append(f"{candidate['cat_faces']} faces on the cat, the shipped model {shipped['cat_faces']}")
    return why


def table(candidate: dict, shipped: dict) -> str:
    rows = [f"{'figure':<34} {'candidate':>22} {'shipped':>22}"]
    for key in candidate:
        if key in ("model_id",):
            continue
        rows.append(f"{key:<34} {_show(candidate[key]):>22} {_show(shipped.get(key)):>22}")
    return "\n".join(rows)


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return " / ".join(f"{v:.3f}" for v in value)
    return str(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--min-score", type=float, default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="write both models' figures and the verdict here (JSON)")
    args = p.parse_args(argv)
    if not args.weights.is_file():
        p.error(f"no weights file {args.weights}")
    candidate = measure(["--config", args.config, "--weights", str(args.weights)], args.min_score, args.quick)
    shipped = measure([], None, args.quick)
    why = shortfalls(candidate, shipped)
    print(table(candidate, shipped))
    print("verdict: " + ("SHIP (then export weights with the threshold, the model card, the README)" if not why
                         else "keep training:\n  " + "\n  ".join(why)))
    if args.out is not None:
        args.out.write_text(json.dumps({"candidate": candidate, "shipped": shipped, "shortfalls": why,
                                        "quick": args.quick}, indent=1))
    return 0 if not why else 1


if __name__ == "__main__":
    raise SystemExit(main())
