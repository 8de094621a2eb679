"""Recognizer: tracks + gallery + vote on synthetic video; appearances; a real-face check on LFW."""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.gallery.enrollment import enrol_images
from app.gallery.store import Gallery, ModelMismatch, open_gallery
from app.gallery.quality import assess, enrolment_problems
from app.live.recognition import Appearance, Recognizer, decode_embedding, encode_embedding
from app.gallery.recognition_defaults import FALLBACK_THRESHOLD
from app.types import Frame
from engines.errors import EngineUnavailable
from engines.faces import Faces
from tests.support.colour_faces import COLOURS, ColourFaceEngine, draw_face, face_sample
from tests.support.paths import SHARED_DATA

DATA = SHARED_DATA
LFW = DATA / "lfw" / "images"


def _video(n=40, fps=25.0, source_id="0", vanish_bob_after=None):
    """Alice walks right along the top, Bob (not enrolled) walks left along the bottom."""
    for t in range(n):
        image = np.full((360, 480, 3), 30, np.uint8)
        draw_face(image, (20 + 6 * t, 30, 120 + 6 * t, 130), COLOURS["alice"])
        if vanish_bob_after is None or t < vanish_bob_after:
            draw_face(image, (360 - 5 * t, 200, 460 - 5 * t, 300), COLOURS["bob"])
        yield Frame(image=image, index=t, media_time=t / fps, capture_time=1000.0 + t, source_id=source_id)


def _gallery_with_alice(tmp_path, engine):
    g = open_gallery(tmp_path / "g", engine)
    g.add_samples("Alice", [face_sample(engine, COLOURS["alice"], size=s) for s in (90, 110)], engine.info.model_id)
    return g


def test_names_tracks_and_appearances_on_a_synthetic_video(tmp_path):
    engine = ColourFaceEngine()
    with _gallery_with_alice(tmp_path, engine) as gallery:
        rec = Recognizer(gallery, engine=engine)
        assert rec.threshold == pytest.approx(FALLBACK_THRESHOLD)  # an engine without a calibrated value
        outputs = []
        for frame in _video():
            faces = engine.infer([frame.image])[0]
            outputs.append((frame, rec(frame, faces)))
        ongoing = rec.events()
        assert len(ongoing) == 2 and all(a.ongoing for a in ongoing)
        rec.finish()
        events = rec.events()

    for t, (frame, out) in enumerate(outputs):
        assert len(out) == 2 and out.extra["quality"].shape == (2,)
        by_name = {("Alice" if out.boxes[i, 1] < 100 else "bob"): i for i in range(2)}
        a, b = by_name["Alice"], by_name["bob"]
        assert out.names[a] == "Alice" and out.similarities[a] > 0.99
        assert out.names[b] is None and out.similarities[b] < 0.5
        if t < 2:
            assert list(out.track_ids) == [-1, -1]  # tentative until the third sighting
        else:
            assert {int(out.track_ids[a]), int(out.track_ids[b])} == {1, 2}

    assert len(events) == 2 and not any(e.ongoing for e in events)
    alice = next(e for e in events if e.name == "Alice")
    bob = next(e for e in events if e.name is None)
    for e in (alice, bob):
        assert (e.first_frame, e.last_frame, e.observations) == (0, 39, 40)
        assert e.first_time == 0.0 and e.last_time == pytest.approx(39 / 25)
        assert e.best_crop is not None and 112 <= e.best_crop.shape[0] <= 256
        assert e.source_id == "0" and e.quality > 0.5
    assert alice.best_similarity > 0.99 and bob.best_similarity is None
    assert float(bob.embedding @ engine.embed_colour(COLOURS["bob"])) > 0.99
    # the best crop is good enough to enrol or re-embed: the engine finds the face in it
    again = engine.infer([bob.best_crop])[0]
    assert len(again) == 1 and float(again.embeddings[0] @ engine.embed_colour(COLOURS["bob"])) > 0.99


def test_sources_are_tracked_separately_and_vanished_tracks_finish(tmp_path):
    engine = ColourFaceEngine()
    with _gallery_with_alice(tmp_path, engine) as gallery:
        rec = Recognizer(gallery, engine=engine)
        for f0, f1 in zip(_video(source_id="cam0", vanish_bob_after=20), _video(source_id="cam1")):
            for frame in (f0, f1):
                rec(frame, engine.infer([frame.image])[0])
        finished = [e for e in rec.events() if not e.ongoing]
        # Bob left cam0 at frame 20; his track ends after max_age (15) missed frames
        assert [(e.source_id, e.name, e.last_frame) for e in finished] == [("cam0", None, 19)]
        assert rec.pop_finished() == finished and [e for e in rec.events() if not e.ongoing] == []
        rec.finish()
        events = rec.events()
    assert sorted((e.source_id, str(e.name)) for e in events) == [("cam0", "Alice"), ("cam1", "Alice"), ("cam1", "None")]
    assert len({e.track_id for e in events + finished}) == 4  # ids unique across sources


def test_no_gallery_tracks_only_and_faces_without_embeddings(tmp_path):
    engine = ColourFaceEngine()
    rec = Recognizer(None)
    for frame in _video(n=5):
        faces = engine.infer([frame.image])[0]
        out = rec(frame, faces)
        assert out.names == [None, None] and np.all(np.isnan(out.similarities))
    assert list(out.track_ids) != [-1, -1]
    with Gallery(tmp_path / "g") as g:
        rec = Recognizer(g)
        frame = next(_video(n=1))
        faces = engine.infer([frame.image])[0]
        bare = Faces(boxes=faces.boxes, scores=faces.scores, landmarks=faces.landmarks)
        assert rec(frame, bare).names == [None, None]
        assert rec(frame, Faces.empty()).names == []


