"""Matching embeddings against the gallery: one model's embeddings as a unit-row matrix grouped by
identity (`EmbeddingMatrix`, an immutable snapshot the store rebuilds after any change), and the
decision per query face (`match_embeddings`): the best identity, the second best, the margin.

Matching takes, per identity, the best cosine similarity over its samples ("max"; "mean"
matches against each identity's mean embedding instead). A face is named when the best
identity reaches the threshold and beats the second best by the margin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.faces import EMBEDDING_DIM


@dataclass(slots=True)
class Matches:
    """Gallery decisions for n query embeddings against k identities."""

    names: list[str | None]  # decided name per query (None = unknown)
    similarities: np.ndarray  # (n,) best identity similarity (NaN when the gallery is empty)
    best: np.ndarray  # (n,) index into `identity_names` of the nearest identity (-1 = none)
    second_similarities: np.ndarray  # (n,) second-best identity similarity (NaN = none)
    identity_names: tuple[str, ...]  # the k identities compared against
    identity_similarities: np.ndarray  # (n, k) similarity of each query to each identity

    def similarity_to(self, i: int, name: str | None) -> float:
        """Similarity of query i to identity `name` (NaN when unknown or not in the gallery)."""
        if name is None:
            return float("nan")
        try:
            j = self.identity_names.index(name)
        except ValueError:
            return float("nan")
        return float(self.identity_similarities[i, j])


@dataclass(slots=True)
class EmbeddingMatrix:
    """An immutable snapshot of one model's embeddings, ready for a matrix product."""

    matrix: np.ndarray  # (m, 128) unit rows, grouped by identity
    starts: np.ndarray  # (k,) first row of each identity
    names: tuple[str, ...]  # (k,)
    missing: list[tuple[int, str]]  # samples (id, identity name) with no embedding for this model


def build_matrix(rows: list[tuple], aggregate: str, missing: list[tuple[int, str]]) -> EmbeddingMatrix:
    """The matrix of `rows` (identity id, name, vector blob, sample id), ordered by identity."""
    if not rows:
        return EmbeddingMatrix(np.zeros((0, EMBEDDING_DIM), np.float32), np.zeros(0, np.int64), (), missing)
    ids = np.array([r[0] for r in rows])
    matrix = np.stack([np.frombuffer(r[2], dtype="<f4") for r in rows]).astype(np.float32)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    names = tuple(rows[i][1] for i in starts)
    if aggregate == "mean":
        matrix = np.add.reduceat(matrix, starts, axis=0)
        starts = np.arange(len(names))
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return EmbeddingMatrix(matrix=matrix, starts=starts.astype(np.int64), names=names, missing=missing)


def match_embeddings(matcher: EmbeddingMatrix, q: np.ndarray, thr: float, mar: float) -> Matches:
    """Name each row of `q` (n, 128) against `matcher`: threshold `thr`, margin `mar`."""
    n = len(q)
    k = len(matcher.names)
    if n == 0 or k == 0:
        return Matches(names=[None] * n, similarities=np.full(n, np.nan, np.float32), best=np.full(n, -1, np.int64),
                       second_similarities=np.full(n, np.nan, np.float32), identity_names=matcher.names,
                       identity_similarities=np.zeros((n, k), np.float32))
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    q = q / np.maximum(norms, 1e-12)
    sims = q @ matcher.matrix.T  # (n, m)
    per_identity = np.maximum.reduceat(sims, matcher.starts, axis=1) if len(matcher.starts) < sims.shape[1] else sims
    best = np.argmax(per_identity, axis=1)
    rows = np.arange(n)
    best_sim = per_identity[rows, best]
    if k > 1:
        second = np.partition(per_identity, k - 2, axis=1)[:, k - 2]
    else:
        second = np.full(n, np.nan, np.float32)
    gap_ok = np.where(np.isnan(second), True, best_sim - np.nan_to_num(second, nan=-np.inf) >= mar)
    named = (best_sim >= thr) & gap_ok & (norms[:, 0] > 0)
    names = [matcher.names[b] if ok else None for b, ok in zip(best, named)]
    return Matches(names=names, similarities=best_sim.astype(np.float32), best=best.astype(np.int64),
                   second_similarities=second.astype(np.float32), identity_names=matcher.names,
                   identity_similarities=per_identity.astype(np.float32))


def some_names(missing: list[tuple[int, str]]) -> str:
    names = sorted({name for _, name in missing})
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

