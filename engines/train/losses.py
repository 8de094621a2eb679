"""Uniface training losses: softmax with 3:1 hard negatives, Smooth-L1 boxes and landmarks, mimic L2,
(optionally) relational mimicry of the teacher's similarities to a bank of teacher embeddings, and
(optionally) a margin softmax over known identities."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

NEG_POS_RATIO = 3
MIN_NEGATIVES = 16  # per image, so images without faces still teach background


@dataclass(frozen=True, slots=True)
class LossWeights:
    cls: float = 1.0
    box: float = 2.0
    landmarks: float = 1.0
    mimic: float = 4.0
    relation: float = 0.0  # weight of relation_loss (0: off)
    identity: float = 0.0  # weight of identity_loss (0: off)
    hint: float = 0.0  # weight of the dense hint from SFace's last map (`engines.train.hints`; 0: off)
    input_hint: float = 0.0  # weight of the ImageNet input hint (`engines.train.imagenet_hint`; 0: off)


def detection_losses(logits, box_deltas, lmk_deltas, labels, box_t, lmk_t) -> dict[str, torch.Tensor]:
    """Per-anchor losses averaged over positives (N images, A anchors)."""
    pos = labels == 1
    num_pos = pos.sum().clamp(min=1).float()
    ce = F.cross_entropy(logits.reshape(-1, 2), labels.clamp(min=0).reshape(-1), reduction="none").reshape(labels.shape)
    # hard negative mining: the most confident background mistakes, 3 per positive
    neg_ce = ce.detach().clone()
    neg_ce[labels != 0] = -1.0
    k = (pos.sum(1, keepdim=True) * NEG_POS_RATIO).clamp(min=MIN_NEGATIVES)
    rank = neg_ce.argsort(1, descending=True).argsort(1)
    neg = (rank < k) & (labels == 0)
    cls = ce[pos | neg].sum() / num_pos
    box = F.smooth_l1_loss(box_deltas[pos], box_t[pos], reduction="sum") / num_pos
    # faces without landmarks (NaN targets: official boxes the teacher missed) teach class and box only
    marked = pos & torch.isfinite(lmk_t).all(-1)
    lmk = F.smooth_l1_loss(lmk_deltas[marked], lmk_t[marked], reduction="sum") / marked.sum().clamp(min=1).float()
    return {"cls": cls, "box": box, "landmarks": lmk}


def mimic_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared L2 distance between unit student and teacher embeddings (= 2 - 2 cos)."""
    if student.shape[0] == 0:
        return student.sum() * 0
    return ((student - F.normalize(teacher, dim=1)) ** 2).sum(1).mean()


def relation_loss(student: torch.Tensor, target: torch.Tensor, bank: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence from the teacher's to the student's softmax similarities over a bank of teacher faces.

    student, target: (N, D) unit embeddings of the same faces; bank: (M, D) unit teacher embeddings.
    The L2 mimic loss pulls each embedding towards its own target only; verification depends on
    how a face relates to *other* faces, which this term teaches directly. Faces of the same person
    in the bank are not false negatives here: the teacher already rates them close.
    """
    if student.shape[0] == 0 or bank.shape[0] == 0:
        return student.sum() * 0
    with torch.no_grad():
        teacher_p = F.softmax(target @ bank.T / temperature, dim=1)
    student_logp = F.log_softmax(student @ bank.T / temperature, dim=1)
    return F.kl_div(student_logp, teacher_p, reduction="batchmean")


def identity_loss(student: torch.Tensor, classes: torch.Tensor, weight: torch.Tensor, scale: float,
                  margin: float) -> torch.Tensor:
    """CosFace (large margin cosine) loss of the faces with a known identity.

    student: (N, D) embeddings; classes: (N,) class of each face, -1 for faces without one (left
    out); weight: (C, D) class weights (normalised here). The logit of a face's own class is
    scale * (cos - margin), the others scale * cos, then cross-entropy, averaged over the faces
    with a class. CosFace rather than ArcFace: its margin is subtracted from the cosine, so the
    target logit falls steadily with the angle however far the student starts from its class,
    where ArcFace's cos(angle + margin) turns back past 180 degrees and needs a fallback; the
    accuracy reported for the two is within a few tenths. No face with a class gives an exact
    zero that still reaches `student` and `weight`, so every parameter gets a (zero) gradient.
    """
    known = classes >= 0
    if not bool(known.any()):
        return student.sum() * 0 + weight.sum() * 0
    cos = F.normalize(student[known], dim=1) @ F.normalize(weight, dim=1).T
    target = classes[known]
    logits = scale * (cos - margin * F.one_hot(target, weight.shape[0]).to(cos.dtype))
    return F.cross_entropy(logits, target)
