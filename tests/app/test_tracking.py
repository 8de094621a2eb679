"""Tracker: stable ids through motion, crossings, missed frames; no ids for one-frame blips."""
from __future__ import annotations

import numpy as np
import pytest

from app.live.tracking import Tracker, TrackerConfig


def _box(cx, cy, size=60.0):
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


def _unit(v):
    return v / np.linalg.norm(v)


def crossing_sequence(frames=60, with_embeddings=True, seed=0, dy=0.0):
    """Two faces walking towards each other on one row, overlapping fully mid-way."""
    rng = np.random.default_rng(seed)
    people = [_unit(rng.normal(size=128)) for _ in range(2)]
    seq = []
    for t in range(frames):
        xa = 40 + 8 * t  # left to right
        xb = 40 + 8 * (frames - 1 - t)  # right to left
        boxes = [_box(xa, 200), _box(xb, 200 + dy)]
        embs = [_unit(people[p] + 0.04 * rng.normal(size=128)) for p in range(2)]
        order = rng.permutation(2)  # detectors give no stable order
        seq.append((np.array(boxes)[order], np.array(embs)[order] if with_embeddings else None, order))
    return seq


@pytest.mark.parametrize("with_embeddings", [True, False])
def test_ids_survive_a_full_overlap_crossing(with_embeddings):
    tracker = Tracker(TrackerConfig(min_hits=3))
    ids_per_person = {0: [], 1: []}
    for boxes, embs, order in crossing_sequence(with_embeddings=with_embeddings):
        tracks = tracker.update(boxes, embs)
        for track, person in zip(tracks, order):
            ids_per_person[person].append(track.id)
    for person, ids in ids_per_person.items():
        assert ids[:2] == [-1, -1], "tentative for the first two frames"
        assert len(set(ids[2:])) == 1, f"person {person} changed id: {ids}"
    assert {ids_per_person[0][-1], ids_per_person[1][-1]} == {1, 2}


def test_embeddings_keep_ids_when_motion_is_misleading():
    """At the crossing the boxes stop and swap places in one jump: IoU alone would swap ids,
    the embeddings keep each person on their own track."""
    rng = np.random.default_rng(3)
    a, b = _unit(rng.normal(size=128)), _unit(rng.normal(size=128))
    tracker = Tracker()
    left, right = _box(200, 200), _box(236, 200)
    id_a = id_b = None
    for t in range(10):
        tracks = tracker.update(np.array([left, right]), np.array([a, b]))
        id_a, id_b = tracks[0].id, tracks[1].id
    tracks = tracker.update(np.array([right, left]), np.array([a, b]))  # swapped positions
    assert (tracks[0].id, tracks[1].id) == (id_a, id_b)
    # without embeddings the same jump swaps them (the test above is not vacuous)
    plain = Tracker()
    for t in range(10):
        tracks = plain.update(np.array([left, right]))
    before = (tracks[0].id, tracks[1].id)
    tracks = plain.update(np.array([right, left]))
    assert (tracks[0].id, tracks[1].id) == before[::-1]


def test_missed_frames_within_max_age_keep_the_id_and_longer_gaps_end_the_track():
    tracker = Tracker(TrackerConfig(max_age=5, min_hits=2))
    ids = []
    for t in range(30):
        seen = not (10 <= t < 14)  # 4 missed frames: within max_age
        boxes = np.array([_box(100 + 3 * t, 100)]) if seen else np.zeros((0, 4))
        tracks = tracker.update(boxes)
        if seen:
            ids.append(tracks[0].id)
    assert ids[0] == -1 and len(set(ids[1:])) == 1
    assert tracker.pop_removed() == []
    for _ in range(6):  # longer than max_age: the track ends
        tracker.update(np.zeros((0, 4)))
    removed = tracker.pop_removed()
    assert [t.id for t in removed] == [ids[-1]] and tracker.tracks == []
    tracks = tracker.update(np.array([_box(190, 100)]))
    tracks = tracker.update(np.array([_box(193, 100)]))
    assert tracks[0].id == ids[-1] + 1  # a new person, a new id


def test_one_frame_false_positives_never_get_an_id_nor_consume_ids():
    tracker = Tracker(TrackerConfig(min_hits=3))
    rng = np.random.default_rng(1)
    seen_ids = set()
    for t in range(40):
        boxes = [_box(300, 300)]
        if t % 5 == 2:  # a blip somewhere else
            boxes.append(_box(rng.uniform(0, 600), rng.uniform(500, 600), size=30))
        for track in tracker.update(np.array(boxes)):
            seen_ids.add(track.id)
    assert seen_ids == {-1, 1}
    removed = tracker.pop_removed()
    assert len(removed) == 8 and all(not t.confirmed for t in removed)


