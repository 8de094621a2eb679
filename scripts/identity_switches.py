"""Count identity switches of the recognizer on a clip with known shot cuts.

    .venv/bin/python scripts/identity_switches.py [--engine uniface|cascade|mtcnn-dlib] [--video V]
        [--config C --weights W] [--cuts 20,82,211] [--enrol 100,180] [--cache DIR] [--json]

The engine runs once over every frame (its faces are cached, so runs of the recognizer before
and after a change see the same detections); the person enrolled is the largest face of the
`--enrol` frames (default: the singer of the sample clip, shot 3). The recognizer then sees
every frame in order, as `main.py process` does. Counted:

- cut crossings: confirmed track ids seen on both sides of a true cut (`--cuts`: the first
  frame of each new shot, found by looking at the clip: 20, 82 and 211 for the sample clip);
- name changes: per confirmed track, how often the shown label changes between frames
  (unknown -> name, name -> unknown, name -> other name);
- wrong names: frames whose shown name is the enrolled person's in a shot he is not in
  (`--absent`: shots by their index, default 3, the audience);
- first named frame of the enrolled person in each shot he is in, counted from the shot's
  first frame where his face is detected;
- the window check of issue 24: of the frames of the enrolled person's own track (the one holding
  the faces he was enrolled from), how many show his name; and how many frames show his name on
  another track of that shot or of a shot he is not in (a hand, the background, someone else).
  Other shots may show him on tracks of their own, so their names are not judged; nor are faces
  of tracks not yet confirmed (his face in the frame or two before his track is).
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.gallery.store import Gallery, NewSample  # noqa: E402
from app.paths import user_cache_dir  # noqa: E402
from app.live.recognition import Recognizer  # noqa: E402
from app.types import Frame  # noqa: E402
from engines.backends.registry import create_engine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def detect_all(video: Path, engine_name: str, cache: Path, config: str | None = None, weights: Path | None = None):
    """(frames' media times, Faces per frame, engine info), cached per video and model (an engine
    whose model changed, e.g. the cascade from MTCNN + dlib to YuNet + SFace, is run again).
    config, weights: the single-shot network's (None: the shipped model)."""
    if engine_name == "uniface":
        options = {k: v for k, v in (("config", config), ("weights", weights)) if v is not None}
        engine = create_engine("uniface", "onnxruntime", "cpu", cache_dir=user_cache_dir(), **options)
    else:
        engine = create_engine(engine_name)
    path = cache / f"{video.stem}.{engine.info.model_id}.faces.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    times, faces, images = [], [], []
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            times.append(frame.time)
            faces.append(engine.infer([image])[0])
    data = (times, faces, engine.info.engine, engine.info.model_id)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data))
    return data


def images_of(video: Path) -> list[np.ndarray]:
    with av.open(str(video)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--engine", default="uniface", choices=["uniface", "cascade", "mtcnn-dlib"])
    p.add_argument("--video", type=Path, default=REPO / "docs/samples/hamilton_clip.mp4")
    p.add_argument("--cuts", default="20,82,211")
    p.add_argument("--enrol", default="100,180")
    p.add_argument("--absent", default="3", help="shots (0-based) the enrolled person is not in")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "unisight-switches")
    p.add_argument("--config", default=None, help="the single-shot network's configuration (default: shipped)")
    p.add_argument("--weights", type=Path, default=None, help="its weights, e.g. a training checkpoint")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    cuts = [int(c) for c in args.cuts.split(",") if c]
    absent = {int(s) for s in args.absent.split(",") if s}
    times, faces, engine_name, model_id = detect_all(args.video, args.engine, args.cache, args.config, args.weights)
    images = images_of(args.video)

    with tempfile.TemporaryDirectory() as tmp, Gallery(tmp) as gallery:
        samples, enrolled_faces = [], {}
        for k in (int(x) for x in args.enrol.split(",")):
            f = faces[k]
            i = int(np.argmax((f.boxes[:, 2] - f.boxes[:, 0]) * (f.boxes[:, 3] - f.boxes[:, 1])))
            samples.append(NewSample(embedding=f.embeddings[i], source=f"frame {k}"))
            enrolled_faces[k] = i
        gallery.add_samples("person", samples, model_id)

        class _Info:
            engine = engine_name

        class _Engine:
            info = _Info()

        _Engine.info.model_id = model_id
        recognizer = Recognizer(gallery, engine=_Engine())
        per_frame = []  # (frame, shot, track id, name)
        own_tracks: set[int] = set()  # the enrolled person's tracks: those of the faces he was enrolled from
        started = time.perf_counter()
        for index, (t, image, f) in enumerate(zip(times, images, faces)):
            out = recognizer(Frame(image=image, index=index, media_time=t, capture_time=time.monotonic(),
                                   source_id="clip"), f)
            shot = sum(index >= c for c in cuts)
            for j in range(len(out)):
                per_frame.append((index, shot, int(out.track_ids[j]), out.names[j]))
                if enrolled_faces.get(index) == j:
                    own_tracks.add(int(out.track_ids[j]))
        seconds = time.perf_counter() - started
        recognizer.finish()

    shots_of: dict[int, set[int]] = {}
    labels: dict[int, list[str | None]] = {}
    for index, shot, tid, name in per_frame:
        if tid < 0:
            continue
        shots_of.setdefault(tid, set()).add(shot)
        labels.setdefault(tid, []).append(name)
    crossings = sum(len(s) - 1 for s in shots_of.values())
    changes = sum(sum(a != b for a, b in zip(seq, seq[1:])) for seq in labels.values())
    wrong = sum(1 for _, shot, _, name in per_frame if shot in absent and name == "person")
    first_named = {}
    for shot in range(len(cuts) + 1):
        if shot in absent:
            continue
        rows = [(i, name) for i, s, _, name in per_frame if s == shot]
        if not rows:
            continue
        start = rows[0][0]
        named = [i for i, name in rows if name == "person"]
        first_named[shot] = None if not named else named[0] - start
    own_tracks.discard(-1)
    own_frames = [name for _, _, tid, name in per_frame if tid in own_tracks]
    judged_shots = absent | {shot for _, shot, tid, _ in per_frame if tid in own_tracks}
    report = {
        "engine": engine_name, "model_id": model_id, "frames": len(images), "cuts": cuts,
        "confirmed_tracks": len(shots_of), "cut_crossings": crossings, "name_changes": changes,
        "identity_switches": crossings + changes, "wrong_name_frames": wrong,
        "frames_to_first_name_per_shot": first_named,
        "own_track_frames": len(own_frames), "own_track_frames_named": sum(n == "person" for n in own_frames),
        "other_frames_named": sum(1 for _, shot, tid, name in per_frame
                                  if shot in judged_shots and tid >= 0 and tid not in own_tracks and name == "person"),
        "recognizer_ms_per_frame": round(1000 * seconds / len(images), 2),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
