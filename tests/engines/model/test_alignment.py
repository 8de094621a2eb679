"""Landmark-aligned regions: the fitted frames, the turned sampling grid, and the network
sampling what the box configuration samples for an upright average face."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from engines.model.alignment import fit_frames, fit_teacher_frames, landmark_frames, measure_template
from engines.model.config import TINY, WIDE, WIDE_ALIGNED
from engines.model.network import Uniface
from engines.model.roi import roi_align, sample_frames, stack_feature_maps

TEMPLATE = torch.tensor([[0.30, 0.42], [0.70, 0.42], [0.50, 0.62], [0.34, 0.85], [0.66, 0.85]])


def frame_points(template, origin, axis_u, axis_v):
    return origin + template[:, :1] * axis_u + template[:, 1:] * axis_v


def rotation(theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    u = torch.tensor([math.cos(theta), math.sin(theta)])
    return u, torch.tensor([-u[1], u[0]])


def test_fit_frames_recovers_a_known_similarity():
    frames = []
    for theta, scale, shift in [(0.0, 100.0, (50.0, 20.0)), (0.5, 37.0, (300.0, 200.0)), (-2.8, 12.0, (5.0, 9.0))]:
        u, v = rotation(theta)
        frames.append((torch.tensor(shift), scale * u, scale * v))
    landmarks = torch.stack([frame_points(TEMPLATE, *f) for f in frames])
    origin, axis_u, axis_v = fit_frames(landmarks, TEMPLATE)
    for i, (o, u, v) in enumerate(frames):
        torch.testing.assert_close(origin[i], o, atol=1e-3, rtol=0)
        torch.testing.assert_close(axis_u[i], u, atol=1e-4, rtol=0)
        torch.testing.assert_close(axis_v[i], v, atol=1e-4, rtol=0)


def test_fit_frames_averages_noisy_landmarks_and_never_mirrors():
    gen = torch.Generator().manual_seed(0)
    u, v = rotation(0.3)
    clean = frame_points(TEMPLATE, torch.tensor([40.0, 60.0]), 80 * u, 80 * v)
    noisy = clean + torch.randn(200, 5, 2, generator=gen) * 2.0
    _, axis_u, _ = fit_frames(noisy, TEMPLATE)
    angles = torch.atan2(axis_u[:, 1], axis_u[:, 0])
    # unbiased: over 200 faces the means land on the true turn and size
    assert abs(float(angles.mean()) - 0.3) < 0.01 and abs(float(axis_u.norm(dim=1).mean()) - 80) < 1.0
    # a mirrored face (left and right swapped as in the image) is fitted turned, not reflected
    mirrored = clean.clone()
    mirrored[:, 0] = 200 - clean[:, 0]
    origin, axis_u, axis_v = fit_frames(mirrored[None], TEMPLATE)
    assert torch.allclose(axis_v[0], torch.stack([-axis_u[0, 1], axis_u[0, 0]]))
    # all landmarks on one point (the network's throwaway face): a zero frame, no NaN
    origin, axis_u, _ = fit_frames(torch.zeros(1, 5, 2), TEMPLATE)
    assert torch.all(axis_u == 0) and torch.all(torch.isfinite(origin))
    origin, axis_u, axis_v = fit_teacher_frames(torch.full((1, 5, 2), 7.0), TEMPLATE)
    assert torch.all(axis_u == 0) and torch.all(axis_v == 0) and torch.equal(origin, torch.full((1, 2), 7.0))


@pytest.mark.parametrize("folded", [False, True])
@pytest.mark.parametrize("sampling", [1, 2])
def test_sample_frames_places_every_bin_on_its_turned_point(sampling, folded):
    # feature maps that hold each cell's own input-pixel coordinates: bilinear sampling of a
    # linear ramp is exact, so every output bin must read the frame point at its centre
    n, h, w, stride, size = 2, 20, 24, 4, 6
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    px, py = (xs + 0.5) * stride, (ys + 0.5) * stride
    fr = torch.stack([torch.stack([px, py]), torch.stack([px, py + 1000])])  # image 1 marked by +1000 in y
    stacked = stack_feature_maps(fr, folded)
    u, v = rotation(0.7)
    origin, axis_u, axis_v = torch.tensor([[30.0, 20.0], [40.0, 25.0]]), 28 * u.expand(2, 2), 21 * v.expand(2, 2)
    out = sample_frames(stacked, origin, axis_u, axis_v, torch.tensor([0, 1]), size, stride, sampling=sampling)
    assert out.shape == (2, 2, size, size)
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    for r in range(2):
        want = (origin[r, :, None, None] + centres[None, None, :] * axis_u[r, :, None, None]
                + centres[None, :, None] * axis_v[r, :, None, None])  # (2, rows, cols)
        want[1] += 1000 * r
        torch.testing.assert_close(out[r], want, atol=1e-3, rtol=0)


def test_an_axis_aligned_frame_samples_what_roi_align_does():
    fr = torch.randn(2, 5, 16, 20)
    stacked = stack_feature_maps(fr)
    boxes = torch.tensor([[8.0, 12.0, 50.0, 60.0], [30.0, 4.0, 71.0, 33.0]])
    index = torch.tensor([1, 0])
    origin, wh = boxes[:, :2], boxes[:, 2:] - boxes[:, :2]
    zeros = torch.zeros(2)
    frames = sample_frames(stacked, origin, torch.stack([wh[:, 0], zeros], 1), torch.stack([zeros, wh[:, 1]], 1),
                           index, 8, stride=4)
    torch.testing.assert_close(frames, roi_align(stacked, boxes, index, 8, stride=4), atol=1e-5, rtol=0)


def test_measure_template_recovers_the_mean_face_in_its_box():
    rng = np.random.default_rng(0)
    template = TEMPLATE.numpy().astype(np.float64)
    x1, y1 = rng.uniform(0, 300, 50), rng.uniform(0, 200, 50)
    width = rng.uniform(20, 150, 50)
    boxes = np.stack([x1, y1, x1 + width, y1 + 1.2 * width], 1)
    landmarks = boxes[:, None, :2] + template[None] * width[:, None, None]
    got, aspect = measure_template(boxes, landmarks)
    np.testing.assert_allclose(got, template, atol=1e-9)
    assert aspect == pytest.approx(1.2)
    # a lopsided mean face comes out symmetric: the mean of it and its mirror image
    lopsided = template + [0.04, 0.0]
    got, _ = measure_template(boxes, boxes[:, None, :2] + lopsided[None] * width[:, None, None])
    np.testing.assert_allclose(got, template, atol=1e-9)
    with pytest.raises(ValueError, match="no boxes"):
        measure_template(np.zeros((1, 4)), np.zeros((1, 5, 2)))


def aligned_tiny(aspect: float) -> tuple[Uniface, Uniface]:
    torch.manual_seed(0)
    boxed = Uniface(TINY).eval()
    cfg = dataclasses.replace(TINY, name="tiny-aligned", face_template=tuple(map(tuple, TEMPLATE.tolist())),
                              face_aspect=aspect)
    aligned = Uniface(cfg).eval()
    aligned.load_state_dict(boxed.state_dict())  # same layout: the template is not a weight
    return boxed, aligned


def smooth_map(channels: int, h: int, w: int, turn: float, centre: torch.Tensor) -> torch.Tensor:
    """F_r cells holding smooth waves of input-pixel position, the pattern turned by `turn`
    about `centre` (computed per cell, so the turned map carries no resampling error)."""
    gen = torch.Generator().manual_seed(3)
    freq = torch.randn(channels, 2, generator=gen) * 0.06
    phase = torch.rand(channels, generator=gen) * 6.28
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) * 4, (torch.arange(w) + 0.5) * 4, indexing="ij")
    p = torch.stack([xs, ys], -1) - centre
    c, s = math.cos(-turn), math.sin(-turn)
    q = torch.stack([c * p[..., 0] - s * p[..., 1], s * p[..., 0] + c * p[..., 1]], -1)  # back to upright
    return torch.sin(q @ freq.T + phase).permute(2, 0, 1)[None]


def test_an_upright_average_face_is_sampled_as_its_box():
    boxed, aligned = aligned_tiny(aspect=1.25)
    fr = torch.randn(1, TINY.fr_channels, 32, 40)
    box = torch.tensor([[40.0, 20.0, 104.0, 100.0]])  # 64 x 80: aspect 1.25
    upright = frame_points(TEMPLATE, box[0, :2], torch.tensor([64.0, 0.0]), torch.tensor([0.0, 64.0]))[None]
    with torch.no_grad():
        torch.testing.assert_close(aligned.embed(fr, box, upright, torch.tensor([0])),
                                   boxed.embed(fr, box, upright, torch.tensor([0])), atol=1e-5, rtol=0)


def test_a_tilted_face_gives_the_upright_faces_embedding_only_when_aligned():
    boxed, aligned = aligned_tiny(aspect=1.25)
    box = torch.tensor([[40.0, 20.0, 104.0, 100.0]])
    centre = torch.tensor([72.0, 60.0])
    upright = frame_points(TEMPLATE, box[0, :2], torch.tensor([64.0, 0.0]), torch.tensor([0.0, 64.0]))
    turn = math.radians(30)
    u, v = rotation(turn)
    tilted = centre + (upright - centre) @ torch.stack([u, v])  # each point turned by +30 degrees
    index = torch.tensor([0])
    fr_up = smooth_map(TINY.fr_channels, 32, 40, 0.0, centre)
    fr_tilted = smooth_map(TINY.fr_channels, 32, 40, turn, centre)
    with torch.no_grad():
        a_up = aligned.embed(fr_up, box, upright[None], index)
        a_tilted = aligned.embed(fr_tilted, box, tilted[None], index)
        b_up = boxed.embed(fr_up, box, upright[None], index)
        b_tilted = boxed.embed(fr_tilted, box, tilted[None], index)
    aligned_cos, boxed_cos = float((a_up * a_tilted).sum()), float((b_up * b_tilted).sum())
    # (a random network's embeddings all lie close together, so compare the distances)
    assert 1 - aligned_cos < 1e-4 and 1 - boxed_cos > 100 * (1 - aligned_cos), (aligned_cos, boxed_cos)


def test_the_aligned_configuration_loads_the_box_configurations_weights():
    assert WIDE_ALIGNED.face_template is not None and len(WIDE_ALIGNED.face_template) == 5
    box_state, aligned_state = Uniface(WIDE).state_dict(), Uniface(WIDE_ALIGNED).state_dict()
    assert {k: v.shape for k, v in box_state.items()} == {k: v.shape for k, v in aligned_state.items()}
    with pytest.raises(ValueError, match="5 landmarks"):
        dataclasses.replace(TINY, face_template=((0.5, 0.5),))


def test_landmark_frames_turn_with_the_face():
    u, v = rotation(1.0)
    origin, fu, fv = landmark_frames(torch.tensor([[[10.0, 10.0], [50.0, 20.0]]]), 40 * u[None], 40 * v[None], 0.5)
    torch.testing.assert_close(fu[0, 1], 20 * u)
    torch.testing.assert_close(origin[0, 0] + (fu[0, 0] + fv[0, 0]) / 2, torch.tensor([10.0, 10.0]))