def test_frame_gaps_scale_the_motion_guess():
    """A fast face seen every 4th frame (frames dropped upstream) keeps its id."""
    tracker = Tracker(TrackerConfig(min_hits=2))
    ids = []
    for k in range(12):
        frame = 4 * k
        tracks = tracker.update(np.array([_box(50 + 12 * frame, 200, size=50)]), frame=frame)
        ids.append(tracks[0].id)
    assert ids[0] == -1 and len(set(ids[1:])) == 1


def test_reidentification_without_overlap_needs_similarity_and_a_plausible_size():
    """A fast jump with a near-identical embedding keeps the id; a scene cut to a much larger
    face, or to a merely similar one (different people score ~0.85 with dlib), starts a new track."""
    rng = np.random.default_rng(5)
    person = _unit(rng.normal(size=128))
    lookalike = _unit(person + 0.6 * _unit(rng.normal(size=128)))  # cosine ~0.86 to person
    assert 0.8 < float(person @ lookalike) < 0.9

    def run(second_box, second_emb):
        tracker = Tracker(TrackerConfig(min_hits=2, reid_similarity=0.93))
        for t in range(4):
            first = tracker.update(np.array([_box(100, 100, size=50)]), person[None])[0].id
        return first, tracker.update(np.array([second_box]), second_emb[None])[0].id

    first, after = run(_box(180, 100, size=50), person)  # jumped 1.6 boxes, same face
    assert after == first
    first, after = run(_box(110, 140, size=300), person)  # 6x larger: a cut, not motion
    assert after == -1
    first, after = run(_box(180, 100, size=50), lookalike)  # similar is not the same
    assert after == -1


def test_unsure_detections_continue_a_confirmed_track_but_never_start_one():
    """ByteTrack's two stages: a face whose score dips (shadow, blur) keeps its track; an
    unsure box alone (a dark background patch) never becomes a track."""
    tracker = Tracker(TrackerConfig(min_hits=2, high_score=0.85))
    ids = []
    for t in range(12):
        score = 0.95 if t < 4 else 0.78  # the face goes into shadow
        boxes = np.array([_box(100 + 4 * t, 100), _box(400, 300)])
        tracks = tracker.update(boxes, scores=np.array([score, 0.78]))
        assert tracks[1] is None  # the unsure blip: no track at all
        ids.append(tracks[0].id)
    assert ids[0] == -1 and len(set(ids[1:])) == 1 and ids[1] >= 1
    assert [t.id for t in tracker.tracks] == [ids[-1]]
    # an unsure detection may not confirm a tentative track either
    fresh = Tracker(TrackerConfig(min_hits=2, high_score=0.85))
    first = fresh.update(np.array([_box(300, 300)]), scores=np.array([0.95]))[0]
    assert fresh.update(np.array([_box(302, 300)]), scores=np.array([0.8]))[0] is None
    assert first.id == -1


def test_a_face_that_disagrees_with_its_track_starts_a_new_one():
    """Same place, same size, another person (what a cut the detector missed looks like):
    the embedding gate refuses the overlap match."""
    rng = np.random.default_rng(8)
    a, b = _unit(rng.normal(size=128)), _unit(rng.normal(size=128))
    tracker = Tracker(TrackerConfig(min_hits=2, embedding_gate=0.33))
    for t in range(5):
        first = tracker.update(np.array([_box(200, 200)]), a[None])[0]
    after = tracker.update(np.array([_box(200, 200)]), b[None])[0]
    assert first.id >= 1 and after is not first and after.id == -1
    # the same face goes on on its track
    again = Tracker(TrackerConfig(min_hits=2, embedding_gate=0.33))
    for t in range(5):
        first = again.update(np.array([_box(200, 200)]), a[None])[0]
    assert again.update(np.array([_box(201, 200)]), _unit(a + 0.1 * rng.normal(size=128))[None])[0] is first


def test_gate_follows_the_recognition_threshold():
    from app.live.tracking import gate_for_threshold

    assert gate_for_threshold(0.553) == pytest.approx(0.3295)
    assert gate_for_threshold(0.93) == pytest.approx(0.895)


def test_embedding_gate_per_engine():
    """Half way from the threshold to the mean of different people: SFace's scale is not dlib's."""
    from app.gallery.recognition_defaults import DEFAULT_THRESHOLD, chance_for_model
    from app.live.tracking import gate_for_threshold
    from engines import cascade
    from engines.teachers import mtcnn_dlib

    assert gate_for_threshold(DEFAULT_THRESHOLD["uniface"]) == pytest.approx(0.3295)
    assert gate_for_threshold(DEFAULT_THRESHOLD["mtcnn-dlib"], chance_for_model(mtcnn_dlib.MODEL_ID)) == \
        pytest.approx(0.895)
    gate = gate_for_threshold(DEFAULT_THRESHOLD["cascade"], chance_for_model(cascade.MODEL_ID))
    assert gate == pytest.approx(0.211) and 0.082 < gate < DEFAULT_THRESHOLD["cascade"]
