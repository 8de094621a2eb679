"""A bounded fuzz run of the input surfaces (image decode, video open, gallery import, the
settings file) with hypothesis: every input ends in a result or a one-line error, and no
import leaves the gallery unable to recognise. `scripts/fuzz.py` runs the same targets longer."""
from __future__ import annotations

import collections

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from tests.support.fuzz_targets import RUNNERS, Seeds  # noqa: E402

pytestmark = pytest.mark.timeout(300)
EXAMPLES = {"image": 600, "video": 150, "import": 100, "settings": 400}
_SEEDS: list[Seeds] = []
OUTCOMES: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def seeds() -> Seeds:
    if not _SEEDS:
        _SEEDS.append(Seeds.make())
    return _SEEDS[0]


@pytest.mark.parametrize("target", sorted(RUNNERS))
def test_fuzz_input_surface(target):
    run = RUNNERS[target]
    s = seeds()

    @settings(max_examples=EXAMPLES[target], deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(min_size=0, max_size=400))
    def check(data):
        OUTCOMES[target][run(data, s)] += 1

    check()
    tried = sum(OUTCOMES[target].values())
    assert tried >= EXAMPLES[target] // 2
    # the seeds are real files: a good share of inputs must get past the first check
    if target in ("image", "video", "import"):
        assert len(OUTCOMES[target]) >= 2, OUTCOMES[target]


def test_found_by_fuzzing_an_mp4_cut_to_82_percent_has_no_codec():
    """The first byte picks the MP4 seed; 0xd300 cuts it at 82%: the stream's codec context
    was None and opening it raised AttributeError. Now a one-line error."""
    assert RUNNERS["video"](b"\x00\x00\xd3", seeds()) == "error"
