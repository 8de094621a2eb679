"""WIDER's official boxes merged into the teacher's labels: missed faces become sure faces without
landmarks, which teach class and box but no landmark loss; confirmed teacher faces become sure."""
from dataclasses import replace

import numpy as np
import torch

from engines.train.dataset import mimic_eligible, to_item
from engines.train.losses import detection_losses
from engines.train.official_boxes import merge_official_boxes
from tests.engines.train.test_train import _label


def _crowd_label():
    base = _label(0)  # the astronaut's face, 170-260 x 50-165, teacher score 0.99
    return replace(base, path="/data/wider-odd/3--Riot/3_Riot_Riot_3_12.jpg", scores=np.array([0.6], np.float32))


def test_missed_faces_join_after_the_teachers_and_matched_ones_become_sure():
    label = _crowd_label()
    official = {"3_Riot_Riot_3_12": np.array([[172, 52, 86, 110], [20, 300, 14, 16], [40, 40, 0, 9]], np.float32)}
    (merged,), counts = merge_official_boxes([label], official)
    assert (counts.images, counts.confirmed, counts.added) == (1, 1, 1)  # the 0-wide box is dropped
    assert np.array_equal(merged.boxes[0], label.boxes[0])  # the teacher's face keeps its place and box
    assert merged.scores.tolist() == [1.0, 1.0]
    assert np.allclose(merged.boxes[1], [20, 300, 34, 316])
    assert np.isnan(merged.landmarks[1]).all() and not np.isnan(merged.landmarks[0]).any()
    assert (merged.embeddings[1] == 0).all() and not mimic_eligible(merged)[1]
    other = _label(1)
    (same,), none = merge_official_boxes([other], official)  # an image the ground truth does not cover
    assert same is other and none.images == 0
    # a photo the teacher found no face in, and one whose official boxes are all degenerate
    faceless = replace(label, boxes=np.zeros((0, 4), np.float32), landmarks=np.zeros((0, 5, 2), np.float32),
                       scores=np.zeros(0, np.float32), embeddings=np.zeros((0, 128), np.float32))
    (filled,), counts = merge_official_boxes([faceless], official)
    assert counts.added == 2 and filled.scores.tolist() == [1.0, 1.0] and np.isnan(filled.landmarks).all()
    (kept,), counts = merge_official_boxes([label], {"3_Riot_Riot_3_12": np.array([[40, 40, 0, 9]], np.float32)})
    assert (counts.confirmed, counts.added) == (0, 0) and np.array_equal(kept.scores, label.scores)


def test_faces_without_landmarks_teach_class_and_box_only():
    from engines.model.config import TINY
    from engines.model.network import Uniface
    from engines.train.augment import Sample

    model = Uniface(TINY)
    anchors = model.forward_heads(torch.zeros(1, 3, 128, 160)).anchors.numpy()
    boxes = np.array([[20, 20, 60, 70], [90, 30, 140, 90]], np.float32)
    landmarks = np.stack([np.full((5, 2), 40.0), np.full((5, 2), np.nan)]).astype(np.float32)
    sample = Sample(np.zeros((128, 160, 3), np.uint8), boxes, landmarks, np.zeros((2, 128), np.float32),
                    np.zeros(2, bool), np.zeros(2, bool))
    item = to_item(sample, anchors)
    labels, box_t, lmk_t = (torch.from_numpy(a)[None] for a in (item.labels, item.box_t, item.lmk_t))
    pos = labels[0] == 1
    assert torch.isnan(lmk_t[0][pos]).any() and torch.isfinite(lmk_t[0][pos]).all(-1).any()
    logits = torch.zeros(1, len(anchors), 2, requires_grad=True)
    box_d = torch.zeros(1, len(anchors), 4, requires_grad=True)
    lmk_d = torch.zeros(1, len(anchors), 10, requires_grad=True)
    losses = detection_losses(logits, box_d, lmk_d, labels, box_t, lmk_t)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["landmarks"].backward()
    moved = lmk_d.grad[0].abs().sum(-1) > 0
    assert moved.any() and not (moved & torch.isnan(lmk_t[0]).any(-1)).any()  # no pull on the unmarked face
    # the unmarked face's anchors still count as positives for class and box
    marked_only = detection_losses(logits, box_d, lmk_d, labels.where(torch.isfinite(lmk_t).all(-1), torch.zeros_like(labels)),
                                   box_t, lmk_t)
    assert losses["box"] != marked_only["box"]
