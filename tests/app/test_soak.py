"""Soak runs: threads and memory readings of the live pipeline, and failures reported."""
from __future__ import annotations

import threading

import pytest

from app.live.soak import run_soak
from app.sources import SyntheticSource
from tests.support.fakes import FakeEngine


def test_short_soak_with_the_real_engine_is_flat_and_leaves_no_thread():
    from app.paths import user_cache_dir
    from engines.backends.registry import create_engine

    engine = create_engine("uniface", "onnxruntime", config="tiny", cache_dir=user_cache_dir())
    before = {t.ident for t in threading.enumerate()}
    source = SyntheticSource(width=320, height=240, fps=30, realtime=True)
    seen = []
    report = run_soak(source, engine, seconds=6, warmup=2, sample_every=2, on_sample=seen.append)
    assert report.passed, report.to_dict()
    assert len(report.samples) == len(seen) >= 3
    assert report.frames > 20 and not report.errors
    assert report.os_threads_end <= report.os_threads_start
    assert {t.ident for t in threading.enumerate()} <= before
    d = report.to_dict()
    assert d["passed"] and d["thread_growth"] <= 0 and "samples" not in d


def test_a_failing_engine_fails_the_soak_with_its_error():
    source = SyntheticSource(width=64, height=48, fps=100, realtime=True)
    report = run_soak(source, FakeEngine(fail_after=5), seconds=5, warmup=0.5, sample_every=1)
    assert not report.passed
    assert any("fake engine failure" in e for e in report.errors)
    assert report.seconds < 4  # stopped at the failure, not at the end of the run


@pytest.mark.slow
def test_soak_command_passes_and_prints_json(capsys):
    from main import main

    code = main(["soak", "--minutes", "0.1", "--warmup", "2", "--sample-every", "2", "--config", "tiny",
                 "--backend", "onnxruntime", "--source", "synthetic:size=320x240,fps=30", "--json"])
    import json

    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["passed"] and out["frames"] > 0 and out["threads_after"] <= out["threads_before"]
