"""Pre- and post-processing shared by every single-shot backend.

The network takes a uint8 BGR batch (N, H, W, 3) at its input size and normalises it itself;
frames are letterboxed into it (scaled to fit, anchored top-left, zero padding), so mapping
results back to the frame is a division by the scale. Backends also cap the scale
(`max_scale`): a frame smaller than the input is not enlarged past that.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.faces import Faces


@dataclass(slots=True)
class Letterbox:
    """How one frame was placed in the network input."""

    scale: float  # input pixels per frame pixel
    frame_size: tuple[int, int]  # (w, h) of the original frame


@dataclass(slots=True)
class RawOutputs:
    """The graph's outputs for a batch, in network-input pixels (K = max faces per image)."""

    boxes: np.ndarray  # (N, K, 4) float32
    scores: np.ndarray  # (N, K) float32
    landmarks: np.ndarray  # (N, K, 5, 2) float32
    embeddings: np.ndarray  # (N, K, 128) float32
    count: np.ndarray  # (N,) int32: valid faces per image, sorted first


def letterbox_into(frame: np.ndarray, out: np.ndarray, max_scale: float = math.inf) -> Letterbox:
    """Scale `frame` (h, w, 3 uint8) to fit `out` (H, W, 3 uint8), by at most `max_scale`,
    top-left; zero the rest."""
    h, w = frame.shape[:2]
    H, W = out.shape[:2]
    scale = min(W / w, H / h, max_scale)
    nw, nh = max(1, min(W, round(w * scale))), max(1, min(H, round(h * scale)))
    if (nw, nh) == (w, h):
        out[:h, :w] = frame
    else:
        interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
        out[:nh, :nw] = cv2.resize(frame, (nw, nh), interpolation=interp)
    if nh < H:
        out[nh:] = 0
    if nw < W:
        out[:nh, nw:] = 0
    return Letterbox(scale=scale, frame_size=(w, h))


def letterbox_batch(frames, input_size: tuple[int, int], out: np.ndarray | None = None,
                    max_scale: float = math.inf):
    """Letterbox BGR frames into one (N, H, W, 3) uint8 batch; returns (batch, placements).

    `out` may be a preallocated (pinned, reused) buffer of at least N images; `max_scale`
    caps how much a small frame is enlarged.
    """
    n = len(frames)
    out = batch_buffer(out, n, input_size)
    boxes = [letterbox_into(f, out[i], max_scale) for i, f in enumerate(frames)]
    return out[:n], boxes


def batch_buffer(out: np.ndarray | None, n: int, input_size: tuple[int, int]) -> np.ndarray:
    """`out` if it holds at least `n` images of `input_size` (W, H), else a new buffer of `n`."""
    W, H = input_size
    if out is None or out.shape[0] < n or out.shape[1:] != (H, W, 3):
        out = np.empty((n, H, W, 3), np.uint8)
    return out


def centred_in_frame(boxes: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Which boxes (K, 4, frame pixels, unclipped) have their centre inside the (w, h) frame.

    A box centred outside the frame sits mostly on the letterbox padding: networks trained
    on canvases without flat black borders fire there with their largest anchors (on 300
    held-out images with small photos, 145-1,193 such boxes scored over 0.9; the shipped
    model, trained with `--letterbox-p`, gives none, so here this is a guard). More than
    half of any real face such a box could stand for is out of view, so it is dropped.
    """
    w, h = frame_size
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx >= 0) & (cx <= w) & (cy >= 0) & (cy <= h)


def to_faces(raw: RawOutputs, placements: list[Letterbox]) -> list[Faces]:
    """Cut the padded outputs to each image's count, drop boxes centred off the frame, and
    map the rest to frame pixels."""
    result = []
    for i, lb in enumerate(placements):
        k = int(raw.count[i])
        s = lb.scale
        w, h = lb.frame_size
        boxes = raw.boxes[i, :k] / s
        keep = centred_in_frame(boxes, (w, h))
        boxes = boxes[keep]
        np.clip(boxes[:, 0::2], 0, w, out=boxes[:, 0::2])
        np.clip(boxes[:, 1::2], 0, h, out=boxes[:, 1::2])
        result.append(
            Faces(
                boxes=boxes,
                scores=raw.scores[i, :k][keep],
                landmarks=raw.landmarks[i, :k][keep] / s,
                embeddings=raw.embeddings[i, :k][keep],
            )
        )
    return result
