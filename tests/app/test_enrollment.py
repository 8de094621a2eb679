"""Enrolment: every input is added or refused with its reason; look-alikes are warned about."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from app.gallery.enrollment import enrol_crops, enrol_images
from engines.errors import UserError
from app.gallery.face_crop import storage_crop
from app.gallery.store import Gallery
from app.gallery.quality import QualityThresholds
from tests.support.colour_faces import COLOURS, ColourFaceEngine, draw_face
from tests.support.paths import SHARED_DATA


def _photo(path, faces, blur=0.0, size=(320, 320)):
    """Write a synthetic photo with faces [(box, colour)] and return its path."""
    image = np.full((size[1], size[0], 3), 30, np.uint8)
    for box, colour in faces:
        draw_face(image, box, colour)
    if blur:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    cv2.imwrite(str(path), image)
    return path


@pytest.fixture()
def engine():
    return ColourFaceEngine()


@pytest.fixture()
def gallery(tmp_path):
    with Gallery(tmp_path / "g", threshold=0.8) as g:
        yield g


def test_enrol_several_photos_adds_each_with_quality(tmp_path, engine, gallery):
    paths = [_photo(tmp_path / f"alice{i}.jpg", [((60 + 10 * i, 50, 180 + 10 * i, 170), COLOURS["alice"])])
             for i in range(3)]
    result = enrol_images(gallery, engine, "Alice", paths)
    assert result.ok and result.created and result.refused == [] and result.warnings == []
    assert [a.source for a in result.added] == [str(p) for p in paths]
    assert all(a.quality.height == 120 for a in result.added)
    samples = gallery.samples("Alice")
    assert [s.id for s in samples] == [a.sample_id for a in result.added]
    assert all(s.has_crop and s.model_ids == [engine.info.model_id] for s in samples)
    # the stored crop lets the engine find the same face again
    crop = gallery.sample_crop(samples[0].id)
    again = engine.infer([crop.image])[0]
    assert len(again) == 1 and float(again.embeddings[0] @ engine.embed_colour(COLOURS["alice"])) > 0.99
    assert gallery.match(engine.embed_colour(COLOURS["alice"])[None], engine.info.model_id).names == ["Alice"]
    # a second enrolment adds to the identity
    more = enrol_images(gallery, engine, "alice", [_photo(tmp_path / "a4.jpg", [((80, 80, 200, 200), COLOURS["alice"])])])
    assert more.ok and not more.created and len(gallery.samples("Alice")) == 4
    assert json.loads(json.dumps(more.to_dict()))["added"][0]["source"].endswith("a4.jpg")


def test_every_bad_input_is_refused_with_its_reason(tmp_path, engine, gallery):
    good = _photo(tmp_path / "good.jpg", [((100, 100, 220, 220), COLOURS["bob"])])
    two = _photo(tmp_path / "two.jpg", [((20, 100, 120, 200), COLOURS["bob"]), ((180, 100, 300, 220), COLOURS["carol"])])
    empty = _photo(tmp_path / "empty.jpg", [])
    small = _photo(tmp_path / "small.jpg", [((100, 100, 140, 140), COLOURS["bob"])])
    blurry = _photo(tmp_path / "blurry.jpg", [((100, 100, 220, 220), COLOURS["bob"])], blur=10)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    missing = tmp_path / "missing.jpg"
    inputs = [good, two, empty, small, blurry, text, missing]
    result = enrol_images(gallery, engine, "Bob", inputs)
    assert [a.source for a in result.added] == [str(good)]
    reasons = {r.source: r.reason for r in result.refused}
    assert set(reasons) == {str(p) for p in inputs[1:]}  # nothing dropped silently
    assert "2 faces found: choose one with --face largest or --face INDEX" in reasons[str(two)]
    assert reasons[str(empty)] == "no face found"
    assert reasons[str(small)].startswith("face too small (40 px high")
    assert reasons[str(blurry)].startswith("face too blurry")
    assert reasons[str(text)].startswith(f"cannot decode {text}")
    assert reasons[str(missing)] == "file not found"
    lines = result.summary_lines()
    assert lines[-1] == "Bob: created, 1 sample(s) added, 6 refused" and len(lines) == 8
    # configurable limits: the small face passes with a lower minimum
    ok = enrol_images(gallery, engine, "Bob", [small], limits=QualityThresholds(min_height=32, min_interocular=12))
    assert ok.ok


def test_nothing_usable_creates_nothing(tmp_path, engine, gallery):
    result = enrol_images(gallery, engine, "Ghost", [_photo(tmp_path / "e.jpg", [])])
    assert not result.ok and "Ghost" not in gallery and len(gallery) == 0
    assert result.summary_lines()[-1] == "Ghost: nothing enrolled (1 refused)"


def test_choosing_among_several_faces(tmp_path, engine, gallery):
    # left face smaller (Bob), right face larger (Carol)
    group = _photo(tmp_path / "group.jpg",
                   [((10, 100, 110, 200), COLOURS["bob"]), ((170, 80, 310, 220), COLOURS["carol"])])
    mid = engine.info.model_id
    assert enrol_images(gallery, engine, "P1", [group], face="largest").ok
    assert enrol_images(gallery, engine, "P2", [group], face=0).ok
    refused = enrol_images(gallery, engine, "P3", [group], face=2)
    assert refused.refused[0].reason == "--face 2 asked, but only 2 face(s) found (0 = leftmost)"
    m = gallery.match(np.stack([engine.embed_colour(COLOURS["carol"]), engine.embed_colour(COLOURS["bob"])]), mid)
    assert m.names == ["P1", "P2"]
    with pytest.raises(UserError, match="--face 'biggest'"):
        enrol_images(gallery, engine, "P4", [group], face="biggest")


def test_look_alike_warnings(tmp_path, engine, gallery):
    alice = _photo(tmp_path / "alice.jpg", [((100, 100, 220, 220), COLOURS["alice"])])
    bob = _photo(tmp_path / "bob.jpg", [((100, 100, 220, 220), COLOURS["bob"])])
    assert enrol_images(gallery, engine, "Alice", [alice]).warnings == []
    dup = enrol_images(gallery, engine, "Alicia", [alice])
    assert dup.ok and len(dup.warnings) == 1
    assert dup.warnings[0].startswith(f"{alice} looks like 'Alice' already in the gallery (similarity 1.00)")
    wrong = enrol_images(gallery, engine, "Alice", [bob])
    assert wrong.ok and any("does not match the existing samples of 'Alice'" in w for w in wrong.warnings)
    mixed = enrol_images(gallery, engine, "Dave", [
        _photo(tmp_path / "d1.jpg", [((100, 100, 220, 220), COLOURS["dave"])]),
        _photo(tmp_path / "d2.jpg", [((90, 90, 220, 220), COLOURS["dave"])]),
        _photo(tmp_path / "c.jpg", [((100, 100, 220, 220), COLOURS["carol"])]),
    ])
    odd = [w for w in mixed.warnings if "matches none of the other new photos" in w]
    assert len(odd) == 1 and odd[0].startswith(str(tmp_path / "c.jpg"))


def test_enrol_from_track_crops_takes_the_central_face(engine, gallery):
    frame = np.full((240, 480, 3), 30, np.uint8)
    draw_face(frame, (200, 60, 290, 150), COLOURS["carol"])
    draw_face(frame, (320, 70, 400, 150), COLOURS["bob"])  # a neighbour partly inside the crop
    faces = engine.infer([frame])[0]
    i = int(np.argmin(faces.boxes[:, 0]))
    crop = storage_crop(frame, faces.boxes[i], faces.landmarks[i]).image
    assert len(engine.infer([crop])[0]) == 2
    result = enrol_crops(gallery, engine, "Carol", [crop], ["camera 0 track 7"])
    assert result.ok and result.added[0].source == "camera 0 track 7"
    m = gallery.match(engine.embed_colour(COLOURS["carol"])[None], engine.info.model_id)
    assert m.names == ["Carol"]


def test_enroll_command_with_the_cascade_engine(tmp_path, capsys):
    """`main.py enroll` end to end on real photos (skipped without LFW or the cascade engine)."""
    from pathlib import Path

    from main import main
    from app.paths import NO_FACE_IMAGE

    lfw = SHARED_DATA / "lfw" / "images"
    photos = sorted((lfw / "Tony_Blair").glob("*.jpg"))[:2]
    if len(photos) < 2:
        pytest.skip(f"LFW images not found at {lfw}")
    try:
        from engines.backends.registry import create_engine

        create_engine("cascade").close()
    except Exception as exc:  # noqa: BLE001 - any reason the engine cannot run is a skip reason
        pytest.skip(f"cascade engine unavailable: {exc}")
    folder = tmp_path / "g"
    argv = ["enroll", "Tony Blair", *map(str, photos), str(NO_FACE_IMAGE), "--engine", "cascade",
            "--gallery", str(folder), "--json"]
    code = main(argv)
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [a["source"] for a in out["added"]] == [str(p) for p in photos]
    assert out["refused"] == [{"source": str(NO_FACE_IMAGE), "reason": "no face found"}]
    assert out["created"] is True and out["model_id"].startswith("cascade")
    code = main(["enroll", "Nobody", str(NO_FACE_IMAGE), "--engine", "cascade", "--gallery", str(folder)])
    text = capsys.readouterr().out
    assert code == 2 and "refused" in text and "Nobody: nothing enrolled (1 refused)" in text
    with Gallery(folder) as g:
        assert [(i.name, i.sample_count) for i in g.identities()] == [("Tony Blair", 2)]
