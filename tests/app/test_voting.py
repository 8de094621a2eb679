"""Identity vote: named at the first confident frame or on agreement, doubted at the first
disagreeing frame, dropped when disagreement goes on; the whole-track verdict."""
from __future__ import annotations

import math

import pytest

from app.live.voting import IdentityVote, VoteConfig


def test_a_confident_frame_names_at_once_a_weak_one_needs_agreement():
    vote = IdentityVote()
    assert vote.add("Alice", 0.95, confident=True) == "Alice"
    weak = IdentityVote()
    assert weak.add("Alice", 0.6) is None  # one frame just past the threshold is not enough
    assert weak.add(None, 0.4) is None
    assert weak.add("Alice", 0.6) == "Alice"  # 2 of the last 3 frames agree


def test_one_disagreeing_frame_doubts_two_drop_and_an_agreeing_frame_clears():
    vote = IdentityVote()
    vote.add("Alice", 0.95, confident=True)
    assert vote.add("Bob", 0.7) == "Alice" and vote.doubtful
    assert vote.add("Alice", 0.9) == "Alice" and not vote.doubtful
    assert vote.add(None, 0.2) == "Alice" and vote.doubtful
    assert vote.add(None, 0.2) is None and not vote.doubtful  # dropped, not handed on


def test_drop_hands_the_track_to_another_name_only_with_its_own_evidence():
    vote = IdentityVote()
    vote.add("Alice", 0.95, confident=True)
    vote.add("Bob", 0.7)
    assert vote.add("Bob", 0.7) == "Bob"  # two frames of Bob: 2 of the last 3 agree
    other = IdentityVote()
    other.add("Alice", 0.95, confident=True)
    other.add(None, 0.1)
    assert other.add("Bob", 0.7) is None  # Alice dropped; Bob has one weak frame only


def test_frames_close_to_the_name_keep_it_doubtful_instead_of_dropping():
    vote = IdentityVote()
    vote.add("Alice", 0.95, confident=True)
    for _ in range(10):  # under the threshold but near Alice: the name stays, marked doubtful
        assert vote.add(None, 0.5, supports=True) == "Alice" and vote.doubtful
    assert vote.add("Alice", 0.7) == "Alice" and not vote.doubtful


def test_very_low_quality_frames_do_not_vote():
    vote = IdentityVote()
    vote.add("Alice", 0.95, confident=True)
    for _ in range(5):
        assert vote.add(None, 0.1, quality=0.01) == "Alice" and not vote.doubtful
    unnamed = IdentityVote()
    assert unnamed.add("Alice", 0.95, quality=0.01, confident=True) is None


def test_similarity_and_whole_track_verdict():
    vote = IdentityVote()
    assert vote.add(None, 0.5) is None
    assert math.isnan(vote.similarity) is False  # unknown frames report their nearest similarity
    names = [vote.add("Carol", 0.85) for _ in range(3)]
    assert names == [None, "Carol", "Carol"]  # 2 of the last 3 frames
    assert vote.similarity == pytest.approx(0.85)
    assert vote.overall() == ("Carol", pytest.approx(0.85))
    # the whole-track verdict follows total weight, not the last frames
    vote2 = IdentityVote()
    for _ in range(10):
        vote2.add(None, 0.4)
    for _ in range(5):
        vote2.add("Dan", 0.9)
    assert vote2.overall() == (None, None)
    assert vote2.name == "Dan"


def test_config_is_validated():
    with pytest.raises(ValueError):
        VoteConfig(agree=0)
    with pytest.raises(ValueError):
        VoteConfig(agree=3, agree_window=2)
    with pytest.raises(ValueError):
        VoteConfig(drop_after=0)
