"""Pseudo-label shards: round trip, crash and resume, set definitions."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engines.train import labelling
from engines.train.labelling import ImageSet, label_images, list_images, load_labels, resolve_sets
from tests.support.paths import REPO, SHARED_DATA

DATA = SHARED_DATA
SAMPLES = REPO / "docs" / "samples"


@pytest.fixture(scope="module")
def six_images(tmp_path_factory) -> Path:
    """Six real images: the astronaut, the cat (no face) and four LFW faces when present."""
    pytest.importorskip("torch")
    pytest.importorskip("dlib")
    from engines.errors import EngineUnavailable
    from engines.teachers.locate import dlib_weights, mtcnn_weights

    try:
        mtcnn_weights(), dlib_weights()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("six")
    shutil.copy(SAMPLES / "astronaut.jpg", folder / "a_astronaut.jpg")
    shutil.copy(SAMPLES / "cat_no_face.jpg", folder / "b_cat.jpg")
    lfw = DATA / "lfw" / "images"
    extra = sorted(lfw.glob("Abel_Pacheco/*.jpg"))[:2] + sorted(lfw.glob("Amber_Tamblyn/*.jpg"))[:2]
    if len(extra) < 4:
        pytest.skip("../shared/data/lfw is not present")
    (folder / "sub").mkdir()
    for p in extra:
        shutil.copy(p, folder / "sub" / p.name)
    (folder / "notes.txt").write_text("not an image")
    return folder


def _set(folder: Path) -> ImageSet:
    files = list_images(folder)
    return ImageSet("six", folder, files, {f: f"id{i}" for i, f in enumerate(files)})


def _as_tuples(labels):
    return [(Path(l.path).name, l.width, l.height, l.identity, len(l.boxes)) for l in labels]


def test_partial_run_plus_resume_equals_one_full_run(six_images, tmp_path, monkeypatch):
    image_set = _set(six_images)
    assert len(image_set.files) == 6 and "notes.txt" not in image_set.files

    full_dir = tmp_path / "full"
    summary = label_images([image_set], full_dir, workers=1, shard_size=2, progress=False)
    assert summary.labelled == 6 and summary.no_face == 1 and summary.faces >= 5
    assert len(list((full_dir / "six").glob("part-*.npz"))) == 3

    # a run that dies on its 4th image: the first shard (2 images) is kept, nothing half-written
    calls = {"n": 0}
    real = labelling._label_one

    def dying(task):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("killed")
        return real(task)

    part_dir = tmp_path / "part"
    monkeypatch.setattr(labelling, "_label_one", dying)
    with pytest.raises(KeyboardInterrupt):
        label_images([image_set], part_dir, workers=1, shard_size=2, progress=False)
    monkeypatch.setattr(labelling, "_label_one", real)
    assert len(load_labels(part_dir)) == 2
    (part_dir / "six" / "part-00001.npz.tmp").write_bytes(b"half a shard")  # as if killed mid-write

    resumed = label_images([image_set], part_dir, workers=1, shard_size=2, progress=False)
    assert resumed.already_done == 2 and resumed.labelled == 4
    assert not list((part_dir / "six").glob("*.tmp"))
    again = label_images([image_set], part_dir, workers=1, shard_size=2, progress=False)
    assert again.labelled == 0 and again.already_done == 6

    a, b = load_labels(full_dir), load_labels(part_dir)
    assert _as_tuples(a) == _as_tuples(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.boxes, y.boxes, atol=1e-4)
        np.testing.assert_allclose(x.landmarks, y.landmarks, atol=1e-4)
        np.testing.assert_allclose(x.scores, y.scores, atol=1e-6)
        np.testing.assert_allclose(x.embeddings, y.embeddings, atol=1e-3)


def test_loaded_labels_hold_the_teacher_outputs(six_images, tmp_path):
    out = tmp_path / "labels"
    label_images([_set(six_images)], out, workers=1, shard_size=4, progress=False, limit=2)
    labels = {Path(l.path).name: l for l in load_labels(out)}
    astro, cat = labels["a_astronaut.jpg"], labels["b_cat.jpg"]
    assert Path(astro.path).is_file() and astro.set_name == "six" and astro.identity == "id0"
    assert (astro.width, astro.height) == (512, 512)
    assert astro.boxes.shape == (1, 4) and astro.landmarks.shape == (1, 5, 2)
    assert astro.embeddings.shape == (1, 128) and astro.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(astro.embeddings, axis=1), 1.0, atol=2e-3)  # float16 storage
    assert astro.scores[0] > 0.99
    assert len(cat.boxes) == 0 and cat.embeddings.shape == (0, 128)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["min_face_size"] == 20.0
    with pytest.raises(ValueError, match="labels made with"):
        label_images([_set(six_images)], out, workers=1, progress=False,
                     settings=labelling.TeacherSettings(min_face_size=40))


def test_label_command_json(six_images, tmp_path, capsys):
    from main import main

    out = tmp_path / "cmd"
    code = main(["label", "--sets", "", "--extra", f"mine={six_images}", "--out", str(out), "--workers", "1",
                 "--limit", "1", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["labelled"] == 1 and res["images"] == 6 and res["per_set"] == {"mine": 1}
    code = main(["label", "--sets", "", "--extra", "oops", "--out", str(out)])
    assert code == 2 and "NAME=DIR" in capsys.readouterr().err


def test_builtin_sets_and_identities():
    if not (DATA / "celeba-wild").is_dir():
        pytest.skip("../shared/data is not present")
    sets = {s.name: s for s in resolve_sets(["celeba-wild", "faces-misc", "lfw-train"], DATA)}
    celeba = sets["celeba-wild"]
    assert len(celeba.files) == 6300 and celeba.identities["000093.jpg"] == "7399"
    assert len(sets["faces-misc"].files) == 1930
    lfw = sets["lfw-train"]
    assert len(lfw.files) == 1347
    assert {lfw.identities[f] for f in lfw.files}.isdisjoint(labelling.pair_identities(DATA / "lfw"))
    with pytest.raises(ValueError, match="unknown image set"):
        resolve_sets(["nope"], DATA)


def test_lfw_train_refuses_a_test_identity(tmp_path):
    lfw = tmp_path / "lfw"
    (lfw / "images" / "Alice").mkdir(parents=True)
    (lfw / "pairs.txt").write_text("1\t1\nAlice\t1\t2\nBob\t1\tCarol\t1\n")
    (lfw / "train_identities.txt").write_text("Alice\t2\n")
    with pytest.raises(AssertionError, match="test identities"):
        labelling.lfw_train_set(lfw)
