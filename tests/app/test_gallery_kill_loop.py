"""100 SIGKILLs at random moments of a loop of enrolments (slow: `pytest -m slow`): after
every kill SQLite's integrity check is "ok", every enrolment reported committed is there,
and nothing is half-written (every identity has all 4 of its samples)."""
from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.gallery.store import DB_NAME, Gallery
from tests.support.paths import REPO

HELPER = REPO / "tests" / "support" / "gallery_crash_helper.py"
KILLS = 100


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_hundred_sigkills_lose_nothing_committed(tmp_path):
    folder = tmp_path / "g"
    rng = random.Random(26)
    committed: set[str] = set()
    mid_enrolment = 0
    started = time.monotonic()
    for round_ in range(KILLS):
        proc = subprocess.Popen([sys.executable, str(HELPER), str(folder), str(round_ * 10_000), "--begin"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            for _ in range(rng.randint(0, 6)):  # let a few enrolments finish first
                line = proc.stdout.readline().strip()
                while line.startswith("begin "):
                    line = proc.stdout.readline().strip()
                assert line.startswith("committed "), line
                committed.add(line.split()[1])
            time.sleep(rng.uniform(0.0, 0.008))  # then somewhere inside the next one
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            rest = proc.stdout.read().splitlines()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        committed |= {line.split()[1] for line in rest if line.startswith("committed ")}
        if rest and rest[-1].startswith("begin "):
            mid_enrolment += 1  # killed between the start of an enrolment and its commit
        conn = sqlite3.connect(folder / DB_NAME)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with Gallery(folder) as g:
            assert g.integrity_check() == "ok"
            names = set(g.names())
            assert committed <= names, sorted(committed - names)[:5]
            assert len(names - committed) <= 1  # at most the one in flight, and then whole
            assert all(i.sample_count == 4 for i in g.identities())
            committed |= names  # an unreported but whole enrolment counts from now on
    print(f"\n{KILLS} SIGKILLs ({mid_enrolment} inside an enrolment), {len(committed)} enrolments kept, "
          f"{time.monotonic() - started:.0f} s")
    assert mid_enrolment >= 10  # the kills did land inside enrolments, not only between them
