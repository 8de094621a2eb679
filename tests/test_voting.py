"""Identity vote: hysteresis, quality weighting, the whole-track verdict."""
from __future__ import annotations

import math

import pytest

from app.voting import IdentityVote, VoteConfig


def test_one_bad_frame_renames_nobody_but_a_real_change_switches():
    vote = IdentityVote()
    shown = [vote.add("Alice", 0.9, 1.0) for _ in range(20)]
    assert shown == ["Alice"] * 20
    assert vote.add("Bob", 0.95, 1.0) == "Alice"  # one frame matched to Bob
    assert vote.add("Alice", 0.9, 1.0) == "Alice"
    # Bob from now on: the name changes, not before a few frames, not after a whole window
    switched_after = None
    for k in range(1, 40):
        if vote.add("Bob", 0.9, 1.0) == "Bob":
            switched_after = k
            break
    # window 30: Bob's 1 + k votes must reach 1.25 x Alice's remaining 21 - (k - 8): k = 16
    assert switched_after == 16
    # and then it stays Bob
    assert all(vote.add("Bob", 0.9, 1.0) == "Bob" for _ in range(10))
    # over the whole track Bob has 27 frames to Alice's 21; his best frame was the 0.95 one
    assert vote.overall() == ("Bob", pytest.approx(0.95))


def test_exact_switch_point_follows_the_window_and_ratio():
    """20 Alice then Bob: with window 30 and ratio 1.25, Bob (k votes) beats Alice's remaining
    min(20, 30 - k) votes x 1.25 for the first time at k = 17."""
    vote = IdentityVote(VoteConfig(window=30, switch_ratio=1.25, min_switch_observations=3))
    for _ in range(20):
        vote.add("Alice", 0.9)
    names = [vote.add("Bob", 0.9) for _ in range(20)]
    assert names.index("Bob") + 1 == 17


def test_alternating_noise_does_not_flicker():
    vote = IdentityVote()
    shown = []
    for t in range(60):
        name = "Bob" if t % 3 == 2 else "Alice"  # a third of the frames misread
        shown.append(vote.add(name, 0.88, 1.0))
    assert set(shown) == {"Alice"}


def test_low_quality_frames_count_less():
    vote = IdentityVote()
    for _ in range(10):
        vote.add("Alice", 0.9, quality=0.9)
    for _ in range(15):  # more frames, but tiny and blurred
        assert vote.add("Bob", 0.9, quality=0.05) == "Alice"
    # the same 15 frames at good quality do switch
    good = IdentityVote()
    for _ in range(10):
        good.add("Alice", 0.9, quality=0.9)
    assert [good.add("Bob", 0.9, quality=0.9) for _ in range(15)][-1] == "Bob"


def test_unknown_to_known_and_similarity_reporting():
    vote = IdentityVote()
    assert vote.add(None, 0.5) is None
    assert math.isnan(vote.similarity) is False  # unknown frames report their nearest similarity
    names = [vote.add("Carol", 0.85) for _ in range(4)]
    assert names[-1] == "Carol" and names.index("Carol") == 2  # needs 3 votes to take over
    assert vote.similarity == pytest.approx(0.85)
    assert vote.overall() == ("Carol", pytest.approx(0.85))
    # the whole-track verdict follows total weight, not the last frames
    vote2 = IdentityVote()
    for _ in range(10):
        vote2.add(None, 0.4)
    for _ in range(5):
        vote2.add("Dan", 0.9)
    assert vote2.overall() == (None, None)


def test_config_is_validated():
    with pytest.raises(ValueError):
        VoteConfig(window=0)
    with pytest.raises(ValueError):
        VoteConfig(switch_ratio=0.5)