def test_gallery_from_another_model_is_refused_not_matched(tmp_path):
    v1, v2 = ColourFaceEngine(version=1), ColourFaceEngine(version=2)
    with _gallery_with_alice(tmp_path, v1) as gallery:
        with pytest.raises(ModelMismatch, match="embedded by another model than fake-colour-v2"):
            Recognizer(gallery, engine=v2)
        gallery.ensure_model(v2)
        rec = Recognizer(gallery, engine=v2)
        frame = next(_video(n=1))
        assert "Alice" in rec(frame, v2.infer([frame.image])[0]).names


def test_appearance_record_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=128).astype(np.float32)
    emb /= np.linalg.norm(emb)
    crop = np.full((120, 120, 3), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), crop)
    a = Appearance(track_id=3, name=None, best_similarity=None, first_time=1.5, last_time=4.25, first_frame=37,
                   last_frame=106, source_id="door", best_crop=crop, quality=0.8, observations=70, embedding=emb)
    rec = a.to_record(crop="c.png")
    assert rec["type"] == "appearance" and len(rec["embedding"]) == 684
    back = Appearance.from_record(rec, base_dir=tmp_path)
    np.testing.assert_array_equal(back.embedding, emb)
    np.testing.assert_array_equal(back.best_crop, crop)
    assert (back.track_id, back.first_frame, back.last_time, back.source_id) == (3, 37, 4.25, "door")
    assert np.allclose(decode_embedding(list(map(float, emb))), emb)
    assert encode_embedding(None) is None and decode_embedding(None) is None
    with pytest.raises(ValueError):
        decode_embedding([0.0] * 5)


# ------------------------------------------------------------------ real faces (LFW)
class _RenamedModel:
    """A real engine presented under another model_id (what a model update looks like)."""

    def __init__(self, engine):
        self._engine = engine
        self.info = dataclasses.replace(engine.info, model_id=engine.info.model_id + "-next")

    def infer(self, images, score_threshold=None, max_faces=None):
        return self._engine.infer(images, score_threshold, max_faces)


@pytest.fixture(scope="module")
def real_engine():
    if not LFW.is_dir():
        pytest.skip(f"LFW images not found at {LFW}")
    errors = []
    for module, factory in (("engines.backends.registry", lambda m: m.create_engine("cascade")),
                            ("engines.cascade", lambda m: m.CascadeEngine())):
        try:
            return factory(importlib.import_module(module))
        except (ImportError, AttributeError, EngineUnavailable) as exc:
            errors.append(f"{module}: {exc}")
    pytest.skip("no real face engine: " + "; ".join(errors))


def _photos(person):
    return sorted((LFW / person).glob("*.jpg"))


def test_real_faces_enrolled_person_is_named_and_stranger_is_unknown(tmp_path, real_engine):
    blair, powell = _photos("Tony_Blair"), _photos("Colin_Powell")
    if len(blair) < 5 or not powell:
        pytest.skip("the LFW people this test uses are missing")
    with open_gallery(tmp_path / "g", real_engine) as gallery:
        result = enrol_images(gallery, real_engine, "Tony Blair", blair[:3])
        assert len(result.added) >= 2, result.summary_lines()
        assert result.warnings == [], result.warnings
        rec = Recognizer(gallery, engine=real_engine)
        for query, expected in ((blair[4], "Tony Blair"), (powell[0], None)):
            image = cv2.imread(str(query))
            faces = real_engine.infer([image])[0]
            centre = int(np.argmin(np.linalg.norm((faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2 - 125, axis=1)))
            m = gallery.match(faces.embeddings[centre:centre + 1], real_engine.info.model_id)
            assert m.names == [expected], (query.name, m.similarities)
            # the same photo as a 3-frame still video through the Recognizer
            for k in range(3):
                out = rec(Frame(image=image, index=k, media_time=k / 10, capture_time=0.0, source_id=query.stem),
                          faces)
            assert out.names[centre] == expected and out.track_ids[centre] >= 1
        # the stored crops suffice to re-embed every sample for a "new" model (same network,
        # another model_id): the face is found again and its embedding barely moves
        renamed = _RenamedModel(real_engine)
        assert gallery.ensure_model(renamed) == len(result.added)
        for sample in gallery.samples("Tony Blair"):
            vectors = gallery.sample_embeddings(sample.id)
            # (0.93-0.94 with SFace, whose same-person pairs sit around 0.7: JPEG, turn, landmarks again)
            assert float(vectors[real_engine.info.model_id] @ vectors[renamed.info.model_id]) > 0.9
        # quality on a real photo (the stranger's, last query): sharp enough; blurred, refused
        box, lm, score = faces.boxes[centre], faces.landmarks[centre], float(faces.scores[centre])
        q = assess(image, box, lm, score)
        assert not any("blurry" in p for p in enrolment_problems(q)), q
        qb = assess(cv2.GaussianBlur(image, (0, 0), 4), box, lm, score)
        assert any("blurry" in p for p in enrolment_problems(qb)) and qb.weight < q.weight
