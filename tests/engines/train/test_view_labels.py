"""The YuNet + SFace label cache: stored views regenerate the pixels the teacher embedded."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from engines.faces import FLIP_ORDER
from engines.train import views as V
from tests.support.paths import REPO, SHARED_DATA

ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"
CAT = REPO / "docs" / "samples" / "cat_no_face.jpg"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, cascade):
    """Five images: the astronaut, her mirror, a tight crop of her face, the cat, a broken file."""
    root = tmp_path_factory.mktemp("tiny-set")
    image = cv2.imread(str(ASTRONAUT))
    cv2.imwrite(str(root / "a.jpg"), image)
    cv2.imwrite(str(root / "b.png"), cv2.flip(image, 1))
    cv2.imwrite(str(root / "c.jpg"), image[40:200, 160:290])  # the face fills the image: found only when padded
    shutil.copy(CAT, root / "d.jpg")
    (root / "e.jpg").write_bytes(b"not a jpeg")
    return root


def test_render_view_is_deterministic_and_moves_landmarks_with_the_pixels():
    rng = np.random.default_rng(3)
    crop = rng.integers(0, 256, (V.CROP_SIZE, V.CROP_SIZE, 3), dtype=np.uint8)
    params = V.random_params(rng, 6)
    for p in params:
        np.testing.assert_array_equal(V.render_view(crop, p), V.render_view(crop.copy(), p.copy()))
    np.testing.assert_array_equal(V.render_view(crop, V.IDENTITY), crop)
    np.testing.assert_array_equal(V.render_view(crop, V.MIRROR), crop[:, ::-1])
    # a bright dot on each landmark lands where view_landmarks says
    points = V.CROP_TEMPLATE
    for p in [V.MIRROR, *params]:
        p = p.copy()
        p[5:9] = (0, 1, 1, 0)  # geometry only
        moved = V.view_landmarks(points, p)
        for k in range(5):
            dot = np.zeros_like(crop)
            x, y = np.rint(points[k]).astype(int)
            cv2.circle(dot, (int(x), int(y)), 2, (255, 255, 255), -1)
            seen = V.render_view(dot, p)[..., 0].astype(float)
            centre = np.array([(seen.sum(0) * np.arange(V.CROP_SIZE)).sum(), (seen.sum(1) * np.arange(V.CROP_SIZE)).sum()])
            centre /= seen.sum()
            expected = moved[FLIP_ORDER[k]] if p[0] >= 0.5 else moved[k]
            assert np.abs(centre - expected).max() < 1.0, (p, k)


def test_label_views_cache_resumes_and_regenerates_the_teachers_view(tiny_set, tmp_path, cascade):
    from engines.train.labelling import ImageSet, list_images
    from engines.train.view_labels import ViewSettings, complete_shards, label_views, load_face_views

    image_set = ImageSet("tiny", tiny_set, list_images(tiny_set))
    settings = ViewSettings(views=3)
    first = label_views([image_set], tmp_path, settings, workers=1, limit=2, shard_size=2, progress=False)
    assert first.per_set["tiny"].images == 2 and first.already_done == 0
    rest = label_views([image_set], tmp_path, settings, workers=1, shard_size=2, progress=False)
    assert rest.already_done == 2 and rest.per_set["tiny"].images == 3
    t = rest.per_set["tiny"]
    assert t.unreadable == 1 and t.no_face == 1  # the broken file and the cat
    again = label_views([image_set], tmp_path, settings, workers=1, progress=False)
    assert again.already_done == 5 and again.per_set == {}
    assert len(complete_shards(tmp_path / "tiny")) == 3
    with pytest.raises(ValueError, match="labels made with"):
        label_views([image_set], tmp_path, ViewSettings(views=4), workers=1, progress=False)

    faces = load_face_views(tmp_path)
    assert len(faces) == 3  # the astronaut, her mirror, the tight crop
    assert faces.params.shape == (3, 5, len(V.PARAM_NAMES)) and faces.view_embeddings.shape == (3, 5, 128)
    np.testing.assert_array_equal(faces.params[:, 0], np.broadcast_to(V.IDENTITY, (3, 9)))
    np.testing.assert_array_equal(faces.params[:, 1], np.broadcast_to(V.MIRROR, (3, 9)))
    for i in range(len(faces)):
        crop = faces.crop(i)
        assert crop.shape == (V.CROP_SIZE, V.CROP_SIZE, 3)
        chips = [V.teacher_chip(V.render_view(crop, p), V.view_landmarks(faces.crop_landmarks[i], p))
                 for p in faces.params[i]]
        again = cascade.embedder.embed_chips(np.stack(chips))
        stored = faces.view_embeddings[i].astype(np.float32)
        # float16 storage: cosine of the regenerated view's embedding with the stored one
        cos = (again * stored).sum(1) / np.linalg.norm(stored, axis=1)
        assert cos.min() > 0.9999, cos
        # and every view is still the same person as the face embedded from the original image
        assert (stored @ faces.embedding[i].astype(np.float32)).min() > 0.4
    # the astronaut and her mirror image are one person to the teacher
    e = faces.embedding.astype(np.float32)
    assert e[0] @ e[1] > 0.7 and e[0] @ e[2] > 0.7
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["views"] == 3
    from engines.train.view_labels import cache_status

    status = cache_status(tmp_path)["sets"]["tiny"]
    assert {k: status[k] for k in ("images", "unreadable", "embedded", "views", "shards")} == \
        {"images": 5, "unreadable": 1, "embedded": 3, "views": 15, "shards": 3}


def test_label_views_command_one_line_errors(tmp_path, capsys):
    from main import main

    assert main(["label-views", "--out", str(tmp_path), "--sets", "nope"]) == 2
    assert "unknown image set" in capsys.readouterr().err
    assert main(["label-views", "--out", str(tmp_path), "--views", "-1"]) == 2
    assert main(["label-views", "--out", str(tmp_path), "--sets", "", "--extra", f"x={tmp_path / 'missing'}"]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_second_labelling_run_into_a_folder_being_written_stops_at_once(tmp_path, capsys):
    """Two runs into one cache would write the same shard names (and clear each other's
    half-written files): while one holds the folder, the other stops with a one-line error and
    writes nothing; once it is done, the folder is free again."""
    from engines.train.labelling import writer_lock
    from main import main

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.jpg"), np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "cache"
    args = ["label-views", "--out", str(out), "--sets", "", "--extra", f"photos={photos}", "--workers", "1", "--quiet"]
    with writer_lock(out):
        assert main(args) == 2
        assert "another labelling run (pid " in capsys.readouterr().err
        assert not (out / "photos").exists() and not (out / "meta.json").exists()
    assert main(args) == 0
    assert (out / "meta.json").is_file()


def test_label_views_command_on_shared_faces(tmp_path, capsys):
    if not (SHARED_DATA / "faces-misc").is_dir():
        pytest.skip("../shared/data is not present")
    from main import main

    assert main(["label-views", "--out", str(tmp_path), "--sets", "faces-misc", "--limit", "6", "--views", "2",
                 "--workers", "1", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    t = out["per_set"]["faces-misc"]
    assert t["images"] == 6 and t["embedded"] >= 5 and t["views"] == 4 * t["embedded"]


def test_cache_status_rate_ignores_the_time_nothing_ran(tmp_path):
    """A set labelled over two sessions: its rate is the typical shard's, not its images over the
    whole span with the night between the sessions in it."""
    import os

    from engines.train.view_labels import cache_status

    (tmp_path / "meta.json").write_text(json.dumps({"views": 8}))
    set_dir = tmp_path / "photos"
    set_dir.mkdir()
    start = 1_700_000_000
    gaps = [0, 50, 50, 50, 8 * 3600, 50, 50]  # 100 images a shard, 2 images/s, a night off after shard 4
    for i, t in enumerate(np.cumsum(gaps)):
        stem = set_dir / f"part-{i:05d}"
        np.savez(stem.with_name(stem.name + "-images.npz"), rel=np.array([f"{i}-{j}.jpg" for j in range(100)]),
                 counts=np.ones(100, np.int32), boxes=np.zeros((100, 4), np.float32))
        np.savez(stem.with_name(stem.name + "-faces.npz"), image=np.arange(100))
        for part in ("-images.npz", "-faces.npz"):
            os.utime(stem.with_name(stem.name + part), (start + t, start + t))
    status = cache_status(tmp_path)["sets"]["photos"]
    assert status["images"] == 700 and status["shards"] == 7
    assert status["images_per_s"] == 2.0  # over the whole span it would read 600 / 29,100 s = 0.02
