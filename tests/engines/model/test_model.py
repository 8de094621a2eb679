"""The network: shapes for every config, anchors, box coding, NMS, ROI sampling."""
import dataclasses

import numpy as np
import pytest
import torch

from engines.model.anchors import (
    decode_boxes, decode_landmarks, encode_boxes, encode_landmarks, grid_anchors, level_anchor_shapes,
)
from engines.model.config import (LONG_RUN, PROD, TINY, TINY_DEEP, TINY_MNV2FACE, TINY_MNV2FACE_B, TINY_MNV2FACE_C,
                                  TINY_CTX, TINY_MNV2FACE_D, TINY_MNV2FACE_PX,
                                  WIDE, WIDE_ALIGNED, WIDE_ROI32, WIDE_TD, WIDER, get_config)
from engines.model.network import Uniface
from engines.model.nms import box_iou, cluster_nms
from engines.model.roi import roi_align, stack_feature_maps


def greedy_nms_reference(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Textbook greedy NMS, one box at a time."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        ok = True
        for j in kept:
            x1, y1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            x2, y2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            union = np.prod(boxes[i, 2:] - boxes[i, :2]) + np.prod(boxes[j, 2:] - boxes[j, :2]) - inter
            if inter / union > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(int(i))
    return kept


@pytest.mark.parametrize("cfg", [TINY, TINY_DEEP, TINY_MNV2FACE, TINY_MNV2FACE_B, TINY_MNV2FACE_C, TINY_MNV2FACE_D, TINY_CTX, PROD, WIDE, WIDER, WIDE_TD, WIDE_ROI32, WIDE_ALIGNED],
                         ids=lambda c: c.name)
def test_output_shapes_and_contract(cfg):
    model = Uniface(cfg).eval()
    w, h = cfg.input_size
    images = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8)
    with torch.inference_mode():
        boxes, scores, landmarks, emb, count = model(images, torch.tensor([-1.0]), torch.tensor([3], dtype=torch.int32))
    k = cfg.max_faces
    assert boxes.shape == (2, k, 4) and scores.shape == (2, k)
    assert landmarks.shape == (2, k, 5, 2) and emb.shape == (2, k, 128)
    assert count.dtype == torch.int32 and count.tolist() == [3, 3]
    # valid faces are unit embeddings, sorted by score; the rest is zero
    assert torch.allclose(emb[:, :3].norm(dim=-1), torch.ones(2, 3), atol=1e-5)
    assert torch.all(emb[:, 3:] == 0) and torch.all(scores[:, 3:] == 0)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    assert torch.all(boxes[..., 0::2] <= w) and torch.all(boxes[..., 1::2] <= h) and torch.all(boxes >= 0)


@pytest.mark.parametrize("kept", [0, 1, 2, 5])
def test_deployed_embeddings_are_the_branch_on_each_kept_face_alone(kept):
    """The graph embeds only its kept faces (one throwaway face when there is none, zeroed), so
    every face's embedding is the branch's on that face, in its own slot of its own image."""
    cfg = TINY_MNV2FACE_PX
    model = Uniface(cfg).eval()
    w, h = cfg.input_size
    images = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(kept))
    with torch.inference_mode():
        boxes, _, landmarks, emb, count = model(images, torch.tensor([-1.0]), torch.tensor([kept], dtype=torch.int32))
        heads = model.forward_heads(model.normalise(images))
        for i in range(2):
            assert count[i] == kept
            if kept:
                alone = model.embed(heads.fr, boxes[i, :kept], landmarks[i, :kept],
                                    torch.full((kept,), i, dtype=torch.long), pixels=heads.pixels)
                torch.testing.assert_close(emb[i, :kept], alone, atol=1e-5, rtol=0)
    assert torch.all(emb.norm(dim=-1)[:, :kept] > 0.999) and torch.all(emb[:, kept:] == 0)


