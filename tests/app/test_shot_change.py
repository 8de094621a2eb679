"""Shot-change detection on real footage: the sample clip's three cuts and nothing else."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from app.live.shot_change import ShotChangeConfig, ShotChangeDetector
from tests.support.paths import SAMPLE_VIDEO

CLIP = SAMPLE_VIDEO


def test_the_sample_clip_cuts_are_found_and_nothing_else():
    detector = ShotChangeDetector()
    cuts = []
    with av.open(str(CLIP)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if detector.update(frame.to_ndarray(format="bgr24")):
                cuts.append(index)
    assert cuts == [20, 82, 211]  # found by looking at the clip


def test_a_flat_picture_changing_colour_is_no_cut(tmp_path):
    """tests/support/fakes.make_video: flat colours jumping every frame, a white square moving."""
    from tests.support.fakes import make_video

    make_video(tmp_path / "v.mp4", frames=45)
    detector = ShotChangeDetector()
    with av.open(str(tmp_path / "v.mp4")) as container:
        flags = [detector.update(f.to_ndarray(format="bgr24")) for f in container.decode(video=0)]
    assert not any(flags)


def test_first_frame_and_reset_start_no_shot_and_config_is_checked():
    rng = np.random.default_rng(0)
    detector = ShotChangeDetector()
    a = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    b[..., :2] //= 8  # another picture, mostly red
    assert detector.update(a) is False
    assert detector.update(b) is True and detector.last_distance > 0.5 and detector.last_correlation < 0.5
    detector.reset()
    assert detector.update(a) is False
    with pytest.raises(ValueError):
        ShotChangeConfig(threshold=0)
    with pytest.raises(ValueError):
        ShotChangeConfig(max_correlation=2)
