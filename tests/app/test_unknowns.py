"""Unknown-face clustering: 3 synthetic people, the event-log round trip, the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import UserError
from app.live.recognition import Appearance
from app.gallery.recognition_defaults import DEFAULT_THRESHOLD
from app.offline.unknowns import cluster_unknowns, load_appearances, write_group_crops
from tests.support.paths import REPO



def _unit(v):
    return v / np.linalg.norm(v)


def _people(rng, n=3):
    """Bases with a shared component, like dlib face embeddings: about 0.85 cosine apart."""
    common = _unit(rng.normal(size=128))
    out = []
    for _ in range(n):
        r = rng.normal(size=128)
        r = _unit(r - (r @ common) * common)
        out.append(_unit(common + 0.42 * r))
    return out


def _appearances(seed=0, counts=(5, 3, 2), model_id="cascade-mtcnn-dlib-test"):
    rng = np.random.default_rng(seed)
    bases = _people(rng)
    out, truth = [], []
    track = 1
    for person, (base, count) in enumerate(zip(bases, counts)):
        for k in range(count):
            noise = rng.normal(size=128)
            emb = _unit(base + 0.2 * _unit(noise))  # ~0.98 to the base, ~0.96 to each other
            crop = np.full((120, 120, 3), 40 * (person + 1) + k, np.uint8)
            out.append(Appearance(track_id=track, name=None, best_similarity=None, first_time=float(track),
                                  last_time=track + 2.0, first_frame=track * 10, last_frame=track * 10 + 50,
                                  source_id="cam", best_crop=crop, quality=0.3 + 0.1 * k, observations=20 + k,
                                  embedding=emb.astype(np.float32), model_id=model_id))
            truth.append(person)
            track += 1
    known = Appearance(track_id=99, name="Alice", best_similarity=0.95, first_time=0, last_time=1, first_frame=0,
                       last_frame=9, source_id="cam", best_crop=None, observations=10,
                       embedding=bases[0].astype(np.float32), model_id=model_id)
    return out + [known], truth, bases


def test_three_people_are_three_groups_with_their_best_crop():
    appearances, truth, bases = _appearances()
    groups = cluster_unknowns(appearances)
    assert [g.count for g in groups] == [5, 3, 2]
    by_track = {a.track_id: p for a, p in zip(appearances, truth)}
    for g, person in zip(groups, range(3)):
        assert {by_track[a.track_id] for a in g.appearances} == {person}
        assert g.representative.quality == max(a.quality for a in g.appearances)
        assert float(g.embedding @ bases[person]) > 0.97 and g.cohesion > 0.85
        assert g.frames == sum(a.observations for a in g.appearances)
    assert all(a.name is None for g in groups for a in g.appearances)  # Alice is not an unknown
    # a looser threshold merges people, a strict one splits them
    assert len(cluster_unknowns(appearances, threshold=0.5)) == 1
    assert len(cluster_unknowns(appearances, threshold=0.995)) == 10
    assert cluster_unknowns(appearances[-1:]) == []


def test_min_observations_and_mixed_models():
    appearances, _, _ = _appearances()
    assert sum(g.count for g in cluster_unknowns(appearances, min_observations=22)) == 3 + 1
    mixed = appearances[:4] + [Appearance(**{**{k: getattr(appearances[5], k) for k in Appearance.__slots__},
                                           "model_id": "uniface-other"})]
    with pytest.raises(UserError, match="2 different models"):
        cluster_unknowns(mixed)


def _write_log(tmp_path, appearances):
    crops = tmp_path / "crops"
    crops.mkdir()
    lines = []
    for a in appearances:
        rel = None
        if a.best_crop is not None:
            rel = f"crops/cam_track{a.track_id}.jpg"
            cv2.imwrite(str(tmp_path / rel), a.best_crop)
        lines.append(json.dumps(a.to_record(crop=rel)))
    lines.insert(3, json.dumps({"type": "run", "input": "clip.mp4"}))  # other record types are skipped
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")
    return events


def test_event_log_round_trip_and_crops(tmp_path):
    appearances, _, _ = _appearances()
    events = _write_log(tmp_path, appearances)
    loaded = load_appearances(events)
    assert len(loaded) == len(appearances)
    assert loaded[0].best_crop is not None and loaded[0].best_crop.shape == (120, 120, 3)
    groups = cluster_unknowns(loaded)
    assert [g.count for g in groups] == [5, 3, 2]
    paths = write_group_crops(groups, tmp_path / "out")
    assert [p.name for p in paths] == ["unknown_001.jpg", "unknown_002.jpg", "unknown_003.jpg"]
    best = cv2.imread(str(paths[0]))
    assert abs(int(best.mean()) - int(groups[0].representative.best_crop.mean())) <= 2
    with pytest.raises(UserError, match="already exists"):
        write_group_crops(groups, tmp_path / "out")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "appearance", "track_id": 1}\n')
    with pytest.raises(UserError, match="line 1 is not an appearance record"):
        load_appearances(bad)
    bad.write_text("not json\n")
    with pytest.raises(UserError, match="line 1 is not JSON"):
        load_appearances(bad)
    with pytest.raises(UserError, match="event log not found"):
        load_appearances(tmp_path / "nope.jsonl")


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=dict(os.environ))


def test_unknowns_command(tmp_path):
    appearances, _, _ = _appearances()
    events = _write_log(tmp_path, appearances)
    r = _cli("unknowns", str(events), "--crops", str(tmp_path / "groups"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["unknown_appearances"] == 10 and out["appearances"] == 11
    assert out["threshold"] == pytest.approx(DEFAULT_THRESHOLD["mtcnn-dlib"]) and out["model_id"] == "cascade-mtcnn-dlib-test"
    assert [g["appearances"] for g in out["groups"]] == [5, 3, 2]
    assert all(Path(g["crop"]).is_file() for g in out["groups"])
    r = _cli("unknowns", str(events))
    assert r.returncode == 0 and "3 unknown people in 10 unknown appearances" in r.stdout
    r = _cli("unknowns", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and r.stderr.strip() == f"error: event log not found: {tmp_path / 'missing.jsonl'}"