def test_finer_rois_are_pooled_back_to_the_same_feature_layout():
    assert (WIDE_ROI32.face_roi, WIDE_ROI32.landmark_roi) == (2 * WIDE.face_roi, 2 * WIDE.landmark_roi)
    coarse, fine = Uniface(WIDE).attention, Uniface(WIDE_ROI32).attention
    assert {k: v.shape for k, v in coarse.state_dict().items()} == {k: v.shape for k, v in fine.state_dict().items()}
    face = torch.randn(3, WIDE.fr_channels, 32, 32)
    assert fine.face(face).shape == coarse.face(face[:, :, ::2, ::2]).shape == (3, 512)
    assert fine.parts[0](face[:, :, :16, :16]).shape == (3, 128)
    with pytest.raises(ValueError, match="multiples of 8"):
        dataclasses.replace(WIDE_ROI32, landmark_roi=12)
    with pytest.raises(ValueError, match="512/128"):
        dataclasses.replace(WIDE, face_roi=32)  # finer without the pool: 2048-D


def _one_face_embedding(model: Uniface, fr: torch.Tensor, shift_landmarks: float = 0.0) -> torch.Tensor:
    box = torch.tensor([[60.0, 50.0, 170.0, 190.0]])
    landmarks = torch.tensor([[[90.0, 100], [140, 100], [115, 125], [95, 155], [135, 155]]])
    return model.embed(fr, box, landmarks + shift_landmarks, torch.zeros(1, dtype=torch.long))


def test_ablation_b_is_two_networks_that_no_loss_trains_together():
    """Model B: detection's losses reach only the detection network, the embedding's only the
    recognition network (its own backbone, the top-down pathway and landmark attention)."""
    torch.manual_seed(0)
    model = Uniface(TINY_MNV2FACE_B).train()
    images = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    heads = model.forward_heads(model.normalise(images))
    detection_loss = heads.logits.square().mean() + heads.box_deltas.square().mean() + heads.landmark_deltas.square().mean()
    embedding_loss = _one_face_embedding(model, heads.fr[:1]).sum()
    detection_part = [*model.backbone.parameters(), *model.heads.parameters()]
    recognition_part = [*model.recognition_backbone.parameters(), *model.topdown.parameters(),
                        *model.attention.parameters()]
    assert len(detection_part) + len(recognition_part) == len(list(model.parameters()))
    for loss, reached, untouched in ((detection_loss, detection_part, recognition_part),
                                     (embedding_loss, recognition_part, detection_part)):
        grads = torch.autograd.grad(loss, reached + untouched, retain_graph=True, allow_unused=True)
        reached_grads, untouched_grads = grads[:len(reached)], grads[len(reached):]
        assert all(g is None or not g.any() for g in untouched_grads)
        assert sum(g is not None and bool(g.any()) for g in reached_grads) > len(reached) // 2
    assert Uniface(TINY_MNV2FACE).recognition_backbone is None


