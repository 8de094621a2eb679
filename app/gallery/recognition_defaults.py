"""Default decision values for naming a face: cosine-similarity threshold per engine, margin.

Each engine's threshold sits at its own LFW operating point of 0.1% false accepts (or just past
it): SFace and dlib put faces on very different cosine scales, so one number cannot serve both.

Cascade (YuNet + SFace, CALIBRATED_MODEL below): `main.py eval lfw --engine cascade --json`
gives 99.38 +- 0.36% at cosine 0.332; 0.1% of different-people pairs exceed 0.338 (98.9% of
same-person pairs pass it); the gallery threshold is 0.34 (OpenCV Zoo publishes 0.363 for SFace).

MTCNN + dlib ("mtcnn-dlib"; it was the "cascade" engine until the YuNet + SFace one; dlib ResNet,
embeddings L2-normalised): dlib's raw descriptors have norms of about
1.3-1.6, so its usual "Euclidean distance 0.6" is cosine ~0.91, not 0.82.
Verification, 300 LFW pairsDevTest pairs (150 same / 150 different people): best accuracy
at 0.90 (98.3%); at 0.91 no different-people pair passes, 4% of same-person pairs fail.
A gallery is harder: a stranger is compared with every sample and only the best counts.
Gallery of 40 LFW people x 3 photos (max over samples), 120 other photos of them, 60 photos
of 60 strangers: at 0.91 with no margin 42% of strangers get a name; at 0.93 with margin
0.03, 90.8% of the enrolled people's photos are named (none wrongly) and 0 strangers; at
0.93 / 0.01, 98.3% and 1.7%. Names are voted over a track's frames, so missing a few
frames costs little and the stricter pair is the default.

Uniface (the shipped single-shot model, CALIBRATED_MODEL below): `main.py eval lfw --json`
gives 91.97% verification accuracy at cosine 0.336, and 0.459 as the cosine that 1% of
different-people pairs exceed (75.6% of same-person pairs pass it; at 0.1% false accepts
0.553 and 56.6%). Like mtcnn-dlib's (0.93, past its own 0.1% point of 0.918), the gallery
threshold sits at the 0.1% point: with this model a wrong name is the likelier error, and
the operator would rather see "unknown" (with an earlier model at its 1% point, one of
three photos of a stranger took an enrolled name). A known face is named on the frames where it is clearest
(names are voted over a track). A new model must be re-evaluated and this table updated (a
test checks the model id).
"""
from __future__ import annotations

DEFAULT_THRESHOLD: dict[str, float] = {
    "uniface": 0.553,
    "cascade": 0.34,
    "mtcnn-dlib": 0.93,
}
# the weights each engine's threshold was measured with
CALIBRATED_MODEL: dict[str, str] = {
    "uniface": "uniface-wide_aligned-bbd28bc47cdc",
    "cascade": "cascade-yunet-sface-v1",
    "mtcnn-dlib": "cascade-mtcnn-dlib-v1",
}
# model ids -> the engine that makes them (the MTCNN + dlib id predates the engine's name)
MODEL_ID_PREFIXES: tuple[tuple[str, str], ...] = (
    ("cascade-mtcnn-dlib", "mtcnn-dlib"),
    ("cascade-", "cascade"),
    ("uniface-", "uniface"),
)
# mean cosine of two different people (LFW pairs.txt), where measured: the tracker's embedding
# gate lies half way from the threshold to it (`app.live.tracking.gate_for_threshold`)
DIFFERENT_PEOPLE_MEAN: dict[str, float] = {"cascade": 0.082}
FALLBACK_THRESHOLD = 0.93  # engines not in the table
DEFAULT_MARGIN = 0.03  # best identity must beat the second best by this much


def default_threshold(engine: str | None) -> float:
    """The calibrated threshold for an engine name ("uniface", "cascade", "mtcnn-dlib"), else the fallback."""
    return DEFAULT_THRESHOLD.get(engine or "", FALLBACK_THRESHOLD)


def engine_for_model(model_id: str | None) -> str | None:
    """The engine that makes embeddings with this model id (None: unknown)."""
    for prefix, engine in MODEL_ID_PREFIXES:
        if (model_id or "").startswith(prefix):
            return engine
    return None


def threshold_for_model(model_id: str | None) -> float:
    """The threshold of the engine that made `model_id`, else the fallback."""
    return default_threshold(engine_for_model(model_id))


def chance_for_model(model_id: str | None) -> float | None:
    """The mean cosine of two different people for this model's engine, where measured."""
    return DIFFERENT_PEOPLE_MEAN.get(engine_for_model(model_id) or "")