def test_ablation_c_takes_f_r_from_one_deep_map_without_fusion():
    """Model C: F_r is the stride-16 map alone, so the stages below it change the embedding and
    the deeper ones (detection only) do not; model A fuses them all."""
    images = torch.randint(0, 256, (1, 256, 256, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    for cfg, deeper_counts in ((TINY_MNV2FACE_C, False), (TINY_MNV2FACE, True)):
        torch.manual_seed(0)
        model = Uniface(cfg).eval()
        with torch.no_grad():
            heads = model.forward_heads(model.normalise(images))
            assert heads.fr.shape[-2:] == (256 // cfg.fr_stride,) * 2
            before = _one_face_embedding(model, heads.fr)
            for stage in model.backbone.stages[cfg.fr_level + 1:]:  # stride 32 and beyond
                for p in stage.parameters():
                    p.add_(torch.randn_like(p))
            changed = model.forward_heads(model.normalise(images))
            after = _one_face_embedding(model, changed.fr)
        assert not torch.allclose(changed.logits, heads.logits)  # the detection heads saw it
        assert torch.allclose(before, after, atol=1e-6) != deeper_counts, cfg.name
    assert not hasattr(Uniface(TINY_MNV2FACE_C).topdown, "laterals")
    with pytest.raises(ValueError, match="top-down pathway ends at stride 4"):
        dataclasses.replace(TINY_MNV2FACE, fr_stride=16)
    with pytest.raises(ValueError, match="no backbone map at stride 12"):
        dataclasses.replace(TINY_MNV2FACE_C, fr_stride=12)


def test_ablation_d_pools_the_box_alone_without_landmark_attention():
    """Model D: the embedding follows the box and ignores the landmarks; no landmark branches."""
    torch.manual_seed(0)
    fr = torch.randn(1, TINY_MNV2FACE.fr_channels, 64, 64)
    d, a = Uniface(TINY_MNV2FACE_D).eval(), Uniface(TINY_MNV2FACE).eval()
    with torch.no_grad():
        assert torch.equal(_one_face_embedding(d, fr), _one_face_embedding(d, fr, shift_landmarks=12.0))
        assert not torch.allclose(_one_face_embedding(a, fr), _one_face_embedding(a, fr, shift_landmarks=12.0))
        shifted_box = d.embed(fr, torch.tensor([[72.0, 50, 182, 190]]), torch.zeros(1, 5, 2), torch.zeros(1, dtype=torch.long))
        assert not torch.allclose(_one_face_embedding(d, fr), shifted_box)
    assert len(d.attention.parts) == 0 and d.attention.face.out.out_features == 1024
    assert d.attention.project.in_features == a.attention.project.in_features == 1024
    with pytest.raises(ValueError, match="no face template"):
        dataclasses.replace(TINY_MNV2FACE, landmark_attention=False)


def test_the_ablation_configurations_are_the_main_run_but_for_their_one_change():
    changed = {"b": {"name", "shared_backbone"}, "c": {"name", "fusion", "fr_stride"},
               "d": {"name", "landmark_attention", "face_template", "face_pixels"}}
    for letter, fields in changed.items():
        ablation = get_config(f"{LONG_RUN.name}_{letter}")
        differ = {f.name for f in dataclasses.fields(ablation) if getattr(ablation, f.name) != getattr(LONG_RUN, f.name)}
        assert differ == fields, letter
        model = Uniface(ablation).eval()  # each builds and runs as a whole network
        with torch.no_grad():
            heads = model.forward_heads(model.normalise(torch.zeros(1, 160, 160, 3, dtype=torch.uint8)))
        assert heads.fr.shape[-2:] == (160 // ablation.fr_stride,) * 2


def test_head_outputs_per_anchor():
    model = Uniface(TINY).eval()
    out = model.forward_heads(torch.zeros(1, 3, 128, 160))
    expected = sum(-(-128 // s) * -(-160 // s) * a for s, a in zip(TINY.strides, TINY.anchors_per_cell))
    assert out.logits.shape == (1, expected, 2)
    assert out.box_deltas.shape == (1, expected, 4) and out.landmark_deltas.shape == (1, expected, 10)
    assert out.anchors.shape == (expected, 4)
    assert out.fr.shape == (1, TINY.fr_channels, 32, 40)  # F_r at stride 4


def test_prod_config_covers_sizes_and_ratios():
    assert PROD.aspect_ratios == (0.95, 0.8, 0.65)
    assert len(PROD.strides) >= 4 and PROD.strides[0] == 8 and PROD.strides[-1] >= 64
    sizes = [s for level in PROD.anchor_sizes for s in level]
    assert min(sizes) <= 12  # ~10 px faces
    w, h = PROD.input_size
    assert max(sizes) >= 0.95 * min(w, h)  # a face filling the frame still has an anchor
    with pytest.raises(ValueError):
        get_config("nope")


def test_anchor_grid_layout():
    shapes = level_anchor_shapes([16.0, 32.0], [0.95, 0.8, 0.65])
    assert shapes.shape == (6, 2)
    w, h = shapes[1]
    assert abs(float(w / h) - 0.8) < 1e-6 and abs(float(w * h) - 256) < 1e-3
    anchors = grid_anchors(2, 3, 8, shapes)
    assert anchors.shape == (2 * 3 * 6, 4)
    assert anchors[0, :2].tolist() == [4.0, 4.0]  # first cell centre
    assert anchors[6, :2].tolist() == [12.0, 4.0]  # next cell along x
    assert anchors[3 * 6, :2].tolist() == [4.0, 12.0]  # next row


def test_encode_decode_round_trip():
    gen = torch.Generator().manual_seed(0)
    anchors = torch.cat([torch.rand(500, 2, generator=gen) * 600, 8 + torch.rand(500, 2, generator=gen) * 400], 1)
    xy = torch.rand(500, 2, generator=gen) * 600
    boxes = torch.cat([xy, xy + 4 + torch.rand(500, 2, generator=gen) * 300], 1)
    assert torch.allclose(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes, atol=1e-2)
    lmk = torch.rand(500, 5, 2, generator=gen) * 600
    assert torch.allclose(decode_landmarks(encode_landmarks(lmk, anchors), anchors), lmk, atol=1e-2)


@pytest.mark.parametrize("seed", range(8))
def test_cluster_nms_equals_greedy(seed):
    rng = np.random.default_rng(seed)
    # clusters of jittered boxes: heavy overlap, like raw detector output
    centres = rng.uniform(50, 550, (12, 2))
    boxes = []
    for c in centres:
        size = rng.uniform(20, 120)
        for _ in range(rng.integers(3, 25)):
            cx, cy = c + rng.normal(0, size * 0.25, 2)
            s = size * rng.uniform(0.7, 1.3)
            boxes.append([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2])
    boxes = np.array(boxes, np.float32)
    scores = rng.uniform(0, 1, len(boxes)).astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    keep = cluster_nms(torch.from_numpy(boxes[order])[None], 0.4, 16)[0].numpy()
    ours = sorted(order[keep].tolist())
    assert ours == sorted(greedy_nms_reference(boxes, scores, 0.4))


@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.5, 0.9, 0.97, 1.0])
def test_nms_over_the_candidates_above_the_threshold_keeps_the_same_faces(threshold):
    """The graph runs NMS only on the prefix of sorted candidates above the threshold (in any
    image of the batch): every candidate above it gets the fate that NMS over all gives it."""
    rng = np.random.default_rng(3)
    model = Uniface(TINY).eval()
    n, m = 3, 120
    centres = rng.uniform(40, 600, (n, 10, 2))
    pick = rng.integers(0, 10, (n, m))
    sizes = rng.uniform(20, 100, (n, m, 1))
    xy = np.take_along_axis(centres, pick[..., None], 1) + rng.normal(0, 10, (n, m, 2))
    boxes = torch.from_numpy(np.concatenate([xy - sizes / 2, xy + sizes / 2], -1).astype(np.float32))
    scores = torch.from_numpy(rng.uniform(0, 1, (n, m)).astype(np.float32)).sort(1, descending=True).values
    scores[1] *= 0.5  # one image entirely below the higher thresholds: its prefix is another's
    keep = model.suppress(boxes, scores, torch.tensor([threshold]))
    full = cluster_nms(boxes, TINY.nms_iou, TINY.nms_iterations)
    above = scores > threshold
    assert torch.equal(keep[above], full[above])
    assert not keep[:, 1:][~above.any(0)[1:].expand(n, -1)].any()  # beyond the prefix: dropped


def test_cluster_nms_chain():
    # A suppresses B, B would suppress C but B is gone: greedy keeps A and C.
    boxes = torch.tensor([[[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]]], dtype=torch.float32)
    assert cluster_nms(boxes, 0.3, 16)[0].tolist() == [True, False, True]
    assert torch.allclose(box_iou(boxes[0], boxes[0]).diagonal(), torch.ones(3))


@pytest.mark.parametrize("folded", [False, True])
def test_roi_align_samples_the_right_image_and_place(folded):
    # two images whose feature maps hold distinct ramps; pooling a box returns its area
    n, c, h, w = 2, 1, 12, 16
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    fr = torch.stack([xs, 100 + ys])[:, None]  # image 0: x ramp; image 1: 100 + y ramp
    stacked = stack_feature_maps(fr, folded)
    # box covering cells 4..8 in x of image 0 (stride 4 -> pixels 16..36)
    out = roi_align(stacked, torch.tensor([[16.0, 8.0, 36.0, 28.0]]), torch.tensor([0]), 5, stride=4, sampling=1)
    assert out.shape == (1, 1, 5, 5)
    assert torch.allclose(out[0, 0, 0], torch.tensor([4.0, 5.0, 6.0, 7.0, 8.0]) - 0.0, atol=1e-4)
    out1 = roi_align(stacked, torch.tensor([[16.0, 8.0, 36.0, 28.0]]), torch.tensor([1]), 5, stride=4, sampling=1)
    assert torch.allclose(out1[0, 0, :, 0], 100 + torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]), atol=1e-4)


@pytest.mark.parametrize("size", [(128, 128), (160, 128), (640, 480)])
@pytest.mark.parametrize("cfg", [TINY, LONG_RUN, WIDE_ALIGNED], ids=lambda c: c.name)
def test_anchor_count_is_the_networks(cfg, size):
    """`anchor_count` (which bounds pre_nms_topk) counts what the network lays out, 160 px over
    stride 64 included (3 cells, not 2)."""
    w, h = size
    model = Uniface(cfg).eval()
    with torch.inference_mode():
        out = model.forward_heads(model.normalise(torch.zeros(1, h, w, 3, dtype=torch.uint8)))
    assert out.anchors.shape[0] == out.logits.shape[1] == cfg.anchor_count(w, h)


def test_a_config_decoding_more_candidates_than_the_smallest_input_has_is_refused():
    """TopK over fewer anchors than pre_nms_topk fails at run time, on the smallest inputs only:
    the config refuses it when it is made."""
    smallest = TINY.anchor_count(128, 128)
    dataclasses.replace(TINY, pre_nms_topk=smallest)
    with pytest.raises(ValueError, match="pre_nms_topk"):
        dataclasses.replace(TINY, pre_nms_topk=smallest + 1)
    with pytest.raises(ValueError, match="max_faces"):
        dataclasses.replace(TINY, max_faces=TINY.pre_nms_topk + 1)


def test_best_aspect_only_keeps_each_cells_best_ratio():
    """Groups of len(aspect_ratios) consecutive anchors are one cell and size (same centre, same
    area), and of each group only the best score (ties: all of them) stays over zero."""
    from engines.model.network import best_aspect_only

    cfg = LONG_RUN
    r = len(cfg.aspect_ratios)
    model = Uniface(cfg).eval()
    with torch.inference_mode():
        anchors = model.forward_heads(model.normalise(torch.zeros(1, 128, 160, 3, dtype=torch.uint8))).anchors
    groups = anchors.reshape(-1, r, 4)
    assert torch.allclose(groups[..., :2], groups[:, :1, :2].expand(-1, r, -1))
    area = groups[..., 2] * groups[..., 3]
    assert torch.allclose(area, area[:, :1].expand(-1, r), rtol=1e-4)
    assert not torch.allclose(groups[..., 2], groups[:, :1, 2].expand(-1, r))  # the ratios differ

    scores = torch.tensor([[0.2, 0.9, 0.5, 0.7, 0.7, 0.1], [0.3, 0.3, 0.3, 0.0, 0.8, 0.6]])
    kept = best_aspect_only(scores, 3)
    expected = torch.tensor([[0.0, 0.9, 0.0, 0.7, 0.7, 0.0], [0.3, 0.3, 0.3, 0.0, 0.8, 0.0]])
    assert torch.equal(kept, expected)
